"""Claims of the notes' loss section: the logits-to-NLL table, BCE with logits, SmoothL1,
Poisson NLL and focal loss."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ... import losses
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure

SECTION = "Loss"


def _seeded_mlp(ctx: Context, stream: int, hidden: int = 64, out: int = 10):
    """The lab's MLP with its initial weights drawn from this run's seed and ``stream``
    (independent of whatever ran before)."""
    from ..train import mlp

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.generator(stream).initial_seed())
        return mlp(64, hidden, out)


def _lbfgs(params: list[Tensor], objective, iterations: int = 1) -> None:
    """Minimise ``objective()`` over ``params`` (float64) with L-BFGS and a strong-Wolfe line
    search, to tight tolerances."""
    optimizer = torch.optim.LBFGS(
        params,
        max_iter=500,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-11,
        tolerance_change=1e-15,
    )

    def closure():
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    for _ in range(iterations):
        optimizer.step(closure)


# ------------------------------------------------------------------ the table of values

RANGES = {  # the notes' table: name -> (low, high), both open
    "logits": (-math.inf, math.inf),
    "odds": (0.0, math.inf),
    "probability": (0.0, 1.0),
    "log-likelihood": (-math.inf, 0.0),
    "NLL": (0.0, math.inf),
}


def _end(value: float) -> str:
    return "-∞" if value == -math.inf else "+∞" if value == math.inf else f"{value:g}"


def _decide_value_table(n: dict) -> tuple[str, str]:
    inside = n["inside_stated_range"]
    gaps = n["max_abs_gaps"]
    ranges_ok = all(inside.values())
    gaps_ok = all(g < 1e-12 for g in gaps.values())
    outside = [k for k, ok in inside.items() if not ok]
    shown = ", ".join(f"{k} {v:.1e}" for k, v in gaps.items())
    return verdict(
        ranges_ok and gaps_ok,
        f"on {n['test_examples']} test digits ({n['values_per_quantity']['logits']} logits), "
        + (
            "every quantity lies strictly inside its stated range"
            if ranges_ok
            else f"values leave the stated range for: {', '.join(outside)}"
        )
        + f"; gaps (float64): {shown} (want < 1e-12). In float32, "
        f"{sum(n['float32_probabilities_at_boundary'].values())} softmax probabilities round "
        "to exactly 0 or 1",
    )


@claim(
    id="losses.value_table",
    section=SECTION,
    statement="Logits (-inf, +inf), before softmax/sigmoid; Odds (0, +inf), obtained by "
    "exponentializing Logits; Likelihood/Probability (0, 1), after softmax/sigmoid (or "
    "obtained by normalizing Odds: 'normalization such as divided by the sum (e.g. in "
    "Softmax), or using function 1/(1+x) (e.g. in sigmoid or logistic)'); Log-Likelihood "
    "(-inf, 0); Negative-Log-Likelihood (NLL) Loss (0, +inf).",
    method="Train the lab's MLP on the digits with cross-entropy for a few epochs and take "
    "its test-set logits. In float64, follow the table: odds = exp(logits), probability = "
    "odds / Σ odds, log-likelihood = log of the true class's probability, NLL = its "
    "negation. Measure each quantity's smallest and largest value; compare softmax(logits) "
    "with odds / Σ odds, sigmoid(logit) with odds / (1 + odds) = 1 / (1 + 1/odds) for every "
    "logit, and the mean NLL with mldl.losses.cross_entropy. Count, for information, the "
    "float32 probabilities that round to exactly 0 or 1.",
    criterion="Supported if every value of every quantity lies strictly inside its stated "
    "open range and the three gaps (softmax, sigmoid, cross-entropy) are below 1e-12.",
    decide=_decide_value_table,
)
def value_table(ctx: Context) -> Evidence:
    from ..data import digits
    from ..train import accuracy, fit, logits_of

    split = digits(ctx.seed)
    model = _seeded_mlp(ctx, 10)
    epochs = ctx.pick(2, 8, 30)
    fit(model, split.x_train, split.y_train, losses.cross_entropy, ctx, epochs=epochs, stream=11)
    logits32 = logits_of(model, split.x_test, ctx)
    y = split.y_test
    z = logits32.double()
    odds = torch.exp(z)
    prob = odds / odds.sum(1, keepdim=True)
    log_lik = torch.log(prob.gather(1, y[:, None]).squeeze(1))
    nll = -log_lik
    values = {"logits": z, "odds": odds, "probability": prob, "log-likelihood": log_lik, "NLL": nll}
    lo_hi = {k: (float(v.min()), float(v.max())) for k, v in values.items()}
    inside = {
        k: bool(torch.isfinite(v).all())
        and lo_hi[k][0] > RANGES[k][0]
        and lo_hi[k][1] < RANGES[k][1]
        for k, v in values.items()
    }
    gaps = {
        "softmax(z) vs odds/Σodds": float((torch.softmax(z, 1) - prob).abs().max()),
        "sigmoid(z) vs odds/(1+odds)": float((torch.sigmoid(z) - odds / (1 + odds)).abs().max()),
        "mean NLL vs cross_entropy": abs(float(nll.mean() - losses.cross_entropy(z, y))),
    }
    p32 = torch.softmax(logits32, 1)
    float32_hits = {
        "probability == 0": int((p32 == 0).sum()),
        "probability == 1": int((p32 == 1).sum()),
    }

    fig, axes = figure(ncols=3, nrows=2, width=4.0, height=3.0)
    specs = [
        ("logits", "logit z (all classes)", False),
        ("odds", "odds = exp(z) (all classes)", True),
        ("probability", "probability = odds / Σ odds (all classes)", False),
        ("log-likelihood", "log p(true class)", False),
        ("NLL", "NLL = -log p(true class)", True),
    ]
    for ax, (key, label, log_x) in zip(axes, specs, strict=False):
        v = values[key].flatten()
        if log_x:
            bins = torch.logspace(math.log10(float(v.min())), math.log10(float(v.max())), 40)
            ax.set_xscale("log")
        else:
            bins = 40
        ax.hist(v.numpy(), bins=bins if isinstance(bins, int) else bins.numpy(), color=PALETTE[0])
        for end in RANGES[key]:
            if math.isfinite(end):
                ax.axvline(end, color="k", ls=":", lw=1)
        stated = "({}, {})".format(*(_end(e) for e in RANGES[key]))
        ax.set(xlabel=label, ylabel="count", title=f"{key}: stated range {stated}")
        if key == "probability":
            ax.set_yscale("log")
    chain = axes[5]
    chain.axis("off")
    chain.text(
        0.02,
        0.95,
        "logits (-∞, ∞)\n   ↓ exp\nodds (0, ∞)\n   ↓ ÷ Σ odds  (softmax)\n"
        "   ↓ or x ↦ 1/(1+1/x)  (sigmoid)\nprobability (0, 1)\n   ↓ log\n"
        "log-likelihood (-∞, 0)\n   ↓ negate\nNLL (0, ∞)\n\n"
        f"test accuracy {accuracy(logits32, y):.3f}",
        va="top",
        family="monospace",
        fontsize=9,
        transform=chain.transAxes,
    )
    return Evidence(
        numbers={
            "epochs": epochs,
            "test_examples": len(y),
            "test_accuracy": accuracy(logits32, y),
            "values_per_quantity": {k: v.numel() for k, v in values.items()},
            "min_max": lo_hi,
            "inside_stated_range": inside,
            "max_abs_gaps": gaps,
            "float32_probabilities_at_boundary": float32_hits,
        },
        figures=[
            Figure(
                fig,
                "The five quantities of the notes' table on a trained MLP's test-set outputs; "
                "dotted lines mark the finite ends of each stated range (odds and NLL on a "
                "log axis, probability counts on a log axis).",
            )
        ],
    )


# ------------------------------------------------------------------- BCE with logits


def _decide_bce_stable(n: dict) -> tuple[str, str]:
    stable_err = n["max_error_loss"]["bce_with_logits"]
    naive_err = n["max_error_loss"]["sigmoid + bce"]
    stable_rel = n["max_rel_error_loss"]["bce_with_logits"]
    stable_grad = n["max_abs_error_grad"]["bce_with_logits"]
    naive_grad = n["max_abs_error_grad"]["sigmoid + bce"]
    ceiling = n["max_loss"]["sigmoid + bce"]
    vanished = n["points_where_naive_grad_vanishes"]
    at_inf = n["exact_at_infinite_logits"]
    ok = (
        stable_err < 1e-6
        and stable_grad < 1e-6
        and at_inf
        and abs(ceiling - 100.0) < 1e-4
        and n["max_loss"]["exact"] > 100.0
        and vanished > 0
        and naive_err > 100 * stable_err
    )
    return verdict(
        ok,
        f"bce_with_logits: max loss error {stable_err:.1e}, max gradient error "
        f"{stable_grad:.1e}, exact at ±inf: {at_inf}; sigmoid + bce: max loss error "
        f"{naive_err:.2g}, largest loss {ceiling:.4g} where the exact loss reaches "
        f"{n['max_loss']['exact']:.4g} (the -100 clamp), gradient error up to {naive_grad:.2g} "
        f"and |gradient| < 1e-3 at {vanished} of {n['points']} logits where the true one is "
        f"> 0.5 (want < 1e-6, < 1e-6, True; ceiling 100; vanishing gradients). Purely "
        f"relative, bce_with_logits' loss error reaches {stable_rel:.2g}"
        + "".join(
            f"; > 1e-3 for {k}, logits in [{lo:g}, {hi:g}]"
            for k, (lo, hi) in n["bce_with_logits_rel_error_above_1e-3"].items()
        ),
    )


@claim(
    id="losses.bce_with_logits_stable",
    section=SECTION,
    statement="BCEWithLogitsLoss: 'This version is more numerically stable than using a plain "
    "Sigmoid followed by a BCELoss as, by combining the operations into one layer, we take "
    "advantage of the log-sum-exp trick for numerical stability.' And: 'BCELoss clamps its "
    "log function outputs to be greater than or equal to -100.'",
    method="Sweep float32 logits x from -120 to 120 with targets 1 and 0. Compute the loss "
    "and its gradient d loss / dx three ways: mldl.losses.bce(sigmoid(x)) (sigmoid then "
    "BCE), mldl.losses.bce_with_logits(x), and the exact value in float64 (softplus(-x) for "
    "target 1, softplus(x) for target 0; gradient sigmoid(x) - target). Loss error is "
    "|computed - exact| / max(exact, 1): relative for losses above 1, absolute below. "
    "Gradient error is absolute (gradients lie in [-1, 1]). For information, the purely "
    "relative loss error |computed - exact| / max(exact, smallest normal float32) is "
    "reported too. Both are also evaluated at x = ±inf.",
    criterion="Supported if bce_with_logits has loss error < 1e-6 and gradient error < 1e-6 "
    "at every logit and is exact (0 or +inf) at ±inf, while sigmoid + BCE never exceeds 100 "
    "though the exact loss does (the clamp), its gradient vanishes (|g| < 1e-3) at some "
    "logit where the true gradient has |g| > 0.5, and its worst loss error is more than 100 "
    "times bce_with_logits'.",
    decide=_decide_bce_stable,
)
def bce_with_logits_stable(ctx: Context) -> Evidence:
    points = ctx.pick(481, 4801, 24001)
    x = torch.linspace(-120.0, 120.0, points, dtype=torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    x64 = x.double()
    curves: dict[float, dict[str, dict[str, Tensor]]] = {}
    rel_err = {"sigmoid + bce": 0.0, "bce_with_logits": 0.0}
    mixed_err = {"sigmoid + bce": 0.0, "bce_with_logits": 0.0}
    grad_err = {"sigmoid + bce": 0.0, "bce_with_logits": 0.0}
    max_loss = {"sigmoid + bce": 0.0, "bce_with_logits": 0.0, "exact": 0.0}
    vanished = 0
    rel_bad = {}
    for target in (1.0, 0.0):
        t = torch.full_like(x, target)
        signed = -x64 if target == 1.0 else x64  # the exact loss is softplus(signed)
        exact = signed.clamp(min=0) + torch.log1p(torch.exp(-signed.abs()))
        exact_grad = -torch.sigmoid(-x64) if target == 1.0 else torch.sigmoid(x64)
        computed = {}
        for name in ("sigmoid + bce", "bce_with_logits"):
            xi = x.clone().requires_grad_()
            if name == "sigmoid + bce":
                loss = losses.bce(torch.sigmoid(xi), t, reduction="none")
            else:
                loss = losses.bce_with_logits(xi, t, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), xi)
            loss = loss.detach().double()
            err = (loss - exact).abs() / exact.clamp(min=tiny)
            rel_err[name] = max(rel_err[name], float(err.max()))
            mixed = (loss - exact).abs() / exact.clamp(min=1.0)
            mixed_err[name] = max(mixed_err[name], float(mixed.max()))
            grad_err[name] = max(grad_err[name], float((grad.double() - exact_grad).abs().max()))
            max_loss[name] = max(max_loss[name], float(loss.max()))
            computed[name] = {"loss": loss, "grad": grad.double(), "rel_err": err}
            if name == "bce_with_logits" and bool((err > 1e-3).any()):
                bad = x[err > 1e-3]
                rel_bad[f"target {target:g}"] = [float(bad.min()), float(bad.max())]
            if name == "sigmoid + bce":
                vanished += int(((grad.abs() < 1e-3) & (exact_grad.abs() > 0.5)).sum())
        max_loss["exact"] = max(max_loss["exact"], float(exact.max()))
        computed["exact"] = {"loss": exact, "grad": exact_grad}
        curves[target] = computed

    inf = torch.tensor([math.inf, -math.inf])
    at_inf = {}
    for target in (1.0, 0.0):
        t = torch.full_like(inf, target)
        exact_inf = torch.tensor([0.0, math.inf] if target == 1.0 else [math.inf, 0.0])
        stable = losses.bce_with_logits(inf, t, reduction="none")
        naive = losses.bce(torch.sigmoid(inf), t, reduction="none")
        at_inf[f"target {target:g}"] = {
            "logits": ["+inf", "-inf"],
            "exact": exact_inf.tolist(),
            "bce_with_logits": stable.tolist(),
            "sigmoid + bce": naive.tolist(),
        }
    exact_at_inf = all(v["bce_with_logits"] == v["exact"] for v in at_inf.values())

    fig, axes = figure(ncols=3, nrows=2, width=4.2, height=3.0)
    styles = {
        "exact": dict(color="k", ls=":", lw=2.2),
        "sigmoid + bce": dict(color=PALETTE[1], lw=1.4),
        "bce_with_logits": dict(color=PALETTE[0], lw=1.4, ls="--"),
    }
    xs = x.numpy()
    for row, target in enumerate((1.0, 0.0)):
        ax_loss, ax_grad, ax_err = axes[3 * row : 3 * row + 3]
        for name, style in styles.items():
            c = curves[target][name]
            ax_loss.plot(xs, c["loss"].numpy(), label=name, **style)
            ax_grad.plot(xs, c["grad"].numpy(), label=name, **style)
            if name != "exact":
                ax_err.semilogy(xs, c["rel_err"].clamp(min=1e-12).numpy(), label=name, **style)
        ax_loss.axhline(100.0, color="grey", lw=0.8)
        ax_loss.set(xlabel="logit x", ylabel="loss", title=f"loss, target {target:g}")
        ax_grad.set(xlabel="logit x", ylabel="d loss / dx", title=f"gradient, target {target:g}")
        ax_err.set(
            xlabel="logit x",
            ylabel="relative error (shown ≥ 1e-12)",
            title=f"loss error vs float64, target {target:g}",
        )
        ax_loss.legend()
    return Evidence(
        numbers={
            "points": 2 * points,
            "logit_range": [-120.0, 120.0],
            "max_error_loss": mixed_err,
            "max_rel_error_loss": rel_err,
            "bce_with_logits_rel_error_above_1e-3": rel_bad,
            "max_abs_error_grad": grad_err,
            "max_loss": max_loss,
            "points_where_naive_grad_vanishes": vanished,
            "at_infinite_logits": at_inf,
            "exact_at_infinite_logits": exact_at_inf,
        },
        figures=[
            Figure(
                fig,
                "Sigmoid followed by BCE (orange) against bce_with_logits (blue dashes) and the "
                "exact float64 value (black dots), float32 logits. Left: sigmoid + BCE stops at "
                "100 (grey line: the -100 clamp on the log) wherever the float32 sigmoid "
                "rounds to 0 or 1 (x < -88 for target 1, x > 16.6 for target 0). Middle: its "
                "gradient fades from x ≈ -28 and is 0 beyond the clamp. Right: relative loss "
                "error |computed - exact| / max(exact, 1.2e-38); bce_with_logits' reaches 1 for "
                "target 0 at logits between -88 and -17, where the true loss is below 1e-7 and "
                "comes out as 0 (its absolute error stays below 1e-7).",
            )
        ],
    )


# ----------------------------------------------------------------- SmoothL1 and outliers

OUTLIER_FRACTIONS = [0.0, 0.05, 0.1, 0.2]
REGRESSION_LOSSES = {
    "MSE": lambda p, y: losses.mse(p, y, reduction="none"),
    "SmoothL1 (beta=1)": lambda p, y: losses.smooth_l1(p, y, reduction="none", beta=1.0),
    "L1": lambda p, y: losses.l1(p, y, reduction="none"),
}


def _decide_smooth_l1(n: dict) -> tuple[str, str]:
    err = n["mean_parameter_error"]
    i10, i0 = n["outlier_fractions"].index(0.1), n["outlier_fractions"].index(0.0)
    mse10, sl10 = err["MSE"][i10], err["SmoothL1 (beta=1)"][i10]
    mse0, sl0 = err["MSE"][i0], err["SmoothL1 (beta=1)"][i0]
    ratio10, ratio0 = sl10 / mse10, sl0 / mse0
    return verdict(
        ratio10 < 0.5 and ratio0 < 1.25,
        f"mean ‖ŵ - w‖ over {n['replicates']} data sets: with 10% outliers SmoothL1 "
        f"{sl10:.3f} vs MSE {mse10:.3f} (ratio {ratio10:.2f}, want < 0.5); without outliers "
        f"{sl0:.3f} vs {mse0:.3f} (ratio {ratio0:.2f}, want < 1.25)",
    )


@claim(
    id="losses.smooth_l1_robust",
    section=SECTION,
    statement="SmoothL1Loss: 'It is less sensitive to outliers than the torch.nn.MSELoss and "
    "in some cases prevents exploding gradients (e.g. see Fast R-CNN paper by Ross "
    "Girshick).'",
    method="Linear regression y = Xw + b + ε with 5 standard-normal features, true w and b "
    "drawn from N(0, 1), noise ε ~ N(0, 1). A fraction f ∈ {0, 5%, 10%, 20%} of the targets "
    "gets a gross error of random sign and size uniform in [10, 50] (10 to 50 noise "
    "standard deviations). Fit (w, b) by L-BFGS (float64) minimising the mean of "
    "mldl.losses.mse, smooth_l1 (beta=1) and l1 over R independent data sets, and measure "
    "the parameter error ‖(ŵ, b̂) - (w, b)‖ averaged over the data sets. L1 is shown for "
    "reference.",
    criterion="Supported if, with 10% outliers, SmoothL1's mean parameter error is below half "
    "of MSE's, and, without outliers (where MSE is the maximum-likelihood fit), it is below "
    "1.25 times MSE's (Huber's loss at beta = 1 keeps about 95% of the least-squares "
    "efficiency under Gaussian noise).",
    decide=_decide_smooth_l1,
)
def smooth_l1_robust(ctx: Context) -> Evidence:
    n, d = ctx.pick(200, 500, 2000), 5
    replicates = ctx.pick(4, 20, 50)
    g = ctx.generator(30)
    kw = {"generator": g, "dtype": torch.float64}
    x = torch.randn(replicates, n, d, **kw)
    truth = torch.randn(replicates, d + 1, **kw)  # weights, then the bias
    clean = x @ truth[:, :d, None] + truth[:, d:, None] + torch.randn(replicates, n, 1, **kw)
    clean = clean.squeeze(2)
    order = torch.argsort(torch.rand(replicates, n, **kw), dim=1)  # which targets go bad first
    sign = torch.where(torch.rand(replicates, n, **kw) < 0.5, -1.0, 1.0).double()
    gross = sign * (10.0 + 40.0 * torch.rand(replicates, n, **kw))
    errors: dict[str, list[float]] = {k: [] for k in REGRESSION_LOSSES}
    spread: dict[str, list[float]] = {k: [] for k in REGRESSION_LOSSES}
    for frac in ctx.steps(OUTLIER_FRACTIONS, "outlier fractions"):
        bad = torch.zeros(replicates, n, dtype=torch.bool)
        bad.scatter_(1, order[:, : round(frac * n)], True)
        y = torch.where(bad, clean + gross, clean)
        for name, loss_fn in REGRESSION_LOSSES.items():
            theta = torch.zeros(replicates, d + 1, dtype=torch.float64, requires_grad=True)

            def objective(theta=theta, loss_fn=loss_fn, y=y):
                pred = (x @ theta[:, :d, None]).squeeze(2) + theta[:, d:]
                return loss_fn(pred, y).mean(1).sum()  # R independent fits, one optimiser

            _lbfgs([theta], objective, iterations=3)
            err = (theta.detach() - truth).norm(dim=1)
            errors[name].append(float(err.mean()))
            spread[name].append(float(err.std()) if replicates > 1 else 0.0)

    fig, (ax,) = figure(width=5.6, height=3.8)
    pct = [100 * f for f in OUTLIER_FRACTIONS]
    for name in REGRESSION_LOSSES:
        ax.errorbar(pct, errors[name], yerr=spread[name], marker="o", capsize=3, label=name)
    ax.set_yscale("log")
    ax.set(
        xlabel="targets with a gross error (%)",
        ylabel="parameter error ‖(ŵ, b̂) - (w, b)‖",
        title=f"Linear regression, n = {n}, {replicates} data sets",
        xticks=pct,
    )
    ax.legend()
    return Evidence(
        numbers={
            "examples": n,
            "features": d,
            "replicates": replicates,
            "outlier_fractions": OUTLIER_FRACTIONS,
            "mean_parameter_error": errors,
            "sd_parameter_error": spread,
        },
        figures=[
            Figure(
                fig,
                "Parameter error of linear fits under MSE, SmoothL1 (beta=1) and L1 as more "
                "targets carry gross errors (mean ± sd over the data sets, log scale).",
            )
        ],
    )


# -------------------------------------------------------------------------- Poisson NLL

POISSON_TRUTH = {"a": 0.5, "b": 1.2}  # rate = exp(a + b·x), x uniform on [-1, 1]


def _decide_poisson(n: dict) -> tuple[str, str]:
    ratios = n["rmse_over_mean_standard_error"]
    slopes = n["log_log_slope_rmse_vs_n"]
    gap = n["max_rel_gap_mean_rate_vs_mean_count"]
    flat = [r for per_n in ratios.values() for r in per_n]
    ratio_ok = all(0.75 <= r <= 1.33 for r in flat)
    slope_ok = all(-0.6 <= s <= -0.4 for s in slopes.values())
    shown = ", ".join(f"{k} {v:.3f}" for k, v in slopes.items())
    return verdict(
        ratio_ok and slope_ok and gap < 1e-6,
        f"over {n['replicates']} data sets per n = {n['sizes']}: RMSE / mean standard error "
        f"from {min(flat):.2f} to {max(flat):.2f} (want 0.75-1.33); log-log slopes of RMSE vs "
        f"n: {shown} (want -0.5 ± 0.1); mean fitted rate vs mean count: relative gap "
        f"{gap:.1e} (want < 1e-6)",
    )


@claim(
    id="losses.poisson_rate",
    section=SECTION,
    statement="PoissonNLLLoss: target ~ Poisson(input); loss = -log Pr(X = k) = λ - k log λ + "
    "log(k!), and λ 'is equal to the expected value of X and also to its variance'. "
    "Minimising it fits the rate λ of count data.",
    method="Draw counts k ~ Poisson(exp(a + b·x)) with a = 0.5, b = 1.2 and x uniform on "
    "[-1, 1], for n from 100 to 10,000 and R independent data sets each. Fit (a, b) by "
    "L-BFGS (float64) minimising mldl.losses.poisson_nll(a + b·x, k, log_input=True). "
    "Compare the estimates' root-mean-square error over the data sets with the standard "
    "error from the Fisher information (Σ λ̂ [1, x; x, x²])⁻¹, check that it shrinks like "
    "1/√n, and compare the mean fitted rate with the mean count (the likelihood equation of "
    "the intercept makes them equal).",
    criterion="Supported if, for every n and both parameters, RMSE / mean standard error "
    "is within 0.75-1.33 (the fit is unbiased and as precise as maximum likelihood "
    "promises), the log-log slope of RMSE against n is -0.5 ± 0.1, and the mean fitted rate "
    "equals the mean count to a relative 1e-6.",
    decide=_decide_poisson,
)
def poisson_rate(ctx: Context) -> Evidence:
    sizes = ctx.pick([100, 10000], [100, 1000, 10000], [100, 1000, 10000, 100000])
    replicates = ctx.pick(20, 100, 200)
    a, b = POISSON_TRUTH["a"], POISSON_TRUTH["b"]
    g = ctx.generator(40)
    rmse: dict[str, list[float]] = {"a": [], "b": []}
    mean_se: dict[str, list[float]] = {"a": [], "b": []}
    gaps = []
    shown = None
    for n in ctx.steps(sizes, "sample sizes"):
        x = 2 * torch.rand(replicates, n, generator=g, dtype=torch.float64) - 1
        counts = torch.poisson(torch.exp(a + b * x), generator=g)
        theta = torch.zeros(replicates, 2, dtype=torch.float64, requires_grad=True)

        def objective(theta=theta, x=x, counts=counts):
            log_rate = theta[:, :1] + theta[:, 1:] * x
            return (
                losses.poisson_nll(log_rate, counts, log_input=True, reduction="none").mean(1).sum()
            )

        _lbfgs([theta], objective, iterations=3)
        est = theta.detach()
        rate = torch.exp(est[:, :1] + est[:, 1:] * x)
        info = torch.stack(
            [
                torch.stack([rate.sum(1), (rate * x).sum(1)], -1),
                torch.stack([(rate * x).sum(1), (rate * x * x).sum(1)], -1),
            ],
            -2,
        )
        se = torch.linalg.inv(info).diagonal(dim1=-2, dim2=-1).sqrt()
        for i, k in enumerate(("a", "b")):
            truth = POISSON_TRUTH[k]
            rmse[k].append(float(((est[:, i] - truth) ** 2).mean().sqrt()))
            mean_se[k].append(float(se[:, i].mean()))
        gaps.append(float(((rate.mean(1) - counts.mean(1)).abs() / counts.mean(1)).max()))
        if shown is None or n == 1000:
            shown = (n, x[0], counts[0], est[0], se[0])
    log_n = torch.tensor(sizes, dtype=torch.float64).log()
    slopes = {}
    for k, errs in rmse.items():
        e = torch.tensor(errs, dtype=torch.float64).log()
        slopes[k] = float(
            ((log_n - log_n.mean()) * (e - e.mean())).sum() / ((log_n - log_n.mean()) ** 2).sum()
        )
    ratios = {k: [r / s for r, s in zip(rmse[k], mean_se[k], strict=True)] for k in rmse}

    fig, (ax1, ax2) = figure(ncols=2, width=4.8, height=3.6)
    n_shown, xs, ks, est, se = shown
    jitter = 0.15 * (torch.rand(len(ks), generator=g, dtype=torch.float64) - 0.5)
    ax1.scatter(
        xs.numpy(), (ks + jitter).numpy(), s=5, alpha=0.35, color=PALETTE[5], label="counts"
    )
    grid = torch.linspace(-1, 1, 200, dtype=torch.float64)
    ax1.plot(
        grid.numpy(),
        torch.exp(a + b * grid).numpy(),
        "k:",
        lw=2,
        label=f"true rate exp({a} + {b}x)",
    )
    ax1.plot(
        grid.numpy(),
        torch.exp(est[0] + est[1] * grid).numpy(),
        color=PALETTE[1],
        label=f"fitted exp({float(est[0]):.3f} + {float(est[1]):.3f}x)",
    )
    ax1.set(xlabel="x", ylabel="count k (jittered)", title=f"One data set, n = {n_shown}")
    ax1.legend()
    for k, color in (("a", PALETTE[0]), ("b", PALETTE[2])):
        ax2.loglog(sizes, rmse[k], "o-", color=color, label=f"RMSE of {k} (slope {slopes[k]:.2f})")
        ax2.loglog(sizes, mean_se[k], "x--", color=color, label=f"Fisher standard error of {k}")
    ax2.set(xlabel="sample size n", ylabel="error", title=f"{replicates} data sets per n")
    ax2.legend()
    return Evidence(
        numbers={
            "truth": POISSON_TRUTH,
            "sizes": sizes,
            "replicates": replicates,
            "rmse": rmse,
            "mean_standard_error": mean_se,
            "rmse_over_mean_standard_error": ratios,
            "log_log_slope_rmse_vs_n": slopes,
            "max_rel_gap_mean_rate_vs_mean_count": max(gaps),
            "example_fit": {
                "n": n_shown,
                "a": float(est[0]),
                "b": float(est[1]),
                "se_a": float(se[0]),
                "se_b": float(se[1]),
            },
        },
        figures=[
            Figure(
                fig,
                "Left: counts drawn from a log-linear Poisson model with the true and the "
                "fitted rate. Right: the fitted parameters' error over repeated data sets "
                "matches the Fisher standard error and falls like 1/√n.",
            )
        ],
    )


# ---------------------------------------------------------------------- focal loss

# Two-sided 95% quantiles of Student's t with 1..30 degrees of freedom (1.96 beyond).
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip


def _decide_focal(n: dict) -> tuple[str, str]:
    ce = n["minority_recall"]["cross-entropy"]
    fo = n["minority_recall"]["focal (gamma=2)"]
    diffs = [f - c for f, c in zip(fo, ce, strict=True)]
    s = len(diffs)
    mean = sum(diffs) / s
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (s - 1)) if s > 1 else math.inf
    half = (
        (T_975[s - 2] if s - 1 <= len(T_975) else 1.96) * sd / math.sqrt(s) if s > 1 else math.inf
    )
    acc = n["test_accuracy_mean"]
    reason = (
        f"minority-class recall over {s} seeds: focal {sum(fo) / s:.3f} vs cross-entropy "
        f"{sum(ce) / s:.3f}; paired difference {mean:+.3f} ± {half:.3f} (95% t-interval); "
        f"overall test accuracy focal {acc['focal (gamma=2)']:.3f} vs "
        f"{acc['cross-entropy']:.3f}"
    )
    if mean - half > 0:
        return verdict(True, reason + " (the interval lies above 0)")
    if mean + half < 0:
        return verdict(False, reason + " (the interval lies below 0)")
    return verdict(False, reason + " (the interval contains 0)", inconclusive=True)


@claim(
    id="losses.focal_minority",
    section=SECTION,
    statement="Focal Loss (a heading of the notes, without text): the reason it is listed is "
    "Lin et al.'s (2017) — by scaling the cross-entropy with (1 - p_t)^γ it down-weights "
    "well-classified examples, so that training under class imbalance attends to the rare, "
    "hard ones.",
    method="Make the digits' training set imbalanced: two classes (drawn with the seed) keep "
    "8% of their examples. Train the lab's MLP (2 hidden layers of 64) with Adam on "
    "mldl.losses.cross_entropy and on mldl.losses.focal (gamma=2, no alpha), from the same "
    "initial weights and batch order for each seed; evaluate per-class recall and accuracy "
    "on the (balanced) test set. The minority recall of a run is the mean recall of the two "
    "rare classes.",
    criterion="Supported if the 95% t-interval of the seed-paired difference in minority "
    "recall (focal - cross-entropy) lies above 0; not supported if it lies below 0; "
    "inconclusive if it contains 0.",
    decide=_decide_focal,
)
def focal_minority(ctx: Context) -> Evidence:
    from ..data import digits
    from ..train import accuracy, fit, logits_of

    split = digits(ctx.seed)
    k = split.num_classes
    g = ctx.generator(50)
    minority = sorted(torch.randperm(k, generator=g)[:2].tolist())
    keep = 0.08
    chosen = torch.ones(len(split.y_train), dtype=torch.bool)
    for c in minority:
        idx = (split.y_train == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        chosen[idx[max(1, round(keep * len(idx))) :]] = False
    x_train, y_train = split.x_train[chosen], split.y_train[chosen]
    train_counts = torch.bincount(y_train, minlength=k).tolist()
    seeds = ctx.pick(2, 5, 10)
    epochs = ctx.pick(3, 20, 40)
    arms = {
        "cross-entropy": losses.cross_entropy,
        "focal (gamma=2)": lambda z, y: losses.focal(z, y, gamma=2.0),
    }
    recall: dict[str, list[list[float]]] = {a: [] for a in arms}
    minority_recall: dict[str, list[float]] = {a: [] for a in arms}
    acc: dict[str, list[float]] = {a: [] for a in arms}
    y_test = split.y_test
    for s in ctx.steps(range(seeds), "seeds", total=seeds):
        for arm, loss_fn in arms.items():
            model = _seeded_mlp(ctx, 100 + s)
            fit(model, x_train, y_train, loss_fn, ctx, epochs=epochs, lr=2e-3, stream=200 + s)
            logits = logits_of(model, split.x_test, ctx)
            pred = logits.argmax(1)
            per_class = [float((pred[y_test == c] == c).float().mean()) for c in range(k)]
            recall[arm].append(per_class)
            minority_recall[arm].append(sum(per_class[c] for c in minority) / len(minority))
            acc[arm].append(accuracy(logits, y_test))

    fig, (ax,) = figure(width=8.0, height=3.9)
    width = 0.4
    for i, arm in enumerate(arms):
        r = torch.tensor(recall[arm])
        mean = r.mean(0)
        sd = r.std(0) if seeds > 1 else torch.zeros(k)
        ax.bar(
            torch.arange(k) + (i - 0.5) * width,
            mean.numpy(),
            width=width,
            yerr=sd.numpy(),
            capsize=2,
            color=PALETTE[i],
            label=f"{arm} (accuracy {sum(acc[arm]) / seeds:.3f})",
        )
    labels = [f"{c}\n(n={train_counts[c]})" for c in range(k)]
    ax.set_xticks(range(k), labels)
    for c in minority:
        ax.get_xticklabels()[c].set_color(PALETTE[1])
        ax.axvspan(c - 0.5, c + 0.5, color=PALETTE[4], alpha=0.15, lw=0, zorder=0)
    ax.set(
        xlabel="digit class (training examples; shaded: the rare classes)",
        ylabel="test recall",
        ylim=(0, 1.05),
        title=f"Per-class recall, mean ± sd over {seeds} seeds, {epochs} epochs",
    )
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=2)
    return Evidence(
        numbers={
            "minority_classes": minority,
            "kept_fraction": keep,
            "train_counts": train_counts,
            "seeds": seeds,
            "epochs": epochs,
            "minority_recall": minority_recall,
            "test_accuracy_mean": {a: sum(v) / seeds for a, v in acc.items()},
            "test_accuracy": acc,
            "per_class_recall_mean": {
                a: torch.tensor(v).mean(0).tolist() for a, v in recall.items()
            },
        },
        figures=[
            Figure(
                fig,
                "Test recall of each digit for an MLP trained on an imbalanced training set "
                "with cross-entropy and with focal loss (gamma=2); the two shaded classes "
                "kept 8% of their training examples.",
            )
        ],
    )
