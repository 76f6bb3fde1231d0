"""The vocabulary every stage shares, below all of them: units and plans (:mod:`.structure`), where
each family keeps them (:mod:`.adapters`), the language-model head and next-token loss
(:mod:`.lm`), parameter counting and the ratio check (:mod:`.params`), registries
(:mod:`.registry`), atomic file writes (:mod:`.io`) and software versions (:mod:`.versions`).

Nothing here imports another adapruner package except :mod:`adapruner.errors`.
"""
