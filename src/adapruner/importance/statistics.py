"""Gradient and activation statistics of a calibration set, folded per unit inside hooks.

One batched forward/backward pass over the calibration set D = {x_1..x_N} gives everything the
gradient metrics need, without N separate backward passes and without any parameter ``.grad``:

* all parameters are frozen; the embedding output is made to require grad, so autograd still
  reaches every linear's output;
* each pruneable linear keeps its input ``x`` (forward hook) and catches its output gradient
  ``dy`` (tensor hook);
* the loss is the *sum* of per-sample losses, L = sum_j F_j with F_j the mean next-token
  cross-entropy of sample j. Samples do not interact, so ``dy[j]`` is sample j's own gradient and
  the per-sample weight gradient of a linear is ``G_j = dy[j]^T x[j]``. From it, inside the hook:
  the mean gradient g = (1/N) sum_j G_j (the gradient of the paper's L(theta, D)), the Fisher
  diagonal F = sum_j G_j^2 (paper Eq. 4), and the per-sample dot products ``G_j . W_u`` of every
  unit u (the vector-wise terms).
* the element-wise tensors are folded into per-unit sums (:mod:`.folding`) and dropped, so at
  most one linear's weight-sized temporaries (G_j, g, F, g*W, F*W^2) exist at a time.

Large calibration sets run in micro-batches. What is additive across micro-batches (per-sample
dot products, activation sums) is folded per micro-batch; g and F must be complete before the
absolute values of the element-wise scores are taken, so with micro-batches every linear keeps two
weight-sized accumulators (2x the model size in float32) until the last micro-batch. Pass
``accumulate_on="cpu"`` to keep them in host memory when the model is on a GPU. With a single
batch (the default 10 x 128 tokens) no accumulators exist.

The same forward also records the input activations of o_proj and down_proj (per-column sum and
sum of squares) for the activation-based metrics (Wanda-sp, FLAP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from adapruner.errors import AdaprunerError
from adapruner.importance.coefficients import ELEMENT_FACTORS
from adapruner.importance.folding import fold, fold_columns
from adapruner.importance.loss import per_sample_nll
from adapruner.importance.needs import WEIGHTS_ONLY, StatisticsNeeds
from adapruner.core.adapters import adapter_for
from adapruner.core.structure import LayerShape, Member



@dataclass
class MemberStatistics:
    """Per-unit statistics of one member (a unit kind's slice of one linear).

    Every tensor's last dimension runs over the member's units; all are sums over the unit's
    weight elements, hence additive when units are grouped (query heads -> KV group).

    ``w_abs``/``w_sq``: sum of |W| and W^2. ``dot[j]``: G_j . W_u (signed, per sample).
    ``el1``: sum |g W|. ``el1_sample[j]``: sum |G_j W|. ``el2[i]``: sum |g W - c_i/2 F W^2| for
    ``c_i = Statistics.element_factors[i]``. ``wanda``: sum over the unit's input columns of
    ||X_c||_2 * sum_r |W_rc|; ``fluctuation``: sum of Var(X_c) * ||W_:,c||^2 (input-side members
    only).
    """

    member: Member
    w_abs: torch.Tensor
    w_sq: torch.Tensor
    dot: torch.Tensor | None = None
    el1: torch.Tensor | None = None
    el1_sample: torch.Tensor | None = None
    el2: torch.Tensor | None = None
    wanda: torch.Tensor | None = None
    fluctuation: torch.Tensor | None = None


@dataclass
class LayerStatistics:
    """Statistics of one decoder layer: its shape, its members by role name, and the mean input
    of each input-side linear (o_proj, down_proj), which FLAP's bias compensation needs."""

    shape: LayerShape
    members: dict[str, MemberStatistics] = field(default_factory=dict)
    input_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    # Input Gram matrix sum_t x_t x_t^T (float64) of each input-side linear, by its member name
    # ("o", "down"); collected only when a metric asks for it (structured OBS).
    gram: dict[str, torch.Tensor] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # those linears' weights, with the Grams
    # Quantities a metric derives from these statistics (e.g. OBS's damped inverses), kept with
    # them so that every trial scoring the same calibration set computes them once.
    derived: dict = field(default_factory=dict)

    def view(self, kind: str, name: str) -> list[tuple[Member, torch.Tensor]]:
        """The statistic ``name`` of every member of unit ``kind``, one value per unit of that kind.

        For ``kind="kv"`` the query-head members (q rows, o columns) are summed over the query
        heads of each KV group, so a group's share of q_proj/o_proj counts as one member.
        Members that lack the statistic are skipped.
        """
        out = []
        for stats in self.members.values():
            value = getattr(stats, name)
            if value is None:
                continue
            unit = stats.member.unit
            if unit == kind:
                out.append((stats.member, value))
            elif kind == "kv" and unit == "head":
                nkv, g = self.shape.num_kv_heads, self.shape.group_size
                out.append((stats.member, value.reshape(*value.shape[:-1], nkv, g).sum(-1)))
        return out


@dataclass
class Statistics:
    """Everything the metrics need about one calibration set; computed once, reused for any
    metric coefficients (the search's inner loop)."""

    layers: dict[int, LayerStatistics]
    num_samples: int
    seq_len: int
    needs: StatisticsNeeds = WEIGHTS_ONLY  # what the pass collected (:mod:`.needs`)
    mean_loss: float | None = None

    @property
    def element_factors(self) -> tuple[float, ...]:
        """The second-order factors whose element-wise scores were folded."""
        return self.needs.element_factors

    @property
    def has_gradients(self) -> bool:
        """Whether the pass ran backward (the Taylor terms exist)."""
        return self.needs.gradients


def gram_product(x: torch.Tensor) -> torch.Tensor:
    """``x.T @ x`` computed on and above the diagonal in column blocks and mirrored below it: with
    k blocks, (k + 1) / 2k of the multiplications (56 % at 8 blocks; a wide layer's Gram, such as
    an 8B's 14,336-wide down_proj input, costs about as much as the layer's forward). Each entry is the same dot
    product over the rows as in the full product; on this project's CPUs the result is bit for bit
    ``x.T @ x`` (the weights digests of ``benchmarks/reliability/redesign_digest.py``), though a
    BLAS may round a differently shaped product differently in the last bit."""
    d = x.shape[1]
    k = max(1, min(8, d // 256))
    if k == 1:
        return x.T @ x
    edges = [d * i // k for i in range(k + 1)]
    out = torch.empty(d, d, dtype=x.dtype, device=x.device)
    for a, b in zip(edges, edges[1:]):
        block = x[:, a:b].T @ x[:, a:]
        out[a:b, a:] = block
        out[b:, a:b] = block[:, b - a:].T
        diagonal = out[a:b, a:b]
        diagonal.copy_(diagonal.triu() + diagonal.triu(1).T)  # exactly symmetric, like a Gram
    return out


class Gram:
    """Running ``sum x x^T``, ``sum x`` and token count of one linear's inputs (float64)."""

    def __init__(self):
        self.h = self.s = None
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()
        # One batch's products in float32 (4x faster than float64), the running sums in float64.
        # In place: a large layer's float64 Gram (1.6 GB for an 8B's down_proj) exists once.
        h, s = gram_product(x), x.sum(0).double()
        if self.h is None:
            self.h = h.double()
        else:
            self.h.add_(h)  # float32 promoted exactly to float64, as .double() then +
        self.s = s if self.s is None else self.s + s
        self.n += x.shape[0]

    def hook(self):
        """A forward pre-hook that records the (unmasked) input; register it with ``prepend=True``."""
        def pre(module, args):
            self.add(args[0])
        return pre


def pruneable_linears(model: nn.Module, only: set[int] | None = None) -> dict[int, dict[str, tuple[nn.Linear, list[Member]]]]:
    """For every decoder layer (or those in ``only``): the linears holding members, by path, with
    their members."""
    adapter = adapter_for(model)
    out = {}
    for i, layer in enumerate(adapter.decoder_layers(model)):
        if only is not None and i not in only:
            continue
        shape = adapter.layer_shape(model, i)
        linears: dict[str, tuple[nn.Linear, list[Member]]] = {}
        for m in adapter.members(shape):
            if m.path not in linears:
                linears[m.path] = (layer.get_submodule(m.path), [])
            linears[m.path][1].append(m)
        out[i] = linears
    return out


def validate_calibration(calib: torch.Tensor | None, model: nn.Module, seq_len: int | None = None) -> torch.Tensor:
    """Check the calibration ids and return them as a LongTensor [N, T]; clear errors otherwise."""
    if calib is None:
        raise AdaprunerError("this metric needs calibration samples; pass calibration data (e.g. --num-samples 10)")
    calib = torch.as_tensor(calib)
    if calib.dim() == 1:
        calib = calib[None]
    if calib.dim() != 2:
        raise AdaprunerError(f"calibration ids must be [samples, tokens], got shape {tuple(calib.shape)}")
    if calib.shape[0] == 0:
        raise AdaprunerError("the calibration set has zero samples; use at least one sample (default 10)")
    if seq_len is not None and calib.shape[1] < seq_len:
        raise AdaprunerError(
            f"calibration samples have {calib.shape[1]} tokens but {seq_len} were requested; "
            "use longer samples or a smaller --calib-seq-len")
    if calib.shape[1] < 2:
        raise AdaprunerError("calibration samples need at least 2 tokens for a next-token loss")
    if calib.dtype.is_floating_point or calib.dtype == torch.bool:
        raise AdaprunerError("calibration samples must be integer token ids")
    vocab = model.get_input_embeddings().num_embeddings
    if int(calib.min()) < 0 or int(calib.max()) >= vocab:
        raise AdaprunerError(f"calibration token ids must lie in [0, {vocab}); was the sample made with this model's tokenizer?")
    return calib.long()


def weight_statistics(model: nn.Module, only: set[int] | None = None) -> dict[int, LayerStatistics]:
    """Magnitude statistics (sum |W|, sum W^2 per unit) of every member (of the layers in ``only``);
    needs no data."""
    adapter = adapter_for(model)
    layers = {}
    for i, linears in pruneable_linears(model, only).items():
        ls = LayerStatistics(shape=adapter.layer_shape(model, i))
        for lin, members in linears.values():
            w = lin.weight.detach().float()
            for m in members:
                ls.members[m.name] = MemberStatistics(member=m, w_abs=fold(w.abs(), m).cpu(), w_sq=fold(w * w, m).cpu())
        layers[i] = ls
    return layers


class _Collector:
    """Hooks on every pruneable linear; see the module docstring for what they compute."""

    def __init__(self, model, layers, num_samples, gradients, element_factors, accumulate_on, gram=False,
                 only: set[int] | None = None, track_embedding: bool = True):
        self.gram = gram
        self.track_embedding = track_embedding
        self.grams: dict[tuple[int, str], Gram] = {}
        self.model = model
        self.layers = layers
        self.num_samples = num_samples
        self.gradients = gradients
        self.factors = element_factors
        self.accumulate_on = accumulate_on
        self.linears = pruneable_linears(model, only)
        self.inputs: dict[nn.Module, torch.Tensor] = {}
        self.acc: dict[nn.Module, list[torch.Tensor]] = {}  # micro-batch accumulators: [g_sum, fisher]
        self.dots: dict[tuple[int, str], list[torch.Tensor]] = {}
        self.el1s: dict[tuple[int, str], list[torch.Tensor]] = {}
        self.act: dict[tuple[int, str], list[torch.Tensor]] = {}  # [sum x, sum x^2, count]
        self.bad: str | None = None
        self.single_pass = True
        self.handles = []

    def __enter__(self):
        for i, linears in self.linears.items():
            for path, (lin, members) in linears.items():
                self.handles.append(lin.register_forward_hook(self._forward_hook(i, path, lin, members)))
        if self.gradients and self.track_embedding:
            emb = self.model.get_input_embeddings()
            self.handles.append(emb.register_forward_hook(lambda mod, args, out: out.requires_grad_(True)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.inputs.clear()

    def _forward_hook(self, i, path, lin, members):
        wants_act = any(m.axis == 1 for m in members)

        def hook(mod, args, out):
            x = args[0].detach()
            if wants_act:
                xf = x.reshape(-1, x.shape[-1]).double()
                if self.gram:
                    self.grams.setdefault((i, path), Gram()).add(xf)
                s = [xf.sum(0), (xf * xf).sum(0), torch.tensor(float(xf.shape[0]), dtype=torch.float64)]
                prev = self.act.get((i, path))
                self.act[(i, path)] = s if prev is None else [a + b for a, b in zip(prev, s)]
            if self.gradients and out.requires_grad:
                self.inputs[lin] = x
                out.register_hook(lambda dy: self._on_grad(i, lin, members, dy))
            return None

        return hook

    def _on_grad(self, i, lin, members, dy):
        x = self.inputs.pop(lin)
        if not torch.isfinite(dy).all():
            self.bad = self.bad or f"layer {i} {members[0].path}"
            return None
        w = lin.weight.detach().float()
        g_sum = torch.zeros_like(w)
        fisher = torch.zeros_like(w)
        dots = {m.name: [] for m in members}
        el1s = {m.name: [] for m in members}
        for j in range(x.shape[0]):
            G = dy[j].float().transpose(0, 1) @ x[j].float()  # sample j's weight gradient [out, in]
            g_sum += G
            fisher.addcmul_(G, G)
            GW = G.mul_(w)
            for m in members:
                dots[m.name].append(fold(GW, m))
            GW.abs_()
            for m in members:
                el1s[m.name].append(fold(GW, m))
            del G, GW
        for m in members:
            self.dots.setdefault((i, m.name), []).append(torch.stack(dots[m.name]).cpu())
            self.el1s.setdefault((i, m.name), []).append(torch.stack(el1s[m.name]).cpu())
        if self.single_pass:
            self._fold_elements(i, w, members, g_sum / self.num_samples, fisher)
        else:
            dev = self.accumulate_on or w.device
            if lin not in self.acc:
                self.acc[lin] = [g_sum.to(dev), fisher.to(dev)]
            else:
                self.acc[lin][0] += g_sum.to(dev)
                self.acc[lin][1] += fisher.to(dev)
        return None

    def _fold_elements(self, i, w, members, g, fisher):
        """Element-wise scores: sum |g W| and sum |g W - c/2 F W^2| for every candidate c."""
        gw = g * w
        fw2 = fisher.mul_(w).mul_(w)
        stats = self.layers[i].members
        for m in members:
            stats[m.name].el1 = fold(gw.abs(), m).cpu()
        rows = {m.name: [] for m in members}
        for c in self.factors:
            term = (gw - (c / 2) * fw2).abs_()
            for m in members:
                rows[m.name].append(fold(term, m).cpu())
            del term
        for m in members:
            stats[m.name].el2 = torch.stack(rows[m.name])

    def finish(self):
        """Fold micro-batch accumulators and activation sums into the layer statistics."""
        for i, linears in self.linears.items():
            stats = self.layers[i]
            for path, (lin, members) in linears.items():
                w = lin.weight.detach().float()
                if lin in self.acc:
                    g_sum, fisher = self.acc.pop(lin)
                    self._fold_elements(i, w, members, g_sum.to(w.device) / self.num_samples, fisher.to(w.device))
                for m in members:
                    if (i, m.name) in self.dots:
                        stats.members[m.name].dot = torch.cat(self.dots.pop((i, m.name)))
                        stats.members[m.name].el1_sample = torch.cat(self.el1s.pop((i, m.name)))
                if (i, path) in self.act:
                    s, s2, n = self.act.pop((i, path))
                    mean = s / n
                    var = (s2 / n - mean * mean).clamp_min(0)
                    norm = s2.sqrt()
                    wd = w.double()
                    col_abs = wd.abs().sum(0)
                    col_sq = (wd * wd).sum(0)
                    for m in members:
                        if m.axis == 1:
                            stats.members[m.name].wanda = fold_columns(norm * col_abs, m).float().cpu()
                            stats.members[m.name].fluctuation = fold_columns(var * col_sq, m).float().cpu()
                    stats.input_mean[members[0].name] = mean.float().cpu()
                if (i, path) in self.grams:
                    stats.gram[members[0].name] = self.grams.pop((i, path)).h.cpu()
                    stats.weights[members[0].name] = w.cpu().clone()


def collect_statistics(
    model: nn.Module,
    calib: torch.Tensor,
    micro_batch: int | None = None,
    gradients: bool = True,
    seq_len: int | None = None,
    element_factors: tuple[float, ...] = ELEMENT_FACTORS,
    gram: bool = False,
    accumulate_on: str | torch.device | None = None,
    progress: bool = True,
) -> Statistics:
    """Run the calibration set through ``model`` once and return the folded per-unit statistics.

    ``calib`` is a LongTensor [N, T] of token ids. ``micro_batch`` (default: all N at once) bounds
    the activation memory of one forward/backward. ``gradients=False`` skips the backward pass
    (activation and magnitude statistics only). ``seq_len``, when given, is the requested sample
    length, checked against ``calib``. ``element_factors`` are the candidate second-order factors
    folded for the element-wise score (the factor sits inside an absolute value, so each
    candidate is folded in the same pass; default: every value of the search space); ``gram``
    also keeps the input Gram matrix of o_proj / down_proj (structured OBS); ``accumulate_on``
    places the micro-batch accumulators (see the module docstring). The model's parameters and their ``requires_grad`` flags are left as
    they were.
    """
    calib = validate_calibration(calib, model, seq_len)
    n, t = calib.shape
    step = n if not micro_batch or micro_batch >= n else int(micro_batch)
    if step < 1:
        raise AdaprunerError(f"micro-batch size must be at least 1, got {micro_batch}")
    layers = weight_statistics(model)
    needs = collected(gradients, element_factors, gram)  # its factors in the order of the folded rows
    device = model.get_input_embeddings().weight.device
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    total_loss = 0.0
    try:
        for p in params:
            p.requires_grad_(False)
        with _Collector(model, layers, n, gradients, needs.element_factors, accumulate_on, gram=gram) as col:
            col.single_pass = step == n
            chunks = range(0, n, step)
            for start in tqdm(chunks, desc="calibration statistics", disable=not progress or len(chunks) == 1):
                ids = calib[start:start + step].to(device)
                with torch.set_grad_enabled(gradients):
                    if gradients:
                        out = per_sample_nll(model, ids).sum()  # a sum: dy[j] is sample j's own gradient
                    else:  # activations only: the decoder alone (the LM head is ~a fifth of a small model)
                        out = model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
                    if not torch.isfinite(out).all():
                        raise AdaprunerError(
                            "the calibration loss is NaN/inf; the model weights or the --dtype are broken "
                            "(try --dtype float32)")
                    if gradients:
                        total_loss += float(out.detach())
                        out.backward()
                if col.bad:
                    raise AdaprunerError(
                        f"NaN/inf gradients at {col.bad}; the model overflows in this dtype, try --dtype float32")
            col.finish()
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    return Statistics(layers=layers, num_samples=n, seq_len=t, needs=needs,
                      mean_loss=total_loss / n if gradients else None)


def collected(gradients: bool, element_factors: tuple[float, ...], gram: bool) -> StatisticsNeeds:
    """What a calibration pass with these settings holds (factors are folded only with gradients)."""
    return StatisticsNeeds(samples=True, gradients=gradients, gram=gram,
                           element_factors=tuple(sorted(set(map(float, element_factors)))) if gradients else ())


def collect(model: nn.Module, calib: torch.Tensor | None, needs: StatisticsNeeds, micro_batch: int | None = None,
            seq_len: int | None = None, progress: bool = True):
    """The :class:`~adapruner.importance.statistics.Statistics` ``needs`` asks for: the weights'
    magnitudes alone when it asks for no samples, else one calibration pass over ``calib`` (with
    the backward pass only when it asks for gradients)."""
    if not needs.samples:
        return Statistics(layers=weight_statistics(model), num_samples=0, seq_len=0)
    return collect_statistics(model, calib, micro_batch=micro_batch, gradients=needs.gradients, seq_len=seq_len,
                              element_factors=needs.element_factors, gram=needs.gram, progress=progress)
