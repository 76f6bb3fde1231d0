"""Weight updates: what changes in the kept weights once the plan has chosen what to remove.

An update (``--update NAME``) turns the dense model, the plan and the calibration samples into
:class:`~adapruner.core.structure.LinearUpdate` values on the plan; masks, surgery and saving
apply them generically. Importing this package registers the built-in updates, one file each:
``none`` and ``bias`` (FLAP's bias compensation).
"""

from adapruner.updates import bias, none  # noqa: F401  (each registers its update)
from adapruner.updates.base import UPDATES, WeightUpdate, get_update, register_update

__all__ = ["UPDATES", "WeightUpdate", "get_update", "register_update"]
