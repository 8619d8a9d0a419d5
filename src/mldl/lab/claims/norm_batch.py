"""Claims of the notes' normalization section about the batch: batch size, Switchable Norm's
weights, BatchNorm's moving averages, Batch-Instance Norm's ρ.

One design serves the first three claims (:func:`trained_cnns`): a small CNN on the 8x8
digits with each normalization, trained with a *normalization batch* b of 2, 4, 16 or 64
images and an optimizer batch fixed at 64: each step's 64 images are split into 64/b groups
("devices") of b, each normalised with its own statistics, and one Adam step follows on the
mean loss of all 64. This is the Group Norm paper's protocol (8 GPUs x b images per GPU,
BatchNorm not synchronised) with the SGD batch held fixed: every model sees the same images
in the same order, takes the same number of steps and the same epochs, and only the batch
its statistics come from changes. The per-sample normalizations (GN, LN, IN) then compute
exactly the same function at every b, so they are trained once per seed and stand for
every b (their drop is 0 by construction, the control the notes' comparison needs).

Every (normalization, b, seed) model is one member of a *stack*: the convolutions are
grouped convolutions with one group per member, so one step trains all of them; each seed
gives one initialisation and one order of the images, shared by its members (paired).
BatchNorm, Batch Renorm and Batch-Instance Norm run as the library's layers, over the
64/b devices at once: the layer is called on the batch folded so that each device's
channels are separate channels (``torch.func.functional_call`` with its parameters
repeated per device; its running statistics are device 0's afterwards, as
``DistributedDataParallel`` keeps them). Switchable Norm's layer statistics pool over all
channels, so it cannot be folded: its stacked forward (:func:`_switchable_devices`) is
written here from the library's own statistics functions and tested equal to
``SwitchableNorm2d`` device by device.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import norm
from ...norm import _stats
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure
from ..stats import mean as _mean
from ..stats import t_halfwidth

SECTION = "Normalization"
BATCH_KINDS = ("BN", "BRN", "BIN", "SN")  # statistics over the batch: trained at every b
SAMPLE_KINDS = ("GN", "LN", "IN")  # per-sample statistics: one model serves every b
KINDS = BATCH_KINDS + SAMPLE_KINDS
NAMES = {
    "BN": "BatchNorm",
    "BRN": "Batch Renorm",
    "BIN": "Batch-Instance Norm",
    "SN": "Switchable Norm",
    "GN": "GroupNorm (4 groups)",
    "LN": "LayerNorm (GN, 1 group)",
    "IN": "InstanceNorm",
}
BATCHES = (2, 4, 16, 64)
STEP_BATCH = 64
GROUPS = 4


# ------------------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class Recipe:
    """The CNN conv(1→c1, 3x3) - norm - ReLU - conv(c1→c2, 3x3, stride 2) - norm - ReLU -
    2x2 average pool - linear(4·c2→10), trained on the first ``train_examples`` of the
    digits' training split for ``epochs`` epochs of steps of 64 images (the last,
    incomplete one dropped), with Adam or SGD and a cosine or constant learning rate."""

    c1: int
    c2: int
    epochs: int
    train_examples: int
    seeds: int
    lr: float = 2e-2
    schedule: str = "cosine"  # or "constant"
    rho_lr_factor: float = 10.0  # the BIN paper's recipe: ρ learns 10x faster, no decay
    optimizer: str = "adam"  # or "sgd" (momentum 0.9)
    weight_decay: float = 0.0

    @property
    def steps(self) -> int:
        return self.epochs * (self.train_examples // STEP_BATCH)

    def renorm(self) -> dict[str, Any]:
        """Batch Renorm's settings scaled to this run (the paper's assume 160k steps): for
        the first quarter of the steps r_max = 1 and d_max = 0 (BatchNorm) while the moving
        averages that give r and d settle (their rate α makes that quarter 3 time
        constants); then r_max relaxes to 3 and d_max to 5 over the fractions of the run
        the paper's ramps take (35k and 20k of 160k steps)."""
        start = max(1, self.steps // 4)
        alpha = min(1.0, 3 / start)
        return {
            "r_max": 3.0,
            "d_max": 5.0,
            "r_max_ramp": (start, start + max(1, round(self.steps * 35 / 160))),
            "d_max_ramp": (start, start + max(1, round(self.steps * 20 / 160))),
            "renorm_momentum": alpha,
        }


def _recipe(ctx: Context) -> Recipe:
    # 8 and 16 channels keep the ~100 stacked members affordable on one CPU thread; 960
    # training images, 15 steps of 64 per epoch. Adam's learning rate (2e-2, cosine decay
    # to 0) was chosen on BatchNorm's validation accuracy at b = 64 alone; the decay also
    # leaves a settled network at the end, whose statistics the running averages estimate.
    return ctx.pick(
        Recipe(c1=8, c2=16, epochs=1, train_examples=192, seeds=2),
        Recipe(c1=8, c2=16, epochs=8, train_examples=960, seeds=5),
        Recipe(c1=8, c2=16, epochs=20, train_examples=960, seeds=10),
    )


# ------------------------------------------------------------------- normalization blocks


def _make(kind: str, channels: int, seeds: int, recipe: Recipe) -> nn.Module:
    """The layer for ``seeds`` members of ``channels`` channels each, side by side."""
    c = seeds * channels
    if kind == "BN":
        return norm.BatchNorm2d(c)
    if kind == "BRN":
        return norm.BatchRenorm2d(c, **recipe.renorm())
    if kind == "BIN":
        return norm.BatchInstanceNorm2d(c)  # ρ = 1 (pure BN) at first, as in the paper
    if kind == "SN":  # pools over a sample's channels: one layer per member
        return nn.ModuleList(norm.SwitchableNorm2d(channels) for _ in range(seeds))
    if kind == "GN":
        return norm.GroupNorm(seeds * GROUPS, c)  # groups never straddle two members
    if kind == "LN":
        return norm.GroupNorm(seeds, c)  # one group per member: LayerNorm over (C, H, W)
    if kind == "IN":
        return norm.InstanceNorm2d(c, affine=True)
    raise ValueError(f"unknown normalization {kind!r}")


def _fold(x: Tensor, devices: int) -> Tensor:
    """(devices·b, C, H, W) -> (b, devices·C, H, W): device k's images, channel c, become
    channel k·C + c."""
    n, c, h, w = x.shape
    return x.view(devices, n // devices, c, h, w).transpose(0, 1).reshape(-1, devices * c, h, w)


def _unfold(y: Tensor, devices: int) -> Tensor:
    b, kc, h, w = y.shape
    c = kc // devices
    return y.view(b, devices, c, h, w).transpose(0, 1).reshape(devices * b, c, h, w)


_PARAMS = ("weight", "bias", "rho")
_BUFFERS = ("running_mean", "running_var", "renorm_mean", "renorm_var")


def _on_devices(layer: nn.Module, wide: nn.Module, x: Tensor, devices: int) -> Tensor:
    """A per-channel batch-statistic layer (BatchNorm, BatchRenorm, BatchInstanceNorm), in
    training, applied to ``devices`` groups of the batch, each normalised with its own
    statistics: what calling ``layer`` on each group from the same state computes.

    ``layer`` runs once, on the folded batch, through ``wide`` (the same layer with
    ``devices`` times the channels) given ``layer``'s parameters repeated per device
    (gradients flow back to them) and its running statistics repeated; afterwards ``layer``
    keeps device 0's statistics, as ``DistributedDataParallel`` does. The step counter
    ``num_batches_tracked`` is ``layer``'s own, counted once per call."""
    k = devices
    state: dict[str, Tensor] = {}
    for name in _PARAMS:
        p = getattr(layer, name, None)
        if p is not None:
            state[name] = p.repeat(k)
    for name in _BUFFERS:
        buf = getattr(layer, name, None)
        if buf is not None:
            state[name] = buf.repeat(k)
    state["num_batches_tracked"] = layer.num_batches_tracked
    wide.train()
    y = torch.func.functional_call(wide, state, (_fold(x, k),))
    c = layer.num_features
    with torch.no_grad():
        for name in _BUFFERS:
            buf = getattr(layer, name, None)
            if buf is not None:
                buf.copy_(state[name][:c])
    return _unfold(y, k)


def _switchable_devices(x: Tensor, layers: nn.ModuleList, devices: int) -> Tensor:
    """Switchable Norm, in training, for ``len(layers)`` members side by side in the
    channels of ``x`` (member s: channels s·C to (s+1)·C) and ``devices`` groups of the
    batch: what calling ``layers[s]`` on each device's images of member s computes, in one
    pass, from the library's statistics functions. Each layer's running statistics are
    updated with device 0's batch moments (as :func:`_on_devices` keeps them)."""
    n, sc, h, w = x.shape
    s, k = len(layers), devices
    c, b = sc // s, n // k
    # The instance moments as ``_stats.instance_moments`` gives them, in two passes
    # (torch.var_mean is 10-20x slower on these small CPU reductions).
    xs = x.view(k, b, s, c, h * w)
    mu = xs.mean(4)
    var = (xs - mu[..., None]).square().mean(4)
    inst = _stats.Moments(mu, var, torch.full_like(mu, float(h * w)))
    layer = _stats.pool(inst, 3)  # (k, b, s): each member's channels of a sample
    batch = _stats.pool(inst, 1)  # (k, s, c): each device's images
    wm = torch.stack([m.mean_weight for m in layers]).softmax(1)  # (s, 3)
    wv = torch.stack([m.var_weight for m in layers]).softmax(1)
    mean = wm[:, 0, None] * inst.mean + wm[:, 1, None] * layer.mean[..., None]
    var = wv[:, 0, None] * inst.var + wv[:, 1, None] * layer.var[..., None]
    mean = mean + wm[:, 2, None] * batch.mean[:, None]
    var = var + wv[:, 2, None] * batch.var[:, None]
    weight = torch.stack([m.weight for m in layers])  # (s, c)
    bias = torch.stack([m.bias for m in layers])
    eps = layers[0].eps
    a = torch.rsqrt(var + eps) * weight
    shift = bias - mean * a
    out = torch.addcmul(shift[..., None], xs, a[..., None])
    with torch.no_grad():
        for i, m in enumerate(layers):
            moments = _stats.Moments(batch.mean[0, i], batch.var[0, i], batch.count[0, i])
            _stats.update_running(m.running_mean, m.running_var, moments, m._average_factor())
    return out.view(n, sc, h, w)


class _Block(nn.Module):
    """One normalization at one normalization batch b, for every seed's member: in
    training, each group of b images of a step is normalised with its own statistics."""

    def __init__(self, kind: str, b: int, channels: int, seeds: int, recipe: Recipe) -> None:
        super().__init__()
        self.kind, self.b, self.seeds, self.channels = kind, b, seeds, channels
        self.layer = _make(kind, channels, seeds, recipe)
        self.devices = STEP_BATCH // b if kind in BATCH_KINDS else 1
        # The wider copy _on_devices calls (a plain list: not a submodule, not saved).
        self._wide = (
            [_make(kind, channels * self.devices, seeds, recipe)]
            if kind in ("BN", "BRN", "BIN") and self.devices > 1
            else []
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "SN":
            if self.training:
                return _switchable_devices(x, self.layer, self.devices)
            c = self.channels
            return torch.cat(
                [m(x[:, i * c : (i + 1) * c]) for i, m in enumerate(self.layer)], dim=1
            )
        if self.training and self._wide:
            return _on_devices(self.layer, self._wide[0], x, self.devices)
        return self.layer(x)


# --------------------------------------------------------------------------- the stack


class _Stack(nn.Module):
    """Members (block, seed), block-major: convolutions grouped by member, one
    normalization layer per block and layer, a linear head per member."""

    def __init__(
        self,
        blocks: list[tuple[str, int]],
        recipe: Recipe,
        ctx: Context,
        stream: int,
    ) -> None:
        super().__init__()
        s = recipe.seeds
        self.blocks, self.seeds, self.recipe = blocks, s, recipe
        self.members = len(blocks) * s
        c1, c2 = recipe.c1, recipe.c2
        w1, w2, fw, fb = [], [], [], []
        for r in range(s):  # nn.Conv2d's and nn.Linear's initialisation, one draw per seed
            g = ctx.generator(stream + r)
            w1.append((torch.rand(c1, 1, 3, 3, generator=g) * 2 - 1) / math.sqrt(9))
            w2.append((torch.rand(c2, c1, 3, 3, generator=g) * 2 - 1) / math.sqrt(9 * c1))
            fw.append((torch.rand(4 * c2, 10, generator=g) * 2 - 1) / math.sqrt(4 * c2))
            fb.append((torch.rand(10, generator=g) * 2 - 1) / math.sqrt(4 * c2))
        n = len(blocks)
        self.w1 = nn.Parameter(torch.cat(w1 * n))
        self.w2 = nn.Parameter(torch.cat(w2 * n))
        self.fc_w = nn.Parameter(torch.stack(fw * n))  # (M, 4·c2, 10)
        self.fc_b = nn.Parameter(torch.stack(fb * n)[:, None])  # (M, 1, 10)
        self.norm1 = nn.ModuleList(_Block(k, b, c1, s, recipe) for k, b in blocks)
        self.norm2 = nn.ModuleList(_Block(k, b, c2, s, recipe) for k, b in blocks)
        self.register_buffer("seed_of", torch.arange(s).repeat(n), persistent=False)

    @staticmethod
    def _norms(h: Tensor, blocks: nn.ModuleList) -> Tensor:
        chunks = h.chunk(len(blocks), dim=1)
        return torch.cat([blk(c) for blk, c in zip(blocks, chunks, strict=True)], dim=1).relu()

    def forward(self, x: Tensor) -> Tensor:
        """(N, seeds, 8, 8) images, one batch per seed -> (M, N, 10) logits."""
        m, s, nb = self.members, self.seeds, len(self.blocks)
        # The first convolution of every member of a seed sees that seed's images: one
        # group per seed, the members' filters side by side (seed-major, then block-major).
        w1 = self.w1.view(nb, s, -1, 1, 3, 3).transpose(0, 1).reshape(self.w1.shape)
        h = F.conv2d(x, w1, padding=1, groups=s)
        h = h.view(h.shape[0], s, nb, -1, 8, 8).transpose(1, 2).reshape(h.shape)
        h = self._norms(h, self.norm1)
        h = F.conv2d(h, self.w2, padding=1, stride=2, groups=m)
        h = self._norms(h, self.norm2)
        h = F.avg_pool2d(h, 2).reshape(h.shape[0], m, -1).transpose(0, 1)  # (M, N, 4·c2)
        return torch.baddbmm(self.fc_b, h, self.fc_w)

    def member(self, block: int, seed: int) -> int:
        return block * self.seeds + seed

    def rhos(self) -> list[nn.Parameter]:
        return [blk.layer.rho for blk in (*self.norm1, *self.norm2) if blk.kind == "BIN"]


def _train(
    ctx: Context, stack: _Stack, recipe: Recipe, x: Tensor, y: Tensor, stream: int, desc: str
) -> None:
    """Steps of 64 images (one order per seed from ``ctx.generator(stream + seed)``, shared
    by the seed's members), the members' mean losses summed (each member's gradient is its
    own); Adam, or SGD with momentum and weight decay when the recipe says so. BIN's ρ has a
    learning rate ``rho_lr_factor`` times larger and no weight decay, and is projected onto
    [0, 1] after every step (the BIN paper's code)."""
    rhos = stack.rhos()
    rho_ids = {id(p) for p in rhos}
    rest = [p for p in stack.parameters() if id(p) not in rho_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "weight_decay": recipe.weight_decay}]
    if rhos:
        groups.append({"params": rhos, "lr": recipe.lr * recipe.rho_lr_factor, "weight_decay": 0.0})
    if recipe.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=recipe.lr, momentum=0.9, foreach=True
        )
    else:
        optimizer = torch.optim.Adam(groups, lr=recipe.lr, fused=True)
    base_lr = [g["lr"] for g in optimizer.param_groups]
    stack.to(ctx.device).train()
    x, y = x.to(ctx.device), y.to(ctx.device)
    gens = [ctx.generator(stream + r) for r in range(recipe.seeds)]
    n = len(x)
    total, done = recipe.epochs * (n // STEP_BATCH), 0
    for _ in ctx.steps(range(recipe.epochs), desc, total=recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(ctx.device)
        for step in range(n // STEP_BATCH):  # the last, incomplete batch is dropped
            if recipe.schedule == "cosine":  # from lr at the first step to 0 after the last
                factor = 0.5 * (1 + math.cos(math.pi * done / total))
                for group, lr in zip(optimizer.param_groups, base_lr, strict=True):
                    group["lr"] = lr * factor
            done += 1
            idx = order[:, step * STEP_BATCH : (step + 1) * STEP_BATCH]  # (seeds, 64)
            xb = x[idx].squeeze(2).transpose(0, 1)  # (64, seeds, 8, 8)
            yb = y[idx][stack.seed_of]  # (M, 64)
            logits = stack(xb)
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum")
            optimizer.zero_grad()
            (loss / STEP_BATCH).backward()
            optimizer.step()
            with torch.no_grad():
                for p in rhos:
                    p.clamp_(0.0, 1.0)


@torch.no_grad()
def _accuracy(stack: _Stack, x: Tensor, y: Tensor, ctx: Context) -> Tensor:
    """(M,) test accuracies in eval mode (running statistics)."""
    stack.eval()
    xs = x.to(ctx.device).squeeze(1)[:, None].expand(-1, stack.seeds, -1, -1)
    logits = stack(xs).cpu()
    return (logits.argmax(2) == y).double().mean(1)


def _blocks() -> list[tuple[str, int]]:
    """Every batch-statistic normalization at every b; the per-sample ones once (b = 0)."""
    return [(k, b) for k in BATCH_KINDS for b in BATCHES] + [(k, 0) for k in SAMPLE_KINDS]


def _block_index(blocks: list[tuple[str, int]], kind: str, b: int) -> int:
    return blocks.index((kind, b if kind in BATCH_KINDS else 0))


_CACHE: dict[tuple, dict[str, Any]] = {}


def trained_cnns(ctx: Context) -> dict[str, Any]:
    """The CNNs of ``norm.batch_size``, trained once per (seed, profile, device) and shared
    with ``norm.switchable_weights`` and ``norm.train_eval_gap``: the trained stack, its
    blocks, the recipe, the test accuracies ``{kind: [[per seed] per b]}`` and Switchable
    Norm's importance weights ``{"mean"|"var": {"IN"|"LN"|"BN": [[[per seed] per layer]
    per b]}}``."""
    key = (ctx.seed, ctx.profile, str(ctx.device))
    if key in _CACHE:
        return _CACHE[key]
    from ..data import digits

    split, recipe = digits(ctx.seed).images(), _recipe(ctx)
    n = recipe.train_examples
    blocks = _blocks()
    stack = _Stack(blocks, recipe, ctx, stream=7000)
    _train(ctx, stack, recipe, split.x_train[:n], split.y_train[:n], 7100, "normalization: epochs")
    acc = _accuracy(stack, split.x_test, split.y_test, ctx).view(len(blocks), recipe.seeds)
    test_accuracy = {
        kind: [acc[_block_index(blocks, kind, b)].tolist() for b in BATCHES] for kind in KINDS
    }
    importance: dict[str, dict[str, list]] = {
        stat: {src: [] for src in ("IN", "LN", "BN")} for stat in ("mean", "var")
    }
    for b in BATCHES:
        i = _block_index(blocks, "SN", b)
        with torch.no_grad():
            per_layer = [
                [m.importance() for m in layer[i].layer] for layer in (stack.norm1, stack.norm2)
            ]
        for stat, sources in importance.items():
            for src, values in sources.items():
                values.append([[float(w[stat][src]) for w in seeds] for seeds in per_layer])
    _CACHE[key] = {
        "recipe": recipe,
        "blocks": blocks,
        "stack": stack,
        "split": split,
        "test_accuracy": test_accuracy,
        "importance": importance,
    }
    return _CACHE[key]


# -------------------------------------------------------------------------- statistics


def _diff(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def _interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval."""
    return _mean(values), t_halfwidth(values)


# ------------------------------------------------------------------------- batch size


def _decide_batch_size(n: dict) -> tuple[str, str]:
    drop = n["drop_64_to_2"]
    acc = n["test_accuracy"]
    vs_gn = _diff(drop["BN"], drop["GN"])
    vs_brn = _diff(drop["BN"], drop["BRN"])
    (m1, h1), (m2, h2) = _interval(vs_gn), _interval(vs_brn)

    def at(kind: str) -> str:
        return f"{kind} {_mean(acc[kind][-1]):.3f} → {_mean(acc[kind][0]):.3f}"

    others = ", ".join(f"{k} {_mean(drop[k]):+.3f}" for k in ("BIN", "SN", "LN", "IN"))
    reason = (
        f"over {n['seeds']} seeds, test accuracy at b = 64 → b = 2: {at('BN')}, "
        f"{at('BRN')}, {at('GN')} (GN: one model for every b); drop BN − drop GN "
        f"{m1:+.3f} ± {h1:.3f}, drop BN − drop BRN {m2:+.3f} ± {h2:.3f} (95% t-intervals); "
        f"other drops: {others}; at b = 2 GN − BN {_mean(acc['GN'][0]) - _mean(acc['BN'][0]):+.3f}"
    )
    if m1 - h1 > 0 and m2 - h2 > 0:
        return verdict(True, reason + " — both intervals lie above 0")
    if m1 <= 0 or m2 <= 0:
        why = (
            "BatchNorm does not lose more than GroupNorm"
            if m1 <= 0
            else "Batch Renorm loses at least as much as BatchNorm"
        )
        return verdict(False, f"{reason} — {why}")
    return verdict(
        False, reason + " — right direction, within the seeds' spread", inconclusive=True
    )


_DESIGN = (
    "A CNN conv(1→8, 3x3) - norm - ReLU - conv(8→16, 3x3, stride 2) - norm - ReLU - 2x2 "
    "average pool - linear(64→10) on the 8x8 digits (960 training images; the 449 test "
    "images), trained with Adam (lr 2e-2 with cosine decay to 0, chosen on BatchNorm's "
    "validation accuracy at b = 64) on steps of 64 images, the same number of epochs at "
    "every b. The normalization batch b is 2, 4, 16 or 64: each step's 64 images are split "
    "into 64/b groups normalised separately, as on 64/b GPUs with unsynchronised BatchNorm "
    "(the Group Norm paper's 'images per GPU'), the running averages following group 0's "
    "(as DistributedDataParallel keeps them); the optimizer, its batch, its steps and the "
    "images seen are the same at every b, so only the normalization's statistics change. "
    "GroupNorm (4 groups), LayerNorm (GroupNorm with 1 group, over C, H, W) and "
    "InstanceNorm never look across images, so they compute the same model at every b and "
    "are trained once per seed. Batch Renorm: r_max = 1 and d_max = 0 for the first "
    "quarter of the run while its moving averages settle, then ramped to 3 and 5 (the "
    "paper's schedule scaled to the run); Batch-Instance Norm: ρ from 1, learning rate x10, "
    "projected onto [0, 1]; Switchable Norm: equal initial weights. Each seed gives one "
    "initialisation and one image order, shared by every normalization and b (paired)."
)


@claim(
    id="norm.batch_size",
    section=SECTION,
    statement='"Batch normalization makes the loss function dependent on the batch size (a '
    "smaller minibatch size will increase the random variation in the mean and variance "
    'statistics)"; Group Normalization "outperformed it on smaller batch sizes"; Batch '
    'Renormalization "still degrades when the batch size decreases (though not as badly as '
    'batch normalization)".',
    method=_DESIGN + " Measure each model's test accuracy in eval mode (running statistics).",
    criterion="With drop = accuracy at b = 64 minus accuracy at b = 2, per seed: supported if "
    "the 95% t-intervals of the seed-paired differences drop(BN) − drop(GN) and "
    "drop(BN) − drop(BRN) both lie above 0 (both must hold, so no multiplicity correction); "
    "not supported if either mean difference is ≤ 0; inconclusive otherwise.",
    decide=_decide_batch_size,
)
def batch_size(ctx: Context) -> Evidence:
    runs = trained_cnns(ctx)
    recipe, acc = runs["recipe"], runs["test_accuracy"]
    drop = {k: _diff(acc[k][-1], acc[k][0]) for k in KINDS}

    fig, (ax1, ax2) = figure(ncols=2, width=4.8, height=3.9)
    for i, kind in enumerate(KINDS):
        per_b = torch.tensor(acc[kind], dtype=torch.float64)  # (b, seeds)
        mean = per_b.mean(1)
        if kind in SAMPLE_KINDS:  # one model for every b: a level
            ax1.axhline(float(mean[0]), color=PALETTE[i], ls="--", lw=1.2, label=NAMES[kind])
            continue
        shift = [b * 2 ** (0.07 * (i - 1.5)) for b in BATCHES]  # side by side on the log axis
        ax1.errorbar(
            shift,
            mean,
            yerr=[(mean - per_b.min(1).values).tolist(), (per_b.max(1).values - mean).tolist()],
            fmt="o-",
            ms=4,
            capsize=2,
            lw=1.5,
            color=PALETTE[i],
            label=NAMES[kind],
        )
    ax1.set_xscale("log", base=2)
    ax1.set_xticks(BATCHES, [str(b) for b in BATCHES])
    ax1.minorticks_off()
    ax1.set(
        xlabel="normalization batch b (images per group; optimizer batch 64)",
        ylabel="test accuracy (eval mode)",
        title="Accuracy vs the batch the statistics see",
    )
    for i, kind in enumerate(KINDS):
        ax2.bar(i, _mean(drop[kind]), color=PALETTE[i], alpha=0.6)
        ax2.plot([i] * len(drop[kind]), drop[kind], "k.", ms=5)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xticks(range(len(KINDS)), list(KINDS))
    ax2.set(ylabel="accuracy at b = 64 − at b = 2", title="Drop from b = 64 to b = 2 (dots: seeds)")
    fig.legend(
        *ax1.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=4,
        title="mean over seeds, bars min-max; dashed: per-sample norms, one model for all b",
    )
    return Evidence(
        numbers={
            "batch_sizes": list(BATCHES),
            "step_batch": STEP_BATCH,
            "seeds": recipe.seeds,
            "epochs": recipe.epochs,
            "steps": recipe.steps,
            "train_examples": recipe.train_examples,
            "test_examples": len(runs["split"].y_test),
            "kinds": dict(NAMES),
            "test_accuracy": acc,
            "drop_64_to_2": drop,
            "batch_renorm": {
                k: list(v) if isinstance(v, tuple) else v for k, v in recipe.renorm().items()
            },
        },
        figures=[
            Figure(
                fig,
                "Left: test accuracy of the same CNN with each normalization against the "
                "batch its statistics are computed over (the optimizer batch stays 64); "
                "line: mean over seeds, band: min-max. Right: each normalization's drop "
                "from b = 64 to b = 2.",
            )
        ],
    )


# ------------------------------------------------------------------ switchable weights


def _bn_weight(n: dict) -> list[list[float]]:
    """BN's importance weight per b and seed: the mean of its softmax weight for the means
    and for the variances, over the layers."""
    out = []
    for i in range(len(n["batch_sizes"])):
        per_seed = []
        for s in range(n["seeds"]):
            values = [
                n["importance"][stat]["BN"][i][layer][s]
                for stat in ("mean", "var")
                for layer in range(n["layers"])
            ]
            per_seed.append(_mean(values))
        out.append(per_seed)
    return out


def _decide_switchable(n: dict) -> tuple[str, str]:
    bn = _bn_weight(n)
    diffs = _diff(bn[-1], bn[0])
    m, h = _interval(diffs)
    imp = n["importance"]

    def weights(i: int) -> str:
        return ", ".join(
            f"{src} {_mean([v for layer in imp[stat][src][i] for v in layer]):.3f}"
            for stat in ("mean", "var")
            for src in ("IN", "LN", "BN")
        )

    reason = (
        f"over {n['seeds']} seeds, BN's weight (mean of its mean- and variance-weights over "
        f"{n['layers']} layers) by b = {', '.join(map(str, n['batch_sizes']))}: "
        f"{' → '.join(f'{_mean(v):.3f}' for v in bn)}; at b = 64 minus at b = 2: "
        f"{m:+.3f} ± {h:.3f} (95% t-interval); weights (mean IN, LN, BN; var IN, LN, BN) at "
        f"b = 2: {weights(0)}; at b = 64: {weights(-1)}"
    )
    if m - h > 0:
        return verdict(True, reason + " — BN's weight is lower at b = 2, beyond the spread")
    if m <= 0:
        return verdict(False, reason + " — BN's weight is not lower at b = 2")
    return verdict(False, reason + " — lower, within the seeds' spread", inconclusive=True)


@claim(
    id="norm.switchable_weights",
    section=SECTION,
    statement='Switchable Normalization: "Smaller batch sizes lead to a preference towards '
    "layer normalization and instance normalization\" (the learned weights move from BN's "
    "statistics to LN's and IN's).",
    method="The Switchable Norm models of norm.batch_size (" + _DESIGN + ") Read each "
    "layer's learned importance weights (the softmax of mean_weight and of var_weight over "
    "IN, LN and BN) at each b.",
    criterion="BN's weight of a model is the mean of its softmax weight for the means and for "
    "the variances over both layers (IN's and LN's together are 1 minus it). Supported if the "
    "95% t-interval of the seed-paired difference BN weight at b = 64 minus at b = 2 lies "
    "above 0; not supported if the mean difference is ≤ 0; inconclusive otherwise.",
    decide=_decide_switchable,
)
def switchable_weights(ctx: Context) -> Evidence:
    runs = trained_cnns(ctx)
    recipe, imp = runs["recipe"], runs["importance"]
    numbers = {
        "batch_sizes": list(BATCHES),
        "seeds": recipe.seeds,
        "layers": 2,
        "importance": imp,
    }
    numbers["bn_weight"] = _bn_weight(numbers)
    fig, axes = figure(ncols=2, nrows=2, width=3.9, height=3.0)
    for row, layer in enumerate(("layer 1", "layer 2")):
        for col, stat in enumerate(("mean", "var")):
            ax = axes[row * 2 + col]
            for j, src in enumerate(("IN", "LN", "BN")):
                per_b = torch.tensor(
                    [values[row] for values in imp[stat][src]], dtype=torch.float64
                )  # (b, seeds)
                ax.errorbar(
                    BATCHES,
                    per_b.mean(1),
                    yerr=[per_b.mean(1) - per_b.min(1).values, per_b.max(1).values - per_b.mean(1)],
                    fmt="o-",
                    ms=4,
                    capsize=3,
                    color=PALETTE[j],
                    label=src,
                )
            ax.axhline(1 / 3, color="0.6", ls=":", lw=1)
            ax.set_xscale("log", base=2)
            ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
            ax.set(
                title=f"{layer}: weights of the {'means' if stat == 'mean' else 'variances'}",
                xlabel="normalization batch b",
                ylabel="softmax weight",
                ylim=(0, 1),
            )
            ax.legend(loc="upper right")
    return Evidence(
        numbers=numbers,
        figures=[
            Figure(
                fig,
                "Switchable Norm's learned importance of the IN, LN and BN statistics for "
                "the means (left) and the variances (right) of each layer, against the "
                "normalization batch (mean over seeds, bars min-max; dotted: the equal "
                "initial weights).",
            )
        ],
    )


# ---------------------------------------------------------------- train / eval statistics


def _member_norm(stack: _Stack, blk: _Block, seed: int) -> nn.Module:
    """Member ``seed``'s normalization layer of a block, as a layer of its own."""
    if blk.kind == "SN":
        return copy.deepcopy(blk.layer[seed])
    c = blk.channels
    layer = _make(blk.kind, c, 1, stack.recipe)
    part = slice(seed * c, (seed + 1) * c)
    layer.load_state_dict({k: v[part] if v.dim() else v for k, v in blk.layer.state_dict().items()})
    return layer


def _plain(stack: _Stack, block: int, seed: int) -> nn.Sequential:
    """One member of the stack as an ordinary ``nn.Sequential`` CNN (copies of its weights
    and statistics)."""
    m = stack.member(block, seed)
    n1, n2 = stack.norm1[block], stack.norm2[block]
    c1, c2 = n1.channels, n2.channels
    conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
    conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False)
    head = nn.Linear(4 * c2, 10)
    with torch.no_grad():
        conv1.weight.copy_(stack.w1[m * c1 : (m + 1) * c1])
        conv2.weight.copy_(stack.w2[m * c2 : (m + 1) * c2])
        head.weight.copy_(stack.fc_w[m].T)
        head.bias.copy_(stack.fc_b[m, 0])
    return nn.Sequential(
        conv1,
        _member_norm(stack, n1, seed),
        nn.ReLU(),
        conv2,
        _member_norm(stack, n2, seed),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        head,
    )


def _bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, norm.BatchNorm2d)]


@torch.no_grad()
def _test_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int) -> float:
    model.eval()
    logits = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    return float((logits.argmax(1) == y).double().mean())


def _distance(mean: Tensor, var: Tensor, ref_mean: Tensor, ref_var: Tensor, eps: float) -> float:
    """How far normalising with (mean, var) is from normalising with (ref_mean, ref_var),
    for inputs of the reference's distribution: the root-mean-square difference of the two
    normalised outputs, sqrt((σ_ref/σ - 1)² + ((μ - μ_ref)/σ)²), averaged over channels."""
    sd, ref_sd = (var + eps).sqrt(), (ref_var + eps).sqrt()
    return float(((ref_sd / sd - 1) ** 2 + ((mean - ref_mean) / sd) ** 2).sqrt().mean())


@torch.no_grad()
def _batch_moments(model: nn.Module, x: Tensor, b: int) -> list[list[tuple[Tensor, Tensor]]]:
    """Per BatchNorm layer, the (mean, unbiased variance) of its input on each mini-batch of
    b training images, as training computes them (a copy in training mode)."""
    model = copy.deepcopy(model).train()
    layers = _bn_layers(model)
    seen: list[list[tuple[Tensor, Tensor]]] = [[] for _ in layers]

    def hook(i: int):
        def record(module, args):
            m = _stats.local_batch_moments(args[0])
            seen[i].append((m.mean, m.var * m.count / (m.count - 1)))

        return record

    handles = [layer.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    for i in range(0, len(x) - b + 1, b):
        model(x[i : i + b])
    for h in handles:
        h.remove()
    return seen


def _gap_measure(model: nn.Module, b: int, split, n_train: int) -> dict[str, Any]:
    x_train, x_test, y_test = split.x_train[:n_train], split.x_test, split.y_test
    dataset = norm.recompute_statistics(copy.deepcopy(model), [x_train])  # one batch: exact
    batch_stats = copy.deepcopy(model)
    for layer in _bn_layers(batch_stats):
        layer.stats = "batch"
    running_d, single_d = [], []
    per_batch = _batch_moments(model, x_train, b)
    for layer, ref, batches in zip(_bn_layers(model), _bn_layers(dataset), per_batch, strict=True):
        rm, rv, eps = ref.running_mean, ref.running_var, layer.eps
        running_d.append(_distance(layer.running_mean, layer.running_var, rm, rv, eps))
        single_d.append(_mean([_distance(m, v, rm, rv, eps) for m, v in batches]))
    return {
        "accuracy_running": _test_accuracy(model, x_test, y_test, len(x_test)),
        "accuracy_dataset": _test_accuracy(dataset, x_test, y_test, len(x_test)),
        "accuracy_batch_all": _test_accuracy(batch_stats, x_test, y_test, len(x_test)),
        "accuracy_batch_b": _test_accuracy(batch_stats, x_test, y_test, b),
        "distance_running": running_d,
        "distance_single_batch": single_d,
    }


def _decide_gap(n: dict) -> tuple[str, str]:
    d_run, d_one = n["distance_running"], n["distance_single_batch"]
    acc = n["accuracy"]
    bs = n["batch_sizes"]  # (2, 64)
    better = [_interval(_diff(d_one[i], d_run[i])) for i in range(len(bs))]
    worse_small = _interval(_diff(d_run[0], d_run[-1]))
    restored = _interval(_diff(acc["dataset"][0], acc["running"][0]))
    tests = [*better, worse_small, restored]
    shown = "; ".join(
        f"b = {b}: moving average {_mean(d_run[i]):.3f} vs one mini-batch {_mean(d_one[i]):.3f} "
        f"(difference {better[i][0]:+.3f} ± {better[i][1]:.3f})"
        for i, b in enumerate(bs)
    )
    accs = "; ".join(
        f"b = {b}: running {_mean(acc['running'][i]):.3f}, dataset "
        f"{_mean(acc['dataset'][i]):.3f}, batch statistics of all test images "
        f"{_mean(acc['batch_all'][i]):.3f}, of test batches of {b} "
        f"{_mean(acc['batch_b'][i]):.3f}"
        for i, b in enumerate(bs)
    )
    reason = (
        f"over {n['seeds']} seeds, distance of the BatchNorm statistics to the dataset's "
        f"(RMS difference of the normalised outputs, mean over channels and layers): {shown}; "
        f"moving averages at b = {bs[0]} minus at b = {bs[-1]}: {worse_small[0]:+.3f} ± "
        f"{worse_small[1]:.3f}; test accuracy with each statistics: {accs}; dataset minus "
        f"running at b = {bs[0]}: {restored[0]:+.3f} ± {restored[1]:.3f} (95% t-intervals)"
    )
    if all(m - h > 0 for m, h in tests):
        return verdict(True, reason + " — every interval lies above 0")
    if any(m <= 0 for m, _ in tests):
        return verdict(False, reason + " — some predicted difference has the wrong sign")
    return verdict(False, reason + " — right signs, not all beyond the spread", inconclusive=True)


@claim(
    id="norm.train_eval_gap",
    section=SECTION,
    statement='"We do not use the individual mini-batch statistics for batch normalization '
    'during inference. Instead, we use a moving average of the mini batch statistics", which '
    '"provides a better estimate of the true mean and variance compared to individual '
    'mini-batches"; and, where the mini-batches differ from those of training, "it might be '
    'better to use the statistics of the original dataset instead". So: the moving averages '
    "are closer to the dataset's statistics than single mini-batches are, those averaged "
    "over tiny batches are further off, and replacing them with the dataset's statistics "
    "restores the accuracy they cost.",
    method="Take norm.batch_size's BatchNorm models trained with normalization batches of 2 "
    "and 64 (" + _DESIGN + ") For each BatchNorm layer compute the dataset's statistics of "
    "its input (mldl.norm.recompute_statistics on a copy, the 960 training images as one "
    "batch) and compare with them, as the RMS difference of the normalised outputs "
    "sqrt((σ_data/σ − 1)² + ((μ − μ_data)/σ)²) averaged over channels and layers: the moving "
    "averages, and the statistics of each training mini-batch of b images (as training "
    "computes them). Measure test accuracy with the moving averages (eval mode), with the "
    "dataset's statistics, and with batch statistics (stats='batch') of all 449 test images "
    "at once and of test batches of b.",
    criterion="Four seed-paired differences, each with its 95% t-interval: one mini-batch's "
    "distance minus the moving average's, at b = 2 and at b = 64; the moving average's "
    "distance at b = 2 minus at b = 64; test accuracy with the dataset's statistics minus "
    "with the moving averages at b = 2. Supported if all four intervals lie above 0; not "
    "supported if any mean is ≤ 0; inconclusive otherwise.",
    decide=_decide_gap,
)
def train_eval_gap(ctx: Context) -> Evidence:
    runs = trained_cnns(ctx)
    stack, recipe, blocks, split = runs["stack"], runs["recipe"], runs["blocks"], runs["split"]
    bs = (BATCHES[0], BATCHES[-1])
    keys = ("running", "dataset", "batch_all", "batch_b")
    acc: dict[str, list[list[float]]] = {k: [] for k in keys}
    d_run: list[list[float]] = []
    d_one: list[list[float]] = []
    by_layer: dict[str, list] = {"running": [], "single_batch": []}
    for b in bs:
        block = _block_index(blocks, "BN", b)
        rows = [
            _gap_measure(_plain(stack, block, s), b, split, recipe.train_examples)
            for s in range(recipe.seeds)
        ]
        for k in keys:
            acc[k].append([r[f"accuracy_{k}"] for r in rows])
        d_run.append([_mean(r["distance_running"]) for r in rows])
        d_one.append([_mean(r["distance_single_batch"]) for r in rows])
        by_layer["running"].append([r["distance_running"] for r in rows])
        by_layer["single_batch"].append([r["distance_single_batch"] for r in rows])

    fig, (ax1, ax2, ax3) = figure(ncols=3, width=3.5, height=3.6)
    ticks = ["moving\naverages", "dataset\nstatistics", "all test\nimages", "test batches\nof b"]
    low = min(v for k in keys for row in acc[k] for v in row)
    for ax, i in ((ax1, 0), (ax2, 1)):
        per_seed = list(zip(*(acc[k][i] for k in keys), strict=True))
        for values in per_seed:
            ax.plot(range(len(keys)), values, "-", color="0.7", lw=0.8)
        for j, k in enumerate(keys):
            ax.plot(j, _mean(acc[k][i]), "D", ms=7, color=PALETTE[j])
        ax.set_xticks(range(len(keys)), ticks, fontsize=8)
        ax.set(
            ylim=(low - 0.01, 1.0),
            ylabel="test accuracy",
            title=f"BatchNorm trained with b = {bs[i]}: statistics at inference",
        )
        ax.title.set_fontsize(9)
    for j, (name, values) in enumerate(
        (("moving average", d_run), ("one training mini-batch", d_one))
    ):
        for i in range(len(bs)):
            x = i + (j - 0.5) * 0.35
            ax3.bar(x, _mean(values[i]), 0.35, color=PALETTE[4 + j], label=name if i else None)
            ax3.plot([x] * len(values[i]), values[i], "k.", ms=4)
    ax3.set_xticks(range(len(bs)), [f"b = {b}" for b in bs])
    ax3.set(
        ylabel="distance to the dataset's statistics",
        title="RMS error of the normalised outputs",
    )
    ax3.title.set_fontsize(9)
    ax3.legend(loc="center right")
    return Evidence(
        numbers={
            "batch_sizes": list(bs),
            "seeds": recipe.seeds,
            "accuracy": acc,
            "distance_running": d_run,
            "distance_single_batch": d_one,
            "distance_by_layer": by_layer,
        },
        figures=[
            Figure(
                fig,
                "Left and middle: test accuracy of the BatchNorm models trained with "
                "normalization batches of 2 and of 64, evaluated with their moving averages, "
                "with the dataset's statistics, and with the batch statistics of all test "
                "images at once or of test batches of b (diamonds: mean; grey lines: seeds). "
                "Right: how far the moving averages and single training mini-batches are "
                "from the dataset's statistics (dots: seeds).",
            )
        ],
    )


# ---------------------------------------------------------------------------- BIN's ρ


def _bin_recipe(ctx: Context) -> Recipe:
    # The BIN paper's optimizer: SGD, momentum 0.9, lr 0.1, weight decay 1e-4 except on ρ,
    # whose learning rate is 10x (1.0). ``seeds`` counts the models of each initial ρ.
    base = _recipe(ctx)
    return Recipe(
        c1=base.c1,
        c2=base.c2,
        epochs=ctx.pick(2, 30, 60),
        train_examples=base.train_examples,
        seeds=ctx.pick(2, 5, 10),
        lr=0.1,
        optimizer="sgd",
        weight_decay=1e-4,
    )


RHO_INITS = (0.5, 1.0)
NEAR = 0.1


def _rho_summary(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return {
        "near_0_or_1": float(((t <= NEAR) | (t >= 1 - NEAR)).double().mean()),
        "near_0": float((t <= NEAR).double().mean()),
        "near_1": float((t >= 1 - NEAR).double().mean()),
        "mean": float(t.mean()),
    }


def _decide_bin_rho(n: dict) -> tuple[str, str]:
    key = f"init={RHO_INITS[0]:g}"
    near, mean = n["near_0_or_1"][key], n["mean_rho"][key]
    (f, hf), (m, hm) = _interval(near), _interval(mean)
    one = f"init={RHO_INITS[1]:g}"
    reason = (
        f"over {n['seeds']} seeds, ρ initialised at {RHO_INITS[0]:g}: fraction within "
        f"{NEAR:g} of 0 or 1 {f:.3f} ± {hf:.3f} (near 0 {_mean(n['near_0'][key]):.3f}, near 1 "
        f"{_mean(n['near_1'][key]):.3f}), mean ρ {m:.3f} ± {hm:.3f} (95% t-intervals); test "
        f"accuracy {_mean(n['test_accuracy'][key]):.3f}. For reference, from ρ = 1 (the "
        f"paper's initialisation): near 0 or 1 {_mean(n['near_0_or_1'][one]):.3f}, mean ρ "
        f"{_mean(n['mean_rho'][one]):.3f}, mean |ρ − 1| {_mean(n['moved'][one]):.3f}"
    )
    if f - hf > 0.5 and m - hm > 0.5:
        return verdict(True, reason + " — both lower bounds exceed 0.5")
    if f <= 0.5 or m <= 0.5:
        return verdict(False, reason + " — a mean is at most 0.5")
    return verdict(False, reason + " — above 0.5, within the seeds' spread", inconclusive=True)


@claim(
    id="norm.bin_rho",
    section=SECTION,
    statement='Batch-Instance Normalization: "In image classification tasks, the value of ρ '
    "tended to be close to 0 or 1, meaning many layers used either instance or batch "
    "normalization almost exclusively. In addition, layers tended to use batch normalization "
    'more than instance normalization".',
    method="The CNN of norm.batch_size with Batch-Instance Norm in both layers (8 and 16 "
    "channels, one ρ each), trained on 960 digits with steps of 64 images for 30 epochs (60 "
    "with --full) by the BIN paper's recipe: SGD with momentum 0.9, lr 0.1 (here with "
    "cosine decay to 0), weight decay 1e-4 except on ρ, ρ's learning rate 10x, ρ projected "
    "onto [0, 1] after every step. ρ starts at 0.5, halfway, so that ending near 0 or 1 and "
    "favouring BN are things training does (the paper and the library start at ρ = 1, pure "
    "BN, where 'near 1' needs no movement at all); as many other models started at ρ = 1 "
    "are trained alongside and reported for reference. Read every channel's ρ.",
    criterion=f"For the models started at ρ = {RHO_INITS[0]:g}, per seed: the fraction of the "
    f"24 ρ within {NEAR:g} of 0 or of 1, and the mean ρ. Supported if the lower ends of both "
    "95% t-intervals exceed 0.5 (most ρ near an end, and BN weighted more than IN on "
    "average); not supported if either mean is ≤ 0.5; inconclusive otherwise.",
    decide=_decide_bin_rho,
)
def bin_rho(ctx: Context) -> Evidence:
    from ..data import digits

    split, recipe = digits(ctx.seed).images(), _bin_recipe(ctx)
    n, s, inits = recipe.train_examples, recipe.seeds, len(RHO_INITS)
    # One stack of s models per initial ρ (models k·s to (k+1)·s - 1 start at RHO_INITS[k]);
    # every model has its own initial weights and image order.
    both = replace(recipe, seeds=s * inits)
    stack = _Stack([("BIN", STEP_BATCH)], both, ctx, stream=7200)
    with torch.no_grad():
        for layer in (stack.norm1[0].layer, stack.norm2[0].layer):
            rho = layer.rho.view(s * inits, -1)
            for k, init in enumerate(RHO_INITS):
                rho[k * s : (k + 1) * s] = init
    _train(ctx, stack, both, split.x_train[:n], split.y_train[:n], 7300, "BIN ρ: epochs")
    acc = _accuracy(stack, split.x_test, split.y_test, ctx).view(inits, s)
    numbers_rho = {}
    summary: dict[str, dict[str, list[float]]] = {
        k: {} for k in ("near_0_or_1", "near_0", "near_1", "mean_rho", "moved", "test_accuracy")
    }
    final = [
        layer.rho.detach().view(inits, s, -1)
        for layer in (stack.norm1[0].layer, stack.norm2[0].layer)
    ]
    for i, init in enumerate(RHO_INITS):
        key = f"init={init:g}"
        layers = [rho[i].tolist() for rho in final]
        numbers_rho[key] = {"layer 1": layers[0], "layer 2": layers[1]}
        per_seed = [layers[0][r] + layers[1][r] for r in range(s)]
        stats = [_rho_summary(v) for v in per_seed]
        for name in ("near_0_or_1", "near_0", "near_1"):
            summary[name][key] = [st[name] for st in stats]
        summary["mean_rho"][key] = [st["mean"] for st in stats]
        summary["moved"][key] = [_mean([abs(x - init) for x in v]) for v in per_seed]
        summary["test_accuracy"][key] = acc[i].tolist()

    fig, axes = figure(ncols=2, width=4.2, height=3.3)
    bins = torch.linspace(0, 1, 21).tolist()
    for ax, layer in zip(axes, ("layer 1", "layer 2"), strict=True):
        for i, init in enumerate(RHO_INITS):
            key = f"init={init:g}"
            values = [x for row in numbers_rho[key][layer] for x in row]
            ax.hist(
                values,
                bins=bins,
                color=PALETTE[i],
                histtype="stepfilled" if i == 0 else "step",
                alpha=0.6 if i == 0 else 1.0,
                lw=1.8,
                label=f"ρ from {init:g}",
            )
        for edge in (NEAR, 1 - NEAR):
            ax.axvline(edge, color="k", ls=":", lw=1)
        ax.set(
            xlabel="ρ  (0: InstanceNorm, 1: BatchNorm)",
            ylabel="channels (all seeds)",
            title=f"Batch-Instance Norm, {layer}",
        )
        ax.legend(loc="upper center")
    return Evidence(
        numbers={
            "rho_inits": list(RHO_INITS),
            "near": NEAR,
            "seeds": s,
            "epochs": recipe.epochs,
            "steps": recipe.steps,
            "lr": recipe.lr,
            "rho_lr": recipe.lr * recipe.rho_lr_factor,
            "rho": numbers_rho,
            **summary,
        },
        figures=[
            Figure(
                fig,
                "Learned ρ of every channel of each Batch-Instance Norm layer, all seeds: "
                f"trained from ρ = {RHO_INITS[0]:g} (filled) and from ρ = 1 (outline); "
                f"dotted: within {NEAR:g} of 0 or 1.",
            )
        ],
    )
