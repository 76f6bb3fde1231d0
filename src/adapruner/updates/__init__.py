"""Weight updates: what changes in the kept weights once the plan has chosen what to remove.

An update (``--update NAME``) turns the dense model, the plan and the calibration samples into
:class:`~adapruner.core.structure.LinearUpdate` values on the plan; masks, surgery and saving
apply them generically. Importing this package registers the built-in updates, one file each:
``none``, ``bias`` (FLAP's bias compensation) and ``reconstruct`` (least-squares re-fit, which
is also the structured-OBS update).
"""

from adapruner.updates import none  # noqa: F401, I001  (each registers its update, in --update order)
from adapruner.updates import bias  # noqa: F401
from adapruner.updates import reconstruct  # noqa: F401
from adapruner.updates.base import UPDATES, WeightUpdate, get_update, register_update

__all__ = ["UPDATES", "WeightUpdate", "get_update", "register_update"]
