"""Claims of the notes' normalization section about sequence models and distributed training:
layer normalization "performs well on RNNs" (where a naive batch normalization does not),
ScaleNorm with weight normalization "roughly matched" layer normalization in a Transformer,
and batch normalization with different per-machine batch sizes optimises different losses.

The two training claims train every (variant, seed) pair at once as one *stack*: each weight
carries a leading member dimension and every layer is one batched matrix product, so that the
Python overhead of a step (the RNN's 16 unrolled steps, the Transformer's attention) is paid
once for all members. Members ``[k·S, (k+1)·S)`` are variant ``k``'s ``S`` seeds; the members
of one seed start from the same weights and see the same mini-batches, whatever their
normalization (a paired design). Adam updates each element from its own gradient history, so
the members train exactly as they would apart.

The distributed claim runs two ``gloo`` processes on this machine (``file://`` rendezvous in a
temporary folder, every process joined with a deadline and killed after it).
"""

from __future__ import annotations

import inspect
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import losses
from ...norm import BatchNorm1d, LayerNorm, scale_norm, weight_norm
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure
from ..stats import mean as _mean
from ..stats import paired as _paired
from ..stats import sd as _sd

SECTION_LN = "Normalization: layer normalization (RNNs)"
SECTION_SN = "Normalization: ScaleNorm"
SECTION_DIST = "Normalization: batch normalization (distributed training)"


def _uniform(gens: list[torch.Generator], bound: float, *shape: int) -> Tensor:
    """One draw per seed, uniform in ±bound (``nn.Linear``'s and ``nn.RNN``'s default), stacked
    along a new leading member dimension."""
    return torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens])


def _band(ax, x: list, runs: list[list[float]], label: str, colour: str) -> None:
    """Mean over seeds (line) and the range of the seeds (shaded)."""
    t = torch.tensor(runs, dtype=torch.float64)
    ax.plot(x, t.mean(0).tolist(), color=colour, label=label)
    ax.fill_between(x, t.min(0).values.tolist(), t.max(0).values.tolist(), color=colour, alpha=0.2)


def _paired_dots(ax, values: dict[str, list[float]], labels: dict[str, str]) -> None:
    """Every seed's value per variant, one grey line per seed joining its variants."""
    names = list(values)
    seeds = len(values[names[0]])
    for r in range(seeds):
        ax.plot(range(len(names)), [values[k][r] for k in names], color="0.75", lw=0.8, zorder=1)
    for i, k in enumerate(names):
        ax.scatter([i] * seeds, values[k], color=PALETTE[i], s=18, zorder=2)
        ax.plot([i - 0.2, i + 0.2], [_mean(values[k])] * 2, color="k", lw=2, zorder=3)
    ax.set_xticks(range(len(names)), [labels[k] for k in names])


# ============================================================= layer normalization in an RNN

RNN_VARIANTS = ("none", "layer", "batch")
RNN_LABELS = {
    "none": "no norm",
    "layer": "LayerNorm",
    "batch": "BatchNorm (shared over time)",
}


@dataclass(frozen=True)
class _RnnRecipe:
    """Elman RNN of ``hidden`` tanh units reading the 8x8 digits ``pixels_per_step`` pixels at
    a time (raw values 0-16), Adam, ``epochs`` epochs on the training split."""

    seeds: int
    epochs: int
    pixels_per_step: int = 4
    hidden: int = 32
    batch_size: int = 64
    lr: float = 3e-3
    every: int = 2  # test accuracy every this many epochs (the curves)

    @property
    def steps(self) -> int:
        return 64 // self.pixels_per_step


def _rnn_recipe(ctx: Context) -> _RnnRecipe:
    return ctx.pick(
        _RnnRecipe(seeds=2, epochs=2, every=1),
        _RnnRecipe(seeds=5, epochs=20),
        _RnnRecipe(seeds=10, epochs=60, pixels_per_step=1, every=5),
    )


class _StackedRnn(nn.Module):
    r"""``3·S`` Elman RNNs, one per (variant, seed), unrolled by hand so that the norm sits
    inside the recurrence: :math:`h_t = \tanh(\mathrm{norm}(x_t W_x + h_{t-1} W_h + b))`,
    :math:`h_0 = 0`, logits :math:`h_T W_o + b_o`.

    The norm of the pre-activation (members of variant ``none``: identity; ``layer``: mldl's
    LayerNorm over the hidden units, per sample and step, with a gain and bias per member;
    ``batch``: mldl's BatchNorm1d, one layer for every step as a naive application would
    use it: batch statistics of each step in training, running averages (updated at every
    step) in eval). The ``batch`` members' units are the BatchNorm's channels, ``S·H`` of
    them, so that each member has its own statistics, gain and bias."""

    def __init__(self, ctx: Context, recipe: _RnnRecipe, stream: int) -> None:
        super().__init__()
        s, h, i, v = recipe.seeds, recipe.hidden, recipe.pixels_per_step, len(RNN_VARIANTS)
        self.seeds, self.hidden = s, h
        gens = [ctx.generator(stream + r) for r in range(s)]
        bound = 1 / math.sqrt(h)  # nn.RNN's initialisation, for every weight

        def shared(t: Tensor) -> nn.Parameter:  # the seed's draw for every variant
            return nn.Parameter(t.repeat(v, *([1] * (t.dim() - 1))))

        self.w_x = shared(_uniform(gens, bound, i, h))
        self.w_h = shared(_uniform(gens, bound, h, h))
        self.b = shared(_uniform(gens, bound, 1, h))
        self.w_o = shared(_uniform(gens, bound, h, 10))
        self.b_o = shared(_uniform(gens, bound, 1, 10))
        self.ln = LayerNorm(h, elementwise_affine=False)
        self.ln_gain = nn.Parameter(torch.ones(s, 1, h))
        self.ln_bias = nn.Parameter(torch.zeros(s, 1, h))
        self.bn = BatchNorm1d(s * h)
        self.record: list[Tensor] | None = None  # the BatchNorm's inputs, when set to a list

    def _norm(self, pre: Tensor) -> Tensor:
        s, h = self.seeds, self.hidden
        batch = pre.shape[1]
        none, layer, bn_in = pre[:s], pre[s : 2 * s], pre[2 * s :]
        layer = self.ln(layer) * self.ln_gain + self.ln_bias
        flat = bn_in.transpose(0, 1).reshape(batch, s * h)  # (B, S·H): one channel per unit
        if self.record is not None:
            self.record.append(flat.detach())
        bn = self.bn(flat).view(batch, s, h).transpose(0, 1)
        return torch.cat([none, layer, bn])

    def forward(self, x: Tensor) -> Tensor:
        """(M, B, T, I) inputs, one batch per member -> (M, B, 10) logits."""
        m, batch, steps, _ = x.shape
        drive = torch.einsum("mbti,mih->tmbh", x, self.w_x) + self.b.unsqueeze(0)
        h = x.new_zeros(m, batch, self.hidden)
        for t in range(steps):
            h = torch.tanh(self._norm(torch.baddbmm(drive[t], h, self.w_h)))
        return torch.baddbmm(self.b_o, h, self.w_o)


def _stacked_ce(logits: Tensor, y: Tensor) -> Tensor:
    """Per-member mean cross-entropy, (M, B, K) logits and (M, B) labels -> (M,)."""
    m, b, k = logits.shape
    return (
        losses.cross_entropy(logits.reshape(m * b, k), y.reshape(m * b), reduction="none")
        .view(m, b)
        .mean(1)
    )


def _as_sequences(x: Tensor, recipe: _RnnRecipe) -> Tensor:
    """(N, 64) pixels in [0, 1] -> (N, T, pixels_per_step) raw values 0-16, row by row."""
    return (x * 16.0).view(len(x), recipe.steps, recipe.pixels_per_step)


@torch.no_grad()
def _rnn_eval(model: _StackedRnn, x: Tensor, y: Tensor, members: int) -> tuple[Tensor, Tensor]:
    """Per-member test accuracy and cross-entropy (eval mode), every member on all of ``x``."""
    model.eval()
    logits = model(x.unsqueeze(0).expand(members, *x.shape))
    yy = y.expand(members, -1)
    return (logits.argmax(2) == yy).double().mean(1), _stacked_ce(logits, yy).double()


def _decide_layer_norm_rnn(n: dict) -> tuple[str, str]:
    acc = n["test_accuracy"]
    d_bn, h_bn = _paired(acc["layer"], acc["batch"])
    d_none, h_none = _paired(acc["layer"], acc["none"])
    means = ", ".join(f"{RNN_LABELS[k]} {_mean(v):.3f}" for k, v in acc.items())
    reason = (
        f"over {n['seeds']} seeds, mean test accuracy {means}; LayerNorm - BatchNorm "
        f"{d_bn:+.3f} ± {h_bn:.3f}, LayerNorm - no norm {d_none:+.3f} ± {h_none:.3f} "
        f"(95% t-intervals of the seed-paired differences); BatchNorm evaluated with the test "
        f"batch's own statistics instead of its running averages: "
        f"{_mean(n['batch_norm_accuracy_with_test_batch_statistics']):.3f}"
    )
    beats_bn = d_bn - h_bn > 0
    not_worse = d_none + h_none >= 0
    if beats_bn and not_worse:
        return verdict(
            True,
            reason + " — LayerNorm beats BatchNorm beyond the seeds' spread and is not "
            "worse than no normalization",
        )
    if d_bn + h_bn < 0 or d_none + h_none < 0:
        loser = "BatchNorm" if d_bn + h_bn < 0 else "no normalization"
        return verdict(False, reason + f" — {loser} beats LayerNorm beyond the seeds' spread")
    return verdict(
        False, reason + " — the differences are within the seeds' spread", inconclusive=True
    )


@claim(
    id="norm.layer_norm_rnn",
    section=SECTION_LN,
    statement='Layer normalization "performs well on RNNs", where batch normalization is hard '
    "to apply: its statistics differ from one time step to the next, and sequences vary in "
    "length.",
    method="Sequential digits: each 8x8 digit of scikit-learn's digits is read by an Elman RNN "
    "(32 tanh units, h_0 = 0) 4 pixels per step (16 steps), its pixels at their raw scale "
    "0-16 (every sequence has the same 16 steps: the notes' second difficulty, varying "
    "lengths, is not exercised); the last hidden state is classified. The recurrence is "
    "unrolled by hand with the norm on the pre-activation of every step, "
    "h_t = tanh(norm(x_t W_x + h_{t-1} W_h + b)): "
    "(a) no norm, (b) mldl's LayerNorm over the 32 units (per sample and step), (c) mldl's "
    "BatchNorm1d, one layer shared by all steps as a naive application would use it (batch "
    "statistics of each step in training, its running averages, updated at every step, in "
    "evaluation). Adam (lr 3e-3, batches of 64) for 20 epochs on the 989 training digits, 5 "
    "seeds; each seed gives one initialisation and one mini-batch order shared by the three "
    "variants (paired). Measure test accuracy and cross-entropy (449 digits), the training "
    "curves, BatchNorm's accuracy when it uses the test batch's statistics instead of its "
    "running averages (a diagnostic, not judged), and how far each step's statistics are "
    "from the running averages. (Steps per sequence, epochs and seeds were set by the quick "
    "profile's time budget.)",
    criterion="Supported if the 95% t-interval of the seed-paired test-accuracy difference "
    "LayerNorm - BatchNorm lies above 0 and that of LayerNorm - no norm does not lie below 0 "
    "(LayerNorm beats BatchNorm beyond the seeds' spread and is not worse than no norm). Not "
    "supported if either interval lies below 0 (BatchNorm or no norm beats LayerNorm). "
    "Inconclusive otherwise.",
    decide=_decide_layer_norm_rnn,
)
def layer_norm_rnn(ctx: Context) -> Evidence:
    from ..data import digits

    recipe, stream = _rnn_recipe(ctx), 3100
    split = digits(ctx.seed)
    x_train, y_train = _as_sequences(split.x_train, recipe), split.y_train
    x_test, y_test = _as_sequences(split.x_test, recipe), split.y_test
    s, v = recipe.seeds, len(RNN_VARIANTS)
    members = s * v
    model = _StackedRnn(ctx, recipe, stream).to(ctx.device)
    x_train, y_train = x_train.to(ctx.device), y_train.to(ctx.device)
    x_test, y_test = x_test.to(ctx.device), y_test.to(ctx.device)
    gens = [ctx.generator(stream + 100 + r) for r in range(s)]
    # the fused kernel: the same update in one pass over the parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=True)
    n = len(x_train)
    train_loss: list[list[float]] = []  # per epoch, per member
    curve_epochs: list[int] = []
    curve: list[list[float]] = []  # test accuracy per evaluation, per member
    for epoch in ctx.steps(range(recipe.epochs), "layer norm RNN: epochs", total=recipe.epochs):
        model.train()
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(ctx.device)
        total, count = torch.zeros(members, dtype=torch.float64), 0
        for start in range(0, n, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size].repeat(v, 1)  # (M, B)
            loss = _stacked_ce(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            total += loss.detach().double().cpu() * idx.shape[1]
            count += idx.shape[1]
        train_loss.append((total / count).tolist())
        if (epoch + 1) % recipe.every == 0 or epoch + 1 == recipe.epochs:
            curve_epochs.append(epoch + 1)
            curve.append(_rnn_eval(model, x_test, y_test, members)[0].tolist())
    acc, ce = _rnn_eval(model, x_test, y_test, members)
    # Diagnostic: BatchNorm with the test batch's own statistics at every step.
    model.bn.stats = "batch"
    acc_batch_stats = _rnn_eval(model, x_test, y_test, members)[0][2 * s :].tolist()
    model.bn.stats = "auto"
    # The statistics each step's pre-activations have (test set, eval mode), against the
    # running averages the BatchNorm normalises every step with.
    model.record = []
    _rnn_eval(model, x_test, y_test, members)
    recorded, model.record = torch.stack(model.record).double().cpu(), None  # (T, N, S·H)
    run_mean = model.bn.running_mean.double().cpu()
    run_sd = (model.bn.running_var.double().cpu() + model.bn.eps).sqrt()
    var, mean = torch.var_mean(recorded, dim=1, correction=0)  # (T, S·H)
    mean_shift = ((mean - run_mean).abs() / run_sd).mean(1)
    sd_ratio = ((var + model.bn.eps).sqrt() / run_sd).log().abs().mean(1).exp()

    def per_variant(values: list[float]) -> dict[str, list[float]]:
        return {k: values[i * s : (i + 1) * s] for i, k in enumerate(RNN_VARIANTS)}

    test_accuracy, test_ce = per_variant(acc.tolist()), per_variant(ce.tolist())
    loss_curves = {
        k: [[row[m] for row in train_loss] for m in range(i * s, (i + 1) * s)]
        for i, k in enumerate(RNN_VARIANTS)
    }
    acc_curves = {
        k: [[row[m] for row in curve] for m in range(i * s, (i + 1) * s)]
        for i, k in enumerate(RNN_VARIANTS)
    }

    fig1, (ax1, ax2) = figure(ncols=2)
    epochs_axis = list(range(1, recipe.epochs + 1))
    for i, k in enumerate(RNN_VARIANTS):
        _band(ax1, epochs_axis, loss_curves[k], RNN_LABELS[k], PALETTE[i])
        _band(ax2, curve_epochs, acc_curves[k], RNN_LABELS[k], PALETTE[i])
    ax1.set(xlabel="epoch", ylabel="training cross-entropy", title="Training loss (train mode)")
    ax1.legend()
    ax2.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy (eval mode)")
    ax2.legend()
    fig2, (ax3, ax4) = figure(ncols=2)
    shown = {**test_accuracy, "batch_stats": acc_batch_stats}
    _paired_dots(
        ax3,
        shown,
        {
            "none": "no norm",
            "layer": "LN",
            "batch": "BN\n(running)",
            "batch_stats": "BN\n(test batch)",
        },
    )
    ax3.set(ylabel="test accuracy", title="Final test accuracy, per seed")
    steps_axis = list(range(1, recipe.steps + 1))
    ax4.plot(
        steps_axis,
        mean_shift.tolist(),
        "o-",
        ms=3,
        label="|batch mean − running mean| / running sd",
    )
    ax4.plot(
        steps_axis, sd_ratio.tolist(), "s-", ms=3, label="exp(mean |log(batch sd / running sd)|)"
    )
    ax4.axhline(0, color="k", lw=0.8)
    ax4.axhline(1, color="k", lw=0.8, ls=":")
    ax4.set(
        xlabel="time step",
        ylabel="mean over units and seeds",
        title="BN input statistics per step vs running",
    )
    ax4.legend()
    return Evidence(
        numbers={
            "seeds": s,
            "epochs": recipe.epochs,
            "hidden": recipe.hidden,
            "time_steps": recipe.steps,
            "pixels_per_step": recipe.pixels_per_step,
            "train_examples": n,
            "test_examples": len(y_test),
            "test_accuracy": test_accuracy,
            "test_cross_entropy": test_ce,
            "batch_norm_accuracy_with_test_batch_statistics": acc_batch_stats,
            "final_train_loss": {k: [c[-1] for c in loss_curves[k]] for k in RNN_VARIANTS},
            "curve_epochs": curve_epochs,
            "mean_test_accuracy_curve": {
                k: torch.tensor(acc_curves[k]).mean(0).tolist() for k in RNN_VARIANTS
            },
            "batch_norm_mean_shift_per_step": mean_shift.tolist(),
            "batch_norm_sd_ratio_per_step": sd_ratio.tolist(),
        },
        figures=[
            Figure(
                fig1,
                f"Training loss (left) and test accuracy (right, eval mode) of the Elman RNN "
                f"on sequential digits with each normalization: mean over {s} seeds, the "
                "seeds' range shaded.",
            ),
            Figure(
                fig2,
                "Left: final test accuracy of every seed (grey lines join one seed's "
                "variants; black bars are means); 'BN (test batch)' is the same BatchNorm "
                "network normalising with the test batch's statistics at each step instead of "
                "its running averages. Right: how far the pre-activation statistics of each "
                "time step (test set) are from the single set of running averages the "
                "shared BatchNorm uses for every step in evaluation.",
            ),
        ],
        table=[
            {
                "variant": RNN_LABELS[k],
                "test accuracy": f"{_mean(test_accuracy[k]):.4f} ± {_sd(test_accuracy[k]):.4f}",
                "test cross-entropy": f"{_mean(test_ce[k]):.4f} ± {_sd(test_ce[k]):.4f}",
            }
            for k in RNN_VARIANTS
        ],
    )


# ============================================================ ScaleNorm in a Transformer

TF_VARIANTS = ("none", "layer", "scale_wn", "scale")
TF_LABELS = {
    "none": "no norm",
    "layer": "LayerNorm",
    "scale_wn": "ScaleNorm + WN",
    "scale": "ScaleNorm alone",
}
MATCH_TOLERANCE = 0.02  # "roughly matched": token accuracies within 2 points


@dataclass(frozen=True)
class _TfRecipe:
    """A pre-norm Transformer encoder (``layers`` blocks of ``heads``-head self-attention and a
    ReLU feed-forward of width ``ff``·d) sorting ``length`` digits, Adam, ``steps`` steps of
    fresh random batches."""

    seeds: int
    steps: int
    layers: int = 1
    d: int = 32
    heads: int = 2
    ff: int = 2
    length: int = 8
    vocab: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    test_examples: int = 1000
    every: int = 25
    curve_examples: int = 200


def _tf_recipe(ctx: Context) -> _TfRecipe:
    return ctx.pick(
        _TfRecipe(seeds=2, steps=40, test_examples=200, every=10),
        _TfRecipe(seeds=5, steps=300),
        _TfRecipe(seeds=10, steps=1000, layers=2, ff=4, every=50),
    )


class _LinearGroup(nn.Module):
    """The weights of one variant's ``S`` members for one linear layer, stored as an
    (S·out, in) matrix, so that ``mldl.norm.weight_norm`` (``dim=0``: one g per row)
    normalises each member's output units separately."""

    def __init__(self, weight: Tensor, bias: Tensor, normalized: bool) -> None:
        super().__init__()
        self.members, self.out_features, self.in_features = weight.shape
        self.weight = nn.Parameter(weight.reshape(-1, self.in_features).clone())
        self.bias = nn.Parameter(bias.clone())
        if normalized:
            weight_norm(self)  # w = g · v / ‖v‖, g = ‖v‖ at first: the same function

    def stacked(self) -> Tensor:
        return self.weight.view(self.members, self.out_features, self.in_features)


class _StackedLinear(nn.Module):
    """``nn.Linear`` for every member (same draw for every variant of a seed): (M, N, in) ->
    (M, N, out); the ``scale_wn`` members' weights are weight-normalised."""

    def __init__(self, gens: list[torch.Generator], fan_in: int, fan_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(fan_in)
        w, b = _uniform(gens, bound, fan_out, fan_in), _uniform(gens, bound, 1, fan_out)
        self.groups = nn.ModuleList(_LinearGroup(w, b, k == "scale_wn") for k in TF_VARIANTS)

    def forward(self, x: Tensor) -> Tensor:
        weight = torch.cat([g.stacked() for g in self.groups])
        bias = torch.cat([g.bias for g in self.groups])
        return torch.baddbmm(bias, x, weight.transpose(1, 2))


class _StackedNorm(nn.Module):
    """Each variant's norm over the last dimension (d): identity, mldl's LayerNorm (gain and
    bias per member), or mldl's ``scale_norm`` (one g per member, √d at first)."""

    def __init__(self, seeds: int, d: int) -> None:
        super().__init__()
        self.seeds = seeds
        self.ln = LayerNorm(d, elementwise_affine=False)
        self.ln_gain = nn.Parameter(torch.ones(seeds, 1, d))
        self.ln_bias = nn.Parameter(torch.zeros(seeds, 1, d))
        self.g = nn.ParameterDict(
            {
                k: nn.Parameter(torch.full((seeds, 1, 1), math.sqrt(d)))
                for k in ("scale_wn", "scale")
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        s, parts = self.seeds, []
        for i, k in enumerate(TF_VARIANTS):
            part = x[i * s : (i + 1) * s]
            if k == "layer":
                part = self.ln(part) * self.ln_gain + self.ln_bias
            elif k in self.g:
                part = scale_norm(part, self.g[k])
            parts.append(part)
        return torch.cat(parts)


class _StackedTransformer(nn.Module):
    """``4·S`` pre-norm Transformer encoders, one per (variant, seed):
    ``z = emb(x) + pos``; per block ``z += Attn(N1(z))``, ``z += FF(N2(z))``; logits
    ``Linear(N(z))``, every N the member's variant's norm (identity for ``none``).
    Embeddings are drawn as ``nn.Embedding``'s (N(0, 1)), linear layers as ``nn.Linear``'s."""

    def __init__(self, ctx: Context, recipe: _TfRecipe, stream: int) -> None:
        super().__init__()
        s, d, v = recipe.seeds, recipe.d, len(TF_VARIANTS)
        self.seeds, self.d, self.heads = s, d, recipe.heads
        gens = [ctx.generator(stream + r) for r in range(s)]

        def normal(*shape: int) -> nn.Parameter:
            t = torch.stack([torch.randn(*shape, generator=g) for g in gens])
            return nn.Parameter(t.repeat(v, *([1] * len(shape))))

        self.token = normal(recipe.vocab, d)
        self.position = normal(recipe.length, d)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm1": _StackedNorm(s, d),
                    "qkv": _StackedLinear(gens, d, 3 * d),
                    "proj": _StackedLinear(gens, d, d),
                    "norm2": _StackedNorm(s, d),
                    "ff1": _StackedLinear(gens, d, recipe.ff * d),
                    "ff2": _StackedLinear(gens, recipe.ff * d, d),
                }
            )
            for _ in range(recipe.layers)
        )
        self.norm = _StackedNorm(s, d)
        self.out = _StackedLinear(gens, d, recipe.vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        """(M, B, L) tokens, one batch per member -> (M, B, L, vocab) logits."""
        m, b, length = tokens.shape
        d, h = self.d, self.heads
        rows = torch.arange(m, device=tokens.device).view(m, 1, 1)
        z = (self.token[rows, tokens] + self.position.unsqueeze(1)).reshape(m, b * length, d)
        for blk in self.blocks:
            qkv = blk["qkv"](blk["norm1"](z)).view(m * b, length, 3, h, d // h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (M·B, heads, L, d/heads)
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
            z = z + blk["proj"](attended.reshape(m, b * length, d))
            z = z + blk["ff2"](torch.relu(blk["ff1"](blk["norm2"](z))))
        return self.out(self.norm(z)).view(m, b, length, -1)


def _digit_sorting(n: int, recipe: _TfRecipe, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` sequences of ``length`` random digits and the same digits sorted."""
    x = torch.randint(0, recipe.vocab, (n, recipe.length), generator=g)
    return x, x.sort(1).values


def _token_ce(logits: Tensor, y: Tensor) -> Tensor:
    """Per-member mean token cross-entropy, (M, B, L, V) and (M, B, L) -> (M,)."""
    m, b, length, k = logits.shape
    flat = losses.cross_entropy(logits.reshape(-1, k), y.reshape(-1), reduction="none")
    return flat.view(m, b * length).mean(1)


@torch.no_grad()
def _tf_eval(model: _StackedTransformer, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    members = model.token.shape[0]
    model.eval()
    xx, yy = x.expand(members, *x.shape), y.expand(members, *y.shape)
    logits = model(xx)
    right = logits.argmax(3) == yy
    return {
        "token": right.double().mean((1, 2)),
        "sequence": right.all(2).double().mean(1),
        "ce": _token_ce(logits, yy).double(),
    }


def _decide_scale_norm(n: dict) -> tuple[str, str]:
    acc, tol = n["token_accuracy"], n["tolerance"]
    diff, half = _paired(acc["scale_wn"], acc["layer"])
    low, high = diff - half, diff + half
    means = ", ".join(f"{TF_LABELS[k]} {_mean(v):.4f}" for k, v in acc.items())
    reason = (
        f"over {n['seeds']} seeds, mean test token accuracy {means}; ScaleNorm + WN - "
        f"LayerNorm {diff:+.4f}, 95% t-interval [{low:+.4f}, {high:+.4f}] (roughly matched: "
        f"inside ±{tol}); sequence accuracy "
        + ", ".join(f"{TF_LABELS[k]} {_mean(v):.3f}" for k, v in n["sequence_accuracy"].items())
    )
    if -tol <= low and high <= tol:
        return verdict(True, reason + " — the interval lies within the tolerance")
    if high < -tol or low > tol:
        side = "below" if high < -tol else "above"
        return verdict(False, reason + f" — the interval lies entirely {side} the tolerance")
    return verdict(
        False, reason + " — the interval straddles the tolerance's edge", inconclusive=True
    )


@claim(
    id="norm.scale_norm_transformer",
    section=SECTION_SN,
    statement='ScaleNorm, g·x/‖x‖: "The authors combine ScaleNorm with Weight Normalization '
    "and found the results roughly matched those of Layer Normalization on machine "
    'translation."',
    method="A pre-norm Transformer encoder (d = 32, 1 block of 2-head self-attention and a "
    "ReLU feed-forward of width 64, learned positions) learns to sort 8 random digits (output "
    "position i: the i-th smallest digit). Its norms (before attention, before the "
    "feed-forward, before the output layer) are (a) none, (b) mldl's LayerNorm, (c) mldl's "
    "ScaleNorm (one g per norm, √d at first) with every linear layer weight-normalised by "
    "mldl.norm.weight_norm (the notes' pairing), (d) ScaleNorm without weight normalization "
    "(reported, not judged). Adam (lr 1e-3), 300 steps of 32 fresh random sequences, 5 "
    "seeds; each seed gives one initialisation and one stream of batches shared by the "
    "variants (paired). Measure token accuracy, whole-sequence accuracy and cross-entropy on "
    "1,000 held-out sequences, and the token accuracy on 200 of them every 25 steps.",
    criterion="'Roughly matched' is fixed before running as: the 95% t-interval of the "
    "seed-paired difference in test token accuracy, ScaleNorm + WN - LayerNorm, lies within "
    "±0.02 (2 accuracy points). Supported if it does; not supported if the interval lies "
    "entirely outside (below -0.02 or above +0.02); inconclusive otherwise.",
    decide=_decide_scale_norm,
)
def scale_norm_transformer(ctx: Context) -> Evidence:
    recipe, stream = _tf_recipe(ctx), 3200
    s, v = recipe.seeds, len(TF_VARIANTS)
    model = _StackedTransformer(ctx, recipe, stream).to(ctx.device)
    x_test, y_test = _digit_sorting(recipe.test_examples, recipe, ctx.generator(stream + 99))
    x_test, y_test = x_test.to(ctx.device), y_test.to(ctx.device)
    gens = [ctx.generator(stream + 100 + r) for r in range(s)]
    # the fused kernel: the same update in one pass over the parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=True)
    train_loss: list[list[float]] = []
    curve_steps: list[int] = []
    curve: list[list[float]] = []
    for step in ctx.steps(range(recipe.steps), "ScaleNorm transformer: steps", total=recipe.steps):
        model.train()
        batches = [_digit_sorting(recipe.batch_size, recipe, g) for g in gens]
        x = torch.stack([b[0] for b in batches]).repeat(v, 1, 1).to(ctx.device)
        y = torch.stack([b[1] for b in batches]).repeat(v, 1, 1).to(ctx.device)
        loss = _token_ce(model(x), y)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        train_loss.append(loss.detach().double().cpu().tolist())
        if (step + 1) % recipe.every == 0 or step + 1 == recipe.steps:
            curve_steps.append(step + 1)
            # the curve on the first examples of the test set (the final numbers use all)
            part = slice(0, recipe.curve_examples)
            curve.append(_tf_eval(model, x_test[part], y_test[part])["token"].cpu().tolist())
    final = {k: t.cpu().tolist() for k, t in _tf_eval(model, x_test, y_test).items()}

    def per_variant(values: list[float]) -> dict[str, list[float]]:
        return {k: values[i * s : (i + 1) * s] for i, k in enumerate(TF_VARIANTS)}

    def curves(rows: list[list[float]]) -> dict[str, list[list[float]]]:
        return {
            k: [[row[m] for row in rows] for m in range(i * s, (i + 1) * s)]
            for i, k in enumerate(TF_VARIANTS)
        }

    token, sequence, ce = (per_variant(final[k]) for k in ("token", "sequence", "ce"))
    window = max(1, recipe.steps // 30)  # a running mean over the steps, for the plot
    smooth = torch.tensor(train_loss).T.unfold(1, window, window).mean(2)  # (M, steps/window)
    loss_curves = curves(smooth.T.tolist())
    acc_curves = curves(curve)
    fig1, (ax1, ax2) = figure(ncols=2)
    loss_x = [window * (i + 1) for i in range(smooth.shape[1])]
    for i, k in enumerate(TF_VARIANTS):
        _band(ax1, loss_x, loss_curves[k], TF_LABELS[k], PALETTE[i])
        _band(ax2, curve_steps, acc_curves[k], TF_LABELS[k], PALETTE[i])
    ax1.set(xlabel="step", ylabel="training cross-entropy", title="Training loss", yscale="log")
    ax1.legend()
    ax2.set(xlabel="step", ylabel="test token accuracy", title="Test token accuracy")
    ax2.legend()
    fig2, (ax3,) = figure(width=5.2)
    _paired_dots(ax3, token, {k: TF_LABELS[k].replace(" + ", "\n+ ") for k in TF_VARIANTS})
    ax3.set(ylabel="test token accuracy", title="Final token accuracy, per seed")
    return Evidence(
        numbers={
            "seeds": s,
            "steps": recipe.steps,
            "layers": recipe.layers,
            "d_model": recipe.d,
            "sequence_length": recipe.length,
            "batch_size": recipe.batch_size,
            "test_examples": recipe.test_examples,
            "tolerance": MATCH_TOLERANCE,
            "token_accuracy": token,
            "sequence_accuracy": sequence,
            "test_cross_entropy": ce,
            "curve_steps": curve_steps,
            "mean_token_accuracy_curve": {
                k: torch.tensor(acc_curves[k]).mean(0).tolist() for k in TF_VARIANTS
            },
        },
        figures=[
            Figure(
                fig1,
                f"Training loss (left, running mean over {window} steps) and test token "
                f"accuracy (right) of the tiny Transformer sorting digits with each norm: "
                f"mean over {s} seeds, the seeds' range shaded.",
            ),
            Figure(
                fig2,
                "Final test token accuracy of every seed (grey lines join one seed's "
                "variants; black bars are means).",
            ),
        ],
        table=[
            {
                "variant": TF_LABELS[k],
                "token accuracy": f"{_mean(token[k]):.4f} ± {_sd(token[k]):.4f}",
                "sequence accuracy": f"{_mean(sequence[k]):.4f} ± {_sd(sequence[k]):.4f}",
                "test cross-entropy": f"{_mean(ce[k]):.4f} ± {_sd(ce[k]):.4f}",
            }
            for k in TF_VARIANTS
        ],
    )


# ============================================ batch normalization with uneven batch sizes

DIST_SIZES = (4, 28)  # the two machines' batch sizes
DIST_NOISE = 1e-6  # float64: gaps below this are rounding, above it a different computation
DIST_DEADLINE_S = 90.0  # for the whole spawn; a normal run takes a few seconds


def _bn_model(features: int, hidden: int, classes: int) -> object:
    """Linear -> BatchNorm1d (momentum 1, so that after a training forward the running
    averages hold the statistics that batch was normalised with) -> ReLU -> Linear, float64.

    Runs in the worker processes too (its source is sent to them), hence the imports here."""
    import torch
    from torch import nn

    return nn.Sequential(
        nn.Linear(features, hidden),
        nn.BatchNorm1d(hidden, momentum=1.0),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    ).to(torch.float64)


def _dist_worker(rank: str, world: str, folder: str) -> None:
    """One machine of the distributed claim, run in a fresh interpreter (``python -c`` with
    this function's source: no import of the lab, and nothing of the parent's state).

    Reads ``job.pt`` from ``folder``, joins the ``gloo`` group (``file://`` rendezvous), and
    for each batch and each mode (``plain``: its own BatchNorm statistics; ``sync``:
    ``mldl.norm.convert_sync``) runs two training forward/backward passes on its rows: the
    data-parallel one (its mean loss; gradients all-reduced, then divided by the number of
    machines as DDP does) and the count-weighted one (its summed loss over the global number
    of samples; gradients all-reduced). Saves ``rank<r>.pt``, or ``rank<r>.error`` with the
    traceback."""
    import os
    import traceback
    from datetime import timedelta
    from pathlib import Path

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    out = Path(folder)
    r, w = int(rank), int(world)
    try:
        torch.set_num_threads(1)
        from mldl.norm import convert_sync

        job = torch.load(out / "job.pt")
        dist.init_process_group(
            "gloo",
            init_method=f"file://{out / 'rendezvous'}",
            rank=r,
            world_size=w,
            timeout=timedelta(seconds=job["timeout"]),
        )
        rows = slice(job["starts"][r], job["starts"][r] + job["sizes"][r])
        n_global = float(sum(job["sizes"]))
        results = []
        for x_all, y_all in zip(job["x"], job["y"], strict=True):
            x, y = x_all[rows], y_all[rows]
            per_mode = {}
            for mode in ("plain", "sync"):
                model = _bn_model(*job["shape"])  # its source is sent along with this one
                model.load_state_dict(job["state"])
                if mode == "sync":
                    model = convert_sync(model)
                model.train()
                params = list(model.parameters())
                bn_out = model[1](model[0](x))  # the forward pass, its normalised features kept
                # data-parallel: each machine's mean loss, gradients averaged over machines
                per_sample = F.cross_entropy(model[3](model[2](bn_out)), y, reduction="none")
                per_sample.retain_grad()
                per_sample.mean().backward()
                own = torch.cat([p.grad.flatten() for p in params])
                ddp = own.clone()
                dist.all_reduce(ddp)
                ddp /= w
                weights = per_sample.grad / w  # each sample's weight in the averaged objective
                bn = model[1]
                n_used = n_global if mode == "sync" else float(len(x))
                mean = bn.running_mean.clone()
                var = bn.running_var.clone() * (n_used - 1) / n_used  # the biased variance used
                # count-weighted: sum of the losses over the global number of samples
                for p in params:
                    p.grad = None
                (F.cross_entropy(model(x), y, reduction="sum") / n_global).backward()
                counted = torch.cat([p.grad.flatten() for p in params])
                dist.all_reduce(counted)
                per_mode[mode] = {
                    "mean": mean,
                    "var": var,
                    "bn_out": bn_out.detach(),
                    "loss": per_sample.detach().mean(),
                    "own_grad": own,
                    "ddp_grad": ddp,
                    "counted_grad": counted,
                    "weights": weights.detach(),
                }
            results.append(per_mode)
        dist.barrier()
        dist.destroy_process_group()
        torch.save(results, out / f"rank{r}.pt.part")
        os.replace(out / f"rank{r}.pt.part", out / f"rank{r}.pt")
    except BaseException:
        (out / f"rank{r}.error").write_text(traceback.format_exc())
        raise SystemExit(1) from None


def _spawn(job: dict, world: int) -> list[list[dict]]:
    """Run ``world`` worker processes on ``job``; their results, rank by rank. Every process
    is joined by the deadline; past it, or once one has failed, the rest are killed (they
    would wait in a collective forever) and the workers' tracebacks are raised."""
    import mldl

    source = "\n\n".join(inspect.getsource(f) for f in (_bn_model, _dist_worker))
    # os._exit: what the worker has to say is in its files; skip the interpreter's teardown
    # (2 s here)
    code = (
        f"from __future__ import annotations\n\n{source}\n\n"
        "import os, sys\n"
        "try:\n"
        "    _dist_worker(*sys.argv[1:])\n"
        "except SystemExit as stop:\n"
        "    os._exit(stop.code)\n"
        "os._exit(0)\n"
    )
    package_root = str(Path(mldl.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory(prefix="mldl-norm-dist-") as tmp:
        folder = Path(tmp)
        torch.save(job, folder / "job.pt")
        procs: list[subprocess.Popen] = []
        try:
            for rank in range(world):
                with open(folder / f"rank{rank}.log", "wb") as log:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-c", code, str(rank), str(world), tmp],
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            env=env,
                        )
                    )
            end = time.monotonic() + DIST_DEADLINE_S
            while any(p.poll() is None for p in procs):
                if any(p.poll() not in (None, 0) for p in procs):
                    time.sleep(1.0)  # a moment for the others to see the broken connection
                    break
                if time.monotonic() > end:
                    break
                time.sleep(0.02)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
        problems = []
        for rank, p in enumerate(procs):
            if p.returncode == 0 and (folder / f"rank{rank}.pt").exists():
                continue
            err = folder / f"rank{rank}.error"
            log = (folder / f"rank{rank}.log").read_text(errors="replace")[-2000:]
            text = err.read_text() if err.exists() else f"exit code {p.returncode}\n{log}"
            problems.append(f"--- rank {rank}:\n{text}")
        if len(procs) < world:
            problems.append(f"only {len(procs)} of {world} processes started")
        if problems:
            raise RuntimeError(
                f"distributed workers failed (deadline {DIST_DEADLINE_S:.0f} s):\n"
                + "\n".join(problems)
            )
        return [torch.load(folder / f"rank{rank}.pt") for rank in range(world)]


def _flat_grad(loss: Tensor, params: list[Tensor]) -> Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    return torch.cat([t.flatten() for t in grads])


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _decide_distributed(n: dict) -> tuple[str, str]:
    plain, sync = n["plain"], n["sync"]
    sizes = n["batch_sizes"]
    # (a) each machine's own computation differs from the concatenated batch's
    keys_a = ("stat_mean_gap", "stat_var_gap", "loss_gap", "own_gradient_relative_gap")
    differ = all(min(plain[k][r]) > DIST_NOISE for k in keys_a for r in range(len(sizes)))
    # (b) synchronised statistics remove the gap
    keys_b = ("stat_mean_gap", "stat_var_gap", "bn_output_gap", "loss_gap")
    match = all(max(sync[k][r]) <= DIST_NOISE for k in keys_b for r in range(len(sizes)))
    match = match and max(sync["ddp_gradient_vs_same_objective"]) <= DIST_NOISE

    def per_rank(block: dict, key: str) -> str:
        return " / ".join(f"{max(block[key][r]):.1e}" for r in range(len(sizes)))

    w = n["effective_sample_weight"]
    reason = (
        f"batch sizes {sizes} over {n['batches']} batches, gaps to the single-process "
        f"computation on the concatenated batch (machine {' / '.join(map(str, range(len(sizes))))}"
        f", largest over batches): plain BatchNorm: mean {per_rank(plain, 'stat_mean_gap')}, "
        f"variance {per_rank(plain, 'stat_var_gap')}, loss {per_rank(plain, 'loss_gap')}, "
        f"gradient (relative) {per_rank(plain, 'own_gradient_relative_gap')}; convert_sync: "
        f"mean {per_rank(sync, 'stat_mean_gap')}, variance {per_rank(sync, 'stat_var_gap')}, "
        f"normalised output {per_rank(sync, 'bn_output_gap')}, loss {per_rank(sync, 'loss_gap')}"
        f", averaged gradient {max(sync['ddp_gradient_vs_same_objective']):.1e} (threshold "
        f"{DIST_NOISE:g}); with synchronised statistics, DDP's average of per-machine mean "
        f"losses still weighs each sample {' vs '.join(f'{v:.4f}' for v in w['ddp_average'])} "
        f"instead of {w['concatenated']:.4f}: its gradient is "
        f"{max(sync['ddp_gradient_vs_concatenated']):.1%} (relative) from the concatenated "
        f"batch's, and weighting each machine's loss by its share of the samples brings that to "
        f"{max(sync['counted_gradient_vs_concatenated']):.1e}"
    )
    if not differ:
        return verdict(False, reason + " — some plain-BatchNorm gap is within rounding")
    if not match:
        return verdict(
            False,
            reason + " — the machines' objectives differ, but synchronised statistics did not "
            "remove the gap, so the difference cannot be put on the statistics",
            inconclusive=True,
        )
    return verdict(
        True,
        reason + " — with plain BatchNorm each machine optimises its own objective; "
        "synchronised statistics make it the concatenated batch's",
    )


@claim(
    id="norm.distributed_batch_sizes",
    section=SECTION_DIST,
    statement='Batch normalization in distributed training: "If two different machines use '
    "different batch sizes, they will indirectly be optimizing different loss functions ... "
    "This is why the authors stressed that the batch size for each worker must be kept "
    'constant across all machines."',
    method="Two processes (torch.distributed, gloo, on this machine) hold 4 and 28 samples of "
    "one batch of 32 (6 features, 3 classes) and the same network, Linear(6, 8) -> "
    "BatchNorm1d(8) -> ReLU -> Linear(8, 3) in float64, in training mode. Each runs a "
    "forward and backward pass (a) with plain BatchNorm, (b) with the BatchNorm made "
    "synchronised by mldl.norm.convert_sync. Compared with one process computing on the "
    "concatenated 32 samples: the statistics each machine normalises with (mean, biased "
    "variance), the normalised features and the loss of its rows, its gradient of its mean "
    "loss (plain) and the data-parallel gradient (all-reduced, divided by 2 as DDP does) "
    "against the gradient of the same objective. (c) The effective weight of each sample in "
    "DDP's average of the machines' mean losses (the gradient of that objective with respect "
    "to each sample's loss), and its gradient against the concatenated batch's mean loss, "
    "with and without weighting each machine's loss by its share of the samples. Repeated "
    "over 3 random batches.",
    criterion="Supported if (a) for both machines and every batch, the plain BatchNorm's "
    "mean, variance, loss and relative gradient gaps all exceed 1e-6 (far above float64 "
    "rounding: each machine computes a different objective) and (b) with convert_sync the "
    "statistics, normalised features, loss and averaged-gradient gaps are all at most 1e-6. "
    "Not supported if (a) fails; inconclusive if (a) holds but (b) fails. (c) is reported, "
    "not judged.",
    decide=_decide_distributed,
)
def distributed_batch_sizes(ctx: Context) -> Evidence:
    features, hidden, classes = 6, 8, 3
    sizes, batches = DIST_SIZES, ctx.pick(1, 3, 10)
    n = sum(sizes)
    g = ctx.generator(3300)
    model = _bn_model(features, hidden, classes)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(1 + 0.2 * noise if name == "1.weight" else 0.5 * noise)
    x = torch.randn(batches, n, features, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (batches, n), generator=g)
    starts = [sum(sizes[:r]) for r in range(len(sizes))]
    job = {
        "shape": (features, hidden, classes),
        "state": model.state_dict(),
        "x": x,
        "y": y,
        "sizes": list(sizes),
        "starts": starts,
        "timeout": 60,
    }
    workers = _spawn(job, len(sizes))

    # the single process on the concatenated batch, compared with each machine
    per_rank = ("stat_mean_gap", "stat_var_gap", "bn_output_gap", "loss_gap")
    shared = (
        "ddp_gradient_vs_same_objective",
        "ddp_gradient_vs_concatenated",
        "counted_gradient_vs_concatenated",
    )
    gaps = {
        mode: {
            **{k: [[] for _ in sizes] for k in per_rank},
            # With synchronised statistics a machine's own gradient also carries the other
            # machine's loss (through the shared statistics): only their sum is comparable.
            **({"own_gradient_relative_gap": [[] for _ in sizes]} if mode == "plain" else {}),
            **{k: [] for k in shared},
        }
        for mode in ("plain", "sync")
    }
    rows = [slice(s, s + size) for s, size in zip(starts, sizes, strict=True)]
    for b in range(batches):
        ref_model = _bn_model(features, hidden, classes)
        ref_model.load_state_dict(job["state"])
        ref_model.train()
        bn_out = ref_model[1](ref_model[0](x[b]))
        per_sample = F.cross_entropy(ref_model[3](ref_model[2](bn_out)), y[b], reduction="none")
        losses_ref, bn_ref = per_sample.detach(), bn_out.detach()
        bn = ref_model[1]
        ref_mean, ref_var = bn.running_mean.clone(), bn.running_var.clone() * (n - 1) / n
        ref_params = list(ref_model.parameters())
        own_ref = [_flat_grad(per_sample[r].mean(), ref_params) for r in rows]
        ddp_ref = sum(own_ref) / len(sizes)
        full_ref = _flat_grad(per_sample.mean(), ref_params)
        for mode, block in gaps.items():
            for rank, r in enumerate(rows):
                got = workers[rank][b][mode]
                block["stat_mean_gap"][rank].append(float((got["mean"] - ref_mean).abs().max()))
                block["stat_var_gap"][rank].append(float((got["var"] - ref_var).abs().max()))
                block["bn_output_gap"][rank].append(float((got["bn_out"] - bn_ref[r]).abs().max()))
                block["loss_gap"][rank].append(float((got["loss"] - losses_ref[r].mean()).abs()))
                if mode == "plain":
                    block["own_gradient_relative_gap"][rank].append(
                        _relative(got["own_grad"], own_ref[rank])
                    )
            ddp = workers[0][b][mode]["ddp_grad"]  # every rank holds the same all-reduced one
            block["ddp_gradient_vs_same_objective"].append(_relative(ddp, ddp_ref))
            block["ddp_gradient_vs_concatenated"].append(_relative(ddp, full_ref))
            block["counted_gradient_vs_concatenated"].append(
                _relative(workers[0][b][mode]["counted_grad"], full_ref)
            )
    weights = {
        "ddp_average": [float(workers[r][0]["sync"]["weights"].mean()) for r in range(len(sizes))],
        "ddp_average_spread": max(
            float(workers[r][0]["sync"]["weights"].max() - workers[r][0]["sync"]["weights"].min())
            for r in range(len(sizes))
        ),
        "concatenated": 1.0 / n,
    }
    fig = _distributed_figure(gaps, sizes, weights)
    return Evidence(
        numbers={
            "batch_sizes": list(sizes),
            "batches": batches,
            "noise_threshold": DIST_NOISE,
            "plain": gaps["plain"],
            "sync": gaps["sync"],
            "effective_sample_weight": weights,
        },
        figures=[fig],
    )


def _distributed_figure(gaps: dict, sizes: tuple[int, ...], weights: dict) -> Figure:
    from matplotlib.patches import Patch

    fig, (ax1, ax2) = figure(ncols=2, width=5.0)
    labels = ["mean", "variance", "normalised\noutput", "loss", "averaged\ngradient"]
    keys = ("stat_mean_gap", "stat_var_gap", "bn_output_gap", "loss_gap")
    floor = 1e-18  # exact zeros drawn here, on the log scale
    bars = []
    for mode in ("plain", "sync"):
        for rank, size in enumerate(sizes):
            values = [max(max(gaps[mode][k][rank]), floor) for k in keys]
            values.append(max(max(gaps[mode]["ddp_gradient_vs_same_objective"]), floor))
            bars.append((f"{mode}, machine {rank} (batch {size})", values))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(labels))]
        ax1.bar(
            xs, values, width, label=label, color=PALETTE[i], alpha=1.0 if "plain" in label else 0.6
        )
    ax1.axhline(DIST_NOISE, color="k", ls=":", lw=1, label=f"threshold {DIST_NOISE:g}")
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(labels)), labels)
    ax1.set(ylabel="largest gap to the concatenated batch", title="Plain vs synchronised BN")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    n = sum(sizes)
    sample = list(range(n))
    per_sample = []
    for rank, size in enumerate(sizes):
        per_sample += [weights["ddp_average"][rank]] * size
    colours = [PALETTE[rank] for rank, size in enumerate(sizes) for _ in range(size)]
    ax2.bar(sample, per_sample, color=colours, width=0.8)
    ax2.axhline(
        weights["concatenated"], color="k", ls="--", lw=1, label=f"concatenated batch: 1/{n}"
    )
    handles = [
        Patch(color=PALETTE[rank], label=f"machine {rank}: 1/(2·{size})")
        for rank, size in enumerate(sizes)
    ]
    ax2.set(
        xlabel="sample",
        ylabel="weight in the averaged objective",
        title="DDP averaging weighs samples unequally",
    )
    ax2.legend(handles=[*handles, *ax2.get_legend_handles_labels()[0]])
    return Figure(
        fig,
        "Left: how far each machine's BatchNorm statistics, normalised features, loss, and the "
        "data-parallel gradient are from one process computing on the concatenated batch "
        "(largest over batches; log scale, exact zeros drawn at 1e-18; the averaged gradient is "
        "one all-reduced vector, the same on both machines): plain BatchNorm "
        "differs, synchronised BatchNorm matches to rounding. Right: the weight each sample "
        "has in the average of the two machines' mean losses (what DDP optimises), against "
        "the concatenated batch's 1/32: synchronising the statistics does not change it.",
    )
