r"""Boltzmann machines with latent variables: the RBM, the deep belief network and the deep
Boltzmann machine (the notes' "Boltzmann machines" paragraph).

A restricted Boltzmann machine couples visible units :math:`v` and hidden units :math:`h`
through a weight matrix :math:`W` and no other edges:

.. math::
    E(v, h) = -b^\top v - c^\top h - v^\top W h,\qquad
    p(v, h) = \frac{e^{-E(v, h)}}{Z},\qquad
    F(v) = -\log \sum_h e^{-E(v, h)}
         = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})

so both conditionals factorise: :math:`p(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j})` and
:math:`p(v_i = 1 \mid h) = \sigma(b_i + W_{i:} h)`. Gaussian visible units (fixed standard
deviation :math:`\sigma`) replace :math:`-b^\top v` by
:math:`\sum_i (v_i - b_i)^2 / 2\sigma^2` and :math:`v` by :math:`v/\sigma` in the coupling;
then :math:`v \mid h \sim \mathcal N(b + \sigma W h, \sigma^2)`.

The log-likelihood gradient is a difference of two expectations,
:math:`\partial \log p(v) / \partial W = \mathbb E[v h^\top \mid v] - \mathbb E_{model}[v h^\top]`;
the first is exact, the second is estimated from Gibbs chains: restarted at the data for
contrastive divergence (CD-k), kept running across updates for persistent CD (PCD, also called
stochastic maximum likelihood, what scikit-learn's ``BernoulliRBM`` runs with k = 1).

A deep Boltzmann machine stacks layers :math:`h^0 = v, h^1, \dots, h^L` with couplings between
neighbours only, :math:`E = -\sum_l b_l^\top h^l - \sum_l h^{l\top} W_l h^{l+1}`; the RBM is
the case L = 1. Layers of one parity are conditionally independent given the other parity,
which gives every algorithm here one shape:

* exact :math:`\log Z`: enumerate the layers of one parity (the smaller set of units), sum the
  other parity out in closed form;
* annealed importance sampling (AIS, Salakhutdinov & Murray 2008): anneal from a model with no
  couplings (its :math:`Z_A` known) to the model through :math:`p_\beta \propto
  e^{-(1-\beta) E_A - \beta E}`, with the odd layers summed out, Gibbs sweeps at each
  :math:`\beta`, and :math:`\log \hat Z = \log Z_A + \log \operatorname{mean}_m w_m`;
* sampling: alternate the two parities.

A deep belief network (Hinton et al. 2006) is a stack of RBMs trained greedily, each on the
hidden probabilities of the one below; it samples by Gibbs in the top RBM and one directed
down pass, and becomes an ``nn.Sequential`` classifier for discriminative fine-tuning.

Models save through ``state_dict`` with their hyper-parameters as extra state (plain Python
values, so ``torch.load(..., weights_only=True)`` reads them back); ``from_state_dict``
rebuilds a model from it. Persistent chains are training state, not model state: they are not
saved, and a loaded model starts new chains when it is trained further.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks

__all__ = ["DBM", "DBN", "RBM", "LogPartition", "ais_schedule"]

VISIBLE_KINDS = ("bernoulli", "gaussian")
METHODS = ("pcd", "cd")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class LogPartition(NamedTuple):
    """An estimate of :math:`\\log Z`: its value, its standard error (0 when exact), the method
    (``"exact"`` or ``"ais"``) and, for AIS, the per-run log importance weights (their spread
    says how far the estimate can be trusted)."""

    value: float
    std_error: float
    method: str
    log_weights: Tensor | None = None


# ------------------------------------------------------------------------------ helpers


def _generator(generator: torch.Generator | int | None, device: torch.device, fn: str):
    """A generator on ``device``: None (the global one), an int seed, or a Generator."""
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        if generator.device.type != device.type:
            raise ValueError(
                f"{fn}: generator: expected a generator on {device.type}, got one on "
                f"{generator.device.type}"
            )
        return generator
    seed = _checks.integer(generator, "generator", fn, low=0)
    return torch.Generator(device=device).manual_seed(seed)


def _progress(iterable: Iterable, progress: bool | None, desc: str, total: int):
    """``iterable`` behind a tqdm bar when asked (default: when stderr is a terminal)."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def _bernoulli(p: Tensor, generator) -> Tensor:
    """0/1 draws with probabilities ``p``, in ``p``'s dtype: ``u < p`` for uniform ``u``.
    The same distribution as ``torch.bernoulli(p)``, whose CPU kernel draws element by
    element and took ~5x as long for a 100x100 ``p`` (a third of an RBM update)."""
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return u.lt_(p)


def _check_rate(value: float | None, name: str, fn: str, *, low_open=False) -> float:
    return _checks.number(value, name, fn, low=0.0, low_open=low_open)


def ais_schedule(n_betas: int, *, dtype=torch.float64, device=None) -> Tensor:
    """Inverse temperatures from 0 to 1 shaped like Salakhutdinov & Murray's (2008): steps of
    1e-3 up to 0.5, 1e-4 up to 0.9, 1e-5 up to 1 (14,500 in all), scaled to ``n_betas`` points
    (500/14,500 of them below 0.5, 4,000/14,500 below 0.9), so that most of them sit where the
    distributions change fastest."""
    n_betas = _checks.integer(n_betas, "n_betas", "ais_schedule", low=3)
    if n_betas < 30:  # too few points to shape: evenly spaced, 0 and 1 included
        return torch.linspace(0.0, 1.0, n_betas, dtype=dtype, device=device)
    n1 = round(n_betas * 500 / 14500)
    n2 = round(n_betas * 4000 / 14500)
    n3 = n_betas - n1 - n2  # >= 20: the last segment ends at 1
    parts = [
        torch.linspace(0.0, 0.5, n1 + 1, dtype=dtype, device=device)[:-1],
        torch.linspace(0.5, 0.9, n2 + 1, dtype=dtype, device=device)[:-1],
        torch.linspace(0.9, 1.0, n3, dtype=dtype, device=device),
    ]
    return torch.cat(parts)


# ------------------------------------------------------- one core for RBMs and DBMs alike


@dataclass(frozen=True)
class _Layers:
    """A layered Boltzmann machine's parameters: ``weights[l]`` couples layer l (rows) to
    layer l + 1 (columns); ``biases[l]`` is layer l's; layer 0 is visible (Bernoulli or Gaussian
    with standard deviation ``sigma``), the others Bernoulli."""

    weights: Sequence[Tensor]
    biases: Sequence[Tensor]
    gaussian: bool = False
    sigma: float = 1.0

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def sizes(self) -> list[int]:
        return [b.shape[0] for b in self.biases]

    def input(self, states: Sequence[Tensor | None], layer: int) -> Tensor:
        """Layer ``layer``'s total input from its neighbours (its logits; for Gaussian visible
        units, their mean): :math:`b_l + h^{l-1} W_{l-1} + h^{l+1} W_l^\\top`."""
        x = self.biases[layer]
        if layer > 0:
            below = states[layer - 1]
            if layer == 1 and self.gaussian:
                below = below / self.sigma
            x = x + below @ self.weights[layer - 1]
        if layer < self.depth:
            above = states[layer + 1] @ self.weights[layer].T
            x = x + (self.sigma * above if layer == 0 and self.gaussian else above)
        return x

    def log_z_base(self, base: Tensor) -> Tensor:
        """:math:`\\log Z_A` of the uncoupled model: visible biases ``base``, hidden biases 0."""
        hidden = sum(self.sizes[1:]) * math.log(2.0)
        if self.gaussian:
            return base.new_tensor(base.shape[0] * (_LOG_SQRT_2PI + math.log(self.sigma)) + hidden)
        return F.softplus(base).sum() + hidden

    def given_terms(self, states, parity: int, base: Tensor) -> tuple[Tensor, Tensor]:
        r"""The given layers' own energy terms, ``(A, B)`` with the tempered term
        :math:`(1-\beta) A + \beta B`: :math:`A = {b_A}^\top v` and
        :math:`B = b_0^\top v + \sum_l b_l^\top h^l` (Gaussian visible units:
        :math:`-\lVert v - b\rVert^2 / 2\sigma^2` in place of :math:`b^\top v`)."""
        b0 = self.biases[0]
        a_part = b_part = 0.0
        for layer in range(parity, self.depth + 1, 2):
            x = states[layer]
            if layer > 0:
                b_part = b_part + x @ self.biases[layer]
            elif self.gaussian:
                a_part = -((x - base) ** 2).sum(-1) / (2 * self.sigma**2)
                b_part = b_part - ((x - b0) ** 2).sum(-1) / (2 * self.sigma**2)
            else:
                a_part, b_part = x @ base, b_part + x @ b0
        return a_part, b_part

    def log_marginal(self, states, parity: int, beta: float | Tensor, base: Tensor | None):
        r""":math:`\log \sum_{\text{other parity}} e^{-(1-\beta) E_A - \beta E}` for the
        given layers of ``parity`` (the others summed out in closed form; a summed-out hidden
        layer gives :math:`\sum_j \operatorname{softplus}(\beta a_j)` with a its input);
        ``base`` is the uncoupled model's visible bias (zeros when None). Shape: the batch
        of the states."""
        b0 = self.biases[0]
        base = torch.zeros_like(b0) if base is None else base
        a_part, b_part = self.given_terms(states, parity, base)
        total = (1 - beta) * a_part + beta * b_part
        for layer in range(1 - parity, self.depth + 1, 2):
            if layer > 0:
                total = total + F.softplus(beta * self.input(states, layer)).sum(-1)
                continue
            a = (1 - beta) * base + beta * self.input(states, 0)  # the visible layer
            if self.gaussian:
                s2 = self.sigma**2
                const = ((1 - beta) * base**2 + beta * b0**2).sum() / (2 * s2)
                lead = b0.shape[0] * (_LOG_SQRT_2PI + math.log(self.sigma))
                total = total + (a**2).sum(-1) / (2 * s2) - const + lead
            else:
                total = total + F.softplus(a).sum(-1)
        return total

    def sample_layer(self, states, layer: int, beta, base: Tensor | None, generator):
        """Layer ``layer`` drawn from :math:`p_\\beta` given its neighbours; returns the
        sample and its mean."""
        a = self.input(states, layer)
        if layer == 0:
            base = torch.zeros_like(a) if base is None else base
            mean_or_logit = (1 - beta) * base + beta * a
            if self.gaussian:
                noise = torch.randn(
                    mean_or_logit.shape,
                    generator=generator,
                    dtype=a.dtype,
                    device=a.device,
                )
                return mean_or_logit + self.sigma * noise, mean_or_logit
            p = torch.sigmoid(mean_or_logit)
        else:
            p = torch.sigmoid(beta * a)
        return _bernoulli(p, generator), p

    def log_partition_exact(self, max_units: int, chunk: int = 1 << 14) -> Tensor:
        """:math:`\\log Z` by enumerating the parity with fewer units (the odd one for Gaussian
        visible units, which are integrated out), in chunks of ``chunk`` configurations."""
        sizes = self.sizes
        units = [sum(sizes[p::2]) for p in (0, 1)]
        parity = 1 if self.gaussian else min((0, 1), key=lambda p: units[p])
        n = units[parity]
        if n > max_units:
            raise ValueError(
                f"log_partition: exact enumeration needs 2^{n} configurations (more than "
                f"2^{max_units}); use method='ais' or raise max_exact_units"
            )
        dtype, device = self.biases[0].dtype, self.biases[0].device
        shifts = torch.arange(n, device=device)
        parts = []
        for start in range(0, 1 << n, chunk):
            codes = torch.arange(start, min(start + chunk, 1 << n), device=device)
            bits = ((codes[:, None] >> shifts) & 1).to(dtype)
            states: list[Tensor | None] = [None] * len(sizes)
            offset = 0
            for layer in range(parity, len(sizes), 2):
                states[layer] = bits[:, offset : offset + sizes[layer]]
                offset += sizes[layer]
            parts.append(torch.logsumexp(self.log_marginal(states, parity, 1.0, None), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    def ais(self, betas: Tensor, n_runs: int, base: Tensor, generator) -> tuple[Tensor, Tensor]:
        """Annealed importance sampling over the even layers (odd ones summed out): returns
        :math:`\\log Z_A` and the ``n_runs`` log importance weights."""
        dtype, device = self.biases[0].dtype, self.biases[0].device
        sizes = self.sizes
        states: list[Tensor | None] = [None] * len(sizes)
        # a draw from the uncoupled model: visible units from their base, even hidden ones fair
        rows = base.expand(n_runs, -1)
        if self.gaussian:
            noise = torch.randn(rows.shape, generator=generator, dtype=dtype, device=device)
            states[0] = rows + self.sigma * noise
        else:
            states[0] = _bernoulli(torch.sigmoid(rows), generator)
        for layer in range(2, len(sizes), 2):
            half = torch.full((n_runs, sizes[layer]), 0.5, dtype=dtype, device=device)
            states[layer] = _bernoulli(half, generator)
        log_w = torch.zeros(n_runs, dtype=dtype, device=device)
        betas = betas.tolist()  # Python floats: one host copy, not one sync per step
        odd = range(1, len(sizes), 2)
        for previous, beta in itertools.pairwise(betas):
            # log f_beta(x) - log f_previous(x) at the current even states x: the given terms
            # are linear in beta, the odd layers' softplus terms share their inputs, which
            # the odd layers' draws below reuse
            a_part, b_part = self.given_terms(states, 0, base)
            log_w += (beta - previous) * (b_part - a_part)
            for layer in odd:
                a = self.input(states, layer)
                log_w += (F.softplus(beta * a) - F.softplus(previous * a)).sum(-1)
                states[layer] = _bernoulli(torch.sigmoid(beta * a), generator)
            for layer in range(0, len(sizes), 2):
                states[layer], _ = self.sample_layer(states, layer, beta, base, generator)
        return self.log_z_base(base), log_w


def _log_partition(
    layers: _Layers,
    method: str,
    *,
    n_runs: int,
    n_betas: int,
    data: Tensor | None,
    generator,
    max_exact_units: int,
    fn: str,
) -> LogPartition:
    """The shared front of ``RBM.log_partition`` and ``DBM.log_partition``."""
    _checks.one_of(method, ("auto", "exact", "ais"), "method", fn)
    max_exact_units = _checks.integer(max_exact_units, "max_exact_units", fn, low=1, high=40)
    sizes = layers.sizes
    smaller = sum(sizes[1::2]) if layers.gaussian else min(sum(sizes[0::2]), sum(sizes[1::2]))
    if method == "auto":
        method = "exact" if smaller <= max_exact_units else "ais"
    with torch.no_grad():
        if method == "exact":
            value = layers.log_partition_exact(max_exact_units)
            return LogPartition(float(value), 0.0, "exact")
        n_runs = _checks.integer(n_runs, "n_runs", fn, low=2)
        base = _base_visible(layers, data, fn)
        betas = ais_schedule(n_betas, dtype=torch.float64)
        log_z_a, log_w = layers.ais(betas, n_runs, base, generator)
        # log mean w, and the delta-method standard error of log of that mean
        shift = log_w.max()
        w = torch.exp(log_w - shift)
        mean = w.mean()
        value = log_z_a + shift + torch.log(mean)
        std_error = w.std() / (math.sqrt(n_runs) * mean)
        return LogPartition(float(value), float(std_error), "ais", log_w)


def _base_visible(layers: _Layers, data: Tensor | None, fn: str) -> Tensor:
    """AIS's starting model: visible units that match the data's means (zeros without data),
    so that the first distributions already put mass where the model does."""
    b0 = layers.biases[0]
    if data is None:
        return torch.zeros_like(b0)
    mean = data.to(b0).mean(0)
    if layers.gaussian:
        return mean
    # the smoothing keeps pixels that are always 0 or 1 from getting infinite biases
    n = data.shape[0]
    p = (mean * n + 0.05) / (n + 0.1)
    return torch.log(p) - torch.log1p(-p)


# ------------------------------------------------------------------------------- the RBM


class RBM(nn.Module):
    r"""A restricted Boltzmann machine with Bernoulli hidden units and Bernoulli or Gaussian
    visible units, trained by CD-k or persistent CD.

    .. math::
        E(v, h) = -b^\top v - c^\top h - v^\top W h,\qquad
        F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})

    (Gaussian visible units: :math:`E = \sum_i (v_i - b_i)^2 / 2\sigma^2 - c^\top h -
    (v/\sigma)^\top W h`.) Each update ascends

    .. math::
        \Delta W \propto \langle v\, p(h \mid v)^\top \rangle_{data}
        - \langle \tilde v\, p(h \mid \tilde v)^\top \rangle_{chains}
        - \lambda W

    with momentum, where :math:`\tilde v` comes from k Gibbs steps started at the batch (CD-k)
    or at the persistent chains' last state (PCD-k). A sparsity target :math:`\rho` adds
    :math:`\kappa(\rho - q_j)` to the hidden biases' (and, times the mean visible vector, to
    the weights') gradient, with :math:`q_j` a running mean of unit j's activation.

    Args:
        n_visible, n_hidden: layer sizes.
        visible: ``"bernoulli"`` (data in [0, 1]: binary, or grey levels read as
            probabilities) or ``"gaussian"`` (real data, best standardised; ``sigma`` is the
            units' fixed standard deviation).
        method: ``"pcd"`` or ``"cd"``; ``k``: Gibbs steps per update.
        learning_rate, momentum, weight_decay (L2 on W), batch_size.
        sparsity_target, sparsity_cost: the target activation and the penalty's weight.
        n_chains: persistent chains (PCD; default ``batch_size``).
        init_std: the standard deviation of the initial weights (biases start at 0).
        generator: int seed or Generator for the initial weights.

    Shape:
        visible batches ``(B, n_visible)``; hidden ``(B, n_hidden)``.

    Example:
        >>> import torch
        >>> from mldl.pgm import RBM
        >>> g = torch.Generator().manual_seed(0)
        >>> data = torch.bernoulli(torch.full((64, 6), 0.3), generator=g)
        >>> rbm = RBM(6, 3, learning_rate=0.1, batch_size=16, generator=0)
        >>> rbm = rbm.fit(data, epochs=5, generator=1, progress=False)
        >>> rbm.transform(data).shape
        torch.Size([64, 3])
        >>> rbm.log_partition().method  # 3 hidden units: summed exactly
        'exact'
    """

    _CONFIG = (
        "n_visible",
        "n_hidden",
        "visible",
        "method",
        "k",
        "learning_rate",
        "momentum",
        "weight_decay",
        "batch_size",
        "sparsity_target",
        "sparsity_cost",
        "n_chains",
        "init_std",
        "sigma",
    )

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        *,
        method: str = "pcd",
        k: int = 1,
        learning_rate: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 100,
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.0,
        n_chains: int | None = None,
        init_std: float = 0.01,
        sigma: float = 1.0,
        generator: torch.Generator | int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        fn = "RBM"
        self.n_visible = _checks.integer(n_visible, "n_visible", fn, low=1)
        self.n_hidden = _checks.integer(n_hidden, "n_hidden", fn, low=1)
        _checks.one_of(visible, VISIBLE_KINDS, "visible", fn)
        _checks.one_of(method, METHODS, "method", fn)
        self.visible, self.method = visible, method
        self.k = _checks.integer(k, "k", fn, low=1)
        self.learning_rate = _check_rate(learning_rate, "learning_rate", fn, low_open=True)
        self.momentum = _checks.number(momentum, "momentum", fn, low=0.0, high=1.0, high_open=True)
        self.weight_decay = _check_rate(weight_decay, "weight_decay", fn)
        self.batch_size = _checks.integer(batch_size, "batch_size", fn, low=1)
        if sparsity_target is not None:
            sparsity_target = _checks.number(
                sparsity_target, "sparsity_target", fn, low=0.0, high=1.0, low_open=True,
                high_open=True,
            )  # fmt: skip
        self.sparsity_target = sparsity_target
        self.sparsity_cost = _check_rate(sparsity_cost, "sparsity_cost", fn)
        self.n_chains = (
            None if n_chains is None else _checks.integer(n_chains, "n_chains", fn, low=1)
        )
        self.init_std = _check_rate(init_std, "init_std", fn)
        self.sigma = _check_rate(sigma, "sigma", fn, low_open=True)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(self.n_visible, self.n_hidden, **factory))
        self.visible_bias = nn.Parameter(torch.zeros(self.n_visible, **factory))
        self.hidden_bias = nn.Parameter(torch.zeros(self.n_hidden, **factory))
        # Greedy DBM pretraining doubles the bottom-up or top-down input (Salakhutdinov &
        # Hinton 2009); 1 everywhere else.
        self._scale_up = self._scale_down = 1.0
        self.reset_parameters(generator)

    # ----------------------------------------------------------------- state and config

    def reset_parameters(self, generator: torch.Generator | int | None = None) -> None:
        """Weights from :math:`\\mathcal N(0, \\text{init\\_std}^2)`, biases 0; training state
        (chains, momentum, history) cleared."""
        g = _generator(generator, self.weight.device, "RBM.reset_parameters")
        with torch.no_grad():
            noise = torch.randn(
                self.weight.shape, generator=g, device=self.weight.device, dtype=self.weight.dtype
            )
            self.weight.copy_(noise * self.init_std)
            self.visible_bias.zero_()
            self.hidden_bias.zero_()
        self._chains: Tensor | None = None
        self._velocity: list[Tensor] | None = None
        self._activity: Tensor | None = None
        self.history_: list[dict[str, float]] = []

    def config(self) -> dict[str, Any]:
        """The hyper-parameters, as plain Python values."""
        return {name: getattr(self, name) for name in self._CONFIG}

    def get_extra_state(self) -> dict[str, Any]:
        return {"class": "RBM", "config": self.config()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        config = state.get("config", {}) if isinstance(state, dict) else {}
        for name in ("n_visible", "n_hidden", "visible"):
            if name in config and config[name] != getattr(self, name):
                raise ValueError(
                    f"RBM.load_state_dict: the state is for {name}={config[name]!r}, this model "
                    f"has {name}={getattr(self, name)!r}; build it with RBM.from_state_dict"
                )
        for name in self._CONFIG:
            if name in config:
                setattr(self, name, config[name])
        self._chains = self._velocity = self._activity = None

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any], **factory) -> RBM:
        """An RBM rebuilt from ``state_dict()`` (e.g. ``torch.load(path, weights_only=True)``),
        hyper-parameters included (device and dtype those of the saved tensors unless
        given)."""
        config = _config_of(state_dict, "RBM")
        model = cls(**config, **_factory_of(state_dict, factory))
        model.load_state_dict(state_dict)
        return model

    @classmethod
    def from_sklearn(cls, estimator, **kwargs) -> RBM:
        """The RBM of a fitted scikit-learn ``BernoulliRBM`` (its ``components_`` are
        :math:`W^\\top`), to evaluate it with this module's exact measures."""
        kwargs.setdefault("dtype", torch.float64)  # sklearn's own precision, by default
        weight = torch.as_tensor(estimator.components_, dtype=torch.float64).T
        model = cls(weight.shape[0], weight.shape[1], **kwargs)
        with torch.no_grad():
            model.weight.copy_(weight)
            model.visible_bias.copy_(torch.as_tensor(estimator.intercept_visible_))
            model.hidden_bias.copy_(torch.as_tensor(estimator.intercept_hidden_))
        return model

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        _apply_to_state(self, fn, ("_chains", "_velocity", "_activity"))
        return out

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, visible={self.visible!r}, "
            f"method={self.method!r}, k={self.k}"
        )

    @property
    def gaussian(self) -> bool:
        return self.visible == "gaussian"

    def _layers(self) -> _Layers:
        return _Layers(
            [self.weight], [self.visible_bias, self.hidden_bias], self.gaussian, self.sigma
        )

    # ------------------------------------------------------------------------ checking

    def _check_visible(self, v: object, name: str, fn: str, *, always: bool = False) -> Tensor:
        """A (B, n_visible) floating batch on this model's device, in this model's dtype;
        values in [0, 1] for Bernoulli units and finite for Gaussian ones (checked when
        ``always`` or with value checks on)."""
        v = _checks.floating(v, name, fn)
        if v.dim() != 2 or v.shape[1] != self.n_visible:
            raise ValueError(
                f"{fn}: {name}: expected shape (batch, {self.n_visible}), got {tuple(v.shape)}"
            )
        if v.device != self.weight.device:
            raise ValueError(f"{fn}: {name} is on {v.device}, the model on {self.weight.device}")
        if always or _checks.checks_enabled():
            _check_values(v, "gaussian" if self.gaussian else "bernoulli", name, fn)
        return v.to(self.weight.dtype)

    def _check_hidden(self, h: object, name: str, fn: str) -> Tensor:
        h = _checks.floating(h, name, fn)
        if h.dim() != 2 or h.shape[1] != self.n_hidden:
            raise ValueError(
                f"{fn}: {name}: expected shape (batch, {self.n_hidden}), got {tuple(h.shape)}"
            )
        if _checks.checks_enabled():
            _check_values(h, "bernoulli", name, fn)
        return h.to(self.weight.dtype)

    # --------------------------------------------------------------- the model's formulas

    def _hidden_logits(self, v: Tensor) -> Tensor:
        """:math:`c + (v/\\sigma)^\\top W`."""
        scale = self._scale_up / self.sigma if self.gaussian else self._scale_up
        return torch.addmm(self.hidden_bias, v, self.weight, alpha=scale)

    def _visible_mean_or_logits(self, h: Tensor) -> Tensor:
        """:math:`b + W h` (Bernoulli: the logits; Gaussian: :math:`b + \\sigma W h`, the mean)."""
        scale = self._scale_down * self.sigma if self.gaussian else self._scale_down
        return torch.addmm(self.visible_bias, h, self.weight.T, alpha=scale)

    def _visible_mean(self, h: Tensor) -> Tensor:
        a = self._visible_mean_or_logits(h)
        return a if self.gaussian else torch.sigmoid(a)

    def _draw_visible(self, h: Tensor, generator) -> Tensor:
        mean = self._visible_mean(h)
        if self.gaussian:
            noise = torch.randn(
                mean.shape, generator=generator, dtype=mean.dtype, device=mean.device
            )
            return mean + self.sigma * noise
        return _bernoulli(mean, generator)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """:math:`E(v, h)` per row; shape ``(B,)``."""
        v = self._check_visible(v, "v", "RBM.energy")
        h = self._check_hidden(h, "h", "RBM.energy")
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"RBM.energy: v has {v.shape[0]} rows, h has {h.shape[0]}")
        coupling = ((v / self.sigma if self.gaussian else v) @ self.weight * h).sum(-1)
        return self._visible_term(v) - h @ self.hidden_bias - coupling

    def _visible_term(self, v: Tensor) -> Tensor:
        """The visible units' own energy: :math:`-b^\\top v`, or
        :math:`\\sum_i (v_i - b_i)^2/2\\sigma^2`."""
        if self.gaussian:
            return ((v - self.visible_bias) ** 2).sum(-1) / (2 * self.sigma**2)
        return -(v @ self.visible_bias)

    def free_energy(self, v: Tensor) -> Tensor:
        """:math:`F(v) = -\\log \\sum_h e^{-E(v, h)}` per row; shape ``(B,)``. Differentiable:
        :math:`\\nabla [F(v_{model}) - F(v_{data})]` is the log-likelihood gradient."""
        v = self._check_visible(v, "v", "RBM.free_energy")
        return self._visible_term(v) - F.softplus(self._hidden_logits(v)).sum(-1)

    def hidden_probabilities(self, v: Tensor) -> Tensor:
        """:math:`p(h_j = 1 \\mid v) = \\sigma(c_j + v^\\top W_{:j})`; shape ``(B, n_hidden)``."""
        v = self._check_visible(v, "v", "RBM.hidden_probabilities")
        return torch.sigmoid(self._hidden_logits(v))

    transform = hidden_probabilities

    def visible_mean(self, h: Tensor) -> Tensor:
        """:math:`\\mathbb E[v \\mid h]`: :math:`\\sigma(b + W h)` (Bernoulli) or
        :math:`b + \\sigma W h` (Gaussian); shape ``(B, n_visible)``."""
        h = self._check_hidden(h, "h", "RBM.visible_mean")
        return self._visible_mean(h)

    def sample_hidden(self, v: Tensor, generator=None) -> Tensor:
        """A draw of :math:`h \\sim p(h \\mid v)`."""
        p = self.hidden_probabilities(v)
        return _bernoulli(p, _generator(generator, p.device, "RBM.sample_hidden"))

    def sample_visible(self, h: Tensor, generator=None) -> Tensor:
        """A draw of :math:`v \\sim p(v \\mid h)`."""
        h = self._check_hidden(h, "h", "RBM.sample_visible")
        return self._draw_visible(h, _generator(generator, h.device, "RBM.sample_visible"))

    @torch.no_grad()
    def gibbs(self, v: Tensor, steps: int = 1, *, generator=None, mean: bool = False) -> Tensor:
        """``steps`` full Gibbs steps :math:`v \\to h \\to v` from ``v``; returns the last
        visible sample (or, with ``mean``, the last :math:`\\mathbb E[v \\mid h]`)."""
        fn = "RBM.gibbs"
        v = self._check_visible(v, "v", fn)
        steps = _checks.integer(steps, "steps", fn, low=1)
        g = _generator(generator, v.device, fn)
        for step in range(steps):
            h = _bernoulli(torch.sigmoid(self._hidden_logits(v)), g)
            if mean and step == steps - 1:
                return self._visible_mean(h)
            v = self._draw_visible(h, g)
        return v

    @torch.no_grad()
    def sample(
        self, n: int, steps: int = 1000, *, generator=None, init: Tensor | None = None,
        mean: bool = False,
    ) -> Tensor:  # fmt: skip
        """``n`` samples from the model: Gibbs chains run ``steps`` steps from ``init`` (default:
        uniform random visible states, or standard normal ones for Gaussian units)."""
        fn = "RBM.sample"
        n = _checks.integer(n, "n", fn, low=1)
        g = _generator(generator, self.weight.device, fn)
        if init is None:
            shape, like = (n, self.n_visible), self.weight
            if self.gaussian:
                init = torch.randn(shape, generator=g, dtype=like.dtype, device=like.device)
            else:
                init = _bernoulli(torch.full(shape, 0.5, dtype=like.dtype, device=like.device), g)
        elif init.shape[0] != n:
            raise ValueError(f"{fn}: init has {init.shape[0]} rows, expected n={n}")
        return self.gibbs(init, steps, generator=g, mean=mean)

    # ------------------------------------------------------------------------- training

    @torch.no_grad()
    def fit(
        self,
        data: Tensor,
        epochs: int = 10,
        *,
        generator: torch.Generator | int | None = None,
        progress: bool | None = None,
        callback: Callable[[RBM, int], None] | None = None,
    ) -> RBM:
        """Train on the rows of ``data`` for ``epochs`` passes in shuffled mini-batches;
        ``callback(self, epoch)`` runs after each. Records the last batch's mean squared
        reconstruction error per epoch in ``history_``. Returns ``self``."""
        fn = "RBM.fit"
        data = self._check_visible(data, "data", fn, always=True)
        if data.shape[0] == 0:
            raise ValueError(f"{fn}: data: expected at least one row, got none")
        epochs = _checks.integer(epochs, "epochs", fn, low=0)
        g = _generator(generator, data.device, fn)
        n = data.shape[0]
        for epoch in _progress(range(epochs), progress, "RBM.fit", epochs):
            # one gather per epoch, then views: a gather per batch cost ~8-19% of an update
            shuffled = data[torch.randperm(n, generator=g, device=data.device)]
            batch = shuffled
            for start in range(0, n, self.batch_size):
                batch = shuffled[start : start + self.batch_size]
                self._update(batch, g)
            h = _bernoulli(torch.sigmoid(self._hidden_logits(batch)), g)
            error = ((batch - self._visible_mean(h)) ** 2).sum(-1).mean()
            self.history_.append(
                {"epoch": len(self.history_) + 1, "reconstruction_error": float(error)}
            )
            if callback is not None:
                callback(self, epoch)
        return self

    def partial_fit(self, batch: Tensor, *, generator=None) -> RBM:
        """One update on ``batch``. Returns ``self``."""
        fn = "RBM.partial_fit"
        batch = self._check_visible(batch, "batch", fn, always=True)
        if batch.shape[0] == 0:
            raise ValueError(f"{fn}: batch: expected at least one row, got none")
        with torch.no_grad():
            self._update(batch, _generator(generator, batch.device, fn))
        return self

    def _negative_chains(self, h_data: Tensor, generator) -> Tensor:
        """The hidden states the negative phase starts from: a draw from p(h | data) for CD,
        the persistent chains for PCD (started from the data on first use)."""
        if self.method == "cd":
            return _bernoulli(h_data, generator)
        m = self.n_chains or self.batch_size
        chains = self._chains
        if chains is None or chains.shape != (m, self.n_hidden) or chains.dtype != h_data.dtype:
            rows = h_data[torch.arange(m, device=h_data.device) % h_data.shape[0]]
            chains = _bernoulli(rows, generator)
        return chains

    def _update(self, v: Tensor, generator) -> None:
        """One CD-k / PCD-k step on batch ``v`` (the formulas in the class docstring)."""
        h_data = torch.sigmoid(self._hidden_logits(v))
        h = self._negative_chains(h_data, generator)
        for _ in range(self.k):
            v_model = self._draw_visible(h, generator)
            h_model = torch.sigmoid(self._hidden_logits(v_model))
            h = _bernoulli(h_model, generator)
        if self.method == "pcd":
            self._chains = h
        b, m = v.shape[0], v_model.shape[0]
        scale = 1 / self.sigma if self.gaussian else 1.0
        sparse = self.sparsity_target is not None and self.sparsity_cost > 0
        if not (self.momentum or self.weight_decay or sparse):
            # plain SGD: add the scaled sums in place (the same update as _ascend's, with no
            # gradient tensors; per-call overhead dominates small batches)
            self._plain_step(v, h_data, v_model, h_model, b, m, scale)
            return
        grad_w = torch.addmm((v.T @ h_data).mul_(scale / b), v_model.T, h_model, alpha=-scale / m)
        grad_v = v.mean(0) - v_model.mean(0)
        if self.gaussian:
            grad_v = grad_v / self.sigma**2
        grad_h = h_data.mean(0) - h_model.mean(0)
        if sparse:
            q = h_data.mean(0)
            self._activity = q if self._activity is None else 0.9 * self._activity + 0.1 * q
            push = self.sparsity_cost * (self.sparsity_target - self._activity)
            grad_h = grad_h + push
            grad_w = grad_w.add_(torch.outer(v.mean(0) * scale, push))
        self._velocity = _ascend(
            [self.weight, self.visible_bias, self.hidden_bias],
            [grad_w, grad_v, grad_h],
            self._velocity,
            self.learning_rate,
            self.momentum,
            [self.weight_decay, 0.0, 0.0],
        )

    def _plain_step(self, v, h_data, v_model, h_model, b: int, m: int, scale: float) -> None:
        """:math:`W \\mathrel{+}= \\eta (v^\\top h_{data} / b - v_m^\\top h_m / m) / \\sigma`,
        :math:`b \\mathrel{+}= \\eta (\\bar v - \\bar v_m) / \\sigma^2`,
        :math:`c \\mathrel{+}= \\eta (\\bar h_{data} - \\bar h_m)`, all in place."""
        lr = self.learning_rate
        bias_scale = 1 / self.sigma**2 if self.gaussian else 1.0
        self.weight.data.addmm_(v.T, h_data, alpha=lr * scale / b)
        self.weight.data.addmm_(v_model.T, h_model, alpha=-lr * scale / m)
        self.visible_bias.data.add_(v.sum(0), alpha=lr * bias_scale / b)
        self.visible_bias.data.add_(v_model.sum(0), alpha=-lr * bias_scale / m)
        self.hidden_bias.data.add_(h_data.sum(0), alpha=lr / b)
        self.hidden_bias.data.add_(h_model.sum(0), alpha=-lr / m)

    # ----------------------------------------------------------------------- evaluation

    def log_partition(
        self,
        method: str = "auto",
        *,
        n_runs: int = 100,
        n_betas: int = 14500,
        data: Tensor | None = None,
        generator: torch.Generator | int | None = None,
        max_exact_units: int = 20,
    ) -> LogPartition:
        """:math:`\\log Z`: ``"exact"`` sums over the smaller layer
        (:math:`\\log Z = \\operatorname{logsumexp}_h [c^\\top h + \\sum_i
        \\operatorname{softplus}(b_i + W_{i:} h)]`), ``"ais"`` estimates it with ``n_runs``
        annealing runs over ``n_betas`` temperatures from a base model fitted to ``data``'s
        means, ``"auto"`` is exact when the smaller layer has at most ``max_exact_units``
        units. Returns a :class:`LogPartition` with the standard error."""
        fn = "RBM.log_partition"
        if data is not None:
            data = self._check_visible(data, "data", fn, always=True)
        return _log_partition(
            self._layers(),
            method,
            n_runs=n_runs,
            n_betas=n_betas,
            data=data,
            generator=_generator(generator, self.weight.device, fn),
            max_exact_units=max_exact_units,
            fn=fn,
        )

    def log_prob(self, v: Tensor, log_z: LogPartition | float | None = None) -> Tensor:
        """:math:`\\log p(v) = -F(v) - \\log Z` per row (``log_z`` from :meth:`log_partition`;
        computed with ``method="auto"`` when not given)."""
        v = self._check_visible(v, "v", "RBM.log_prob", always=True)
        if log_z is None:
            log_z = self.log_partition()
        value = log_z.value if isinstance(log_z, LogPartition) else log_z
        return -self.free_energy(v) - value

    def pseudo_log_likelihood(self, v: Tensor) -> Tensor:
        """The exact pseudo-log-likelihood :math:`\\sum_i \\log p(v_i \\mid v_{-i})` per row,
        every bit flipped (not scikit-learn's one random bit times n_features):
        :math:`\\log p(v_i \\mid v_{-i}) = \\log \\sigma(F(v^{(i)}) - F(v))`, where
        :math:`v^{(i)}` is v with bit i flipped. Bernoulli units and binary v."""
        fn = "RBM.pseudo_log_likelihood"
        if self.gaussian:
            raise ValueError(f"{fn}: defined here for Bernoulli visible units only")
        v = self._check_visible(v, "v", fn, always=True)
        if not bool(((v == 0) | (v == 1)).all()):
            raise ValueError(f"{fn}: v: expected binary values (0 or 1); threshold grey levels")
        with torch.no_grad():
            logits = self._hidden_logits(v)  # (B, H)
            sign = 1 - 2 * v  # +1 where the bit turns on, -1 where it turns off
            base = F.softplus(logits).sum(-1)
            total = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
            # flipping bit i changes the hidden logits by sign_i W_i; chunk over bits so that
            # memory stays (B, chunk, H)
            step = max(1, (1 << 22) // max(1, v.shape[0] * self.n_hidden))
            for i in range(0, self.n_visible, step):
                s = sign[:, i : i + step]
                flipped = logits[:, None, :] + s[..., None] * self.weight[i : i + step]
                # F(v^(i)) - F(v) = -s_i b_i - [sum softplus(flipped) - sum softplus(logits)]
                gap = -s * self.visible_bias[i : i + step] - (
                    F.softplus(flipped).sum(-1) - base[:, None]
                )
                total += F.logsigmoid(gap).sum(-1)
        return total

    def reconstruction_error(self, v: Tensor) -> Tensor:
        """:math:`\\lVert v - \\mathbb E[v \\mid h = p(h \\mid v)] \\rVert^2` per row (one
        mean-field pass up and down)."""
        v = self._check_visible(v, "v", "RBM.reconstruction_error", always=True)
        with torch.no_grad():
            back = self._visible_mean(torch.sigmoid(self._hidden_logits(v)))
            return ((v - back) ** 2).sum(-1)


def _check_values(x: Tensor, kind: str, name: str, fn: str) -> None:
    """Finite, and within [0, 1] for Bernoulli units."""
    if x.numel() == 0:
        return
    x = x.detach()
    if not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValueError(f"{fn}: {name}: expected finite values, got {x[tuple(bad)]} at {bad}")
    if kind == "bernoulli":
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{fn}: {name}: Bernoulli units take values in [0, 1], got values in "
                f"[{lo:g}, {hi:g}] (scale the data, e.g. divide 8-bit pixels by 255, or use "
                f"visible='gaussian' for real-valued data)"
            )


def _ascend(params, grads, velocity, lr, momentum, decays) -> list[Tensor]:
    """The one update rule: :math:`u \\leftarrow \\mu u + \\eta (g - \\lambda \\theta)`,
    :math:`\\theta \\leftarrow \\theta + u` (gradient *ascent* on the log-likelihood)."""
    if velocity is None:
        velocity = [torch.zeros_like(p) for p in params]
    for p, g, u, decay in zip(params, grads, velocity, decays, strict=True):
        if decay:
            g = g - decay * p.detach()
        if momentum:
            u.mul_(momentum).add_(g, alpha=lr)
            p.data.add_(u)
        else:
            p.data.add_(g, alpha=lr)
    return velocity


def _apply_to_state(module: nn.Module, fn, names: tuple[str, ...]) -> None:
    """Apply ``.to()``/``.double()``/``.cuda()``'s ``fn`` to the training state kept outside
    the parameters (persistent chains, momentum buffers, running activity), so that training
    resumes where it was, on the new device and in the new dtype."""
    for name in names:
        value = getattr(module, name)
        if isinstance(value, Tensor):
            setattr(module, name, fn(value))
        elif isinstance(value, list):
            setattr(module, name, [fn(t) for t in value])


def _factory_of(state_dict: dict[str, Any], factory: dict[str, Any]) -> dict[str, Any]:
    """``device`` and ``dtype`` for a rebuilt model: as given, else those of the saved
    tensors."""
    saved = next((v for v in state_dict.values() if isinstance(v, Tensor)), None)
    out = dict(factory)
    if saved is not None:
        out.setdefault("dtype", saved.dtype)
        out.setdefault("device", saved.device)
    return out


def _config_of(state_dict: dict[str, Any], expected: str) -> dict[str, Any]:
    state = state_dict.get("_extra_state")
    if not isinstance(state, dict) or state.get("class") != expected:
        got = state.get("class") if isinstance(state, dict) else None
        raise ValueError(
            f"{expected}.from_state_dict: expected the state_dict of a {expected}, got "
            f"{'one without hyper-parameters' if got is None else 'that of a ' + str(got)}"
        )
    return dict(state["config"])


def _check_sizes(sizes: Sequence[int], fn: str, minimum: int) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < minimum:
        raise ValueError(
            f"{fn}: layer_sizes: expected a sequence of at least {minimum} sizes "
            f"(visible first), got {sizes!r}"
        )
    return [_checks.integer(s, f"layer_sizes[{i}]", fn, low=1) for i, s in enumerate(sizes)]


# ------------------------------------------------------------------------------- the DBN


class DBN(nn.Module):
    r"""A deep belief network: RBMs stacked and trained greedily (Hinton, Osindero & Teh 2006).

    RBM l is trained on the hidden probabilities of RBM l - 1 (the data for l = 0). The
    generative model is the top RBM's joint over the last two layers with directed
    :math:`p(h^{l} \mid h^{l+1})` below it; :meth:`sample` runs Gibbs in the top RBM and one
    down pass. :meth:`classifier` turns the stack into an ``nn.Sequential`` of
    sigmoid layers (the RBMs' :math:`W^\top` and hidden biases) plus a fresh linear output
    layer, for discriminative fine-tuning with any loss.

    Args:
        layer_sizes: ``[n_visible, n_1, ..., n_L]`` (L >= 1).
        visible: the bottom RBM's visible units; higher RBMs are Bernoulli.
        **rbm_options: passed to every RBM (``method``, ``k``, ``learning_rate``, ...).

    Example:
        >>> import torch
        >>> from mldl.pgm import DBN
        >>> x = torch.rand(50, 8).round()
        >>> dbn = DBN([8, 6, 4], batch_size=10, generator=0)
        >>> dbn = dbn.fit(x, epochs=2, generator=0, progress=False)
        >>> dbn.transform(x).shape, dbn.sample(3, steps=10, generator=0).shape
        (torch.Size([50, 4]), torch.Size([3, 8]))
        >>> dbn.classifier(10)(x).shape
        torch.Size([50, 10])
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        visible: str = "bernoulli",
        *,
        generator: torch.Generator | int | None = None,
        device=None,
        dtype=None,
        **rbm_options,
    ):
        super().__init__()
        fn = "DBN"
        self.layer_sizes = _check_sizes(layer_sizes, fn, 2)
        _checks.one_of(visible, VISIBLE_KINDS, "visible", fn)
        self.visible = visible
        self.rbm_options = dict(rbm_options)
        g = _generator(generator, torch.device(device or "cpu"), fn)
        self.rbms = nn.ModuleList(
            RBM(
                n_in,
                n_out,
                visible if i == 0 else "bernoulli",
                generator=g,
                device=device,
                dtype=dtype,
                **rbm_options,
            )
            for i, (n_in, n_out) in enumerate(itertools.pairwise(self.layer_sizes))
        )

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "class": "DBN",
            "config": {
                "layer_sizes": list(self.layer_sizes),
                "visible": self.visible,
                **self.rbm_options,
            },
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        config = state.get("config", {}) if isinstance(state, dict) else {}
        if config.get("layer_sizes", self.layer_sizes) != self.layer_sizes:
            raise ValueError(
                f"DBN.load_state_dict: the state is for layer_sizes={config['layer_sizes']}, "
                f"this model has {self.layer_sizes}; build it with DBN.from_state_dict"
            )
        if "visible" in config and config["visible"] != self.visible:
            raise ValueError(
                f"DBN.load_state_dict: the state is for visible={config['visible']!r}, this "
                f"model has visible={self.visible!r}; build it with DBN.from_state_dict"
            )
        # the RBMs restore their own hyper-parameters; the options they were built with follow
        self.rbm_options = {k: v for k, v in config.items() if k not in ("layer_sizes", "visible")}

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any], **factory) -> DBN:
        """A DBN rebuilt from ``state_dict()``, hyper-parameters included (device and dtype
        those of the saved tensors unless given)."""
        model = cls(**_config_of(state_dict, "DBN"), **_factory_of(state_dict, factory))
        model.load_state_dict(state_dict)
        return model

    def fit(
        self,
        data: Tensor,
        epochs: int | Sequence[int] = 10,
        *,
        generator: torch.Generator | int | None = None,
        progress: bool | None = None,
    ) -> DBN:
        """Greedy layer-wise pretraining: each RBM ``epochs`` passes (or ``epochs[l]``) on the
        previous one's hidden probabilities. Returns ``self``."""
        fn = "DBN.fit"
        per_layer = _per_layer(epochs, len(self.rbms), fn)
        x = self.rbms[0]._check_visible(data, "data", fn, always=True)
        g = _generator(generator, x.device, fn)
        for rbm, n_epochs in zip(self.rbms, per_layer, strict=True):
            rbm.fit(x, n_epochs, generator=g, progress=progress)
            with torch.no_grad():
                x = torch.sigmoid(rbm._hidden_logits(x))
        return self

    def transform(self, x: Tensor) -> Tensor:
        """The up pass: the top layer's probabilities, each layer fed the one below's."""
        for rbm in self.rbms:
            x = rbm.hidden_probabilities(x)
        return x

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1000, *, generator=None, mean: bool = True) -> Tensor:
        """``n`` samples: ``steps`` Gibbs steps in the top RBM from random states, then one
        down pass, sampling each layer from :math:`p(h^l \\mid h^{l+1})`; the visible layer is
        returned as its mean (``mean=True``, smoother images) or a draw."""
        fn = "DBN.sample"
        top = self.rbms[-1]
        g = _generator(generator, top.weight.device, fn)
        x = top.sample(n, steps, generator=g, mean=mean and len(self.rbms) == 1)
        for rbm in reversed(self.rbms[:-1]):
            h = x
            x = rbm._visible_mean(h) if (mean and rbm is self.rbms[0]) else rbm._draw_visible(h, g)
        return x

    def classifier(self, n_classes: int, *, generator=None) -> nn.Sequential:
        """An ``nn.Sequential`` (Linear + Sigmoid per RBM, initialised from the pretrained
        weights and hidden biases, then a Linear output layer with weights from
        :math:`\\mathcal N(0, 0.01^2)`) that returns logits; the DBN is left unchanged."""
        fn = "DBN.classifier"
        n_classes = _checks.integer(n_classes, "n_classes", fn, low=1)
        ref = self.rbms[0].weight
        g = _generator(generator, ref.device, fn)
        layers: list[nn.Module] = []
        for rbm in self.rbms:
            linear = nn.Linear(rbm.n_visible, rbm.n_hidden, device=ref.device, dtype=ref.dtype)
            with torch.no_grad():
                scale = 1 / rbm.sigma if rbm.gaussian else 1.0
                linear.weight.copy_(rbm.weight.T * scale)
                linear.bias.copy_(rbm.hidden_bias)
            layers += [linear, nn.Sigmoid()]
        out = nn.Linear(self.layer_sizes[-1], n_classes, device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            noise = torch.randn(out.weight.shape, generator=g, dtype=ref.dtype, device=ref.device)
            out.weight.copy_(0.01 * noise)
            out.bias.zero_()
        return nn.Sequential(*layers, out)


def _per_layer(epochs: int | Sequence[int], n: int, fn: str) -> list[int]:
    if isinstance(epochs, Sequence):
        if len(epochs) != n:
            raise ValueError(f"{fn}: epochs: expected one count per layer ({n}), got {len(epochs)}")
        return [_checks.integer(e, f"epochs[{i}]", fn, low=0) for i, e in enumerate(epochs)]
    return [_checks.integer(epochs, "epochs", fn, low=0)] * n


# ------------------------------------------------------------------------------- the DBM


class DBM(nn.Module):
    r"""A deep Boltzmann machine with Bernoulli units (Salakhutdinov & Hinton 2009):

    .. math::
        E(v, h^1, \dots, h^L) = -\sum_{l=0}^{L} b_l^\top h^l
            - \sum_{l=0}^{L-1} h^{l\top} W_l h^{l+1},\qquad h^0 = v

    Training (:meth:`fit`) is greedy pretraining, then stochastic maximum likelihood:

    * pretraining: RBM l learns layers l, l + 1 with the bottom-up input doubled for the first
      RBM, the top-down input doubled for the last, both for the middle ones, so that each
      layer sees in pretraining the input it will get from both neighbours in the DBM;
    * the data-dependent expectations come from mean-field inference,
      :math:`\mu_l \leftarrow \sigma(b_l + \mu_{l-1} W_{l-1} + W_l \mu_{l+1})` with v clamped;
    * the model's from persistent chains (``n_chains``) advanced by ``k`` sweeps that sample
      the even layers, then the odd ones.

    Evaluation: :meth:`log_partition` (exact over the smaller parity, or AIS over the even
    layers with the odd ones summed out) and :meth:`lower_bound`, the variational bound

    .. math::
        \log p(v) \ge \sum_h q(h \mid v) (-E(v, h)) + \mathcal H(q) - \log Z

    with q the factorised mean-field posterior.

    Example:
        >>> import torch
        >>> from mldl.pgm import DBM
        >>> x = torch.rand(40, 6).round()
        >>> dbm = DBM([6, 4, 3], batch_size=10, generator=0)
        >>> dbm = dbm.fit(x, epochs=2, generator=0, progress=False)
        >>> z = dbm.log_partition()  # 4 odd-layer units: exact
        >>> bool((dbm.lower_bound(x, z) < 0).all())
        True
    """

    _CONFIG = (
        "layer_sizes",
        "k",
        "learning_rate",
        "momentum",
        "weight_decay",
        "batch_size",
        "n_chains",
        "n_mean_field",
        "init_std",
    )

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        k: int = 1,
        learning_rate: float = 0.05,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 100,
        n_chains: int = 100,
        n_mean_field: int = 10,
        init_std: float = 0.01,
        generator: torch.Generator | int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        fn = "DBM"
        self.layer_sizes = _check_sizes(layer_sizes, fn, 3)
        self.k = _checks.integer(k, "k", fn, low=1)
        self.learning_rate = _check_rate(learning_rate, "learning_rate", fn, low_open=True)
        self.momentum = _checks.number(momentum, "momentum", fn, low=0.0, high=1.0, high_open=True)
        self.weight_decay = _check_rate(weight_decay, "weight_decay", fn)
        self.batch_size = _checks.integer(batch_size, "batch_size", fn, low=1)
        self.n_chains = _checks.integer(n_chains, "n_chains", fn, low=1)
        self.n_mean_field = _checks.integer(n_mean_field, "n_mean_field", fn, low=1)
        self.init_std = _check_rate(init_std, "init_std", fn)
        factory = {"device": device, "dtype": dtype}
        sizes = self.layer_sizes
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(a, b, **factory)) for a, b in itertools.pairwise(sizes)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(s, **factory)) for s in sizes)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | int | None = None) -> None:
        """Weights from :math:`\\mathcal N(0, \\text{init\\_std}^2)`, biases 0, training state
        cleared."""
        w0 = self.weights[0]
        g = _generator(generator, w0.device, "DBM.reset_parameters")
        with torch.no_grad():
            for w in self.weights:
                noise = torch.randn(w.shape, generator=g, dtype=w.dtype, device=w.device)
                w.copy_(self.init_std * noise)
            for b in self.biases:
                b.zero_()
        self._chains: list[Tensor] | None = None
        self._velocity: list[Tensor] | None = None
        self.history_: list[dict[str, float]] = []

    def config(self) -> dict[str, Any]:
        return {
            name: list(v) if isinstance(v := getattr(self, name), list) else v
            for name in self._CONFIG
        }

    def get_extra_state(self) -> dict[str, Any]:
        return {"class": "DBM", "config": self.config()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        config = state.get("config", {}) if isinstance(state, dict) else {}
        if config.get("layer_sizes", self.layer_sizes) != self.layer_sizes:
            raise ValueError(
                f"DBM.load_state_dict: the state is for layer_sizes={config['layer_sizes']}, "
                f"this model has {self.layer_sizes}; build it with DBM.from_state_dict"
            )
        for name in self._CONFIG:
            if name in config:
                setattr(self, name, config[name])
        self._chains = self._velocity = None

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any], **factory) -> DBM:
        """A DBM rebuilt from ``state_dict()``, hyper-parameters included (device and dtype
        those of the saved tensors unless given)."""
        model = cls(**_config_of(state_dict, "DBM"), **_factory_of(state_dict, factory))
        model.load_state_dict(state_dict)
        return model

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        _apply_to_state(self, fn, ("_chains", "_velocity"))
        return out

    def extra_repr(self) -> str:
        return f"layer_sizes={self.layer_sizes}, k={self.k}, n_chains={self.n_chains}"

    def _layers(self) -> _Layers:
        return _Layers(list(self.weights), list(self.biases))

    def _check_visible(self, v, name, fn, *, always=False) -> Tensor:
        v = _checks.floating(v, name, fn)
        n = self.layer_sizes[0]
        if v.dim() != 2 or v.shape[1] != n:
            raise ValueError(f"{fn}: {name}: expected shape (batch, {n}), got {tuple(v.shape)}")
        if v.device != self.weights[0].device:
            raise ValueError(
                f"{fn}: {name} is on {v.device}, the model on {self.weights[0].device}"
            )
        if always or _checks.checks_enabled():
            _check_values(v, "bernoulli", name, fn)
        return v.to(self.weights[0].dtype)

    # ---------------------------------------------------------------------- inference

    def _mean_field(self, v: Tensor, n_iter: int) -> list[Tensor]:
        layers = self._layers()
        depth = layers.depth
        # initialise bottom-up with doubled input for the layers that also get input from
        # above (the pretraining's approximation), then iterate the fixed point
        mu: list[Tensor] = [v]
        for layer in range(1, depth + 1):
            x = mu[layer - 1] @ self.weights[layer - 1]
            mu.append(torch.sigmoid(self.biases[layer] + (2 * x if layer < depth else x)))
        for _ in range(n_iter):
            for layer in range(1, depth + 1):
                mu[layer] = torch.sigmoid(layers.input(mu, layer))
        return mu

    def mean_field(self, v: Tensor, n_iter: int | None = None) -> list[Tensor]:
        """The factorised posterior :math:`q(h \\mid v)`: ``[v, mu_1, ..., mu_L]`` after
        ``n_iter`` (default ``n_mean_field``) sweeps of the fixed-point equations."""
        fn = "DBM.mean_field"
        v = self._check_visible(v, "v", fn)
        n_iter = (
            self.n_mean_field if n_iter is None else _checks.integer(n_iter, "n_iter", fn, low=1)
        )
        return self._mean_field(v, n_iter)

    def transform(self, v: Tensor) -> Tensor:
        """The top layer's mean-field posterior, as features."""
        return self.mean_field(v)[-1]

    def energy(self, states: Sequence[Tensor]) -> Tensor:
        """:math:`E(h^0, \\dots, h^L)` per row for a full configuration (or its means)."""
        if len(states) != len(self.layer_sizes):
            raise ValueError(
                f"DBM.energy: states: expected {len(self.layer_sizes)} layers, got {len(states)}"
            )
        total = sum(s @ b for s, b in zip(states, self.biases, strict=True))
        for layer, w in enumerate(self.weights):
            total = total + ((states[layer] @ w) * states[layer + 1]).sum(-1)
        return -total

    def lower_bound(
        self, v: Tensor, log_z: LogPartition | float, *, n_iter: int | None = None
    ) -> Tensor:
        """The variational lower bound on :math:`\\log p(v)` per row:
        :math:`-E(v, \\mu) + \\mathcal H(\\mu) - \\log Z`, with the mean-field posterior
        (the energy is linear in each layer, and layers are independent under q)."""
        fn = "DBM.lower_bound"
        v = self._check_visible(v, "v", fn, always=True)
        value = (
            log_z.value if isinstance(log_z, LogPartition) else _checks.number(log_z, "log_z", fn)
        )
        with torch.no_grad():
            mu = self.mean_field(v, n_iter)
            entropy = sum(_bernoulli_entropy(m) for m in mu[1:])
            return -self.energy(mu) + entropy - value

    def log_partition(
        self,
        method: str = "auto",
        *,
        n_runs: int = 100,
        n_betas: int = 14500,
        data: Tensor | None = None,
        generator: torch.Generator | int | None = None,
        max_exact_units: int = 20,
    ) -> LogPartition:
        """:math:`\\log Z`, exactly (enumerating the parity with fewer units) or by AIS over the
        even layers with the odd ones summed out; see :meth:`RBM.log_partition`."""
        fn = "DBM.log_partition"
        if data is not None:
            data = self._check_visible(data, "data", fn, always=True)
        return _log_partition(
            self._layers(),
            method,
            n_runs=n_runs,
            n_betas=n_betas,
            data=data,
            generator=_generator(generator, self.weights[0].device, fn),
            max_exact_units=max_exact_units,
            fn=fn,
        )

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1000, *, generator=None, mean: bool = True) -> Tensor:
        """``n`` visible samples after ``steps`` sweeps of fresh chains (the visible layer as
        its mean given :math:`h^1` with ``mean``, else a draw)."""
        fn = "DBM.sample"
        n = _checks.integer(n, "n", fn, low=1)
        steps = _checks.integer(steps, "steps", fn, low=1)
        g = _generator(generator, self.weights[0].device, fn)
        states = self._random_states(n, g)
        layers = self._layers()
        for _ in range(steps):
            _sweep(layers, states, g)
        if mean:
            return torch.sigmoid(layers.input(states, 0))
        return states[0]

    def _random_states(self, n: int, g) -> list[Tensor]:
        w = self.weights[0]
        return [
            _bernoulli(torch.full((n, s), 0.5, dtype=w.dtype, device=w.device), g)
            for s in self.layer_sizes
        ]

    # ------------------------------------------------------------------------ training

    def fit(
        self,
        data: Tensor,
        epochs: int = 10,
        *,
        pretrain_epochs: int | Sequence[int] | None = None,
        pretrain_learning_rate: float | None = None,
        generator: torch.Generator | int | None = None,
        progress: bool | None = None,
        callback: Callable[[DBM, int], None] | None = None,
    ) -> DBM:
        """Greedy pretraining (``pretrain_epochs`` per RBM, default ``epochs``; 0 skips it),
        then ``epochs`` of stochastic maximum likelihood. Returns ``self``."""
        fn = "DBM.fit"
        data = self._check_visible(data, "data", fn, always=True)
        if data.shape[0] == 0:
            raise ValueError(f"{fn}: data: expected at least one row, got none")
        epochs = _checks.integer(epochs, "epochs", fn, low=0)
        g = _generator(generator, data.device, fn)
        pre = _per_layer(
            epochs if pretrain_epochs is None else pretrain_epochs, len(self.weights), fn
        )
        if any(pre):
            self.pretrain(
                data, pre, learning_rate=pretrain_learning_rate, generator=g, progress=progress
            )
        n = data.shape[0]
        with torch.no_grad():
            for epoch in _progress(range(epochs), progress, "DBM.fit", epochs):
                order = torch.randperm(n, generator=g, device=data.device)
                for start in range(0, n, self.batch_size):
                    self._update(data[order[start : start + self.batch_size]], g)
                self.history_.append({"epoch": len(self.history_) + 1})
                if callback is not None:
                    callback(self, epoch)
        return self

    def pretrain(
        self,
        data: Tensor,
        epochs: int | Sequence[int] = 10,
        *,
        learning_rate: float | None = None,
        generator=None,
        progress: bool | None = None,
    ) -> DBM:
        """Greedy layer-wise pretraining with the doubled-weights correction (see the class
        docstring); the DBM's weights are the RBMs', each middle layer's bias the mean of the
        two RBMs' biases for it. Returns ``self``."""
        fn = "DBM.pretrain"
        x = self._check_visible(data, "data", fn, always=True)
        per_layer = _per_layer(epochs, len(self.weights), fn)
        g = _generator(generator, x.device, fn)
        depth = len(self.weights)
        rbms = []
        for layer, n_epochs in enumerate(per_layer):
            rbm = RBM(
                self.layer_sizes[layer],
                self.layer_sizes[layer + 1],
                learning_rate=self.learning_rate if learning_rate is None else learning_rate,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                batch_size=self.batch_size,
                k=self.k,
                init_std=self.init_std,
                generator=g,
                device=x.device,
                dtype=x.dtype,
            )
            rbm._scale_up = 2.0 if layer < depth - 1 else 1.0
            rbm._scale_down = 2.0 if layer > 0 else 1.0
            rbm.fit(x, n_epochs, generator=g, progress=progress)
            with torch.no_grad():
                x = torch.sigmoid(rbm._hidden_logits(x))
            rbms.append(rbm)
        with torch.no_grad():
            for layer, rbm in enumerate(rbms):
                self.weights[layer].copy_(rbm.weight)
            self.biases[0].copy_(rbms[0].visible_bias)
            for layer in range(1, depth):
                self.biases[layer].copy_(
                    (rbms[layer - 1].hidden_bias + rbms[layer].visible_bias) / 2
                )
            self.biases[depth].copy_(rbms[-1].hidden_bias)
        self._chains = self._velocity = None
        return self

    def _update(self, v: Tensor, g) -> None:
        """One SML step: mean-field statistics for the data, persistent chains for the model."""
        layers = self._layers()
        mu = self._mean_field(v, self.n_mean_field)
        chains = self._chains
        if chains is None or chains[0].shape[0] != self.n_chains or chains[0].dtype != v.dtype:
            self._chains = self._random_states(self.n_chains, g)  # new, or n_chains changed
        odd_means: dict[int, Tensor] = {}
        for _ in range(self.k):
            odd_means = _sweep(layers, self._chains, g)
        model = [odd_means.get(i, s) for i, s in enumerate(self._chains)]
        b, m = v.shape[0], self.n_chains
        grads = [
            torch.addmm((mu[i].T @ mu[i + 1]).div_(b), model[i].T, model[i + 1], alpha=-1 / m)
            for i in range(len(self.weights))
        ]
        grads += [mu[i].mean(0) - model[i].mean(0) for i in range(len(self.biases))]
        params = [*self.weights, *self.biases]
        decays = [self.weight_decay] * len(self.weights) + [0.0] * len(self.biases)
        self._velocity = _ascend(
            params, grads, self._velocity, self.learning_rate, self.momentum, decays
        )


def _sweep(layers: _Layers, states: list[Tensor], g) -> dict[int, Tensor]:
    """One Gibbs sweep in place: the even layers given the odd, then the odd given the even;
    returns the odd layers' conditional means (Rao-Blackwellised statistics)."""
    for layer in range(0, len(states), 2):
        states[layer], _ = layers.sample_layer(states, layer, 1.0, None, g)
    means = {}
    for layer in range(1, len(states), 2):
        states[layer], means[layer] = layers.sample_layer(states, layer, 1.0, None, g)
    return means


def _bernoulli_entropy(p: Tensor) -> Tensor:
    """:math:`-\\sum_j [p_j \\log p_j + (1 - p_j) \\log(1 - p_j)]` per row (0 log 0 = 0)."""
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)).sum(-1)
