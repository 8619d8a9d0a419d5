"""Claims about calibration (the notes: label smoothing "is also falling under the field of
Neural Networks Calibration (like other techniques such as temperature scaling)")."""

from __future__ import annotations

import torch

from ... import losses
from ...calibration import (
    TemperatureScaling,
    calibration_error,
    plot_reliability,
    reliability_diagram,
)
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure
from ..stats import mean as _mean
from .smoothing import ECE_BINS, EPSILONS, t_halfwidth, trained_with_smoothing

SECTION = "Calibration"


def _decide_temperature_scaling(n: dict) -> tuple[str, str]:
    before, after = n["ece_before"], n["ece_after"]
    drops = [b - a for b, a in zip(before, after, strict=True)]
    drop, half = _mean(drops), t_halfwidth(drops)
    nll_b, nll_a = _mean(n["nll_before"]), _mean(n["nll_after"])
    changed = sum(n["predictions_changed"])
    same_acc = changed == 0 and n["accuracy_before"] == n["accuracy_after"]
    temps = ", ".join(f"{t:.2f}" for t in n["temperature"])
    reason = (
        f"over {len(drops)} seeds (T = {temps}): test ECE {_mean(before):.3f} → "
        f"{_mean(after):.3f}, paired drop {drop:+.3f} ± {half:.3f} (95% t-interval); NLL "
        f"{nll_b:.3f} → {nll_a:.3f}; accuracy {_mean(n['accuracy_before']):.4f} → "
        f"{_mean(n['accuracy_after']):.4f}, {changed} of "
        f"{n['test_examples'] * len(drops)} predictions changed"
    )
    if not same_acc or nll_a > nll_b or drop <= 0:
        return verdict(False, reason)
    if drop - half > 0:
        return verdict(True, reason + " (the ECE interval lies above 0)")
    return verdict(False, reason + " (ECE lower, within the seeds' spread)", inconclusive=True)


@claim(
    id="calibration.temperature_scaling",
    section=SECTION,
    statement='Label smoothing "is also falling under the field of Neural Networks '
    'Calibration (like other techniques such as temperature scaling)": temperature scaling '
    "(dividing the logits by one scalar T fitted on held-out data, Guo et al. 2017) lowers "
    "the calibration error of an overconfident network without changing its accuracy.",
    method="Take the overconfident networks of smoothing.overconfidence (ε = 0: the lab's MLP "
    "trained on 200 digits for 300 epochs, past 100% training accuracy; one per seed). Fit "
    "mldl.calibration.TemperatureScaling on the validation split's logits (LBFGS on the NLL), "
    "then on the test split compare ECE (15 equal-width bins), NLL and accuracy of softmax(z) "
    "and softmax(z / T), and count the predictions whose class changes.",
    criterion="Supported if the 95% t-interval of the seed-paired ECE drop (before - after) "
    "lies above 0, the mean test NLL does not rise, and no prediction changes (accuracy "
    "identical). Not supported if a prediction changes, the NLL rises or the mean ECE does "
    "not fall; inconclusive if ECE falls within the seeds' spread.",
    decide=_decide_temperature_scaling,
)
def temperature_scaling(ctx: Context) -> Evidence:
    runs = trained_with_smoothing(ctx)
    i = EPSILONS.index(0.0)
    val, test = runs["val_logits"][:, i], runs["test_logits"][:, i]
    y_val, y_test = runs["y_val"], runs["y_test"]
    seeds = val.shape[0]
    n: dict[str, list] = {
        k: []
        for k in (
            "temperature",
            "ece_before",
            "ece_after",
            "nll_before",
            "nll_after",
            "accuracy_before",
            "accuracy_after",
            "predictions_changed",
        )
    }
    scaled = []
    for r in range(seeds):
        ts = TemperatureScaling().fit(val[r], y_val)
        with torch.no_grad():
            z_after = ts(test[r])
        scaled.append(z_after)
        n["temperature"].append(float(ts.temperature.detach()))
        for tag, z in (("before", test[r]), ("after", z_after)):
            n[f"ece_{tag}"].append(float(calibration_error(z.softmax(1), y_test, n_bins=ECE_BINS)))
            n[f"nll_{tag}"].append(float(losses.cross_entropy(z, y_test)))
            n[f"accuracy_{tag}"].append(float((z.argmax(1) == y_test).double().mean()))
        n["predictions_changed"].append(int((z_after.argmax(1) != test[r].argmax(1)).sum()))

    fig, axes = figure(ncols=3, width=3.7, height=3.7)
    pooled_y = y_test.repeat(seeds)
    for ax, logits, title, tag in (
        (axes[0], test, "Before: softmax(z)", "before"),
        (axes[1], torch.stack(scaled), "After: softmax(z / T)", "after"),
    ):
        diagram = reliability_diagram(logits.softmax(-1).reshape(-1, 10), pooled_y, ECE_BINS)
        plot_reliability(
            diagram,
            ax,
            title=f"{title}\nECE {_mean(n[f'ece_{tag}']):.3f} · NLL "
            f"{_mean(n[f'nll_{tag}']):.3f} · acc {_mean(n[f'accuracy_{tag}']):.3f}",
        )
    axes[1].get_legend().remove()
    ax = axes[2]
    pos = torch.arange(seeds).double()
    ax.bar(pos - 0.2, n["ece_before"], width=0.4, color=PALETTE[1], label="before")
    ax.bar(pos + 0.2, n["ece_after"], width=0.4, color=PALETTE[0], label="after")
    ticks = [f"seed {r}\nT = {t:.2f}" for r, t in enumerate(n["temperature"])]
    ax.set(
        xticks=pos.tolist(),
        xticklabels=ticks,
        ylabel="test ECE (15 bins)",
        title="ECE per seed (T: fitted temperature)",
    )
    ax.legend()
    return Evidence(
        numbers={
            "seeds": seeds,
            "validation_examples": len(y_val),
            "test_examples": len(y_test),
            **n,
        },
        figures=[
            Figure(
                fig,
                "The unsmoothed, overconfident MLP on the test digits before and after "
                "temperature scaling (seeds pooled; numbers are means over seeds), and each "
                "seed's ECE with its fitted temperature T.",
            )
        ],
    )
