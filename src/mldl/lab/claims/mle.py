"""Claims of the notes' maximum-likelihood section (Deep Learning Book, p.132 and 5.5.2)."""

from __future__ import annotations

import math

import torch

from ... import losses
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import figure

SECTION = "Maximum likelihood (Deep Learning Book 5.5)"


# ------------------------------------------------------------------ consistency, efficiency


def _decide_consistency(n: dict) -> tuple[str, str]:
    slopes = n["log_log_slopes"]
    ratios = n["variance_over_cramer_rao_at_largest_m"]
    slope_ok = all(-0.6 <= s <= -0.4 for s in slopes.values())
    ratio_ok = all(0.85 <= r <= 1.15 for r in ratios.values())
    shown = ", ".join(f"{k} {v:.3f}" for k, v in slopes.items())
    eff = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
    return verdict(
        slope_ok and ratio_ok,
        f"log-log slopes of RMSE vs m: {shown} (want -0.5 ± 0.1); variance / Cramér-Rao "
        f"bound at the largest m: {eff} (want 1 ± 0.15)",
    )


@claim(
    id="mle.consistency",
    section=SECTION,
    statement="5.5.2 Properties of MLE: the maximum likelihood estimator is consistent (it "
    "converges to the true parameter as the number of examples m grows) and efficient (no "
    "consistent estimator has lower mean squared error for large m: it reaches the "
    "Cramér-Rao lower bound).",
    method="Draw R samples of size m (m from 10 to 10,000) from Bernoulli(0.3) and "
    "N(1.5, 2²); estimate p, μ and σ² by maximum likelihood (sample frequency, mean, and "
    "biased variance); measure the root-mean-square error over the R replicates and the "
    "estimators' variance times m against the Cramér-Rao bound (p(1-p), σ², 2σ⁴).",
    criterion="Supported if, for every parameter, the slope of log RMSE against log m is "
    "within -0.5 ± 0.1 (error shrinks like 1/√m) and the variance at the largest m is within "
    "15% of the Cramér-Rao bound.",
    decide=_decide_consistency,
)
def consistency(ctx: Context) -> Evidence:
    p, mu, sigma = 0.3, 1.5, 2.0
    sizes = ctx.pick(
        [10, 100, 1000],
        [10, 30, 100, 300, 1000, 3000, 10000],
        [10, 30, 100, 300, 1000, 3000, 10000, 30000],
    )
    replicates = ctx.pick(200, 600, 2000)
    g = ctx.generator(1)
    bound = {"Bernoulli p": p * (1 - p), "Gaussian μ": sigma**2, "Gaussian σ²": 2 * sigma**4}
    truth = {"Bernoulli p": p, "Gaussian μ": mu, "Gaussian σ²": sigma**2}
    rmse: dict[str, list[float]] = {k: [] for k in truth}
    scaled_var: dict[str, list[float]] = {k: [] for k in truth}
    for m in ctx.steps(sizes, "sample sizes"):
        coins = (torch.rand(replicates, m, generator=g, dtype=torch.float64) < p).double()
        normal = mu + sigma * torch.randn(replicates, m, generator=g, dtype=torch.float64)
        estimates = {
            "Bernoulli p": coins.mean(1),
            "Gaussian μ": normal.mean(1),
            "Gaussian σ²": normal.var(1, correction=0),  # the MLE is the biased variance
        }
        for k, est in estimates.items():
            rmse[k].append(float(((est - truth[k]) ** 2).mean().sqrt()))
            scaled_var[k].append(float(est.var() * m))
    log_m = torch.tensor(sizes, dtype=torch.float64).log()
    slopes = {}
    for k, errs in rmse.items():
        y = torch.tensor(errs, dtype=torch.float64).log()
        slopes[k] = float(
            ((log_m - log_m.mean()) * (y - y.mean())).sum() / ((log_m - log_m.mean()) ** 2).sum()
        )
    ratios = {k: scaled_var[k][-1] / bound[k] for k in truth}

    fig, (ax1, ax2) = figure(ncols=2)
    for k, errs in rmse.items():
        ax1.loglog(sizes, errs, "o-", label=f"{k} (slope {slopes[k]:.2f})")
    ax1.loglog(
        sizes,
        [rmse["Gaussian μ"][0] * math.sqrt(sizes[0] / m) for m in sizes],
        "k:",
        lw=1,
        label="1/√m",
    )
    ax1.set(xlabel="sample size m", ylabel="RMSE of the MLE", title="Consistency")
    ax1.legend()
    for k, v in scaled_var.items():
        ax2.semilogx(sizes, [x / bound[k] for x in v], "o-", label=k)
    ax2.axhline(1.0, color="k", ls=":", lw=1, label="Cramér-Rao bound")
    ax2.set(
        xlabel="sample size m", ylabel="m · Var(estimate) / bound", title="Efficiency", ylim=(0, 2)
    )
    ax2.legend()
    return Evidence(
        numbers={
            "sizes": sizes,
            "replicates": replicates,
            "rmse": rmse,
            "log_log_slopes": slopes,
            "variance_over_cramer_rao_at_largest_m": ratios,
        },
        figures=[
            Figure(
                fig,
                "Left: the estimators' error falls like 1/√m. Right: their "
                "variance, scaled by m, approaches the Cramér-Rao bound.",
            )
        ],
    )


# ---------------------------------------------------------- every NLL is a cross-entropy


def _decide_nll_is_ce(n: dict) -> tuple[str, str]:
    gap = n["max_abs_gap_nll_vs_m_times_cross_entropy"]
    fit_gap = n["max_abs_gap_fitted_vs_empirical"]
    return verdict(
        gap < 1e-9 and fit_gap < 1e-4,
        f"NLL and m·H(p̂_data, q) differ by at most {gap:.1e} over {n['models']} models; the "
        f"model fitted by minimising the NLL matches the empirical distribution to "
        f"{fit_gap:.1e} (want < 1e-9 and < 1e-4)",
    )


@claim(
    id="mle.nll_is_cross_entropy",
    section=SECTION,
    statement="p.132: Any loss consisting of a negative log-likelihood is a cross-entropy "
    "between the empirical distribution defined by the training set and the probability "
    "distribution defined by the model.",
    method="Take the digit labels of scikit-learn's digits as the data; for random "
    "categorical models q, compare the NLL Σ_i -log q(y_i) with m · H(p̂_data, q) = "
    "-m Σ_k p̂_data(k) log q(k). Then fit q = softmax(θ) by gradient descent on the NLL and "
    "compare it with p̂_data (the cross-entropy is minimised at q = p̂_data).",
    criterion="Supported if the two quantities agree to 1e-9 for every model (float64) and "
    "the fitted model equals the empirical distribution to 1e-4.",
    decide=_decide_nll_is_ce,
)
def nll_is_cross_entropy(ctx: Context) -> Evidence:
    from ..data import digits

    y = digits(ctx.seed).y_train
    k, m = int(y.max()) + 1, len(y)
    empirical = torch.bincount(y, minlength=k).double() / m
    g = ctx.generator(2)
    gaps = []
    models = ctx.pick(5, 50, 200)
    for _ in range(models):
        log_q = torch.log_softmax(torch.randn(k, generator=g, dtype=torch.float64) * 2, 0)
        nll = losses.nll(log_q.expand(m, k), y, reduction="sum")
        cross_entropy = -m * (empirical * log_q).sum()
        gaps.append(abs(float(nll - cross_entropy)))
    theta = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [theta],
        max_iter=200,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
    )

    def closure():
        optimizer.zero_grad()
        loss = losses.cross_entropy(theta.expand(m, k), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted = torch.softmax(theta.detach(), 0)
    fig, (ax,) = figure(width=6.0)
    idx = torch.arange(k).numpy()
    ax.bar(idx - 0.2, empirical.numpy(), width=0.4, label="empirical p̂_data(k)")
    ax.bar(idx + 0.2, fitted.numpy(), width=0.4, label="model fitted by minimising the NLL")
    ax.set(
        xlabel="digit k",
        ylabel="probability",
        xticks=list(range(k)),
        title="The NLL's minimiser is the empirical distribution",
    )
    ax.legend()
    return Evidence(
        numbers={
            "models": models,
            "examples": m,
            "max_abs_gap_nll_vs_m_times_cross_entropy": max(gaps),
            "max_abs_gap_fitted_vs_empirical": float((fitted - empirical).abs().max()),
        },
        figures=[
            Figure(
                fig,
                "Minimising the negative log-likelihood of a categorical model "
                "over the digit labels recovers their empirical frequencies.",
            )
        ],
    )


# ------------------------------------------------------------ MSE is a Gaussian NLL


def _decide_mse_gaussian(n: dict) -> tuple[str, str]:
    formula = n["max_abs_gap_formula_vs_library"]
    const = n["max_abs_gap_nll_minus_half_sse_vs_constant"]
    params = n["max_abs_gap_parameters_mse_fit_vs_nll_fit"]
    return verdict(
        formula < 1e-9 and const < 1e-9 and params < 1e-6,
        f"the notes' formula matches gaussian_nll to {formula:.1e}; NLL - SSE/(2σ²) equals "
        f"(m/2)·log(2πσ²) to {const:.1e}; the least-squares and the maximum-likelihood fits "
        f"agree to {params:.1e} (want < 1e-9, 1e-9, 1e-6)",
    )


@claim(
    id="mle.mse_is_gaussian_nll",
    section=SECTION,
    statement="Mean Square Error is the cross-entropy between the empirical distribution and a "
    "Gaussian model: H(p̂_data, g) = ½ Σ_i (log(2πσ²) + (x_i - μ)²/σ²).",
    method="Regress pixel 36 of the digits on its 8 neighbours with a linear model. (1) "
    "Evaluate the notes' formula term by term against gaussian_nll(full=True) summed; "
    "(2) check that NLL - SSE/(2σ²) is the constant (m/2) log(2πσ²) for several σ; (3) fit "
    "the weights once by least squares (MSE) and once by minimising the Gaussian NLL with a "
    "fixed σ, and compare them.",
    criterion="Supported if the formula and the library agree to 1e-9, the difference is the "
    "constant to 1e-9, and the two fits give the same weights to 1e-6 (float64).",
    decide=_decide_mse_gaussian,
)
def mse_is_gaussian_nll(ctx: Context) -> Evidence:
    from ..data import digits

    split = digits(ctx.seed)
    x_all = split.x_train.double()
    # Pixel 36 (row 4, column 4) from its 8 neighbours: a full-rank design, so the
    # parameters are identifiable (several border pixels are always 0).
    neighbours = [27, 28, 29, 35, 37, 43, 44, 45]
    target, features = x_all[:, 36], x_all[:, neighbours]
    design = torch.cat([features, torch.ones(len(target), 1, dtype=torch.float64)], 1)
    m = len(target)
    g = ctx.generator(3)
    w = torch.randn(design.shape[1], generator=g, dtype=torch.float64) * 0.1
    mu = design @ w
    formula_gaps, const_gaps = [], []
    for sigma in (0.3, 1.0, 2.5):
        var = torch.full_like(target, sigma**2)
        notes = 0.5 * (torch.log(2 * math.pi * var) + (target - mu) ** 2 / var).sum()
        library = losses.gaussian_nll(mu, target, var, full=True, reduction="sum")
        formula_gaps.append(abs(float(notes - library)))
        sse = ((target - mu) ** 2).sum()
        const_gaps.append(
            abs(float(library - sse / (2 * sigma**2) - 0.5 * m * math.log(2 * math.pi * sigma**2)))
        )
    w_mse = torch.linalg.lstsq(design, target.unsqueeze(1)).solution.squeeze(1)
    theta = torch.zeros(design.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [theta],
        max_iter=500,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-13,
        tolerance_change=1e-15,
    )
    sigma_fixed = torch.full_like(target, 0.7**2)

    def closure():
        optimizer.zero_grad()
        loss = losses.gaussian_nll(design @ theta, target, sigma_fixed, full=True)
        loss.backward()
        return loss

    for _ in range(5):
        optimizer.step(closure)
    w_nll = theta.detach()
    fig, (ax,) = figure(width=5.0)
    ax.scatter(w_mse.numpy(), w_nll.numpy(), s=12)
    lim = float(max(w_mse.abs().max(), w_nll.abs().max())) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=1)
    ax.set(
        xlabel="weights fitted by least squares (MSE)",
        ylabel="weights fitted by Gaussian maximum likelihood",
        title="Same fit, two names",
    )
    return Evidence(
        numbers={
            "examples": m,
            "sigmas": [0.3, 1.0, 2.5],
            "max_abs_gap_formula_vs_library": max(formula_gaps),
            "max_abs_gap_nll_minus_half_sse_vs_constant": max(const_gaps),
            "max_abs_gap_parameters_mse_fit_vs_nll_fit": float((w_mse - w_nll).abs().max()),
        },
        figures=[
            Figure(
                fig,
                "The 64 regression weights fitted by least squares and by "
                "maximising a Gaussian likelihood lie on the diagonal.",
            )
        ],
    )
