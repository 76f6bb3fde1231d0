"""The vocabulary shared by every stage: pruning units, coupled members, plans and scores.

A decoder layer offers three kinds of *units* that can be removed:

* ``"head"``: one query head (its rows in q_proj and its columns in o_proj),
* ``"kv"``: one KV group (a KV head's rows in k_proj and v_proj, plus all query heads that read
  it: their q_proj rows and o_proj columns),
* ``"channel"``: one MLP intermediate channel (a row of gate_proj and up_proj, a column of
  down_proj).

A *member* is the slice that one unit occupies inside one linear layer: the unit ``u`` of a
member owns rows (``axis=0``) or columns (``axis=1``) ``offset + u*width ... offset + (u+1)*width``
of the weight. Fused projections (Phi-3's qkv_proj and gate_up_proj) are just members with an
offset. Importance metrics score members; masks and surgery act on members; the family adapter
(:mod:`adapruner.core.adapters`) is the only place that knows which linear holds which member.

A :class:`PruningPlan` says which units every layer keeps. It is the single hand-over between
allocation (which decides) and masks/surgery/saving (which act).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

UNIT_KINDS = ("head", "kv", "channel")


@dataclass(frozen=True)
class LayerShape:
    """Widths of one decoder layer: query heads, KV heads, head dimension, MLP channels."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int

    @property
    def group_size(self) -> int:
        """Query heads per KV head (GQA); transformers requires the same in every group."""
        return self.num_heads // self.num_kv_heads


@dataclass(frozen=True)
class Member:
    """The slice of one linear layer that each unit of one kind occupies.

    ``path`` is the linear's module path relative to the decoder layer (e.g. ``"self_attn.q_proj"``).
    For ``unit="head"`` members of q_proj/o_proj, unit ``u`` is query head ``u``; for
    ``unit="kv"`` members of k_proj/v_proj, unit ``u`` is KV head ``u``; for ``"channel"``
    members, unit ``u`` is intermediate channel ``u``.
    """

    name: str  # short role name: "q", "k", "v", "o", "gate", "up", "down"
    path: str
    unit: str  # "head" | "kv" | "channel"
    axis: int  # 0 = output rows of the weight, 1 = input columns
    offset: int  # first row/column of unit 0 (non-zero only inside fused projections)
    width: int  # rows/columns per unit (head_dim for attention, 1 for channels)
    count: int  # number of units of this member

    def index(self, units: torch.Tensor | list[int]) -> torch.Tensor:
        """Row/column indices of the weight occupied by ``units`` (sorted as given)."""
        units = torch.as_tensor(units, dtype=torch.long)
        base = self.offset + units[:, None] * self.width
        return (base + torch.arange(self.width)[None, :]).reshape(-1)


@dataclass
class LayerPlan:
    """Units one layer keeps, as sorted original indices.

    ``kept_heads`` are query-head indices, ``kept_kv`` KV-head indices and ``kept_channels`` MLP
    channel indices. Invariant (checked by :meth:`validate`): every kept head belongs to a kept
    KV group and every kept KV group keeps the same number of query heads, so the pruned layer
    is again a valid GQA layer.
    """

    kept_heads: list[int]
    kept_kv: list[int]
    kept_channels: list[int]

    def kept(self, unit: str) -> list[int]:
        """The kept units of kind ``unit`` ("head", "kv" or "channel")."""
        return {"head": self.kept_heads, "kv": self.kept_kv, "channel": self.kept_channels}[unit]

    def shape(self, original: LayerShape) -> LayerShape:
        """The layer's widths after pruning."""
        return LayerShape(
            num_heads=len(self.kept_heads),
            num_kv_heads=len(self.kept_kv),
            head_dim=original.head_dim,
            intermediate_size=len(self.kept_channels),
        )

    def validate(self, original: LayerShape) -> None:
        """Raise ValueError unless the plan describes a valid GQA layer of ``original``."""
        g = original.group_size
        if not self.kept_kv or not self.kept_heads or not self.kept_channels:
            raise ValueError("a layer must keep at least one KV group, one head and one channel")
        per_group: dict[int, int] = {}
        for h in self.kept_heads:
            per_group[h // g] = per_group.get(h // g, 0) + 1
        if sorted(per_group) != sorted(self.kept_kv):
            raise ValueError("kept heads must belong exactly to the kept KV groups")
        if len(set(per_group.values())) != 1:
            raise ValueError("every kept KV group must keep the same number of query heads")

    @staticmethod
    def full(shape: LayerShape) -> "LayerPlan":
        """A plan that keeps everything."""
        return LayerPlan(
            kept_heads=list(range(shape.num_heads)),
            kept_kv=list(range(shape.num_kv_heads)),
            kept_channels=list(range(shape.intermediate_size)),
        )


@dataclass
class LinearUpdate:
    """New values for one output-side linear (o_proj, down_proj) that a weight update computed.

    ``weight``: a replacement weight of the linear's *original* shape (only the kept input
    columns matter; least-squares reconstruction re-fits them). ``bias``: a vector added to the
    linear's output (FLAP's bias compensation). Masks, surgery and saving apply both generically,
    whatever update produced them (:mod:`adapruner.updates`).
    """

    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None


@dataclass
class PruningPlan:
    """What every decoder layer keeps. Layers absent from ``layers`` are untouched.

    ``updates`` optionally holds weight updates to apply with the plan
    (``{layer: {linear path: LinearUpdate}}``, see :mod:`adapruner.updates`). They are data, not
    decisions, so :meth:`to_json` leaves them out.
    """

    layers: dict[int, LayerPlan] = field(default_factory=dict)
    updates: dict[int, dict[str, LinearUpdate]] = field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-serialisable form (layer indices become strings)."""
        return {
            str(i): {"kept_heads": p.kept_heads, "kept_kv": p.kept_kv, "kept_channels": p.kept_channels}
            for i, p in sorted(self.layers.items())
        }

    @staticmethod
    def from_json(data: dict) -> "PruningPlan":
        """Inverse of :meth:`to_json`."""
        return PruningPlan({int(k): LayerPlan(**v) for k, v in data.items()})


# Per-layer scores of every unit kind: scores[layer]["head"] has one value per query head,
# ["kv"] one per KV head, ["channel"] one per MLP channel. Higher = more important.
Scores = dict[int, dict[str, torch.Tensor]]
