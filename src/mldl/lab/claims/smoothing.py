"""Claims of the notes' label-smoothing section: overconfidence, the three snippets, noise.

The training claims share one recipe (:func:`_recipe`) and one trainer (:func:`_train_stack`):
several copies of the lab's MLP, one per (seed, setting), are trained together as a *stack*
whose layers are batched matrix products, so that the Python overhead of a training step is
paid once for all of them. Every member of a seed starts from the same weights and sees the
same mini-batches; only its loss differs (a paired comparison). The models trained with each
ε are kept in a small cache, so that ``calibration.temperature_scaling`` reuses the ε = 0
models of ``smoothing.overconfidence`` instead of training them again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import losses
from ...calibration import calibration_error, plot_reliability, reliability_diagram
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure
from ..stats import mean as _mean
from ..stats import t_halfwidth

SECTION = "Label smoothing"
EPSILONS = (0.0, 0.05, 0.1, 0.2)
ECE_BINS = 15


# ------------------------------------------------------------------------- shared training


@dataclass(frozen=True)
class Recipe:
    """How the training claims train: a depth-2 ReLU MLP of width ``hidden`` on the first
    ``train_examples`` of the digits' (random) training split, Adam, ``epochs`` epochs."""

    hidden: int
    epochs: int
    train_examples: int
    seeds: int
    batch_size: int = 64
    lr: float = 1e-3


def _recipe(ctx: Context) -> Recipe:
    # 200 training examples (20 per class on average), the lab's usual width of 64, and
    # 300 epochs, far past 100% training accuracy: the regime in which an unsmoothed network
    # becomes overconfident. Chosen on the ε = 0 model's validation split alone (confidence
    # - accuracy about +3 points, ECE about 0.04), and cheap enough for the quick profile.
    return ctx.pick(
        Recipe(hidden=32, epochs=20, train_examples=200, seeds=2),
        Recipe(hidden=64, epochs=300, train_examples=200, seeds=3),
        Recipe(hidden=64, epochs=300, train_examples=200, seeds=10),
    )


class _Stack(nn.Module):
    """``M`` independent copies of the lab's ``mlp`` (ReLU hidden layers), each layer one
    batched matrix product: member ``m`` computes ``relu(x W_1[m] + b_1[m]) ...``."""

    def __init__(self, layers: list[tuple[Tensor, Tensor]]) -> None:
        super().__init__()
        self.weights = nn.ParameterList([nn.Parameter(w) for w, _ in layers])
        self.biases = nn.ParameterList([nn.Parameter(b) for _, b in layers])

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: Tensor) -> Tensor:
        """(M, B, in) inputs, one batch per member, or (B, in) shared -> (M, B, out)."""
        h = x if x.dim() == 3 else x.expand(self.members, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h


def _stack(ctx: Context, sizes: list[int], seeds: int, per_seed: int, stream: int) -> _Stack:
    """Initial weights as ``nn.Linear`` draws them (uniform in ±1/√fan_in), one draw per seed
    (from ``ctx.generator(stream + seed)``) shared by that seed's ``per_seed`` members."""
    layers = []
    gens = [ctx.generator(stream + r) for r in range(seeds)]
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1 / math.sqrt(fan_in)
        ws, bs = [], []
        for g in gens:
            w = (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound
            b = (torch.rand(1, fan_out, generator=g) * 2 - 1) * bound
            ws += [w] * per_seed
            bs += [b] * per_seed
        layers.append((torch.stack(ws).to(ctx.device), torch.stack(bs).to(ctx.device)))
    return _Stack(layers)


Loss = Callable[[Tensor, Tensor], Tensor]


def _train_stack(
    ctx: Context,
    x: Tensor,
    labels: Tensor,
    per_seed: int,
    loss_fn: Loss,
    recipe: Recipe,
    *,
    stream: int,
    out_features: int = 10,
    every: int = 0,
    x_eval: Tensor | None = None,
    y_eval: Tensor | None = None,
    desc: str = "epochs",
) -> tuple[_Stack, list[int], list[list[float]]]:
    """Train ``seeds x per_seed`` members; ``labels`` is (seeds, N), one labelling per seed.

    As ``lab.train.fit``: Adam (fused) on shuffled mini-batches, one order per seed drawn from
    ``ctx.generator(stream + 100 + seed)``, shared by the seed's members. ``loss_fn(logits
    (M, B, K), labels (M, B))`` returns the sum of the members' mean losses (each member's
    gradient is then its own). Every ``every`` epochs the members' accuracy on
    ``(x_eval, y_eval)`` is recorded; returns the stack, those epochs and accuracies."""
    seeds, n = labels.shape
    model = _stack(
        ctx, [x.shape[1], recipe.hidden, recipe.hidden, out_features], seeds, per_seed, stream
    )
    x, labels = x.to(ctx.device), labels.to(ctx.device)
    gens = [ctx.generator(stream + 100 + r) for r in range(seeds)]
    # The fused kernel: the same update in one pass over the parameters (3x faster here).
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=True)
    epochs_seen: list[int] = []
    curve: list[list[float]] = []
    for epoch in ctx.steps(range(recipe.epochs), desc, total=recipe.epochs):
        model.train()
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(ctx.device)
        for start in range(0, n, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]  # (seeds, B)
            yb = labels.gather(1, idx).repeat_interleave(per_seed, 0)
            xb = x[idx].repeat_interleave(per_seed, 0)
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        if every and (epoch + 1) % every == 0 and x_eval is not None and y_eval is not None:
            z = _logits(model, x_eval, ctx)
            epochs_seen.append(epoch + 1)
            curve.append((z.argmax(2) == y_eval).double().mean(1).tolist())
    return model, epochs_seen, curve


@torch.no_grad()
def _logits(model: _Stack, x: Tensor, ctx: Context) -> Tensor:
    """(M, N, K) logits on the CPU, in eval mode."""
    model.eval()
    return model(x.to(ctx.device)).cpu()


def _smoothed_ce(eps: Tensor) -> Loss:
    """Sum over members of ``cross_entropy(z_m, y_m, label_smoothing=eps[m])`` (uniform
    convention). The loss is affine in ε, (1-ε)·CE(ε=0) + ε·CE(ε=1), so all members take two
    calls of ``mldl.losses.cross_entropy`` on the flattened stack."""

    def loss(z: Tensor, y: Tensor) -> Tensor:
        m, b, k = z.shape
        flat, target = z.reshape(m * b, k), y.reshape(m * b)
        hard = losses.cross_entropy(flat, target, reduction="none").view(m, b).mean(1)
        uniform = losses.cross_entropy(flat, target, label_smoothing=1.0, reduction="none")
        e = eps.to(z.device, z.dtype)
        return ((1 - e) * hard + e * uniform.view(m, b).mean(1)).sum()

    return loss


def _metrics(logits: Tensor, y: Tensor) -> dict[str, float]:
    """Accuracy, mean confidence (max probability), ECE (15 equal-width bins) and NLL."""
    probs = logits.softmax(1)
    return {
        "accuracy": float((logits.argmax(1) == y).double().mean()),
        "confidence": float(probs.max(1).values.double().mean()),
        "ece": float(calibration_error(probs, y, n_bins=ECE_BINS)),
        "nll": float(losses.cross_entropy(logits, y)),
    }


_CACHE: dict[tuple, dict[str, Any]] = {}


def trained_with_smoothing(ctx: Context) -> dict[str, Any]:
    """The overconfidence experiment's models, trained once per (seed, profile, device):
    ``val_logits`` / ``test_logits`` of shape (seeds, len(EPSILONS), N, 10), the labels, the
    recipe. ``calibration.temperature_scaling`` uses the ε = 0 members."""
    key = (ctx.seed, ctx.profile, str(ctx.device))
    if key in _CACHE:
        return _CACHE[key]
    from ..data import digits

    split, recipe = digits(ctx.seed), _recipe(ctx)
    x = split.x_train[: recipe.train_examples]
    labels = split.y_train[: recipe.train_examples].expand(recipe.seeds, -1)
    eps = torch.tensor(EPSILONS, dtype=torch.float64).repeat(recipe.seeds)
    model, _, _ = _train_stack(
        ctx,
        x,
        labels,
        len(EPSILONS),
        _smoothed_ce(eps),
        recipe,
        stream=1000,
        desc="label smoothing: epochs",
    )
    shape = (recipe.seeds, len(EPSILONS))
    val, test = _logits(model, split.x_val, ctx), _logits(model, split.x_test, ctx)
    _CACHE[key] = {
        "recipe": recipe,
        "val_logits": val.view(*shape, *val.shape[1:]),
        "test_logits": test.view(*shape, *test.shape[1:]),
        "y_val": split.y_val,
        "y_test": split.y_test,
    }
    return _CACHE[key]


# ------------------------------------------------------------------- overconfidence


def _decide_overconfidence(n: dict) -> tuple[str, str]:
    eps, seeds = n["epsilons"], n["seeds"]
    acc = [_mean(v) for v in n["test_accuracy"]]
    conf = [_mean(v) for v in n["mean_confidence"]]
    ece = [_mean(v) for v in n["ece"]]
    decreasing = all(b < a for a, b in itertools.pairwise(conf))
    comparisons = len(eps) - 1
    level = 1 - 0.05 / comparisons  # Bonferroni over the ε > 0 compared with ε = 0
    better, shown = [], []
    for i in range(1, len(eps)):
        diffs = [a - b for a, b in zip(n["ece"][0], n["ece"][i], strict=True)]
        drop, half = _mean(diffs), t_halfwidth(diffs, level)
        acc_ok = acc[0] - acc[i] <= 0.01
        if drop - half > 0 and acc_ok:
            better.append(eps[i])
        shown.append(f"ε={eps[i]:g}: {ece[i]:.3f} (drop {drop:+.3f} ± {half:.3f})")
    gaps = ", ".join(f"{c - a:+.3f}" for a, c in zip(acc, conf, strict=True))
    arrow = " → ".join
    reason = (
        f"over {seeds} seeds, mean confidence {arrow(f'{c:.3f}' for c in conf)} for "
        f"ε = {', '.join(f'{e:g}' for e in eps)} "
        f"({'decreasing' if decreasing else 'not decreasing'}); ECE {ece[0]:.3f} at ε=0 vs "
        f"{'; '.join(shown)} ({level:.1%} t-intervals, Bonferroni over {comparisons}); "
        f"test accuracy {arrow(f'{a:.3f}' for a in acc)}; NLL "
        f"{arrow(f'{_mean(v):.3f}' for v in n['nll'])}; confidence - accuracy {gaps}"
    )
    if decreasing and better:
        return verdict(True, reason + f" — calibration improves at ε = {better}")
    if not decreasing or all(e >= ece[0] for e in ece[1:]):
        why = (
            "confidence does not fall with ε"
            if not decreasing
            else "confidence falls, but past the accuracy: ECE at every ε > 0 is higher than "
            "at ε = 0 (overconfidence is traded for underconfidence)"
        )
        return verdict(False, reason + f" — {why}")
    return verdict(
        False,
        reason + " — some ε lowers the mean ECE, not beyond the seeds' spread "
        "(or only with an accuracy loss above 1 point)",
        inconclusive=True,
    )


@claim(
    id="smoothing.overconfidence",
    section=SECTION,
    statement='Label smoothing "is also a kind of regularization" and "tackles not only the '
    'problem of overfitting but also overconfidence": a network trained on smoothed targets '
    "is less overconfident (better calibrated) without losing accuracy.",
    method="Train the lab's MLP (2 hidden ReLU layers of 64) with Adam (lr 1e-3, batches of "
    "64) on 200 digits (the first 200 of the seeded training split, 20 per class on average) "
    "for 300 epochs, far past 100% training accuracy: the small-data, long-training regime "
    "in which an unsmoothed network becomes overconfident (settings chosen on the ε = 0 "
    "model's validation confidence - accuracy gap alone, about +3 points). Train it with "
    "cross_entropy(label_smoothing=ε), uniform convention, for ε in {0, 0.05, 0.1, 0.2}; each "
    "seed gives one initialisation and one mini-batch order shared by all ε (paired). On the "
    "449 test digits measure accuracy, mean confidence (max softmax probability), ECE (15 "
    "equal-width bins) and NLL.",
    criterion="Supported if the mean confidence falls strictly as ε grows and, for some ε > 0, "
    "the seed-paired drop in ECE from ε = 0 has its t-interval above 0 (two-sided 95%, "
    "Bonferroni-corrected over the ε > 0 tried) while mean accuracy is at most 1 point below "
    "ε = 0's. Not supported if confidence does not fall, or if the mean ECE at every ε > 0 is "
    "at least that at ε = 0. Inconclusive otherwise.",
    decide=_decide_overconfidence,
)
def overconfidence(ctx: Context) -> Evidence:
    runs = trained_with_smoothing(ctx)
    recipe, y = runs["recipe"], runs["y_test"]
    per = [
        [_metrics(runs["test_logits"][r, i], y) for r in range(recipe.seeds)]
        for i in range(len(EPSILONS))
    ]
    table = {k: [[m[k] for m in row] for row in per] for k in per[0][0]}

    def mean_sd(values: list[float]) -> tuple[float, float]:
        mu = _mean(values)
        sd = math.sqrt(sum((v - mu) ** 2 for v in values) / max(len(values) - 1, 1))
        return mu, sd

    fig1, axes = figure(ncols=len(EPSILONS), width=3.3, height=3.5)
    for i, (e, ax) in enumerate(zip(EPSILONS, axes, strict=True)):
        probs = runs["test_logits"][:, i].softmax(-1).reshape(-1, 10)
        diagram = reliability_diagram(probs, y.repeat(recipe.seeds), n_bins=ECE_BINS)
        acc, conf, ece = (_mean(table[k][i]) for k in ("accuracy", "confidence", "ece"))
        plot_reliability(
            diagram, ax, title=f"ε = {e:g}\nacc {acc:.3f} · conf {conf:.3f} · ECE {ece:.3f}"
        )
        if i:
            ax.get_legend().remove()
            ax.set_ylabel("")
    fig2, (ax1, ax2, ax3) = figure(ncols=3, width=3.6, height=3.2)
    for ax, key, label, colour in (
        (ax1, "accuracy", "test accuracy", PALETTE[0]),
        (ax1, "confidence", "mean confidence", PALETTE[1]),
        (ax2, "ece", "ECE (15 bins)", PALETTE[2]),
        (ax3, "nll", "test NLL", PALETTE[3]),
    ):
        stats = [mean_sd(v) for v in table[key]]
        ax.errorbar(
            EPSILONS,
            [s[0] for s in stats],
            yerr=[s[1] for s in stats],
            fmt="o-",
            capsize=3,
            color=colour,
            label=label,
        )
        ax.set(xlabel="label smoothing ε", xticks=list(EPSILONS), ylabel=label)
    ax1.set(ylabel="accuracy / confidence", title="Confidence vs accuracy")
    ax1.legend()
    ax2.set(title="Expected calibration error")
    ax3.set(title="Negative log-likelihood")
    rows = [
        {
            "ε": e,
            **{
                k: f"{mean_sd(table[k][i])[0]:.4f} ± {mean_sd(table[k][i])[1]:.4f}"
                for k in ("accuracy", "confidence", "ece", "nll")
            },
        }
        for i, e in enumerate(EPSILONS)
    ]
    return Evidence(
        numbers={
            "epsilons": list(EPSILONS),
            "seeds": recipe.seeds,
            "train_examples": recipe.train_examples,
            "epochs": recipe.epochs,
            "hidden": recipe.hidden,
            "test_examples": len(y),
            "test_accuracy": table["accuracy"],
            "mean_confidence": table["confidence"],
            "ece": table["ece"],
            "nll": table["nll"],
        },
        figures=[
            Figure(
                fig1,
                f"Reliability diagrams on the test digits, one per ε (predictions of the "
                f"{recipe.seeds} seeds pooled; the numbers in each panel are means over "
                "seeds). Bars above the diagonal are underconfident bins, below it "
                "overconfident ones.",
            ),
            Figure(
                fig2,
                "Accuracy, mean confidence, ECE and NLL against the smoothing ε (mean ± sd "
                "over seeds).",
            ),
        ],
        table=rows,
    )


# --------------------------------------------------------------------- three snippets


def _snippet_pytorch_7455(log_probs: Tensor, target: Tensor, eps: float, k: int) -> Tensor:
    """The notes' first snippet (pytorch #7455) after its ``log_softmax`` line."""
    true_dist = torch.zeros_like(log_probs)
    true_dist.fill_(eps / (k - 1))
    true_dist.scatter_(1, target.unsqueeze(1), 1.0 - eps)
    return torch.mean(torch.sum(-true_dist * log_probs, dim=-1))


def _snippet_medium(log_preds: Tensor, target: Tensor, eps: float) -> Tensor:
    """The notes' second snippet (LabelSmoothingCrossEntropy) after its ``log_softmax``."""
    n = log_preds.size()[-1]
    loss = (-log_preds.sum(dim=-1)).mean()
    nll = F.nll_loss(log_preds, target)
    return eps * (loss / n) + (1 - eps) * nll


def _snippet_opennmt(output: Tensor, target: Tensor, eps: float, k: int, pad: int) -> Tensor:
    """The notes' third snippet (OpenNMT-py), ``output`` being log-probabilities."""
    one_hot = torch.full((k,), eps / (k - 2), dtype=output.dtype)
    one_hot[pad] = 0
    model_prob = one_hot.unsqueeze(0).repeat(target.size(0), 1)
    model_prob.scatter_(1, target.unsqueeze(1), 1.0 - eps)
    model_prob.masked_fill_((target == pad).unsqueeze(1), 0)
    return F.kl_div(output, model_prob, reduction="sum")


def _implied_target(
    loss_of_log_probs: Callable[[Tensor], Tensor], log_probs: Tensor, scale: float
) -> Tensor:
    """The target distribution a loss trains toward: every snippet is linear in the
    log-probabilities, -Σ_c q_c log p_c per row, so q = -scale · ∂loss/∂log p (scale = N for
    a mean over rows, 1 for a sum)."""
    lp = log_probs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of_log_probs(lp), lp)
    return -scale * grad


def _decide_three_snippets(n: dict) -> tuple[str, str]:
    pairs = n["pairwise_max_abs_difference"]
    formula = n["max_abs_gap_vs_formula"]
    snippet = n["max_abs_gap_vs_snippet"]
    sums = n["max_abs_row_sum_error"]
    padded = n["opennmt_padded_row_sum"]
    v = n["variants"]
    differ = all(d > 1e-4 for d in pairs.values())
    match = all(g < 1e-12 for g in (*formula.values(), *snippet.values(), *sums.values()))
    reason = (
        "on-target / off-target / pad-column mass: "
        + "; ".join(
            f"{name} {x['on_target']:.4f} / {x['off_target']:.5f} / {x['pad_column']:.5f}"
            for name, x in v.items()
        )
        + f" (K={n['num_classes']}, ε={n['epsilon']}); pairwise max differences "
        + ", ".join(f"{k} {d:.5f}" for k, d in pairs.items())
        + f" (want > 1e-4); gaps to the formulas {max(formula.values()):.1e}, to the "
        f"snippets' implied targets {max(snippet.values()):.1e}, row sums off by "
        f"{max(sums.values()):.1e} (want < 1e-12); OpenNMT's padded row sums to {padded:g}"
    )
    trained = n.get("trained")
    if trained:
        reason += "; trained models' mean target probability " + ", ".join(
            f"{k} {t['train_target_probability']:.3f}" for k, t in trained.items()
        )
    return verdict(differ and match and padded == 0.0, reason)


@claim(
    id="smoothing.three_snippets",
    section=SECTION,
    statement='The notes give one formula, "y_ls = (1 - α) * y_hot + α / K", followed by three '
    "snippets (pytorch #7455's LabelSmoothingLoss, LabelSmoothingCrossEntropy, OpenNMT-py's "
    "LabelSmoothingLoss) that build three different target distributions: α/K, α/(K-1) and "
    "α/(K-2) off-target, the last with nothing on a padding class.",
    method="For K = 10, ε = 0.1 and padding class 0, build each target with "
    "mldl.losses.smooth_labels (variants 'others', 'uniform', 'opennmt') for targets 0..9 "
    "(row 0 is the padded row for OpenNMT) in float64; compare with each snippet's formula "
    "written out, and with the target each snippet's loss actually trains toward (the notes' "
    "code run as written, q = -∂loss/∂log p); measure on-target, off-target and pad-column "
    "masses, row sums, and the pairwise differences. Then train the lab's MLP with each (10 "
    "digits + an 11th padding output that is never a target; 'uniform' and 'others' through "
    "cross_entropy, 'opennmt' through kl_div with reduction 'batchmean') and measure the "
    "mean probability of the target and of the padding class on the training set.",
    criterion="Supported if the three distributions differ pairwise by more than 1e-4 in some "
    "entry (the formulas predict at least 1.1e-3), each matches its snippet's formula and "
    "implied target to 1e-12, every non-padded row sums to 1 within 1e-12 and OpenNMT's "
    "padded row is all 0. (The trained models are reported, not judged.)",
    decide=_decide_three_snippets,
)
def three_snippets(ctx: Context) -> Evidence:
    k, eps, pad = 10, 0.1, 0
    target = torch.arange(k)
    real = target != pad  # rows with a real (non-padding) target
    built = {
        "uniform (notes' formula, snippet 2)": losses.smooth_labels(
            target, k, eps, "uniform", dtype=torch.float64
        ),
        "others (snippet 1, #7455)": losses.smooth_labels(
            target, k, eps, "others", dtype=torch.float64
        ),
        "opennmt (snippet 3)": losses.smooth_labels(
            target, k, eps, "opennmt", ignore_index=pad, dtype=torch.float64
        ),
    }
    names = list(built)
    one_hot = F.one_hot(target, k).double()
    not_pad = torch.ones(k, dtype=torch.float64)
    not_pad[pad] = 0
    formula = {
        names[0]: (1 - eps) * one_hot + eps / k,
        names[1]: (1 - eps) * one_hot + eps / (k - 1) * (1 - one_hot),
        names[2]: ((1 - eps) * one_hot + eps / (k - 2) * (1 - one_hot) * not_pad)
        * real.double().unsqueeze(1),
    }
    log_p = torch.log_softmax(torch.randn(k, k, generator=ctx.generator(7), dtype=torch.float64), 1)
    snippet = {
        names[0]: _implied_target(lambda lp: _snippet_medium(lp, target, eps), log_p, k),
        names[1]: _implied_target(lambda lp: _snippet_pytorch_7455(lp, target, eps, k), log_p, k),
        names[2]: _implied_target(lambda lp: _snippet_opennmt(lp, target, eps, k, pad), log_p, 1),
    }
    variants, gap_formula, gap_snippet, sum_error = {}, {}, {}, {}
    for name, q in built.items():
        rows = q[real]
        on = rows[one_hot[real].bool()]
        off_mask = (1 - one_hot[real]) * not_pad
        off = rows[off_mask.bool()]
        variants[name] = {
            "on_target": float(on.mean()),
            "off_target": float(off.mean()),
            "off_target_spread": float(off.max() - off.min()),
            "pad_column": float(rows[:, pad].mean()),
        }
        gap_formula[name] = float((q - formula[name]).abs().max())
        gap_snippet[name] = float((q - snippet[name]).abs().max())
        sum_error[name] = float((rows.sum(1) - 1).abs().max())
    pairs = {}
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = names[i].split()[0], names[j].split()[0]
            pairs[f"{a} vs {b}"] = float((built[names[i]] - built[names[j]])[real].abs().max())
    trained = _train_three(ctx, eps)

    fig1, (ax1, ax2) = figure(ncols=2, width=5.0, height=3.6)
    example = 3
    idx = torch.arange(k)
    for i, name in enumerate(names):
        q = built[name][example].numpy()
        for ax in (ax1, ax2):
            ax.bar(idx + (i - 1) * 0.27, q, width=0.27, color=PALETTE[i], label=name)
    ax1.set(
        xlabel="class",
        ylabel="target probability",
        xticks=list(range(k)),
        title=f"Targets for class {example} (K={k}, ε={eps})",
    )
    ax1.legend(loc="upper right")
    ax2.set(
        xlabel="class (pad = 0)",
        ylabel="target probability",
        xticks=list(range(k)),
        ylim=(0, 0.015),
        title=f"Zoom on the off-target mass (class {example} cut)",
    )
    for i, name in enumerate(names):
        off = variants[name]["off_target"]
        ax2.axhline(off, color=PALETTE[i], ls=":", lw=1)
    fig2, (ax,) = figure(width=6.4, height=3.4)
    labels = list(trained)
    pos = torch.arange(len(labels)).double()
    ax.bar(
        pos - 0.3,
        [trained[n]["train_target_probability"] for n in labels],
        width=0.2,
        color=PALETTE[0],
        label="model: mean p(target), training set",
    )
    ax.bar(
        pos - 0.1,
        [trained[n]["target_on_target"] for n in labels],
        width=0.2,
        color=PALETTE[0],
        alpha=0.4,
        hatch="//",
        label="smoothed target's on-target mass",
    )
    ax.bar(
        pos + 0.1,
        [10 * trained[n]["train_pad_probability"] for n in labels],
        width=0.2,
        color=PALETTE[1],
        label="model: mean p(pad) ×10",
    )
    ax.bar(
        pos + 0.3,
        [10 * trained[n]["target_pad"] for n in labels],
        width=0.2,
        color=PALETTE[1],
        alpha=0.4,
        hatch="//",
        label="target's pad mass ×10",
    )
    for i, name in enumerate(labels):
        if trained[name]["target_pad"] == 0:
            ax.annotate(
                "0",
                (float(pos[i]) + 0.2, 0.0),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
    ax.set(
        xticks=pos.tolist(),
        xticklabels=labels,
        ylabel="probability",
        ylim=(0, 1.25),
        title="Models trained with each snippet's target (11 outputs, pad = 10)",
    )
    ax.legend(loc="upper center", ncols=2)
    return Evidence(
        numbers={
            "num_classes": k,
            "epsilon": eps,
            "pad_index": pad,
            "variants": variants,
            "max_abs_gap_vs_formula": gap_formula,
            "max_abs_gap_vs_snippet": gap_snippet,
            "max_abs_row_sum_error": sum_error,
            "opennmt_padded_row_sum": float(built[names[2]][pad].sum()),
            "pairwise_max_abs_difference": pairs,
            "trained": trained,
        },
        figures=[
            Figure(
                fig1,
                "The target distribution each of the notes' snippets builds for one example "
                "(class 3): left whole, right the off-target classes zoomed. 'uniform' keeps "
                "ε/K on every class (and 1-ε+ε/K on the target), 'others' ε/(K-1) off-target, "
                "OpenNMT ε/(K-2) off-target and nothing on the padding class.",
            ),
            Figure(
                fig2,
                "Each model learns the target it is given: its mean probability of the "
                "correct class and of the padding class on the training set, next to the "
                "values its smoothed target prescribes.",
            ),
        ],
    )


def _train_three(ctx: Context, eps: float) -> dict[str, dict[str, float]]:
    """One model per snippet on the digits with an 11th (padding) output, trained together."""
    from ..data import digits

    split, recipe = digits(ctx.seed), _recipe(ctx)
    k, pad = 11, 10
    x = split.x_train[: recipe.train_examples]
    y = split.y_train[: recipe.train_examples]

    def loss(z: Tensor, t: Tensor) -> Tensor:
        uniform = losses.cross_entropy(z[0], t[0], label_smoothing=eps)
        others = losses.cross_entropy(z[1], t[1], label_smoothing=eps, smoothing="others")
        q = losses.smooth_labels(t[2], k, eps, "opennmt", ignore_index=pad, dtype=z.dtype)
        opennmt = losses.kl_div(torch.log_softmax(z[2], 1), q, reduction="batchmean")
        return uniform + others + opennmt

    model, _, _ = _train_stack(
        ctx,
        x,
        y.unsqueeze(0),
        3,
        loss,
        recipe,
        stream=3000,
        out_features=k,
        desc="three snippets: epochs",
    )
    probs = _logits(model, x, ctx).softmax(-1)
    test = _logits(model, split.x_test, ctx)
    targets = {
        "uniform": losses.smooth_labels(y[:1], k, eps, "uniform", dtype=torch.float64)[0],
        "others": losses.smooth_labels(y[:1], k, eps, "others", dtype=torch.float64)[0],
        "opennmt": losses.smooth_labels(
            y[:1], k, eps, "opennmt", ignore_index=pad, dtype=torch.float64
        )[0],
    }
    out = {}
    for m, (name, q) in enumerate(targets.items()):
        out[name] = {
            "train_target_probability": float(probs[m].gather(1, y.unsqueeze(1)).mean()),
            "target_on_target": float(q[y[0]]),
            "train_pad_probability": float(probs[m][:, pad].mean()),
            "target_pad": float(q[pad]),
            "test_accuracy": float((test[m].argmax(1) == split.y_test).double().mean()),
        }
    return out


# ------------------------------------------------------------------------ label noise


def _decide_label_noise(n: dict) -> tuple[str, str]:
    acc0, acc1 = n["test_accuracy"]["eps=0"], n["test_accuracy"]["eps=0.1"]
    diffs = [b - a for a, b in zip(acc0, acc1, strict=True)]
    mean, half = _mean(diffs), t_halfwidth(diffs)
    reason = (
        f"with {n['noise_fraction']:.0%} of the training labels flipped, test accuracy over "
        f"{len(diffs)} seeds: ε=0.1 {_mean(acc1):.3f} vs ε=0 {_mean(acc0):.3f}; paired "
        f"difference {mean:+.3f} ± {half:.3f} (95% t-interval); flipped labels memorised "
        f"{_mean(n['memorised_flipped']['eps=0']):.0%} (ε=0) vs "
        f"{_mean(n['memorised_flipped']['eps=0.1']):.0%} (ε=0.1)"
    )
    if mean - half > 0:
        return verdict(True, reason + " (the interval lies above 0)")
    if mean <= 0:
        return verdict(False, reason + " (smoothing does not raise the mean accuracy)")
    return verdict(False, reason + " (higher, but within the seeds' spread)", inconclusive=True)


@claim(
    id="smoothing.label_noise",
    section=SECTION,
    statement='Label smoothing "models the noise" (the notes cite Deep Learning 7.5.1, '
    '"Injecting Noise at the Output Targets": a label is taken to be wrong with probability '
    "ε), so it should help when some training labels are wrong.",
    method="Flip exactly 20% of the 200 training digits' labels (drawn per seed) to a "
    "different class drawn uniformly; train the overconfidence claim's MLP and schedule "
    "(300 epochs: the clean-label model fits its training set by epoch ~150; here it goes "
    "on to memorise most flipped labels) with ε = 0 and ε = 0.1 (uniform convention), from "
    "the same initial weights and batch order per seed, on each seed's noisy labels; measure "
    "accuracy on the clean test digits at the end (and every 10 epochs for the figure) and "
    "the fraction of flipped labels each model reproduces on its training set.",
    criterion="Supported if the 95% t-interval of the seed-paired difference in final test "
    "accuracy (ε = 0.1 minus ε = 0) lies above 0; not supported if the mean difference is "
    "≤ 0; inconclusive otherwise (higher, but within the seeds' spread).",
    decide=_decide_label_noise,
)
def label_noise(ctx: Context) -> Evidence:
    from ..data import digits

    split, base = digits(ctx.seed), _recipe(ctx)
    recipe = Recipe(base.hidden, base.epochs, base.train_examples, ctx.pick(2, 5, 10))
    noise, eps = 0.2, (0.0, 0.1)
    x = split.x_train[: recipe.train_examples]
    clean = split.y_train[: recipe.train_examples]
    n, k = len(clean), 10
    flips = round(noise * n)
    labels, flipped = [], []
    for r in range(recipe.seeds):
        g = ctx.generator(4000 + r)
        which = torch.randperm(n, generator=g)[:flips]
        noisy = clean.clone()
        noisy[which] = (clean[which] + torch.randint(1, k, (flips,), generator=g)) % k
        labels.append(noisy)
        flipped.append(which)
    labels_t = torch.stack(labels)
    every = ctx.pick(5, 10, 10)
    model, epochs_seen, curve = _train_stack(
        ctx,
        x,
        labels_t,
        len(eps),
        _smoothed_ce(torch.tensor(eps).repeat(recipe.seeds)),
        recipe,
        stream=5000,
        every=every,
        x_eval=split.x_test,
        y_eval=split.y_test,
        desc="label noise: epochs",
    )
    test_pred = _logits(model, split.x_test, ctx).argmax(2)
    train_pred = _logits(model, x, ctx).argmax(2)
    keys = [f"eps={e:g}" for e in eps]
    acc: dict[str, list[float]] = {key: [] for key in keys}
    memorised: dict[str, list[float]] = {key: [] for key in keys}
    curves: dict[str, list[list[float]]] = {key: [] for key in keys}
    for r in range(recipe.seeds):
        for i, key in enumerate(keys):
            m = r * len(eps) + i
            acc[key].append(float((test_pred[m] == split.y_test).double().mean()))
            hit = train_pred[m][flipped[r]] == labels_t[r][flipped[r]]
            memorised[key].append(float(hit.double().mean()))
            curves[key].append([c[m] for c in curve])

    fig, (ax1, ax2) = figure(ncols=2, width=4.8, height=3.6)
    for i, key in enumerate(keys):
        per_seed = torch.tensor(curves[key], dtype=torch.float64)  # (seeds, points)
        mean = per_seed.mean(0)
        ax1.plot(epochs_seen, mean, "-", color=PALETTE[i], label=f"ε = {eps[i]:g} (mean)")
        ax1.fill_between(
            epochs_seen,
            per_seed.min(0).values,
            per_seed.max(0).values,
            color=PALETTE[i],
            alpha=0.2,
            lw=0,
        )
    ax1.set(
        xlabel="epoch",
        ylabel="clean test accuracy",
        title=f"Training on {noise:.0%} flipped labels",
    )
    ax1.legend(title="band: min-max over seeds")
    for r in range(recipe.seeds):
        ax2.plot([0, 1], [acc[keys[0]][r], acc[keys[1]][r]], "o-", color="0.55", lw=1)
    for i, key in enumerate(keys):
        ax2.plot([i], [_mean(acc[key])], "D", ms=9, color=PALETTE[i], label=f"mean, ε = {eps[i]:g}")
    ax2.set(
        xticks=[0, 1],
        xticklabels=[f"ε = {e:g}" for e in eps],
        xlim=(-0.4, 1.4),
        ylabel="final clean test accuracy",
        title="Per seed (lines join a seed's pair)",
    )
    ax2.legend()
    return Evidence(
        numbers={
            "noise_fraction": noise,
            "flipped_labels": flips,
            "train_examples": n,
            "epochs": recipe.epochs,
            "seeds": recipe.seeds,
            "test_accuracy": acc,
            "memorised_flipped": memorised,
            "curve_epochs": epochs_seen,
            "mean_curve": {
                key: torch.tensor(curves[key], dtype=torch.float64).mean(0).tolist() for key in keys
            },
        },
        figures=[
            Figure(
                fig,
                "Left: clean test accuracy during training on noisy labels (line: mean over "
                "seeds; band: min-max); the fall after the peak is the network memorising "
                "the flipped labels. Right: final accuracy per seed, ε = 0 and 0.1 paired.",
            )
        ],
    )
