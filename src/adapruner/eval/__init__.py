"""Evaluation: perplexity (LLM-Pruner protocol), zero-shot tasks (lm-eval), deployment statistics."""
