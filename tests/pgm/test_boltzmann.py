"""RBM, DBN and DBM (mldl.pgm.boltzmann) against independent computations: brute-force
enumeration of every (v, h) of tiny float64 models (energy, free energy, conditionals, log Z,
log p(v), the DBM's variational bound), closed-form Gaussian integrals and numeric
integration on a grid for Gaussian visible units, the exact Gibbs transition matrix (CD-k's
expectation, CD-1's bias, the sampler's distribution), scikit-learn's ``BernoulliRBM``
(pseudo-likelihood), and training on scikit-learn's digits with the exact log-likelihood
(64 x 16: 2^16 hidden states). Then save/load, generators and bad input."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mldl
from mldl.pgm import DBM, DBN, RBM, LogPartition, ais_schedule

F64 = torch.float64
_EXAMPLES = min(25, settings.default.max_examples)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors on a shared, loaded machine: intra-op threads only wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------- brute-force oracle


def _bits(n: int) -> torch.Tensor:
    """All 2^n binary vectors, ``(2^n, n)`` float64, in ``itertools.product`` order (the first
    column varies slowest, so row ``r`` is the binary expansion of r, most significant bit
    first)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=F64).reshape(1 << n, n)


def _codes(v: torch.Tensor) -> torch.Tensor:
    """Row indices into ``_bits(n)`` of binary rows ``v``."""
    n = v.shape[1]
    weights = torch.tensor([1 << (n - 1 - i) for i in range(n)], dtype=torch.long)
    return (v.long() * weights).sum(1)


def _softplus(z: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(torch.zeros_like(z), z)


def _params(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        rbm.weight.detach().clone(),
        rbm.visible_bias.detach().clone(),
        rbm.hidden_bias.detach().clone(),
    )


def _neg_energy_table(w, b, c) -> torch.Tensor:
    """-E(v, h) = b.v + c.h + v.W.h for every binary (v, h): ``(2^n_v, 2^n_h)``."""
    v, h = _bits(w.shape[0]), _bits(w.shape[1])
    return (v * b).sum(1)[:, None] + (h * c).sum(1)[None, :] + torch.einsum("ai,ij,bj->ab", v, w, h)


def _gauss_neg_energy(v, w, b, c, sigma) -> torch.Tensor:
    """-E(v, h) of Gaussian visible units for rows ``v`` and every binary h:
    ``-|v - b|^2 / 2 sigma^2 + c.h + (v / sigma).W.h``, shape ``(N, 2^n_h)``."""
    h = _bits(w.shape[1])
    quad = ((v - b) ** 2).sum(-1) / (2 * sigma**2)
    return -quad[:, None] + (h * c).sum(1)[None, :] + torch.einsum("ni,ij,bj->nb", v / sigma, w, h)


def _gauss_log_z(w, b, c, sigma) -> torch.Tensor:
    """log Z of a Gaussian-Bernoulli RBM: for each h the visible integral factorises into
    one-dimensional ones, ∫ exp(-(x - b)^2 / 2σ^2 + x t) dx = √(2π) σ exp(b t + σ^2 t^2 / 2)
    with t = (W h)_i / σ."""
    h = _bits(w.shape[1])
    t = (h @ w.T) / sigma  # (2^n_h, n_v)
    per_h = (h * c).sum(1) + (b * t + sigma**2 * t**2 / 2).sum(1)
    n_v = w.shape[0]
    return torch.logsumexp(per_h, 0) + n_v * (0.5 * math.log(2 * math.pi) + math.log(sigma))


def _dbm_neg_energy(weights, biases) -> tuple[torch.Tensor, list[int]]:
    """-E over every configuration of every layer, ordered with the visible layer slowest
    (so ``.reshape(2^n_v, -1)`` groups the configurations by v)."""
    sizes = [b.shape[0] for b in biases]
    parts = _bits(sum(sizes)).split(sizes, dim=1)
    ne = sum((x * b).sum(1) for x, b in zip(parts, biases, strict=True))
    for layer, w in enumerate(weights):
        ne = ne + torch.einsum("ni,ij,nj->n", parts[layer], w, parts[layer + 1])
    return ne, sizes


def _dbm_params(dbm: DBM):
    return [w.detach().clone() for w in dbm.weights], [b.detach().clone() for b in dbm.biases]


def _random_rbm(n_v, n_h, seed, *, scale=1.0, visible="bernoulli", sigma=1.0, **options) -> RBM:
    """A float64 RBM with N(0, scale^2) weights and N(0, 0.5^2) biases."""
    rbm = RBM(n_v, n_h, visible, dtype=F64, sigma=sigma, generator=seed, **options)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rbm.weight.copy_(scale * torch.randn(n_v, n_h, generator=g, dtype=F64))
        rbm.visible_bias.copy_(0.5 * torch.randn(n_v, generator=g, dtype=F64))
        rbm.hidden_bias.copy_(0.5 * torch.randn(n_h, generator=g, dtype=F64))
    return rbm


def _random_dbm(sizes, seed, *, scale=1.0, **options) -> DBM:
    dbm = DBM(sizes, dtype=F64, generator=seed, **options)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in dbm.weights:
            w.copy_(scale * torch.randn(w.shape, generator=g, dtype=F64))
        for b in dbm.biases:
            b.copy_(0.5 * torch.randn(b.shape, generator=g, dtype=F64))
    return dbm


def _close(got, want, tol=1e-10):
    torch.testing.assert_close(
        torch.as_tensor(got, dtype=F64), torch.as_tensor(want, dtype=F64), rtol=tol, atol=tol
    )


def _frequencies_match(samples: torch.Tensor, p: torch.Tensor, z: float = 5.0) -> None:
    """Each state's empirical frequency within z binomial standard errors of p."""
    n = samples.shape[0]
    counts = torch.bincount(_codes(samples), minlength=p.shape[0]).to(F64) / n
    se = torch.sqrt(p * (1 - p) / n) + 1e-12
    worst = ((counts - p).abs() / se).max()
    assert worst < z, f"largest deviation {float(worst):.2f} standard errors"


# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8 x 8 digits, binarised (pixel / 16 > 0.5): train / test rows and the
    standardised grey levels (constant pixels left at 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0 > 0.5, dtype=F64)
    grey = torch.tensor(d.data, dtype=F64)
    std = grey.std(0)
    standard = (grey - grey.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    return {
        "train": x[:1400],
        "test": x[1400:],
        "labels": torch.tensor(d.target[:1400]),
        "standard": standard[:1400],
    }


def _exact_mean_log_prob(rbm: RBM, v: torch.Tensor) -> float:
    """Mean log p(v) with log Z summed over the 2^16 hidden states in this test (not the
    library's log_partition): -F(v) closed form minus logsumexp_h [c.h + Σ softplus(b + W h)]."""
    w, b, c = _params(rbm)
    h = _bits(w.shape[1])
    log_z = torch.logsumexp((h * c).sum(1) + _softplus(b + h @ w.T).sum(1), 0)
    neg_f = (v * b).sum(1) + _softplus(c + v @ w).sum(1)
    return float((neg_f - log_z).mean())


@pytest.fixture(scope="module")
def pcd_digits(digits):
    """A 64 x 16 PCD RBM trained 4 epochs on the digits, with the exact test log-likelihood
    before training and after every epoch."""
    train, test = digits["train"], digits["test"]
    rbm = RBM(64, 16, learning_rate=0.05, batch_size=20, generator=0, dtype=F64)
    lls = [_exact_mean_log_prob(rbm, test)]
    rbm.fit(
        train,
        epochs=4,
        generator=1,
        progress=False,
        callback=lambda m, epoch: lls.append(_exact_mean_log_prob(m, test)),
    )
    return rbm, lls


# ------------------------------------------------- Bernoulli RBM against enumeration


@pytest.mark.parametrize(("n_v", "n_h"), [(5, 4), (3, 6), (6, 3)])
def test_energy_free_energy_and_conditionals_match_enumeration(n_v, n_h):
    rbm = _random_rbm(n_v, n_h, seed=n_v * 10 + n_h, scale=1.5)
    w, b, c = _params(rbm)
    ne = _neg_energy_table(w, b, c)
    v_all, h_all = _bits(n_v), _bits(n_h)
    # energy of every pair
    vv = v_all.repeat_interleave(h_all.shape[0], 0)
    hh = h_all.repeat(v_all.shape[0], 1)
    _close(rbm.energy(vv, hh), -ne.reshape(-1))
    # free energy: -log Σ_h exp(-E)
    _close(rbm.free_energy(v_all), -torch.logsumexp(ne, 1))
    # p(h_j = 1 | v) = Σ_h h_j p(h | v)
    _close(rbm.hidden_probabilities(v_all), torch.softmax(ne, 1) @ h_all)
    _close(rbm.transform(v_all), torch.softmax(ne, 1) @ h_all)
    # p(v_i = 1 | h) = Σ_v v_i p(v | h)
    _close(rbm.visible_mean(h_all), torch.softmax(ne, 0).T @ v_all)


@pytest.mark.parametrize(("n_v", "n_h"), [(5, 4), (3, 7), (7, 3)])
def test_exact_log_partition_enumerates_both_layers(n_v, n_h):
    """Both parities: the library enumerates the smaller layer; the reference sums over all
    2^(n_v + n_h) joint states."""
    rbm = _random_rbm(n_v, n_h, seed=n_v + 100 * n_h, scale=2.0)
    want = torch.logsumexp(_neg_energy_table(*_params(rbm)).reshape(-1), 0)
    got = rbm.log_partition("exact")
    assert isinstance(got, LogPartition)
    assert got.method == "exact" and got.std_error == 0.0 and got.log_weights is None
    _close(got.value, want)
    assert rbm.log_partition().method == "exact"  # auto: tiny layers are summed
    # log p(v) = -F(v) - log Z
    v = _bits(n_v)
    _close(rbm.log_prob(v).detach(), torch.logsumexp(_neg_energy_table(*_params(rbm)), 1) - want)
    _close(rbm.log_prob(v, got).detach(), rbm.log_prob(v, got.value).detach())


@settings(max_examples=_EXAMPLES)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from([0.1, 1.0, 3.0]),
    st.integers(0, 2**31 - 1),
)
def test_exact_log_partition_and_normalisation_random_shapes(n_v, n_h, scale, seed):
    rbm = _random_rbm(n_v, n_h, seed=seed, scale=scale)
    want = torch.logsumexp(_neg_energy_table(*_params(rbm)).reshape(-1), 0)
    z = rbm.log_partition("exact")
    _close(z.value, want, 1e-9)
    # log p(v) sums to one over all binary v
    _close(torch.logsumexp(rbm.log_prob(_bits(n_v), z).detach(), 0), 0.0, 1e-9)


# ------------------------------------------------------ Gaussian visible units


@pytest.mark.parametrize("sigma", [1.0, 0.6])
def test_gaussian_free_energy_energy_and_hidden_conditional(sigma):
    rbm = _random_rbm(5, 4, seed=3, visible="gaussian", sigma=sigma)
    w, b, c = _params(rbm)
    g = torch.Generator().manual_seed(0)
    v = 2 * torch.randn(7, 5, generator=g, dtype=F64)
    ne = _gauss_neg_energy(v, w, b, c, sigma)
    h_all = _bits(4)
    _close(rbm.free_energy(v), -torch.logsumexp(ne, 1))
    _close(rbm.hidden_probabilities(v), torch.softmax(ne, 1) @ h_all)
    # the energy of each (v_n, h) pair
    for j in (0, 5, 15):
        h = h_all[j].expand(7, -1)
        _close(rbm.energy(v, h), -ne[:, j])


@pytest.mark.parametrize("sigma", [1.0, 0.6])
def test_gaussian_visible_conditional_by_numeric_integration(sigma):
    """p(v | h) factorises over units; each unit's mean and variance from a 1-D grid integral
    of exp(-E(v, h)) with the other units held at 0."""
    rbm = _random_rbm(3, 4, seed=4, visible="gaussian", sigma=sigma)
    w, b, c = _params(rbm)
    h = _bits(4)[[3, 9, 14]]
    grid = torch.linspace(-15, 15, 6001, dtype=F64)
    mean = rbm.visible_mean(h)
    for r in range(h.shape[0]):
        for i in range(3):
            v = torch.zeros(grid.shape[0], 3, dtype=F64)
            v[:, i] = grid
            ne = _gauss_neg_energy(v, w, b, c, sigma)[:, _codes(h[r : r + 1])[0]]
            p = torch.softmax(ne, 0)
            m = (p * grid).sum()
            _close(mean[r, i], m, 1e-8)
            _close(((grid - m) ** 2 * p).sum(), sigma**2, 1e-8)
    # draws from sample_visible have that mean and variance
    g = torch.Generator().manual_seed(1)
    hh = h[1].expand(40000, -1)
    draws = rbm.sample_visible(hh, generator=g)
    se = sigma / math.sqrt(40000)
    assert (draws.mean(0) - mean[1]).abs().max() < 5 * se
    assert (draws.var(0) - sigma**2).abs().max() < 5 * sigma**2 * math.sqrt(2 / 40000)


@pytest.mark.parametrize(("n_h", "sigma"), [(4, 1.0), (3, 0.7), (6, 1.3)])
def test_gaussian_exact_log_partition_matches_analytic_integral(n_h, sigma):
    rbm = _random_rbm(5, n_h, seed=n_h, visible="gaussian", sigma=sigma)
    got = rbm.log_partition("exact")
    _close(got.value, _gauss_log_z(*_params(rbm), sigma))


@settings(max_examples=_EXAMPLES)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.integers(0, 2**31 - 1),
)
def test_gaussian_exact_log_partition_random_shapes(n_v, n_h, sigma, seed):
    rbm = _random_rbm(n_v, n_h, seed=seed, visible="gaussian", sigma=sigma, scale=0.7)
    _close(rbm.log_partition("exact").value, _gauss_log_z(*_params(rbm), sigma), 1e-9)


def _grid_log_z(rbm: RBM, half_width=12.0, n=481):
    """log ∫∫ Σ_h exp(-E(v, h)) dv over a 2-D grid (Riemann sum; a Gaussian mixture, so the
    sum converges spectrally fast) and the grid itself."""
    w, b, c = _params(rbm)
    x = torch.linspace(-half_width, half_width, n, dtype=F64)
    dx = float(x[1] - x[0])
    grid = torch.cartesian_prod(x, x)
    ne = _gauss_neg_energy(grid, w, b, c, rbm.sigma)
    return torch.logsumexp(ne.reshape(-1), 0) + 2 * math.log(dx), grid, dx


def test_gaussian_two_visible_log_partition_matches_grid_integration():
    rbm = _random_rbm(2, 3, seed=7, visible="gaussian", sigma=0.8, scale=1.5)
    want, grid, dx = _grid_log_z(rbm)
    z = rbm.log_partition("exact")
    _close(z.value, want, 1e-9)
    # the density integrates to one
    log_p = rbm.log_prob(grid, z).detach()
    _close(torch.logsumexp(log_p, 0) + 2 * math.log(dx), 0.0, 1e-9)


def test_gaussian_rbm_trained_on_a_two_dimensional_toy_has_the_grid_log_partition():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.5, -1.0], [-1.0, 1.0], [0.0, 0.0]], dtype=F64)
    x = centres[torch.randint(0, 3, (600,), generator=g)] + 0.3 * torch.randn(600, 2, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    rbm = RBM(2, 5, "gaussian", learning_rate=0.02, batch_size=20, generator=0, dtype=F64)
    rbm.fit(x, epochs=15, generator=0, progress=False)
    assert rbm.weight.abs().max() > 0.1  # it learned something
    want, _, _ = _grid_log_z(rbm, half_width=15.0, n=601)
    _close(rbm.log_partition("exact").value, want, 1e-8)


def test_gaussian_rbm_fits_standardised_digits_without_nan(digits):
    x = digits["standard"]
    rbm = RBM(64, 16, "gaussian", learning_rate=0.005, batch_size=20, generator=0, dtype=F64)
    before = float(rbm.reconstruction_error(x).mean())
    rbm.fit(x, epochs=3, generator=0, progress=False)
    for p in rbm.parameters():
        assert torch.isfinite(p).all()
    after = float(rbm.reconstruction_error(x).mean())
    assert math.isfinite(after) and after < before
    assert all(math.isfinite(r["reconstruction_error"]) for r in rbm.history_)
    z = rbm.log_partition()
    assert z.method == "exact" and math.isfinite(z.value)
    assert torch.isfinite(rbm.log_prob(x[:50], z)).all()
    h = torch.bernoulli(rbm.transform(x[:5]).detach())
    assert torch.isfinite(rbm.sample_visible(h, generator=0)).all()


# ------------------------------------------------------------------------------ DBM


@pytest.mark.parametrize("sizes", [[4, 3, 3], [4, 3, 3, 2], [2, 5, 2], [3, 4, 2, 3]])
def test_dbm_exact_log_partition_enumerates_every_layer(sizes):
    """[4, 3, 3] and [4, 3, 3, 2] have the odd layers smaller, [2, 5, 2] and [3, 4, 2, 3]
    the even ones."""
    dbm = _random_dbm(sizes, seed=sum(sizes), scale=1.2)
    ne, _ = _dbm_neg_energy(*_dbm_params(dbm))
    z = dbm.log_partition("exact")
    assert z.method == "exact" and z.std_error == 0.0
    _close(z.value, torch.logsumexp(ne, 0))


@settings(max_examples=_EXAMPLES)
@given(
    st.lists(st.integers(1, 4), min_size=3, max_size=4),
    st.sampled_from([0.3, 1.0, 2.0]),
    st.integers(0, 2**31 - 1),
)
def test_dbm_exact_log_partition_random_shapes(sizes, scale, seed):
    dbm = _random_dbm(sizes, seed=seed, scale=scale)
    ne, _ = _dbm_neg_energy(*_dbm_params(dbm))
    _close(dbm.log_partition("exact").value, torch.logsumexp(ne, 0), 1e-9)


def test_dbm_energy_matches_definition():
    dbm = _random_dbm([4, 3, 3, 2], seed=1)
    ne, sizes = _dbm_neg_energy(*_dbm_params(dbm))
    states = list(_bits(sum(sizes)).split(sizes, dim=1))
    _close(dbm.energy(states), -ne)


def test_dbm_mean_field_reaches_its_fixed_point():
    dbm = _random_dbm([5, 4, 3, 2], seed=2, scale=0.8)
    weights, biases = _dbm_params(dbm)
    v = _bits(5)
    mu = dbm.mean_field(v, n_iter=300)
    assert len(mu) == 4 and [m.shape for m in mu] == [(32, 5), (32, 4), (32, 3), (32, 2)]
    _close(mu[0], v)
    for layer in range(1, 4):
        x = biases[layer] + mu[layer - 1] @ weights[layer - 1]
        if layer < 3:
            x = x + mu[layer + 1] @ weights[layer].T
        _close(mu[layer], torch.sigmoid(x), 1e-9)
    _close(dbm.transform(v), dbm.mean_field(v)[-1])


@pytest.mark.parametrize("sizes", [[4, 3, 3], [4, 3, 3, 2]])
def test_dbm_lower_bound_is_the_mean_field_bound_and_below_log_p(sizes):
    dbm = _random_dbm(sizes, seed=5, scale=1.5)
    weights, biases = _dbm_params(dbm)
    ne, _ = _dbm_neg_energy(weights, biases)
    n_v = sizes[0]
    log_z = torch.logsumexp(ne, 0)
    exact_log_p = torch.logsumexp(ne.reshape(1 << n_v, -1), 1) - log_z
    v = _bits(n_v)
    z = dbm.log_partition("exact")
    bound = dbm.lower_bound(v, z)
    assert bound.shape == (1 << n_v,)
    assert (bound <= exact_log_p + 1e-10).all()
    # the bound's formula, Σ_h q(h)(-E(v, h)) + H(q) - log Z, summed over every hidden state
    mu = dbm.mean_field(v)
    hidden = _bits(sum(sizes[1:]))
    log_q = torch.zeros(1 << n_v, hidden.shape[0], dtype=F64)
    offset = 0
    for m in mu[1:]:
        h = hidden[:, offset : offset + m.shape[1]]
        log_q = log_q + (torch.log(m) @ h.T + torch.log1p(-m) @ (1 - h).T)
        offset += m.shape[1]
    q = log_q.exp()
    ne_vh = ne.reshape(1 << n_v, -1)
    want = (q * (ne_vh - log_q)).sum(1) - log_z
    _close(bound, want, 1e-9)
    _close(dbm.lower_bound(v, z.value), bound)


# -------------------------------------------------------------------------- AIS


def test_ais_schedule():
    betas = ais_schedule(14500)
    assert betas.shape == (14500,) and betas.dtype == F64
    assert betas[0] == 0.0 and betas[-1] == 1.0
    assert (betas[1:] >= betas[:-1]).all()
    assert int((betas < 0.5).sum()) == 500 and int((betas < 0.9).sum()) == 4500
    for n in [*range(4, 40), 100, 1001]:
        betas = ais_schedule(n, dtype=torch.float32)
        assert betas.shape == (n,) and betas.dtype == torch.float32
        assert betas[0] == 0 and betas[-1] == 1 and (betas[1:] >= betas[:-1]).all()


# Fixed bug: ais_schedule(3) (the smallest n_betas accepted) is [0, 0.5, 0.9]: it never
# reaches beta = 1 (the last segment gets one point, and linspace(0.9, 1, 1) is [0.9]), so
# log_partition("ais", n_betas=3) estimates the log Z of the model at temperature 1/0.9.
def test_smallest_ais_schedule_ends_at_one():
    betas = ais_schedule(3)
    assert betas[0] == 0 and betas[-1] == 1


def test_ais_matches_exact_log_partition_on_a_digits_rbm(pcd_digits, digits):
    rbm, _ = pcd_digits
    exact = rbm.log_partition("exact").value
    w, b, c = _params(rbm)
    h = _bits(16)
    _close(exact, torch.logsumexp((h * c).sum(1) + _softplus(b + h @ w.T).sum(1), 0))
    ais = rbm.log_partition("ais", n_betas=2000, n_runs=100, data=digits["train"], generator=0)
    assert ais.method == "ais"
    assert ais.log_weights is not None and ais.log_weights.shape == (100,)
    assert abs(ais.value - exact) < 0.5
    assert math.isfinite(ais.std_error) and 0 < ais.std_error < 0.1
    # without data (a uniform base model) it is still close, with a larger error bar
    plain = rbm.log_partition("ais", n_betas=1000, n_runs=100, generator=0)
    assert abs(plain.value - exact) < 0.5 and math.isfinite(plain.std_error)
    # auto switches to AIS above max_exact_units
    assert rbm.log_partition(max_exact_units=8, n_betas=50, n_runs=4, generator=0).method == "ais"


def test_ais_matches_exact_on_a_tiny_dbm_and_a_gaussian_rbm():
    dbm = _random_dbm([6, 4, 3], seed=0)
    exact = torch.logsumexp(_dbm_neg_energy(*_dbm_params(dbm))[0], 0)
    ais = dbm.log_partition("ais", n_betas=1000, n_runs=100, generator=0)
    assert abs(ais.value - float(exact)) < 0.1 and 0 < ais.std_error < 0.05
    data = torch.bernoulli(torch.full((50, 6), 0.3, dtype=F64), generator=torch.Generator())
    with_data = dbm.log_partition("ais", n_betas=1000, n_runs=100, data=data, generator=0)
    assert abs(with_data.value - float(exact)) < 0.1

    rbm = _random_rbm(5, 4, seed=2, visible="gaussian", sigma=0.8)
    exact = float(_gauss_log_z(*_params(rbm), 0.8))
    data = torch.randn(80, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    ais = rbm.log_partition("ais", n_betas=2000, n_runs=100, data=data, generator=0)
    assert abs(ais.value - exact) < 0.15 and 0 < ais.std_error < 0.1


# ----------------------------------------------------- CD-k against the exact gradient


def _cd_reference(rbm: RBM, data: torch.Tensor, k: int):
    """Exact quantities of a tiny model: the log-likelihood gradient (autograd through
    enumeration), the data term, and the expectation and per-replica variance of CD-k's
    model statistics (v, p(h|v), v p(h|v)^T) after k steps of the exact Gibbs kernel
    T[v, v'] = Σ_h p(h|v) p(v'|h), started at each data row."""
    w, b, c = (p.requires_grad_() for p in _params(rbm))
    ne = _neg_energy_table(w, b, c)
    log_p = torch.logsumexp(ne, 1) - torch.logsumexp(ne.reshape(-1), 0)
    rows = _codes(data)
    grads = torch.autograd.grad(log_p[rows].mean(), (w, b, c))
    ne = ne.detach()
    v_all, h_all = _bits(w.shape[0]), _bits(w.shape[1])
    p_h = torch.softmax(ne, 1) @ h_all  # p(h = 1 | v) for every v
    kernel = torch.softmax(ne, 1) @ torch.softmax(ne, 0).T
    q = torch.linalg.matrix_power(kernel, k)[rows]  # (rows, 2^n_v): v_k's law per start
    stats = {
        "w": (v_all[:, :, None] * p_h[:, None, :]).reshape(v_all.shape[0], -1),
        "b": v_all,
        "c": p_h,
    }
    mean = {key: (q @ s).mean(0) for key, s in stats.items()}
    # variance of the average of R draws per data row: (1 / (rows^2 R)) Σ_r Var_r
    var = {key: (q @ s**2 - (q @ s) ** 2).sum(0) / rows.shape[0] ** 2 for key, s in stats.items()}
    data_term = {
        "w": (data.T @ p_h[rows] / data.shape[0]).reshape(-1),
        "b": data.mean(0),
        "c": p_h[rows].mean(0),
    }
    exact = {"w": grads[0].reshape(-1), "b": grads[1], "c": grads[2]}
    stationary = torch.softmax(torch.logsumexp(ne, 1), 0)
    return exact, data_term, mean, var, float((q - stationary).abs().max())


def _cd_update(rbm: RBM, data: torch.Tensor, k: int, replicas: int, seed: int):
    """The library's own CD-k gradient: one partial_fit with learning rate 1, no momentum, no
    decay, on ``replicas`` copies of every data row (so ΔW is the gradient estimate)."""
    model = RBM(rbm.n_visible, rbm.n_hidden, method="cd", k=k, learning_rate=1.0, dtype=F64)
    model.load_state_dict(rbm.state_dict())
    model.method, model.k, model.learning_rate = "cd", k, 1.0
    w0, b0, c0 = _params(model)
    model.partial_fit(data.repeat(replicas, 1), generator=seed)
    w1, b1, c1 = _params(model)
    return {"w": (w1 - w0).reshape(-1), "b": b1 - b0, "c": c1 - c0}


def _model_side(update, data_term):
    return {key: data_term[key] - update[key] for key in update}


@pytest.fixture(scope="module")
def cd_model():
    rbm = _random_rbm(4, 3, seed=11, scale=1.5)
    g = torch.Generator().manual_seed(3)
    data = torch.bernoulli(torch.full((6, 4), 0.4, dtype=F64), generator=g)
    return rbm, data


def test_cd_50_is_unbiased_for_the_log_likelihood_gradient(cd_model):
    rbm, data = cd_model
    replicas = 4000
    exact, data_term, mean, var, distance = _cd_reference(rbm, data, 50)
    assert distance < 1e-8  # 50 steps of this chain are at equilibrium (checks the test)
    for key in exact:  # the exact CD-50 expectation is then the exact gradient
        _close(data_term[key] - mean[key], exact[key], 1e-7)
    update = _cd_update(rbm, data, 50, replicas, seed=0)
    for key in exact:
        se = torch.sqrt(var[key] / replicas) + 1e-12
        z = (update[key] - exact[key]).abs() / se
        assert z.max() < 5, f"{key}: {float(z.max()):.2f} standard errors from the gradient"
    # the data term is exact (probabilities, not samples): check it in the update's pieces
    model_side = _model_side(update, data_term)
    for key in exact:
        assert ((model_side[key] - mean[key]).abs() < 5 * torch.sqrt(var[key] / replicas)).all()


def test_cd_1_estimates_its_own_biased_expectation(cd_model):
    rbm, data = cd_model
    replicas = 4000
    exact, data_term, mean, var, _ = _cd_reference(rbm, data, 1)
    update = _cd_update(rbm, data, 1, replicas, seed=1)
    bias = max(
        float(((data_term[key] - mean[key] - exact[key]).abs() / torch.sqrt(var[key])).max())
        for key in exact
    )
    assert bias * math.sqrt(replicas) > 10  # CD-1 is biased, by many standard errors here
    for key in exact:
        se = torch.sqrt(var[key] / replicas) + 1e-12
        z = (update[key] - (data_term[key] - mean[key])).abs() / se
        assert z.max() < 5, f"{key}: {float(z.max()):.2f} standard errors from CD-1's mean"


@pytest.mark.parametrize("k", [1, 3])
def test_gibbs_follows_the_exact_transition_kernel(cd_model, k):
    rbm, _ = cd_model
    w, b, c = _params(rbm)
    ne = _neg_energy_table(w, b, c)
    kernel = torch.softmax(ne, 1) @ torch.softmax(ne, 0).T
    start = _bits(4)[[5]]
    g = torch.Generator().manual_seed(k)
    draws = rbm.gibbs(start.expand(20000, -1).contiguous(), steps=k, generator=g)
    _frequencies_match(draws, torch.linalg.matrix_power(kernel, k)[5])
    # mean=True: the last step returns E[v | h], averaging to the same law's mean
    means = rbm.gibbs(start.expand(20000, -1).contiguous(), steps=k, generator=g, mean=True)
    want = torch.linalg.matrix_power(kernel, k)[5] @ _bits(4)
    assert ((means.mean(0) - want).abs() < 5 * 0.5 / math.sqrt(20000)).all()


def test_sample_draws_from_the_model(cd_model):
    rbm, _ = cd_model
    ne = _neg_energy_table(*_params(rbm))
    p_v = torch.softmax(torch.logsumexp(ne, 1), 0)
    samples = rbm.sample(20000, steps=60, generator=0)
    assert samples.shape == (20000, 4)
    _frequencies_match(samples, p_v)
    p_h = torch.softmax(torch.logsumexp(ne, 0), 0)
    hidden = rbm.sample_hidden(samples, generator=1)
    _frequencies_match(hidden, p_h)


# ------------------------------------------------------------- pseudo-likelihood


def _naive_pll(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """Σ_i log σ(F(v with bit i flipped) - F(v)), one flip at a time, F in closed form."""
    w, b, c = _params(rbm)

    def free(x):
        return -(x * b).sum(1) - _softplus(c + x @ w).sum(1)

    total = torch.zeros(v.shape[0], dtype=F64)
    for i in range(v.shape[1]):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        total += torch.nn.functional.logsigmoid(free(flipped) - free(v))
    return total


def test_pseudo_log_likelihood_flips_every_bit(pcd_digits, digits):
    rbm, _ = pcd_digits
    v = digits["test"][:40]
    _close(rbm.pseudo_log_likelihood(v), _naive_pll(rbm, v))
    tiny = _random_rbm(5, 4, seed=9, scale=2.0)
    v = _bits(5)
    ne = _neg_energy_table(*_params(tiny))
    log_pv = torch.logsumexp(ne, 1)
    # log p(v_i | v_-i) by enumeration: the two joint states differing in bit i
    want = torch.zeros(32, dtype=F64)
    for i in range(5):
        partner = _codes(v) ^ (1 << (4 - i))
        want += log_pv - torch.logaddexp(log_pv, log_pv[partner])
    _close(tiny.pseudo_log_likelihood(v), want)


def test_pseudo_log_likelihood_is_sklearns_score_samples_in_expectation(digits):
    from sklearn.neural_network import BernoulliRBM

    x = digits["train"].numpy()
    est = BernoulliRBM(n_components=16, learning_rate=0.05, n_iter=3, random_state=0)
    est.fit(x)
    rbm = RBM.from_sklearn(est)
    assert rbm.weight.dtype == F64 and rbm.weight.shape == (64, 16)
    np.testing.assert_allclose(rbm.weight.detach().numpy(), est.components_.T)
    v = digits["test"][:10]
    _close(rbm.transform(v), torch.as_tensor(est.transform(v.numpy())))
    rows, repeats = 20, 3000
    v = digits["test"][:rows]
    est.random_state = 1  # one random bit per row of the repeated batch
    scores = torch.as_tensor(est.score_samples(np.repeat(v.numpy(), repeats, axis=0)))
    scores = scores.reshape(rows, repeats)
    se = scores.std(1) / math.sqrt(repeats)
    pll = rbm.pseudo_log_likelihood(v)
    z = (scores.mean(1) - pll).abs() / se
    assert z.max() < 5, f"{float(z.max()):.2f} standard errors"


# ------------------------------------------------------------------------- training


def test_pcd_training_raises_the_exact_test_log_likelihood(pcd_digits):
    rbm, lls = pcd_digits
    assert lls[0] == pytest.approx(-64 * math.log(2), abs=0.5)  # tiny initial weights
    assert lls[1] > lls[0] + 5  # one epoch already helps a lot
    assert lls[-1] > lls[1]
    assert len(rbm.history_) == 4 and rbm.history_[-1]["epoch"] == 4
    # the library's log_prob agrees with the exact reference
    test = torch.zeros(1, 64, dtype=F64)
    _close(rbm.log_prob(test).detach().mean(), _exact_mean_log_prob(rbm, test), 1e-9)


def test_cd_training_raises_the_exact_test_log_likelihood(digits):
    rbm = RBM(64, 16, method="cd", k=1, learning_rate=0.05, batch_size=20, generator=0, dtype=F64)
    lls = [_exact_mean_log_prob(rbm, digits["test"])]
    for _ in range(3):
        rbm.fit(digits["train"], epochs=1, generator=len(lls), progress=False)
        lls.append(_exact_mean_log_prob(rbm, digits["test"]))
    assert lls[1] > lls[0] + 5
    assert lls[-1] > lls[1]


def _twin(rbm: RBM, **changes) -> RBM:
    """A copy of ``rbm`` (weights and hyper-parameters) with some hyper-parameters changed."""
    twin = RBM.from_state_dict(rbm.state_dict(), dtype=F64)
    for name, value in changes.items():
        setattr(twin, name, value)
    return twin


@pytest.fixture
def update_model():
    rbm = _random_rbm(6, 4, seed=21, method="cd", k=2, learning_rate=0.1)
    g = torch.Generator().manual_seed(5)
    batch = torch.bernoulli(torch.full((30, 6), 0.5, dtype=F64), generator=g)
    return rbm, batch


@pytest.mark.parametrize("visible, sigma", [("bernoulli", 1.0), ("gaussian", 2.0)])
def test_plain_step_in_place_equals_the_general_update(visible, sigma):
    # Without momentum, decay or sparsity, _update adds the scaled sums in place; any of the
    # three routes it through _ascend instead. A weight decay of 1e-300 changes no float64
    # gradient entry, so both routes must take the same step from the same draws.
    rbm = _random_rbm(6, 4, seed=22, visible=visible, sigma=sigma, method="pcd", k=2)
    g = torch.Generator().manual_seed(6)
    batch = torch.bernoulli(torch.full((30, 6), 0.5, dtype=F64), generator=g)
    fast, general = _twin(rbm), _twin(rbm, weight_decay=1e-300)
    for seed in (7, 8):  # the second step runs from the persistent chains
        fast.partial_fit(batch, generator=seed)
        general.partial_fit(batch, generator=seed)
    for a, b in zip(fast.parameters(), general.parameters(), strict=True):
        _close(a, b)
    before = list(rbm.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(fast.parameters(), before, strict=True))


def test_momentum_adds_the_previous_step(update_model):
    rbm, batch = update_model
    mu = 0.7
    moving = _twin(rbm, momentum=mu)
    p0 = [p.detach().clone() for p in moving.parameters()]
    moving.partial_fit(batch, generator=1)
    p1 = [p.detach().clone() for p in moving.parameters()]
    still = _twin(moving, momentum=0.0)  # same weights, no velocity
    moving.partial_fit(batch, generator=2)
    still.partial_fit(batch, generator=2)  # identical draws: same weights, same seed
    for a0, a1, a2, s in zip(p0, p1, moving.parameters(), still.parameters(), strict=True):
        _close(a2 - a1, mu * (a1 - a0) + (s - a1))


def test_weight_decay_subtracts_lr_lambda_w(update_model):
    rbm, batch = update_model
    lam = 0.05
    decayed, plain = _twin(rbm, weight_decay=lam), _twin(rbm)
    w0, _, _ = _params(rbm)
    decayed.partial_fit(batch, generator=3)
    plain.partial_fit(batch, generator=3)
    _close(decayed.weight - w0, (plain.weight - w0) - 0.1 * lam * w0)
    _close(decayed.visible_bias, plain.visible_bias)  # biases are not decayed
    _close(decayed.hidden_bias, plain.hidden_bias)


def test_sparsity_target_pushes_towards_the_running_activation(update_model):
    rbm, batch = update_model
    rho, kappa, lr = 0.05, 0.3, 0.1
    sparse, plain = _twin(rbm, sparsity_target=rho, sparsity_cost=kappa), _twin(rbm)
    w0, _, c0 = _params(rbm)
    q1 = torch.sigmoid(c0 + batch @ w0).mean(0)
    sparse.partial_fit(batch, generator=4)
    plain.partial_fit(batch, generator=4)
    push = kappa * (rho - q1)
    _close(sparse.hidden_bias - plain.hidden_bias, lr * push)
    _close(sparse.weight - plain.weight, lr * torch.outer(batch.mean(0), push))
    _close(sparse.visible_bias, plain.visible_bias)
    # second step: the activation is a running mean, 0.9 q1 + 0.1 q2
    w1, _, c1 = _params(sparse)
    q2 = torch.sigmoid(c1 + batch @ w1).mean(0)
    plain2 = _twin(sparse, sparsity_target=None)
    sparse.partial_fit(batch, generator=5)
    plain2.partial_fit(batch, generator=5)
    push = kappa * (rho - (0.9 * q1 + 0.1 * q2))
    _close(sparse.hidden_bias - plain2.hidden_bias, lr * push)


def test_sparsity_and_weight_decay_do_what_they_say_on_digits(digits):
    x = digits["train"][:700]
    common = {"learning_rate": 0.05, "batch_size": 20, "generator": 0, "dtype": F64}
    plain = RBM(64, 16, **common).fit(x, epochs=3, generator=0, progress=False)
    sparse = RBM(64, 16, sparsity_target=0.05, sparsity_cost=1.0, **common)
    sparse.fit(x, epochs=3, generator=0, progress=False)
    activation = float(sparse.transform(x).detach().mean())
    assert activation < 0.15 < float(plain.transform(x).detach().mean()) - 0.3
    decayed = RBM(64, 16, weight_decay=0.2, **common).fit(x, epochs=3, generator=0, progress=False)
    assert float(decayed.weight.detach().norm()) < 0.8 * float(plain.weight.detach().norm())


# ------------------------------------------------------------------------------ DBN


@pytest.fixture(scope="module")
def dbn_digits(digits):
    x = digits["train"]
    dbn = DBN([64, 32, 16], batch_size=20, learning_rate=0.05, generator=0, dtype=F64)
    before = [_params(r) for r in dbn.rbms]
    dbn.fit(x, epochs=[3, 2], generator=0, progress=False)
    return dbn, before


def test_dbn_greedy_fit_changes_every_layer_and_shapes(dbn_digits, digits):
    dbn, before = dbn_digits
    for rbm, old in zip(dbn.rbms, before, strict=True):
        for p, q in zip(_params(rbm), old, strict=True):
            assert not torch.equal(p, q)
        assert len(rbm.history_) > 0
    assert [len(r.history_) for r in dbn.rbms] == [3, 2]
    x = digits["test"][:13]
    features = dbn.transform(x)
    assert features.shape == (13, 16)
    (w0, _, c0), (w1, _, c1) = (_params(r) for r in dbn.rbms)
    _close(features, torch.sigmoid(c1 + torch.sigmoid(c0 + x @ w0) @ w1))
    s = dbn.sample(9, steps=20, generator=0)
    assert s.shape == (9, 64) and ((s >= 0) & (s <= 1)).all()
    assert not ((s == 0) | (s == 1)).all()  # mean=True: probabilities
    d = dbn.sample(9, steps=20, generator=0, mean=False)
    assert d.shape == (9, 64) and ((d == 0) | (d == 1)).all()


def test_dbn_samples_follow_the_generative_model():
    """Top RBM over (h1, h2) by Gibbs, then v ~ p(v | h1) = Π σ(b + W h1)."""
    dbn = DBN([3, 3, 2], generator=0, dtype=F64)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for rbm in dbn.rbms:
            rbm.weight.copy_(1.5 * torch.randn(rbm.weight.shape, generator=g, dtype=F64))
            rbm.visible_bias.copy_(0.5 * torch.randn(rbm.n_visible, generator=g, dtype=F64))
            rbm.hidden_bias.copy_(0.5 * torch.randn(rbm.n_hidden, generator=g, dtype=F64))
    p_h1 = torch.softmax(torch.logsumexp(_neg_energy_table(*_params(dbn.rbms[1])), 1), 0)
    w0, b0, _ = _params(dbn.rbms[0])
    v_all, h1 = _bits(3), _bits(3)
    p_v1_h = torch.sigmoid(b0 + h1 @ w0.T)  # (h1 states, 3)
    p_v_given_h = torch.exp(v_all @ torch.log(p_v1_h).T + (1 - v_all) @ torch.log1p(-p_v1_h).T)
    p_v = p_v_given_h @ p_h1
    _close(p_v.sum(), 1.0)
    samples = dbn.sample(20000, steps=60, generator=1, mean=False)
    _frequencies_match(samples, p_v)


# Fixed bug: DBN.sample(mean=True) returns binary draws, not E[v | h], when the DBN has a
# single RBM: the mean is only applied inside the down pass, which is empty for one RBM.
def test_single_rbm_dbn_sample_mean_returns_probabilities():
    dbn = DBN([6, 4], generator=0, dtype=F64)
    with torch.no_grad():
        dbn.rbms[0].weight.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    s = dbn.sample(20, steps=10, generator=0, mean=True)
    assert not ((s == 0) | (s == 1)).all()


def test_dbn_classifier_is_initialised_from_the_rbms_and_trains(dbn_digits, digits):
    dbn, _ = dbn_digits
    x, y = digits["train"], digits["labels"]
    net = dbn.classifier(10, generator=0)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and sum(isinstance(m, torch.nn.Sigmoid) for m in net) == 2
    for lin, rbm in zip(linears[:-1], dbn.rbms, strict=True):
        assert torch.equal(lin.weight, rbm.weight.T) and torch.equal(lin.bias, rbm.hidden_bias)
        assert lin.weight.data_ptr() != rbm.weight.data_ptr()  # copies, not shared
    assert linears[-1].weight.shape == (10, 16) and (linears[-1].bias == 0).all()
    assert 0.001 < float(linears[-1].weight.detach().std()) < 0.1
    _close(net[:-1](x[:5]), dbn.transform(x[:5]))
    assert net(x).shape == (1400, 10)
    frozen = [p.detach().clone() for p in dbn.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    first = loss_fn(net(x), y).item()
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert float((net(x).argmax(1) == y).double().mean()) > 0.85
    for p, q in zip(dbn.parameters(), frozen, strict=True):  # the DBN is left unchanged
        assert torch.equal(p, q)


def test_dbn_gaussian_classifier_scales_by_sigma():
    dbn = DBN([5, 3], "gaussian", sigma=0.5, generator=0, dtype=F64)
    x = torch.randn(4, 5, dtype=F64)
    net = dbn.classifier(2)
    _close(net[0].weight, dbn.rbms[0].weight.T / 0.5)
    _close(net[:-1](x), dbn.transform(x))


# ------------------------------------------------------------------------------ DBM


@pytest.fixture(scope="module")
def dbm_data():
    """Three noisy 8-pixel prototypes."""
    g = torch.Generator().manual_seed(0)
    protos = torch.tensor(
        [[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0]], dtype=F64
    )
    x = protos[torch.randint(0, 3, (300,), generator=g)]
    flip = torch.rand(x.shape, generator=g, dtype=F64) < 0.05
    return torch.where(flip, 1 - x, x)


def _dbm_exact_mean_log_prob(dbm: DBM, v: torch.Tensor) -> float:
    ne, _ = _dbm_neg_energy(*_dbm_params(dbm))
    log_p = torch.logsumexp(ne.reshape(1 << v.shape[1], -1), 1) - torch.logsumexp(ne, 0)
    return float(log_p[_codes(v)].mean())


def test_dbm_pretraining_and_fit_run_and_learn(dbm_data):
    """Exact mean log p(v) by enumeration: uniform at the start (-8 log 2), better after
    pretraining, better again after SML; the data's own entropy is about 2.7 nats."""
    dbm = DBM([8, 4, 3], batch_size=10, learning_rate=0.1, n_chains=50, generator=0, dtype=F64)
    start = _dbm_exact_mean_log_prob(dbm, dbm_data)
    assert start == pytest.approx(-8 * math.log(2), abs=0.01)
    w_before = [w.detach().clone() for w in dbm.weights]
    dbm.pretrain(dbm_data, epochs=[10, 10], generator=0, progress=False)
    for w, old in zip(dbm.weights, w_before, strict=True):
        assert not torch.equal(w, old) and torch.isfinite(w).all()
    pretrained = _dbm_exact_mean_log_prob(dbm, dbm_data)
    assert pretrained > start + 1.0
    dbm.fit(dbm_data, epochs=20, pretrain_epochs=0, generator=1, progress=False)
    assert len(dbm.history_) == 20
    for p in dbm.parameters():
        assert torch.isfinite(p).all()
    fitted = _dbm_exact_mean_log_prob(dbm, dbm_data)
    assert fitted > pretrained + 0.3 and fitted > -3.3
    z = dbm.log_partition()
    assert z.method == "exact"
    bound = dbm.lower_bound(dbm_data[:20], z)
    assert bound.shape == (20,) and (bound < 0).all()
    # fit with pretraining (the default) runs end to end
    other = DBM([8, 4, 3], batch_size=50, n_chains=20, generator=0, dtype=F64)
    other.fit(dbm_data, epochs=1, generator=0, progress=False)
    assert len(other.history_) == 1


def test_dbm_sample_shapes_and_distribution():
    dbm = _random_dbm([3, 3, 2], seed=8, scale=1.2)
    ne, _ = _dbm_neg_energy(*_dbm_params(dbm))
    p_v = torch.softmax(torch.logsumexp(ne.reshape(8, -1), 1), 0)
    draws = dbm.sample(20000, steps=60, generator=0, mean=False)
    assert draws.shape == (20000, 3) and ((draws == 0) | (draws == 1)).all()
    _frequencies_match(draws, p_v)
    means = dbm.sample(7, steps=5, generator=0)
    assert means.shape == (7, 3) and ((means > 0) & (means < 1)).all()
    assert dbm.transform(_bits(3)).shape == (8, 2)


# ------------------------------------------------------------------------ save/load


def _roundtrip(model) -> dict:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_rbm_save_and_load(visible):
    options = {
        "method": "cd",
        "k": 3,
        "learning_rate": 0.2,
        "momentum": 0.0,
        "weight_decay": 1e-3,
        "batch_size": 7,
        "sparsity_target": 0.1,
        "sparsity_cost": 0.2,
        "n_chains": 11,
        "init_std": 0.05,
        "sigma": 0.7 if visible == "gaussian" else 1.0,
    }
    rbm = RBM(6, 4, visible, generator=0, **options)
    x = torch.rand(20, 6) if visible == "bernoulli" else torch.randn(20, 6)
    rbm.fit(x, epochs=2, generator=0, progress=False)
    loaded = RBM.from_state_dict(_roundtrip(rbm))
    assert loaded.config() == rbm.config()
    assert loaded.config()["k"] == 3 and loaded.visible == visible
    for p, q in zip(loaded.parameters(), rbm.parameters(), strict=True):
        assert torch.equal(p, q)
    assert torch.equal(loaded.free_energy(x), rbm.free_energy(x))
    assert torch.equal(loaded.transform(x), rbm.transform(x))
    assert loaded.log_partition().value == rbm.log_partition().value
    # training state is not saved; for CD without momentum further training is identical
    # except for the sparsity's running activation, so drop it on both
    rbm.sparsity_target = loaded.sparsity_target = None
    rbm.fit(x, epochs=1, generator=5, progress=False)
    loaded.fit(x, epochs=1, generator=5, progress=False)
    assert torch.equal(loaded.weight, rbm.weight)


def test_dbn_and_dbm_save_and_load():
    dbn = DBN([6, 4, 3], batch_size=5, learning_rate=0.3, k=2, generator=0)
    x = torch.rand(15, 6).round()
    dbn.fit(x, epochs=1, generator=0, progress=False)
    loaded = DBN.from_state_dict(_roundtrip(dbn))
    assert loaded.layer_sizes == [6, 4, 3] and loaded.rbm_options == dbn.rbm_options
    assert [r.config() for r in loaded.rbms] == [r.config() for r in dbn.rbms]
    assert torch.equal(loaded.transform(x), dbn.transform(x))
    assert torch.equal(loaded.sample(4, 5, generator=3), dbn.sample(4, 5, generator=3))

    dbm = DBM([6, 4, 3], batch_size=5, n_chains=7, n_mean_field=4, k=2, generator=0)
    dbm.fit(x, epochs=1, generator=0, progress=False)
    loaded = DBM.from_state_dict(_roundtrip(dbm))
    assert loaded.config() == dbm.config() and loaded.n_mean_field == 4
    assert torch.equal(loaded.transform(x), dbm.transform(x))
    z = dbm.log_partition()
    assert loaded.log_partition().value == z.value
    assert torch.equal(loaded.lower_bound(x, z), dbm.lower_bound(x, z))


def test_load_state_dict_restores_hyper_parameters_into_an_existing_model():
    rbm = RBM(6, 4, k=4, learning_rate=0.3)
    other = RBM(6, 4)
    other.load_state_dict(_roundtrip(rbm))
    assert other.config() == rbm.config()
    dbm = DBM([6, 4, 3], k=3, n_chains=9)
    other_dbm = DBM([6, 4, 3])
    other_dbm.load_state_dict(_roundtrip(dbm))
    assert other_dbm.config() == dbm.config()


# Fixed bug: DBN.set_extra_state ignores the saved rbm_options (and visible), so after
# load_state_dict a DBN's own record (rbm_options, its state_dict's config) keeps the values it
# was built with, while its RBMs took the loaded ones.
def test_dbn_load_state_dict_restores_its_options():
    dbn = DBN([6, 4, 3], learning_rate=0.3, k=2)
    other = DBN([6, 4, 3])
    other.load_state_dict(_roundtrip(dbn))
    assert other.rbms[0].k == 2  # the RBMs did take them
    assert other.rbm_options == dbn.rbm_options


# Fixed bug: from_state_dict builds the default dtype whatever the state holds,
# so a float64 model comes back as float32 (different outputs) unless dtype= is passed again.
def test_from_state_dict_keeps_the_dtype():
    rbm = RBM(6, 4, dtype=F64, generator=0)
    loaded = RBM.from_state_dict(_roundtrip(rbm))
    assert loaded.weight.dtype == F64


def test_from_state_dict_with_the_dtype_given_is_identical():
    rbm = _random_rbm(6, 4, seed=1)
    loaded = RBM.from_state_dict(_roundtrip(rbm), dtype=F64)
    v = _bits(6)
    assert torch.equal(loaded.free_energy(v), rbm.free_energy(v))


def test_loading_into_a_wrongly_sized_model_or_from_another_class_is_a_clear_error():
    with pytest.raises(ValueError, match=r"n_visible=5"):
        RBM(6, 4).load_state_dict(RBM(5, 4).state_dict())
    with pytest.raises(ValueError, match=r"n_hidden=3"):
        RBM(6, 4).load_state_dict(RBM(6, 3).state_dict())
    with pytest.raises(ValueError, match=r"visible='gaussian'"):
        RBM(6, 4).load_state_dict(RBM(6, 4, "gaussian").state_dict())
    with pytest.raises(ValueError, match=r"layer_sizes=\[6, 4, 2\]"):
        DBM([6, 4, 3]).load_state_dict(DBM([6, 4, 2]).state_dict())
    with pytest.raises(ValueError, match=r"layer_sizes=\[6, 4, 2\]"):
        DBN([6, 4, 3]).load_state_dict(DBN([6, 4, 2]).state_dict())
    with pytest.raises(ValueError, match=r"state_dict of a RBM, got that of a DBM"):
        RBM.from_state_dict(DBM([6, 4, 3]).state_dict())
    with pytest.raises(ValueError, match=r"state_dict of a DBM, got that of a RBM"):
        DBM.from_state_dict(RBM(6, 4).state_dict())
    with pytest.raises(ValueError, match=r"state_dict of a DBN, got that of a DBM"):
        DBN.from_state_dict(DBM([6, 4, 3]).state_dict())
    with pytest.raises(ValueError, match=r"without hyper-parameters"):
        RBM.from_state_dict({"weight": torch.zeros(6, 4)})


# ------------------------------------------------------------------------ generators


def test_same_seed_same_results_different_seed_different(digits):
    x = digits["train"][:200]

    def rbm_fit(init, seed):
        return RBM(64, 8, batch_size=25, generator=init).fit(x, 2, generator=seed, progress=False)

    a, b, c = rbm_fit(0, 1), rbm_fit(0, 1), rbm_fit(0, 2)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    assert not torch.equal(RBM(64, 8, generator=0).weight, RBM(64, 8, generator=1).weight)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    d1 = RBM(64, 8, batch_size=25, generator=0).fit(x, 1, generator=g1, progress=False)
    d2 = RBM(64, 8, batch_size=25, generator=0).fit(x, 1, generator=g2, progress=False)
    assert torch.equal(d1.weight, d2.weight)

    def dbn_fit(seed):
        return DBN([64, 8, 4], batch_size=50, generator=0).fit(x, 1, generator=seed, progress=False)

    assert torch.equal(dbn_fit(3).rbms[1].weight, dbn_fit(3).rbms[1].weight)
    assert not torch.equal(dbn_fit(3).rbms[1].weight, dbn_fit(4).rbms[1].weight)

    def dbm_fit(seed):
        dbm = DBM([64, 8, 4], batch_size=50, n_chains=10, generator=0)
        return dbm.fit(x, 1, generator=seed, progress=False)

    assert torch.equal(dbm_fit(3).weights[1], dbm_fit(3).weights[1])
    assert not torch.equal(dbm_fit(3).weights[1], dbm_fit(4).weights[1])

    small = _random_rbm(6, 4, seed=0)
    ais = [small.log_partition("ais", n_betas=50, n_runs=4, generator=s).value for s in (1, 1, 2)]
    assert ais[0] == ais[1] != ais[2]
    s1, s2 = small.sample(5, 3, generator=9), small.sample(5, 3, generator=9)
    assert torch.equal(s1, s2)


def test_generator_on_another_device_type_is_a_clear_error():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: the model and the generator must be on different device types")
    rbm = RBM(6, 4, device="cuda")
    x = torch.rand(10, 6, device="cuda").round()
    with pytest.raises(
        ValueError, match=r"generator: expected a generator on cuda, got one on cpu"
    ):
        rbm.fit(x, 1, generator=torch.Generator(), progress=False)
    with pytest.raises(ValueError, match=r"generator"):
        rbm.log_partition("ais", n_betas=10, n_runs=2, generator=torch.Generator())
    rbm.fit(x, 1, generator=0, progress=False)  # an int seed makes a generator on cuda


def test_cuda_generator_for_a_cpu_model_is_a_clear_error():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA to make a generator on another device type")
    with pytest.raises(ValueError, match=r"expected a generator on cpu, got one on cuda"):
        RBM(6, 4).sample(3, generator=torch.Generator(device="cuda"))


# ------------------------------------------------------------------------ bad input


@pytest.fixture
def small_rbm():
    return RBM(6, 3, batch_size=5, generator=0)


def test_bernoulli_values_outside_unit_interval(small_rbm):
    bad = torch.rand(10, 6) * 2
    with pytest.raises(ValueError, match=r"RBM.fit: data: Bernoulli units take values in \[0, 1\]"):
        small_rbm.fit(bad, 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.free_energy: v: Bernoulli"):
        small_rbm.free_energy(bad)
    with pytest.raises(ValueError, match=r"RBM.log_prob: v: Bernoulli"):
        small_rbm.log_prob(bad)
    with pytest.raises(ValueError, match=r"RBM.partial_fit: batch: Bernoulli"):
        small_rbm.partial_fit(-bad)
    with mldl.checks(False):
        small_rbm.free_energy(bad)  # value checks off: not checked (documented)
        with pytest.raises(ValueError, match=r"RBM.log_prob: v: Bernoulli"):
            small_rbm.log_prob(bad)  # always checked
        with pytest.raises(ValueError, match=r"RBM.fit: data"):
            small_rbm.fit(bad, 1, progress=False)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_data(small_rbm, value):
    x = torch.rand(10, 6)
    x[3, 2] = value
    with pytest.raises(ValueError, match=r"RBM.fit: data: expected finite values"):
        small_rbm.fit(x, 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.log_prob: v: expected finite"):
        small_rbm.log_prob(x)
    gaussian = RBM(6, 3, "gaussian")
    with pytest.raises(ValueError, match=r"RBM.fit: data: expected finite values"):
        gaussian.fit(x, 1, progress=False)
    with pytest.raises(ValueError, match=r"DBM.fit: data: expected finite"):
        DBM([6, 3, 2]).fit(x, 1, progress=False)
    with pytest.raises(ValueError, match=r"DBN.fit: data: expected finite"):
        DBN([6, 3]).fit(x, 1, progress=False)


def test_wrong_shapes_dtypes_and_empty_data(small_rbm):
    with pytest.raises(
        ValueError, match=r"RBM.fit: data: expected shape \(batch, 6\), got \(10, 5\)"
    ):
        small_rbm.fit(torch.rand(10, 5), 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.free_energy: v: expected shape \(batch, 6\)"):
        small_rbm.free_energy(torch.rand(6))
    with pytest.raises(ValueError, match=r"RBM.transform|hidden_probabilities"):
        small_rbm.transform(torch.rand(2, 3, 6))
    with pytest.raises(TypeError, match=r"RBM.fit: data: expected a floating-point tensor"):
        small_rbm.fit(torch.ones(10, 6, dtype=torch.long), 1, progress=False)
    with pytest.raises(TypeError, match=r"data: expected a torch.Tensor"):
        small_rbm.fit(np.ones((10, 6)), 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.fit: data: expected at least one row"):
        small_rbm.fit(torch.empty(0, 6), 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.partial_fit: batch: expected at least one row"):
        small_rbm.partial_fit(torch.empty(0, 6))
    with pytest.raises(ValueError, match=r"DBM.fit: data: expected at least one row"):
        DBM([6, 3, 2]).fit(torch.empty(0, 6), 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.energy: h: expected shape \(batch, 3\)"):
        small_rbm.energy(torch.rand(4, 6).round(), torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"RBM.energy: v has 4 rows, h has 3"):
        small_rbm.energy(torch.rand(4, 6).round(), torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"DBM.lower_bound: v: expected shape \(batch, 6\)"):
        DBM([6, 3, 2]).lower_bound(torch.rand(4, 5), 1.0)
    with pytest.raises(ValueError, match=r"DBN.fit: data: expected shape \(batch, 6\)"):
        DBN([6, 3]).fit(torch.rand(4, 5), 1, progress=False)
    with pytest.raises(ValueError, match=r"RBM.sample: init has 2 rows, expected n=3"):
        small_rbm.sample(3, init=torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"DBM.energy: states: expected 3 layers, got 2"):
        DBM([6, 3, 2]).energy([torch.zeros(1, 6), torch.zeros(1, 3)])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"k": 0}, "k"),
        ({"visible": "poisson"}, "visible"),
        ({"method": "x"}, "method"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"sparsity_target": 1.0}, "sparsity_target"),
        ({"sparsity_cost": -1.0}, "sparsity_cost"),
        ({"n_chains": 0}, "n_chains"),
        ({"sigma": 0.0}, "sigma"),
        ({"n_hidden": 0}, "n_hidden"),
    ],
)
def test_bad_rbm_hyper_parameters(kwargs, name):
    args = {"n_visible": 6, "n_hidden": 3, **kwargs}
    with pytest.raises(ValueError, match=f"RBM: {name}"):
        RBM(**args)


def test_bad_hyper_parameters_elsewhere():
    with pytest.raises(TypeError, match=r"RBM: k: expected an int"):
        RBM(6, 3, k=1.5)
    with pytest.raises(ValueError, match=r"DBM: layer_sizes"):
        DBM([6, 3])
    with pytest.raises(ValueError, match=r"DBN: layer_sizes"):
        DBN([6])
    with pytest.raises(ValueError, match=r"DBN: layer_sizes\[1\]"):
        DBN([6, 0])
    with pytest.raises(ValueError, match=r"DBM: n_mean_field"):
        DBM([6, 3, 2], n_mean_field=0)
    with pytest.raises(ValueError, match=r"DBM: momentum"):
        DBM([6, 3, 2], momentum=1.0)
    with pytest.raises(ValueError, match=r"DBN: visible"):
        DBN([6, 3], "poisson")
    with pytest.raises(ValueError, match=r"RBM: learning_rate"):
        DBN([6, 3], learning_rate=-1.0)
    x = torch.rand(10, 6).round()
    with pytest.raises(ValueError, match=r"DBN.fit: epochs: expected one count per layer \(2\)"):
        DBN([6, 3, 2]).fit(x, [1], progress=False)
    with pytest.raises(ValueError, match=r"RBM.fit: epochs"):
        RBM(6, 3).fit(x, -1, progress=False)
    with pytest.raises(ValueError, match=r"DBN.classifier: n_classes"):
        DBN([6, 3]).classifier(0)
    with pytest.raises(ValueError, match=r"RBM.gibbs: steps"):
        RBM(6, 3).gibbs(x, steps=0)
    with pytest.raises(ValueError, match=r"DBM.mean_field: n_iter"):
        DBM([6, 3, 2]).mean_field(x, n_iter=0)
    with pytest.raises(TypeError, match=r"DBM.lower_bound: log_z"):
        DBM([6, 3, 2]).lower_bound(x, "zero")


def test_bad_log_partition_arguments():
    rbm = RBM(6, 3)
    with pytest.raises(ValueError, match=r"RBM.log_partition: method: expected one of"):
        rbm.log_partition("x")
    with pytest.raises(ValueError, match=r"DBM.log_partition: method"):
        DBM([6, 3, 2]).log_partition("x")
    big = RBM(30, 30)
    with pytest.raises(ValueError, match=r"exact enumeration needs 2\^30.*use method='ais'"):
        big.log_partition("exact")
    with pytest.raises(ValueError, match=r"method='ais'"):
        DBM([25, 25, 25]).log_partition("exact")
    with pytest.raises(ValueError, match=r"method='ais'"):
        RBM(2, 25, "gaussian").log_partition("exact")  # hidden units are always enumerated
    with pytest.raises(ValueError, match=r"n_runs"):
        rbm.log_partition("ais", n_runs=1)
    with pytest.raises(ValueError, match=r"n_betas"):
        rbm.log_partition("ais", n_betas=2)
    with pytest.raises(ValueError, match=r"RBM.log_partition: data: Bernoulli"):
        rbm.log_partition("ais", data=torch.full((3, 6), 2.0))
    with pytest.raises(ValueError, match=r"RBM.log_partition: max_exact_units"):
        rbm.log_partition(max_exact_units=0)


def test_pseudo_log_likelihood_needs_binary_bernoulli_data():
    rbm = RBM(6, 3)
    with pytest.raises(ValueError, match=r"RBM.pseudo_log_likelihood: v: expected binary"):
        rbm.pseudo_log_likelihood(torch.full((2, 6), 0.5))
    with pytest.raises(ValueError, match=r"RBM.pseudo_log_likelihood: defined here for Bernoulli"):
        RBM(6, 3, "gaussian").pseudo_log_likelihood(torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"RBM.pseudo_log_likelihood: v: Bernoulli"):
        rbm.pseudo_log_likelihood(torch.full((2, 6), 3.0))


def test_model_and_data_on_different_devices_or_dtypes():
    rbm = RBM(6, 3, dtype=F64)
    # another floating dtype is cast to the model's
    out = rbm.free_energy(torch.rand(2, 6, dtype=torch.float32).round())
    assert out.dtype == F64
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"RBM.free_energy: v is on cuda"):
            rbm.free_energy(torch.rand(2, 6, device="cuda"))


# ------------------------------------------------- training state across .to() and options


def test_casting_moves_the_training_state_with_the_parameters():
    """Fixed bug: .double() left the persistent chains and momentum buffers in float32 (and
    .to(device) would leave them behind), so training after a cast mixed dtypes."""
    x = (torch.rand(40, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    rbm = RBM(6, 4, method="pcd", momentum=0.5, sparsity_target=0.1, sparsity_cost=0.1)
    rbm.fit(x, 1, generator=1, progress=False)
    rbm.double()
    assert rbm._chains.dtype == F64 and rbm._activity.dtype == F64
    assert all(u.dtype == F64 for u in rbm._velocity)
    chains = rbm._chains.clone()
    rbm.partial_fit(x.double(), generator=2)  # resumes from the same (cast) chains
    assert rbm._chains.shape == chains.shape and torch.isfinite(rbm.weight).all()

    dbm = DBM([6, 4, 3], batch_size=10, n_chains=8, momentum=0.5, generator=0)
    dbm.fit(x, epochs=1, pretrain_epochs=0, generator=1, progress=False)
    dbm.double()
    assert all(c.dtype == F64 for c in dbm._chains)
    assert all(u.dtype == F64 for u in dbm._velocity)


def test_dbm_changing_n_chains_restarts_the_chains():
    """Fixed bug: the old chains were kept while the update divided by the new count."""
    x = (torch.rand(40, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    dbm = DBM([6, 4, 3], batch_size=10, n_chains=20, generator=0, dtype=F64)
    dbm.fit(x, epochs=1, pretrain_epochs=0, generator=1, progress=False)
    assert dbm._chains[0].shape[0] == 20
    dbm.n_chains = 5
    dbm.fit(x, epochs=1, pretrain_epochs=0, generator=2, progress=False)
    assert [c.shape[0] for c in dbm._chains] == [5, 5, 5]


def test_from_sklearn_takes_a_dtype():
    sklearn = pytest.importorskip("sklearn.neural_network")
    data = np.random.default_rng(0).random((20, 6))
    est = sklearn.BernoulliRBM(n_components=3, n_iter=1, random_state=0).fit(data)
    assert RBM.from_sklearn(est).weight.dtype == F64
    rbm32 = RBM.from_sklearn(est, dtype=torch.float32)
    assert rbm32.weight.dtype == torch.float32
    assert np.allclose(rbm32.weight.detach().numpy(), est.components_.T, atol=1e-6)
