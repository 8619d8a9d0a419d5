r"""Calibration: expected calibration error, reliability diagrams, temperature scaling.

The notes: label smoothing "tackles not only the problem of overfitting but also
overconfidence" and belongs to "Neural Networks Calibration (like other techniques such as
temperature scaling)". A model is calibrated when, among the predictions it makes with
confidence p, a fraction p is correct.

* :func:`calibration_error`: with M bins :math:`B_m` of predictions,

  .. math::
      \mathrm{ECE} = \sum_m \frac{|B_m|}{n} \left|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\right|

  (``norm='l1'``), its root-mean-square form (``'l2'``) and the maximum gap (``'max'``,
  MCE); bins of equal width (``'uniform'``, Guo et al. 2017) or of equal mass
  (``'equal_mass'``, tie-aware: equal confidences always share a bin); top-label (the
  predicted class's probability) or class-wise (every class's probability against "is this
  the class", averaged over classes; Kull et al. 2019).
* :func:`reliability_diagram` returns the per-bin numbers, :func:`plot_reliability` draws
  them.
* :class:`TemperatureScaling`: one scalar T fitted on validation logits by LBFGS on the NLL
  (Guo et al. 2017); dividing logits by T changes confidence, never the predicted class.

Bins are closed on the right, :math:`(l_m, u_m]`, with 0 in the first (as in Guo et al.'s
reference code). torchmetrics closes them on the left and gives confidence 1.0 a bin of its
own, so the two agree except for confidences on a bin edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _checks

__all__ = [
    "ReliabilityDiagram",
    "TemperatureScaling",
    "calibration_error",
    "plot_reliability",
    "reliability_diagram",
]

NORMS = ("l1", "l2", "max")
BINNINGS = ("uniform", "equal_mass")
KINDS = ("top_label", "classwise")


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin calibration numbers: each bin's edges, its predictions' mean confidence, their
    accuracy (fraction correct) and how many there are. Empty bins have count 0 and NaN
    confidence and accuracy."""

    lower: Tensor
    upper: Tensor
    confidence: Tensor
    accuracy: Tensor
    count: Tensor

    @property
    def weight(self) -> Tensor:
        """Each bin's share of the predictions, |B_m| / n."""
        return self.count / self.count.sum()

    @property
    def gap(self) -> Tensor:
        """|acc - conf| per bin (0 for empty bins)."""
        return torch.nan_to_num((self.accuracy - self.confidence).abs(), nan=0.0)


def _top_label(probs: Tensor, target: Tensor, fn: str) -> tuple[Tensor, Tensor]:
    """Confidence of the predicted class and whether it is right, from (N, C) or binary (N,)
    probabilities (the probability of class 1, read as the two classes [1 - p, p])."""
    _checks.floating(probs, "probs", fn)
    _checks.tensor(target, "target", fn)
    if probs.dim() == 1:
        probs = torch.stack([1 - probs, probs], dim=1)
    _checks.ndim(probs, (2,), "probs", fn)
    if target.shape != probs.shape[:1]:
        raise ValueError(
            f"{fn}: target: expected one class index per row, shape {tuple(probs.shape[:1])}, "
            f"got {tuple(target.shape)}"
        )
    _checks.same_device({"probs": probs, "target": target}, fn)
    target = _checks.class_indices(target, probs.shape[1], "target", fn)
    _checks.distributions(probs, 1, "probs", fn)
    if probs.shape[0] == 0:
        raise ValueError(f"{fn}: probs: needs at least one prediction, got none")
    confidence, predicted = probs.max(dim=1)
    # Bins sum up to millions of values: float64, so a float32 sum does not drift.
    return confidence.double(), (predicted == target).double()


def _edges(confidence: Tensor, n_bins: int, binning: str) -> Tensor:
    """Bin edges in [0, 1]: M+1 evenly spaced, or quantiles of the confidences (duplicates
    merged, so tied confidences never straddle a bin edge)."""
    if binning == "uniform" or confidence.numel() == 0:
        return torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype, device=confidence.device)
    q = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype, device=confidence.device)
    inner = torch.quantile(confidence, q[1:-1])
    edges = torch.cat([q[:1], inner, q[-1:]])
    return torch.unique(edges)  # sorted; ties between quantiles collapse


def _binned(confidence: Tensor, correct: Tensor, edges: Tensor) -> ReliabilityDiagram:
    m = edges.numel() - 1
    # (l, u] bins: the index of the first edge >= c, minus one; 0 belongs to the first bin.
    index = (torch.bucketize(confidence.contiguous(), edges, right=False) - 1).clamp(0, m - 1)
    count = torch.zeros(m, dtype=confidence.dtype, device=confidence.device)
    count.scatter_add_(0, index, torch.ones_like(confidence))
    conf_sum = torch.zeros_like(count).scatter_add_(0, index, confidence)
    acc_sum = torch.zeros_like(count).scatter_add_(0, index, correct)
    return ReliabilityDiagram(edges[:-1], edges[1:], conf_sum / count, acc_sum / count, count)


def _check_options(n_bins: int, norm: str, binning: str, fn: str) -> int:
    n_bins = _checks.integer(n_bins, "n_bins", fn, low=1)
    _checks.one_of(norm, NORMS, "norm", fn)
    _checks.one_of(binning, BINNINGS, "binning", fn)
    return n_bins


def reliability_diagram(
    probs: Tensor, target: Tensor, n_bins: int = 15, binning: str = "uniform"
) -> ReliabilityDiagram:
    """Top-label reliability numbers: per bin of confidence, mean confidence and accuracy.

    Shape:
        probs: :math:`(N, C)` probabilities, or :math:`(N)` for the positive class of a
        binary problem; target: :math:`(N)` class indices.

    >>> import torch
    >>> d = reliability_diagram(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]),
    ...                         torch.tensor([0, 1, 1]), n_bins=2)
    >>> d.count, d.accuracy  # float64: the bins' sums do not drift with N
    (tensor([0., 3.], dtype=torch.float64), tensor([   nan, 0.6667], dtype=torch.float64))
    """
    fn = "reliability_diagram"
    n_bins = _check_options(n_bins, "l1", binning, fn)
    confidence, correct = _top_label(probs, target, fn)
    return _binned(confidence, correct, _edges(confidence, n_bins, binning))


def _error(diagram: ReliabilityDiagram, norm: str) -> Tensor:
    gap, weight = diagram.gap, diagram.weight
    if norm == "l1":
        return (weight * gap).sum()
    if norm == "l2":
        return (weight * gap**2).sum().sqrt()
    return gap[diagram.count > 0].max()


def calibration_error(
    probs: Tensor,
    target: Tensor,
    *,
    n_bins: int = 15,
    norm: str = "l1",
    binning: str = "uniform",
    kind: str = "top_label",
) -> Tensor:
    r"""Expected (``'l1'``), root-mean-square (``'l2'``) or maximum (``'max'``) calibration
    error; see the module docstring for the formulas.

    ``kind='top_label'`` bins the predicted class's probability against whether the
    prediction is right; ``'classwise'`` bins every class's probability against whether
    that class is the target, and averages the C errors.

    Shape:
        probs: :math:`(N, C)` probabilities, or :math:`(N)` for the positive class of a
        binary problem; target: :math:`(N)` class indices. Output: scalar.

    >>> import torch
    >>> probs = torch.full((10, 2), 0.5); probs[:, 0] = 0.9; probs[:, 1] = 0.1
    >>> calibration_error(probs, torch.tensor([0] * 6 + [1] * 4))  # 90% sure, 60% right
    tensor(0.3000)
    """
    fn = "calibration_error"
    n_bins = _check_options(n_bins, norm, binning, fn)
    _checks.one_of(kind, KINDS, "kind", fn)
    # a metric, not a training loss: the binning is piecewise constant, so no gradient
    # (and no autograd graph kept alive by probabilities that came from a model)
    probs = probs.detach() if isinstance(probs, Tensor) else probs
    confidence, correct = _top_label(probs, target, fn)
    if kind == "top_label":
        error = _error(_binned(confidence, correct, _edges(confidence, n_bins, binning)), norm)
        return error.to(probs.dtype)
    probs = probs if probs.dim() == 2 else torch.stack([1 - probs, probs], dim=1)
    out_dtype = probs.dtype
    probs = probs.double()
    hit = F.one_hot(target.long(), probs.shape[1]).double()
    errors = [
        _error(_binned(p, h, _edges(p, n_bins, binning)), norm)
        for p, h in zip(probs.unbind(1), hit.unbind(1), strict=True)
    ]
    return torch.stack(errors).mean().to(out_dtype)


def plot_reliability(diagram: ReliabilityDiagram, ax=None, *, title: str | None = None):
    """Draw a reliability diagram: accuracy per bin as bars against the diagonal of perfect
    calibration, the gap shaded, and the share of predictions per bin underneath. Returns the
    matplotlib ``Axes`` (needs matplotlib, from the ``lab`` extra)."""
    import matplotlib.pyplot as plt

    if not isinstance(diagram, ReliabilityDiagram):
        raise TypeError(
            "plot_reliability: diagram: expected a ReliabilityDiagram (from "
            f"reliability_diagram), got {type(diagram).__name__}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    lower, upper = diagram.lower.cpu().numpy(), diagram.upper.cpu().numpy()
    width, mid = upper - lower, (lower + upper) / 2
    acc = torch.nan_to_num(diagram.accuracy).cpu().numpy()
    conf = torch.nan_to_num(diagram.confidence, nan=0.0).cpu().numpy()
    filled = (diagram.count > 0).cpu().numpy()
    ax.bar(
        mid[filled],
        acc[filled],
        width=width[filled],
        color="#4C72B0",
        edgecolor="white",
        label="accuracy",
    )
    ax.bar(
        mid[filled],
        (conf - acc)[filled],
        bottom=acc[filled],
        width=width[filled],
        color="#DD8452",
        alpha=0.45,
        edgecolor="#DD8452",
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], ls="--", color="0.3", lw=1, label="perfect calibration")
    share = diagram.weight.cpu().numpy()
    ax.bar(
        mid,
        share * 0.25,
        width=width,
        bottom=0,
        color="0.6",
        alpha=0.5,
        label="share of predictions (x0.25)",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    return ax


class TemperatureScaling(nn.Module):
    r"""Calibrate a trained classifier with one temperature: ``softmax(logits / T)``.

    ``fit(logits, labels)`` minimises the validation negative log-likelihood over
    :math:`\log T` with LBFGS (T starts at 1.5, as in Guo et al.'s reference code; the log
    keeps T positive). The predicted class never changes, only the confidence.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randint(0, 3, (500,), generator=g)
    >>> logits = 4 * torch.randn(500, 3, generator=g); logits[torch.arange(500), y] += 3
    >>> ts = TemperatureScaling().fit(logits, y)
    >>> ts.temperature.item() > 1  # these logits were overconfident
    True
    """

    def __init__(self, temperature: float = 1.5) -> None:
        super().__init__()
        t = _checks.number(
            temperature,
            "temperature",
            "TemperatureScaling",
            low=0.0,
            low_open=True,
            high=math.inf,
            high_open=True,
        )
        self.log_temperature = nn.Parameter(torch.tensor(t).log())

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.exp()

    def forward(self, logits: Tensor) -> Tensor:
        """The calibrated logits, ``logits / T`` (feed them to softmax or a loss)."""
        _checks.floating(logits, "logits", "TemperatureScaling")
        return logits / self.temperature.to(logits.dtype)

    def fit(self, logits: Tensor, labels: Tensor, *, max_iter: int = 50) -> TemperatureScaling:
        """Fit T on held-out logits and labels (never on the training set); returns self."""
        fn = "TemperatureScaling.fit"
        _checks.floating(logits, "logits", fn)
        _checks.ndim(logits, (2,), "logits", fn)
        _checks.tensor(labels, "labels", fn)
        if labels.shape != logits.shape[:1]:
            raise ValueError(
                f"{fn}: labels: expected shape {tuple(logits.shape[:1])}, got {tuple(labels.shape)}"
            )
        labels = _checks.class_indices(labels, logits.shape[1], "labels", fn)
        if logits.shape[0] == 0:
            raise ValueError(f"{fn}: logits: needs at least one validation example, got none")
        max_iter = _checks.integer(max_iter, "max_iter", fn, low=1)
        _checks.values(logits, _checks.LOGITS, "logits", fn)
        logits = logits.detach()
        optimizer = torch.optim.LBFGS(
            [self.log_temperature], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(self(logits), labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        return self
