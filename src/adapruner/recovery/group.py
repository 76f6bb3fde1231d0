"""SAAP-style group-wise fine-tuning, built in the spirit of QA-LoRA (Xu et al., 2023).

SAAP's exact recipe is not public (only its abstract: "group-wise fine-tuning"); this is our
reconstruction, chosen so that the tuned model stays a quantised model:

1. Every decoder projection ``W [out, in]`` is quantised to ``bits`` (INT4) per row in groups of
   ``G`` consecutive input columns, asymmetric min-max: ``W_q[r, j] = s[r, g] * q[r, j] + z[r, g]``
   with integer codes ``q in [0, 2^bits - 1]``, scale ``s`` and offset ``z`` per (row, group).
   (The last group is shorter when ``in`` is not a multiple of ``G``, as after pruning.)
2. A low-rank adapter acts on the *group-pooled* input: ``pool(x)[g] = mean_{j in g} x_j``,
   ``y = W_q x + (alpha / r) B A pool(x)`` with ``A [r, n_groups]``, ``B [out, r]`` (B starts at 0).
   Its update ``Delta W[r, j] = (alpha / r) (B A)[r, g(j)] / |g(j)|`` is constant inside each group,
   so every group of columns is adjusted together.
3. Merging is therefore exact inside the quantised format: the codes ``q`` and scales ``s`` stay,
   only the offsets move, ``z' = z + (alpha / r) (B A) / |g|``.

What is saved: the dequantised merged weights ``s * q + z'`` as a normal float checkpoint of the
pruned shape (loads exactly like a pruned model); every weight lies on its group's INT4 grid, and
the report records bits and group size so an INT4 packer can re-encode them losslessly. We do not
write a packed INT4 format. Why this design: plain LoRA cannot be merged into a quantised model
without re-quantising (which loses the tuned update); the group-pooled adapter is the smallest
change that makes tuning and quantisation commute, which is QA-LoRA's argument.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from adapruner.errors import AdaprunerError
from adapruner.core.adapters import adapter_for
from adapruner.recovery.lora import pad_id, prepare_examples, target_modules
from adapruner.recovery.training import TrainConfig, train, validation_loss


@dataclass
class GroupSettings:
    """Quantisation (``bits``, ``group_size`` input columns) and adapter (rank, alpha, dropout)."""

    bits: int = 4
    group_size: int = 32
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05


def quantize_groups(weight: torch.Tensor, bits: int, group_size: int):
    """Asymmetric min-max quantisation per (row, column group): ``(codes, scale, offset, group_of)``.

    ``group_of[j]`` is the group of input column ``j``; ``scale``/``offset`` are ``[out, n_groups]``.
    """
    out, inp = weight.shape
    group_of = torch.arange(inp, device=weight.device) // group_size
    n_groups = int(group_of[-1]) + 1
    w = weight.detach().float()
    pad = n_groups * group_size - inp
    wp = F.pad(w, (0, pad)).view(out, n_groups, group_size)
    valid = F.pad(torch.ones(inp, device=w.device), (0, pad)).view(1, n_groups, group_size).bool()
    lo = torch.where(valid, wp, torch.full_like(wp, float("inf"))).amin(-1)
    hi = torch.where(valid, wp, torch.full_like(wp, float("-inf"))).amax(-1)
    levels = 2 ** bits - 1
    scale = ((hi - lo) / levels).clamp_min(1e-8)
    codes = torch.round((w - lo[:, group_of]) / scale[:, group_of]).clamp(0, levels).to(torch.uint8)
    return codes, scale, lo, group_of


class GroupLoRALinear(nn.Module):
    """A frozen group-quantised linear plus a trainable low-rank adapter on the group-pooled input."""

    def __init__(self, linear: nn.Linear, settings: GroupSettings):
        super().__init__()
        codes, scale, offset, group_of = quantize_groups(linear.weight, settings.bits, settings.group_size)
        dtype = linear.weight.dtype
        self.register_buffer("codes", codes)
        self.register_buffer("scale", scale)
        self.register_buffer("offset", offset)
        self.register_buffer("group_of", group_of)
        n_groups = scale.shape[1]
        self.register_buffer("group_count", torch.bincount(group_of, minlength=n_groups).to(scale.dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.lora_A = nn.Parameter(torch.empty(settings.r, n_groups, dtype=dtype, device=scale.device))
        self.lora_B = nn.Parameter(torch.zeros(linear.out_features, settings.r, dtype=dtype, device=scale.device))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.scaling = settings.alpha / settings.r
        self.dropout = nn.Dropout(settings.dropout)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._weight_dtype = dtype

    def dequantized(self, offset: torch.Tensor | None = None) -> torch.Tensor:
        """``scale * codes + offset`` per group, as a dense weight."""
        offset = self.offset if offset is None else offset
        w = self.scale[:, self.group_of] * self.codes.float() + offset[:, self.group_of]
        return w.to(self._weight_dtype)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the input over each column group: ``[..., in] -> [..., n_groups]``."""
        summed = torch.zeros(*x.shape[:-1], self.scale.shape[1], dtype=x.dtype, device=x.device)
        summed.index_add_(-1, self.group_of, x)
        return summed / self.group_count.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.dequantized(), self.bias)
        return base + self.scaling * F.linear(F.linear(self.pool(self.dropout(x)), self.lora_A), self.lora_B)

    def merged_offset(self) -> torch.Tensor:
        """Offsets with the adapter folded in: ``z + scaling * (B A) / |group|``."""
        delta = self.scaling * (self.lora_B.float() @ self.lora_A.float()) / self.group_count
        return self.offset + delta.detach()

    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is the merged, still group-quantised weight."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.scale.device, dtype=self._weight_dtype)
        with torch.no_grad():
            lin.weight.copy_(self.dequantized(self.merged_offset()))
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin


def _projections(model) -> list[tuple[nn.Module, str]]:
    """(parent module, attribute) of every decoder projection targeted by recovery."""
    adapter = adapter_for(model)
    names = set(target_modules(model))
    found = []
    for layer in adapter.decoder_layers(model):
        for path, mod in layer.named_modules():
            leaf = path.rsplit(".", 1)[-1]
            if leaf in names and isinstance(mod, (nn.Linear, GroupLoRALinear)):
                parent = layer.get_submodule(path.rsplit(".", 1)[0]) if "." in path else layer
                found.append((parent, leaf))
    return found


def add_group_lora(model, settings: GroupSettings) -> int:
    """Quantise every projection in place and attach group adapters; freeze everything else.

    Returns the number of trainable parameters.
    """
    if settings.bits < 2 or settings.bits > 8:
        raise AdaprunerError(f"--bits must be between 2 and 8 (got {settings.bits})")
    if settings.group_size < 1:
        raise AdaprunerError(f"--group-size must be at least 1 (got {settings.group_size})")
    for p in model.parameters():
        p.requires_grad_(False)
    for parent, name in _projections(model):
        setattr(parent, name, GroupLoRALinear(getattr(parent, name), settings))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_group_lora(model, with_adapter: bool = True):
    """Replace every :class:`GroupLoRALinear` by a plain linear (merged, or the quantised base only)."""
    for parent, name in _projections(model):
        mod = getattr(parent, name)
        if isinstance(mod, GroupLoRALinear):
            if not with_adapter:
                with torch.no_grad():
                    mod.lora_B.zero_()
            setattr(parent, name, mod.merge())
    return model


def finetune_group(model, tokenizer, rows: list[dict], config: TrainConfig | None = None,
                   settings: GroupSettings | None = None, progress: bool = True, keep_adapter: bool = False):
    """Group-quantise ``model``, train the group adapters on Alpaca ``rows``, merge; ``(model, report)``.

    The report has the validation loss of the input model, of the quantised model before tuning
    and after tuning. ``keep_adapter`` returns the unmerged model (tests compare the two).
    """
    config = config or TrainConfig()
    settings = settings or GroupSettings()
    config.check()
    torch.manual_seed(config.seed)
    train_ex, val_ex = prepare_examples(tokenizer, rows, config)
    pid = pad_id(tokenizer)
    val_input = validation_loss(model, val_ex, pid, config.micro_batch_size, progress)
    trainable = add_group_lora(model, settings)
    val_quant = validation_loss(model, val_ex, pid, config.micro_batch_size, progress)
    history = train(model, train_ex, config, pid, progress)
    val_after = validation_loss(model, val_ex, pid, config.micro_batch_size, progress)
    report = {
        "method": "group", "group": asdict(settings), "target_modules": target_modules(model),
        "trainable_parameters": trainable, "train": config.to_json(),
        "n_train": len(train_ex), "n_val": len(val_ex),
        "val_loss_input_model": val_input, "val_loss_before": val_quant, "val_loss_after": val_after, **history,
        "loss_on": "full prompt and response" if config.train_on_inputs else "response tokens only",
        "template": "alpaca (LLM-Pruner / alpaca-lora)",
        "saved_weights": f"dequantised INT{settings.bits} weights (per-row groups of {settings.group_size} "
                         "input columns, asymmetric min-max) with the adapter merged into the group offsets",
    }
    if keep_adapter:
        return model, report
    return merge_group_lora(model).eval(), report
