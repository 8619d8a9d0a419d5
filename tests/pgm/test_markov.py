"""MarkovRandomField: exact inference against brute-force enumeration of the full joint
(the notes' k^n table, small models only), the Ising closed forms, loopy BP (exact on
trees), Gibbs sampling (the blanket conditional against the joint, sample marginals
against exact ones), the fully visible Boltzmann machine, impossible configurations, bad
input, dtypes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mldl.pgm import (
    ISING_2D_CRITICAL_TEMPERATURE,
    DiscreteFactor,
    ImpossibleEvidence,
    IntractableInference,
    MarkovRandomField,
    ising_chain_log_partition,
    magnetization,
    onsager_magnetization,
)

F32, F64 = torch.float32, torch.float64
_EXAMPLES = min(40, settings.default.max_examples)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: on a shared, loaded machine intra-op threads only wait for
    each other (a 3,000-element log took 4 ms with 2 threads, 60 µs with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------- brute-force oracle


def _all_assignments(mrf: MarkovRandomField) -> torch.Tensor:
    cards = [len(mrf.states[v]) for v in mrf.variables]
    return torch.tensor(list(itertools.product(*(range(k) for k in cards))), dtype=torch.long)


def _log_joint(mrf: MarkovRandomField, x: torch.Tensor) -> torch.Tensor:
    """Σ_f log φ_f(x_f) by plain indexing of every factor (independent of the library's
    gather tables)."""
    ix = {v: i for i, v in enumerate(mrf.variables)}
    out = torch.zeros(len(x), dtype=F64)
    for f in mrf.factors:
        out = out + f.values.double()[tuple(x[:, ix[v]] for v in f.variables)]
    return out


def _brute(mrf: MarkovRandomField):
    """(assignments (N, n), unnormalised log-probabilities (N,), log Z)."""
    x = _all_assignments(mrf)
    lp = _log_joint(mrf, x)
    return x, lp, torch.logsumexp(lp, 0)


def _brute_marginals(mrf, evidence_row=None):
    x, lp, _ = _brute(mrf)
    if evidence_row is not None:
        keep = ((evidence_row < 0) | (x == evidence_row)).all(1)
        lp = torch.where(keep, lp, torch.full_like(lp, -math.inf))
    p = torch.softmax(lp, 0)
    return {
        v: torch.zeros(len(mrf.states[v]), dtype=F64).index_add_(0, x[:, i], p)
        for i, v in enumerate(mrf.variables)
    }


# ----------------------------------------------------------------------- random models


@st.composite
def random_mrfs(draw, max_vars: int = 7, neg_inf: bool = False):
    """Pairwise and triple factors over 2..max_vars variables of 2-3 states: random
    scopes, so cycles, repeated scopes and variables in no factor all occur."""
    n = draw(st.integers(2, max_vars))
    cards = draw(st.lists(st.integers(2, 3), min_size=n, max_size=n))
    var = st.integers(0, n - 1)
    scopes = draw(st.lists(st.lists(var, min_size=2, max_size=2, unique=True), max_size=9))
    if n >= 3:
        scopes += draw(st.lists(st.lists(var, min_size=3, max_size=3, unique=True), max_size=3))
    scopes += draw(st.lists(st.lists(var, min_size=1, max_size=1), max_size=3))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    g = torch.Generator().manual_seed(seed)
    names = [f"v{i}" for i in range(n)]
    factors = []
    for s in scopes:
        t = torch.randn([cards[i] for i in s], generator=g, dtype=F64) * scale
        if neg_inf:
            t = torch.where(torch.rand(t.shape, generator=g, dtype=F64) < 0.15, -math.inf, t)
        factors.append(([names[i] for i in s], t))
    return MarkovRandomField({v: k for v, k in zip(names, cards, strict=True)}, factors)


@st.composite
def random_trees(draw, max_vars: int = 8):
    """A factor graph without cycles: each new factor joins one existing variable to one
    or two new ones (pairwise and triple factors), plus unary factors."""
    n_target = draw(st.integers(2, max_vars))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    cards = [draw(st.integers(2, 3))]
    scopes: list[list[int]] = []
    while len(cards) < n_target:
        old = draw(st.integers(0, len(cards) - 1))
        new = draw(st.integers(1, min(2, n_target - len(cards))))
        scopes.append([old, *range(len(cards), len(cards) + new)])
        cards += [draw(st.integers(2, 3)) for _ in range(new)]
    scopes += [[i] for i in draw(st.lists(st.integers(0, len(cards) - 1), max_size=4))]
    names = [f"t{i}" for i in range(len(cards))]
    factors = []
    for s in scopes:
        s = draw(st.permutations(s))  # the tensor's axes follow the scope's order
        t = torch.randn([cards[i] for i in s], generator=g, dtype=F64) * 1.5
        factors.append(([names[i] for i in s], t))
    return MarkovRandomField({v: k for v, k in zip(names, cards, strict=True)}, factors)


def _random_evidence(mrf, rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cards = torch.tensor([len(mrf.states[v]) for v in mrf.variables])
    x = (torch.rand(rows, len(cards), generator=g) * cards).long()
    hide = torch.rand(rows, len(cards), generator=g) < 0.6
    return torch.where(hide, -1, x)


# ------------------------------------------------------------------------ exact inference


@settings(max_examples=_EXAMPLES)
@given(random_mrfs(), st.sampled_from([None, "min_fill", "min_weight"]))
def test_log_partition_and_marginals_match_brute_force(mrf, heuristic):
    _, _, log_z = _brute(mrf)
    torch.testing.assert_close(
        mrf.log_partition(heuristic=heuristic), log_z, rtol=1e-10, atol=1e-10
    )
    got = mrf.marginals(heuristic=heuristic)
    want = _brute_marginals(mrf)
    for v in mrf.variables:
        assert got[v].shape == (1, len(mrf.states[v]))
        torch.testing.assert_close(got[v][0], want[v], rtol=1e-9, atol=1e-10)


@settings(max_examples=_EXAMPLES)
@given(random_mrfs(max_vars=6), st.integers(0, 2**31 - 1))
def test_batched_evidence_marginals_and_log_partition_match_brute_force(mrf, seed):
    rows = _random_evidence(mrf, 5, seed)
    got = mrf.marginals(rows)
    log_ze = mrf.log_partition(rows)
    x, lp, _ = _brute(mrf)
    for r in range(len(rows)):
        keep = ((rows[r] < 0) | (x == rows[r])).all(1)
        torch.testing.assert_close(log_ze[r], torch.logsumexp(lp[keep], 0), rtol=1e-10, atol=1e-10)
        want = _brute_marginals(mrf, rows[r])
        for v in mrf.variables:
            torch.testing.assert_close(got[v][r], want[v], rtol=1e-9, atol=1e-10)


@settings(max_examples=_EXAMPLES)
@given(random_mrfs(max_vars=6), st.integers(0, 2**31 - 1))
def test_energy_log_prob_and_map_match_brute_force(mrf, seed):
    x, lp, log_z = _brute(mrf)
    torch.testing.assert_close(mrf.energy(x), -lp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mrf.log_prob(x), lp - log_z, rtol=1e-10, atol=1e-10)
    # batch shape (..., n) is kept
    assert mrf.energy(x[:4].reshape(2, 2, -1)).shape == (2, 2)
    # missing entries (-1) are summed out
    rows = _random_evidence(mrf, 4, seed)
    got = mrf.log_prob(rows)
    for r, row in enumerate(rows):
        keep = ((row < 0) | (x == row)).all(1)
        torch.testing.assert_close(
            got[r], torch.logsumexp(lp[keep], 0) - log_z, rtol=1e-9, atol=1e-9
        )
    best, value = mrf.most_probable_explanation()
    torch.testing.assert_close(value[0], lp.max(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(-mrf.energy(best)[0], lp.max(), rtol=1e-12, atol=1e-12)


def test_log_partition_is_differentiable_and_its_gradient_is_the_factor_marginal():
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(3, 2, generator=g, dtype=F64, requires_grad=True)
    other = torch.randn(2, 2, generator=g, dtype=F64)
    mrf = MarkovRandomField(
        {"a": 3, "b": 2, "c": 2},
        [(("a", "b"), theta), (("b", "c"), other), (("c", "a"), torch.zeros(2, 3, dtype=F64))],
    )
    (grad,) = torch.autograd.grad(mrf.log_partition(), theta)
    x, lp, _ = _brute(mrf)
    p = torch.softmax(lp.detach(), 0)
    want = torch.zeros(3, 2, dtype=F64).index_put_((x[:, 0], x[:, 1]), p, accumulate=True)
    torch.testing.assert_close(grad, want, rtol=1e-10, atol=1e-12)
    # energy is differentiable too, and a second log_partition call builds a fresh graph
    (ge,) = torch.autograd.grad(mrf.energy(torch.tensor([2, 1, 0])), theta)
    assert ge[2, 1] == -1 and ge.abs().sum() == 1
    assert mrf.log_partition().requires_grad


# ------------------------------------------------------------------------------ Ising


def _chain_closed_form(n, J, h, beta):
    """λ± from the reference (§5), written out again here."""
    if h == 0:
        return math.log((2 * math.cosh(beta * J)) ** n + (2 * math.sinh(beta * J)) ** n)
    root = math.sqrt(math.exp(2 * beta * J) * math.sinh(beta * h) ** 2 + math.exp(-2 * beta * J))
    lp = math.exp(beta * J) * math.cosh(beta * h) + root
    lm = math.exp(beta * J) * math.cosh(beta * h) - root
    return math.log(lp**n + lm**n)


@pytest.mark.parametrize("beta", [0.1, 0.44, 1.0, 2.5])
@pytest.mark.parametrize("h", [0.0, 0.3, -1.2])
@pytest.mark.parametrize("J", [1.0, -0.7])
def test_periodic_chain_log_partition_is_the_transfer_matrix_closed_form(beta, h, J):
    n = 12
    mrf = MarkovRandomField.ising_chain(n, J=J, h=h, beta=beta)
    want = _chain_closed_form(n, J, h, beta)
    assert float(mrf.log_partition()) == pytest.approx(want, rel=1e-12)
    assert float(ising_chain_log_partition(n, J, h, beta)) == pytest.approx(want, rel=1e-12)
    assert mrf.treewidth() == 2  # a ring: eliminating one spin links its two neighbours


def test_chain_closed_form_helper_matches_brute_force_for_short_rings():
    for n in (2, 3, 5):
        mrf = MarkovRandomField.ising_chain(n, J=0.8, h=0.4, beta=0.9)
        torch.testing.assert_close(
            ising_chain_log_partition(n, 0.8, 0.4, 0.9), _brute(mrf)[2], rtol=1e-12, atol=0
        )


@pytest.mark.parametrize(
    ("L", "periodic", "h", "beta"),
    [(3, False, 0.0, 0.5), (3, True, 0.2, 0.3), (4, False, 0.1, 0.44), (4, True, 0.0, 1.0)],
)
def test_2d_ising_log_partition_matches_brute_force(L, periodic, h, beta):
    mrf = MarkovRandomField.ising_2d(L, J=1.0, h=h, beta=beta, periodic=periodic)
    assert mrf.variables[: L + 1] == [f"s0_{c}" for c in range(L)] + ["s1_0"]
    x, _, log_z = _brute(mrf)
    torch.testing.assert_close(mrf.log_partition(), log_z, rtol=1e-11, atol=0)
    # the energy is -β H with H = -J Σ s_i s_j - h Σ s_i, checked on spins directly
    s = 2 * x.double() - 1
    grid = s.reshape(-1, L, L)
    right = grid[:, :, :-1] * grid[:, :, 1:]
    down = grid[:, :-1, :] * grid[:, 1:, :]
    bonds = right.sum((1, 2)) + down.sum((1, 2))
    if periodic:
        bonds = bonds + (grid[:, :, -1] * grid[:, :, 0]).sum(1) + (grid[:, -1] * grid[:, 0]).sum(1)
    torch.testing.assert_close(mrf.energy(x), beta * (-bonds - h * s.sum(1)))


def test_grid_treewidth_and_state_limit():
    mrf = MarkovRandomField.ising_2d(12)
    assert mrf.treewidth() == 12  # row-major order by default
    assert mrf.plan().width == 2**13
    assert mrf.treewidth("min_fill") >= 12
    small = MarkovRandomField.ising_2d(12, max_states=2**10)
    with pytest.raises(IntractableInference, match=r"8192 states .*max_states=1024"):
        small.log_partition()
    with pytest.raises(IntractableInference):
        small.marginals()
    # an explicit order
    rev = list(reversed(mrf.variables))
    assert mrf.treewidth(rev) == 12


def test_magnetization_and_onsager_helpers():
    assert abs(ISING_2D_CRITICAL_TEMPERATURE - 2.269185) < 1e-6
    assert onsager_magnetization(1 / 2.5) == 0.0
    assert onsager_magnetization(1 / (ISING_2D_CRITICAL_TEMPERATURE * 1.0001)) == 0.0
    assert onsager_magnetization(1 / 1.0) == pytest.approx(
        (1 - math.sinh(2.0) ** -4) ** 0.125, rel=1e-15
    )
    assert 0.0 < onsager_magnetization(1 / 2.268) < 0.5
    m = magnetization(torch.tensor([[[1, 1], [0, 1]]]))
    torch.testing.assert_close(m, torch.tensor([[1.0, 0.0]], dtype=F64))
    with pytest.raises(ValueError, match="spin state indices"):
        magnetization(torch.tensor([0, 2]))
    with pytest.raises(TypeError, match="integer state indices"):
        magnetization(torch.tensor([0.0, 1.0]))


# ------------------------------------------------------------------------- loopy BP


@settings(max_examples=_EXAMPLES)
@given(random_trees(), st.integers(0, 2**31 - 1))
def test_belief_propagation_is_exact_on_trees(mrf, seed):
    bp = mrf.loopy_belief_propagation(max_iter=50, tol=1e-13)
    assert bp.converged and bp.iterations <= 2 * len(mrf.variables) + 2
    want = _brute_marginals(mrf)
    for v in mrf.variables:
        torch.testing.assert_close(bp.marginals[v][0], want[v], rtol=0, atol=1e-8)
    torch.testing.assert_close(bp.log_partition[0], _brute(mrf)[2], rtol=0, atol=1e-8)
    # with evidence rows (a batch): still exact, and Bethe gives log Z(e)
    rows = _random_evidence(mrf, 3, seed)
    bpe = mrf.loopy_belief_propagation(rows, max_iter=50, tol=1e-13)
    exact = mrf.marginals(rows)
    for v in mrf.variables:
        torch.testing.assert_close(bpe.marginals[v], exact[v], rtol=0, atol=1e-8)
    torch.testing.assert_close(bpe.log_partition, mrf.log_partition(rows), rtol=0, atol=1e-8)


def test_belief_propagation_on_a_loopy_grid_at_high_temperature_is_close():
    mrf = MarkovRandomField.ising_2d(4, J=1.0, h=0.2, beta=0.15)
    bp = mrf.loopy_belief_propagation()
    assert bp.converged and bp.max_change < 1e-8
    exact = mrf.marginals()
    err = max(float((bp.marginals[v] - exact[v]).abs().max()) for v in mrf.variables)
    assert 0 < err < 2e-3  # approximate (cycles), but close when interactions are weak
    assert float(bp.log_partition[0]) == pytest.approx(float(mrf.log_partition()), abs=1e-2)
    # near the critical point the cycles matter more
    cold = MarkovRandomField.ising_2d(4, J=1.0, h=0.2, beta=0.4)
    bpc = cold.loopy_belief_propagation(damping=0.3)
    exact = cold.marginals()
    err_cold = max(float((bpc.marginals[v] - exact[v]).abs().max()) for v in cold.variables)
    assert err_cold > err


def test_belief_propagation_damping_and_max_iter():
    mrf = MarkovRandomField.ising_chain(8, J=1.0, h=0.5, beta=0.7, periodic=False)
    plain = mrf.loopy_belief_propagation()
    damped = mrf.loopy_belief_propagation(damping=0.5, max_iter=500, tol=1e-12)
    assert damped.converged and damped.iterations > plain.iterations
    for v in mrf.variables:
        torch.testing.assert_close(damped.marginals[v], plain.marginals[v], rtol=0, atol=1e-9)
    stopped = mrf.loopy_belief_propagation(max_iter=2)
    assert not stopped.converged and stopped.iterations == 2
    with pytest.raises(ValueError, match="damping"):
        mrf.loopy_belief_propagation(damping=1.0)


def test_belief_propagation_with_impossible_configurations_on_a_tree():
    t = torch.tensor([[0.0, -math.inf, 0.5], [1.0, 0.0, -math.inf]], dtype=F64)
    mrf = MarkovRandomField(
        {"a": 2, "b": 3, "c": 2},
        [(("a", "b"), t), (("b", "c"), torch.tensor([[0.0, 1.0], [-math.inf, 0.0], [0.3, 0.3]]))],
    )
    bp = mrf.loopy_belief_propagation()
    want = _brute_marginals(mrf)
    for v in mrf.variables:
        torch.testing.assert_close(bp.marginals[v][0], want[v], rtol=0, atol=1e-10)
    torch.testing.assert_close(bp.log_partition[0], _brute(mrf)[2], rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------ Gibbs


@settings(max_examples=_EXAMPLES)
@given(random_mrfs(max_vars=6), st.integers(0, 2**31 - 1))
def test_gibbs_conditional_is_the_conditional_of_the_joint(mrf, seed):
    x, lp, _ = _brute(mrf)
    g = torch.Generator().manual_seed(seed)
    rows = x[torch.randint(len(x), (5,), generator=g)]
    for i, v in enumerate(mrf.variables):
        got = mrf.conditional(rows, v)
        k = len(mrf.states[v])
        for r, row in enumerate(rows):
            others = torch.cat([row[:i], row[i + 1 :]])
            match = (torch.cat([x[:, :i], x[:, i + 1 :]], 1) == others).all(1)
            want = torch.zeros(k, dtype=F64)
            want[x[match, i]] = torch.softmax(lp[match], 0)
            torch.testing.assert_close(got[r], want, rtol=1e-10, atol=1e-12)
    assert mrf.conditional(rows[0], mrf.variables[0]).shape == (len(mrf.states[mrf.variables[0]]),)


def _test_model() -> MarkovRandomField:
    """Five variables of 2 or 3 states: a 5-cycle plus a triple factor across it."""
    g = torch.Generator().manual_seed(7)
    states = {"a": 2, "b": 3, "c": 2, "d": 3, "e": 2}
    card = states
    scopes = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "a"), ("a", "c", "d")]
    factors = [(s, torch.randn([card[v] for v in s], generator=g, dtype=F64) * 0.8) for s in scopes]
    factors.append((("b",), torch.tensor([0.0, 0.5, -0.5], dtype=F64)))
    return MarkovRandomField(states, factors)


def test_gibbs_marginals_match_exact_marginals():
    mrf = _test_model()
    g = torch.Generator().manual_seed(0)
    samples = mrf.gibbs(150, burn_in=50, n_chains=300, generator=g)
    assert samples.shape == (150, 300, 5) and samples.dtype == torch.long
    exact = mrf.marginals()
    flat = samples.reshape(-1, 5)
    for i, v in enumerate(mrf.variables):
        k = len(mrf.states[v])
        freq = torch.bincount(flat[:, i], minlength=k).double() / len(flat)
        assert (freq - exact[v][0]).abs().max() < 0.015, (v, freq, exact[v])
    # a pairwise marginal on the cycle, too
    x, lp, _ = _brute(mrf)
    p = torch.softmax(lp, 0)
    want = torch.zeros(2, 3, dtype=F64).index_put_((x[:, 0], x[:, 1]), p, accumulate=True)
    got = torch.zeros(2, 3, dtype=F64).index_put_(
        (flat[:, 0], flat[:, 1]), torch.ones(len(flat), dtype=F64), accumulate=True
    ) / len(flat)
    assert (got - want).abs().max() < 0.015


def test_gibbs_mean_energy_on_a_2d_ising_lattice():
    mrf = MarkovRandomField.ising_2d(4, J=1.0, h=0.1, beta=0.3)
    assert len(mrf._colours) == 2  # the checkerboard
    x, lp, _ = _brute(mrf)
    exact = float((torch.softmax(lp, 0) * -lp).sum())
    s = mrf.gibbs(100, burn_in=50, n_chains=200, generator=torch.Generator().manual_seed(3))
    assert float(mrf.energy(s).mean()) == pytest.approx(exact, abs=0.1)
    m = magnetization(s)
    assert m.shape == (100, 200)
    exact_m = float((torch.softmax(lp, 0) * (2 * x.double() - 1).mean(1)).sum())
    assert float(m.mean()) == pytest.approx(exact_m, abs=0.02)


def test_gibbs_arguments_thin_flatten_init_and_reproducibility():
    mrf = _test_model()
    a = mrf.gibbs(7, burn_in=3, thin=2, n_chains=4, generator=torch.Generator().manual_seed(5))
    b = mrf.gibbs(7, burn_in=3, thin=2, n_chains=4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    flat = mrf.gibbs(
        7, burn_in=3, thin=2, n_chains=4, generator=torch.Generator().manual_seed(5), flatten=True
    )
    assert torch.equal(flat, a.reshape(28, 5))
    init = torch.tensor([1, 2, 1, 2, 1])
    c = mrf.gibbs(2, burn_in=0, n_chains=3, init=init, generator=torch.Generator().manual_seed(0))
    assert c.shape == (2, 3, 5)
    assert mrf.gibbs(0, burn_in=1).shape == (0, 1, 5)
    with pytest.raises(ValueError, match=r"gibbs: init: expected shape \(3, 5\)"):
        mrf.gibbs(2, n_chains=3, init=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"gibbs: thin: expected an int in \[1, inf\]"):
        mrf.gibbs(2, thin=0)
    with pytest.raises(ValueError, match="state index 3 outside"):
        mrf.gibbs(2, init=torch.tensor([0, 3, 0, 0, 0]))


def test_gibbs_chains_leave_impossible_starts_and_stay_in_the_support():
    # a and b must differ; c must equal b; starting from a == b == c == 0 (impossible)
    ne = torch.tensor([[-math.inf, 0.0], [0.0, -math.inf]], dtype=F64)
    eq = torch.tensor([[0.0, -math.inf], [-math.inf, 0.0]], dtype=F64)
    mrf = MarkovRandomField(
        {"a": 2, "b": 2, "c": 2},
        [(("a", "b"), ne), (("b", "c"), eq), (("a",), torch.tensor([0.0, 1.0]))],
    )
    s = mrf.gibbs(
        50,
        burn_in=20,
        n_chains=16,
        init=torch.tensor([0, 0, 0]),
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.isfinite(mrf.energy(s)).all()


# --------------------------------------------------------------- Boltzmann machine


def test_fully_visible_boltzmann_machine_matches_its_definition():
    g = torch.Generator().manual_seed(2)
    n = 6
    A = torch.randn(n, n, generator=g, dtype=F64)
    W = (A + A.T) / 2
    W.fill_diagonal_(0)
    W[0, 3] = W[3, 0] = 0.0  # a missing edge
    b = torch.randn(n, generator=g, dtype=F64)
    bm = MarkovRandomField.fully_visible_boltzmann_machine(W, b)
    assert bm.states["x0"] == ["0", "1"]
    assert ("x0", "x3") not in bm.edges() and len(bm.edges()) == n * (n - 1) // 2 - 1
    x = _all_assignments(bm)
    xf = x.double()
    energy = -0.5 * torch.einsum("bi,ij,bj->b", xf, W, xf) - xf @ b
    torch.testing.assert_close(bm.energy(x), energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bm.log_partition(), torch.logsumexp(-energy, 0), rtol=1e-12, atol=0)
    # learning signal, from the definition's ½ xᵀWx: ∂ log Z / ∂W_ij = E[x_i x_j] / 2 for
    # every i ≠ j (symmetric, so a gradient step keeps W symmetric), the zero entry included
    # (W requires grad: every pair gets a factor, so W_03 learns too); 0 on the diagonal
    Wg = W.clone().requires_grad_()
    bm2 = MarkovRandomField.fully_visible_boltzmann_machine(Wg, b)
    assert len(bm2.edges()) == n * (n - 1) // 2
    torch.testing.assert_close(bm2.log_partition(), bm.log_partition(), rtol=1e-12, atol=0)
    (grad,) = torch.autograd.grad(bm2.log_partition(), Wg)
    p = torch.softmax(-energy, 0)
    second = torch.einsum("b,bi,bj->ij", p, xf, xf)
    off = ~torch.eye(n, dtype=torch.bool)
    torch.testing.assert_close(grad[off], second[off] / 2, rtol=1e-10, atol=1e-12)
    assert torch.equal(grad.diagonal(), torch.zeros(n, dtype=F64))


def test_boltzmann_machine_bad_parameters():
    fn = MarkovRandomField.fully_visible_boltzmann_machine
    b = torch.zeros(3)
    with pytest.raises(ValueError, match="symmetric"):
        fn(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), b)
    with pytest.raises(ValueError, match="zero diagonal"):
        fn(torch.eye(3), b)
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        fn(torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="square"):
        fn(torch.zeros(3, 2), b)
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.zeros(3, 3, dtype=torch.long), b)
    with pytest.raises(ValueError, match="finite"):
        fn(torch.full((3, 3), math.nan), b)


# ------------------------------------------------------------- impossible configurations


@settings(max_examples=_EXAMPLES)
@given(random_mrfs(max_vars=5, neg_inf=True))
def test_neg_inf_potentials_match_brute_force(mrf):
    x, lp, log_z = _brute(mrf)
    if torch.isneginf(log_z):
        assert torch.isneginf(mrf.log_partition())
        with pytest.raises(ImpossibleEvidence):
            mrf.marginals()
        return
    torch.testing.assert_close(mrf.log_partition(), log_z, rtol=1e-10, atol=1e-10)
    got = mrf.marginals()
    for v, want in _brute_marginals(mrf).items():
        torch.testing.assert_close(got[v][0], want, rtol=1e-9, atol=1e-10)
    lp_got = mrf.log_prob(x)
    assert torch.equal(torch.isneginf(lp_got), torch.isneginf(lp))
    assert torch.equal(torch.isposinf(mrf.energy(x)), torch.isneginf(lp))


def test_impossible_configuration_and_evidence():
    t = torch.tensor([[0.0, -math.inf], [0.0, 0.0]], dtype=F64)  # a=0, b=1 is impossible
    mrf = MarkovRandomField({"a": ["off", "on"], "b": 2}, [(("a", "b"), t)])
    assert float(mrf.log_partition()) == pytest.approx(math.log(3))
    assert torch.isneginf(mrf.log_prob(torch.tensor([0, 1])))
    torch.testing.assert_close(
        mrf.marginals({"a": "off"})["b"], torch.tensor([[1.0, 0.0]], dtype=F64)
    )
    assert torch.isneginf(mrf.log_partition({"a": 0, "b": 1}))[0]
    rows = torch.tensor([[1, -1], [0, 1]])
    with pytest.raises(
        ImpossibleEvidence, match=r"\(rows \[1\]\); row 1: \{'a': 'off', 'b': '1'\}"
    ):
        mrf.marginals(rows)
    with pytest.raises(ImpossibleEvidence):
        mrf.most_probable_explanation(rows)
    # a linear DiscreteFactor with a zero potential is the same model
    lin = MarkovRandomField.from_factors([DiscreteFactor(["a", "b"], t.exp())])
    torch.testing.assert_close(lin.log_partition(), mrf.log_partition())
    # a model in which nothing is possible
    dead = MarkovRandomField({"a": 2}, [(("a",), torch.full((2,), -math.inf))])
    assert torch.isneginf(dead.log_partition())
    with pytest.raises(ImpossibleEvidence):
        dead.marginals()
    with pytest.raises(ImpossibleEvidence):
        dead.log_prob(torch.tensor([0]))


def test_underflow_of_conflicting_factors_is_detected():
    # each factor alone is fine; together only configurations of relative weight e^-1000
    # remain: linear space with per-factor scaling cannot represent that (documented)
    mrf = MarkovRandomField(
        {"a": 2},
        [(("a",), torch.tensor([0.0, -1000.0])), (("a",), torch.tensor([-1000.0, 0.0]))],
    )
    with pytest.raises(FloatingPointError, match="underflowed"):
        mrf.log_partition()


# --------------------------------------------------------------------- structure, API


def test_four_cycle_from_factors_and_its_independences():
    """The notes' cyclic undirected model: a ⊥ c | {b, d} and b ⊥ d | {a, c} hold for any
    potentials on the 4-cycle (the DAG comparison is the lab's)."""
    g = torch.Generator().manual_seed(4)
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]
    agree = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    mrf = MarkovRandomField.from_factors(
        [(e, agree + 0.3 * torch.randn(2, 2, generator=g)) for e in edges]
    )
    assert mrf.variables == ["a", "b", "c", "d"]
    assert mrf.neighbors("a") == ["b", "d"]
    assert mrf.separated("a", "c", ["b", "d"]) and mrf.separated("b", "d", ["a", "c"])
    assert not mrf.separated("a", "c", ["b"]) and not mrf.separated(["a"], ["b"])
    _, lp, _ = _brute(mrf)
    p = torch.softmax(lp, 0).reshape(2, 2, 2, 2)  # (a, b, c, d)
    for bb, dd in itertools.product(range(2), range(2)):
        pac = p[:, bb, :, dd] / p[:, bb, :, dd].sum()
        torch.testing.assert_close(pac, torch.outer(pac.sum(1), pac.sum(0)))
    # given b alone, a and c are dependent
    pac_b = p.sum(3)[:, 0, :] / p.sum(3)[:, 0, :].sum()
    assert (pac_b - torch.outer(pac_b.sum(1), pac_b.sum(0))).abs().max() > 1e-3
    assert mrf.full_table_parameters() == 15 and mrf.num_parameters() == 16
    assert "4 variables, 4 factors, 4 edges" in repr(mrf)


def test_variables_in_no_factor_are_uniform_and_scalar_factors_are_constants():
    mrf = MarkovRandomField(
        {"a": 2, "free": ["x", "y", "z"]},
        [(("a",), torch.tensor([0.0, 1.0])), ((), torch.tensor(0.5))],
    )
    assert float(mrf.log_partition()) == pytest.approx(math.log(3) + 0.5 + math.log(1 + math.e))
    torch.testing.assert_close(mrf.marginals()["free"], torch.full((1, 3), 1 / 3, dtype=F64))
    bp = mrf.loopy_belief_propagation()
    torch.testing.assert_close(bp.log_partition, mrf.log_partition().reshape(1))
    empty = MarkovRandomField({"u": 4}, [])
    assert float(empty.log_partition()) == pytest.approx(math.log(4))
    assert empty.gibbs(3, n_chains=2).shape == (3, 2, 1)
    assert empty.loopy_belief_propagation().converged


def test_evidence_forms_agree():
    mrf = _test_model()
    by_name = mrf.marginals({"b": 2, "e": 1})
    by_tensor = mrf.marginals(torch.tensor([-1, 2, -1, -1, 1]))
    by_rows = mrf.marginals({"b": torch.tensor([2, 0]), "e": torch.tensor(1)})
    for v in mrf.variables:
        torch.testing.assert_close(by_name[v], by_tensor[v])
        torch.testing.assert_close(by_name[v][0], by_rows[v][0])
    assert by_rows["a"].shape == (2, 2)


def test_bad_input_errors():
    t = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"factors\[0\]: unknown variables \['z'\]"):
        MarkovRandomField({"a": 2, "b": 2}, [(("a", "z"), t)])
    with pytest.raises(
        ValueError, match=r"expected log-potentials of shape \(2, 3\) .* got \(2, 2\)"
    ):
        MarkovRandomField({"a": 2, "b": 3}, [(("a", "b"), t)])
    with pytest.raises(ValueError, match=r"got NaN at index \(1, 0\)"):
        MarkovRandomField({"a": 2, "b": 2}, [(("a", "b"), torch.tensor([[0.0, 0], [math.nan, 0]]))])
    with pytest.raises(ValueError, match=r"got \+inf"):
        MarkovRandomField({"a": 2}, [(("a",), torch.tensor([0.0, math.inf]))])
    with pytest.raises(ValueError, match="repeats"):
        MarkovRandomField({"a": 2}, [(("a", "a"), t)])
    with pytest.raises(TypeError, match="sequence of names"):
        MarkovRandomField({"a": 2}, [("a", torch.zeros(2))])
    with pytest.raises(TypeError, match="pair or a DiscreteFactor"):
        MarkovRandomField({"a": 2}, [torch.zeros(2)])
    with pytest.raises(ValueError, match="distinct state names"):
        MarkovRandomField({"a": ["x", "x"]}, [])
    with pytest.raises(ValueError, match="at least one variable"):
        MarkovRandomField({}, [])
    with pytest.raises(ValueError, match=r"states\['a'\]: expected an int in \[1, inf\]"):
        MarkovRandomField({"a": 0}, [])
    with pytest.raises(ValueError, match="negative potentials"):
        MarkovRandomField.from_factors([DiscreteFactor(["a"], torch.tensor([1.0, -1.0]))])
    with pytest.raises(ValueError, match="3 states here and 2"):
        MarkovRandomField.from_factors([(("a",), torch.zeros(2)), (("a", "b"), torch.zeros(3, 2))])
    with pytest.raises(ValueError, match="every variable exactly once"):
        MarkovRandomField({"a": 2, "b": 2}, [], order=["a"])
    with pytest.raises(TypeError, match=r"floating torch\.dtype"):
        MarkovRandomField({"a": 2}, [], dtype=torch.long)
    mrf = _test_model()
    with pytest.raises(ValueError, match="unknown variables"):
        mrf.marginals({"zz": 0})
    with pytest.raises(ValueError, match="has no state 'q'"):
        mrf.marginals({"a": "q"})
    with pytest.raises(ValueError, match=r"'b': state index 3 outside \[0, 2\] \(or -1\)"):
        mrf.marginals(torch.tensor([[0, 3, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"expected a \(B, 5\) tensor"):
        mrf.log_partition(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer state indices"):
        mrf.energy(torch.zeros(5))
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 5\)"):
        mrf.energy(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"state index -1 outside \[0, 1\]$"):
        mrf.energy(torch.tensor([-1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="unknown variable 'zz'"):
        mrf.conditional(torch.zeros(5, dtype=torch.long), "zz")
    with pytest.raises(ValueError, match="heuristic: expected one of"):
        mrf.plan("greedy")
    with pytest.raises(ValueError, match="L: expected an int in"):
        MarkovRandomField.ising_2d(0)
    with pytest.raises(ValueError, match="beta: expected a value in"):
        MarkovRandomField.ising_chain(4, beta=-1.0)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_dtype_and_device_are_kept(dtype):
    mrf = MarkovRandomField.ising_2d(3, J=0.5, h=0.2, beta=1.0, dtype=dtype)
    ref = MarkovRandomField.ising_2d(3, J=0.5, h=0.2, beta=1.0)
    assert ref.dtype == F64 and ref.device == torch.device("cpu")
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == F32 else {"rtol": 1e-12, "atol": 1e-12}
    assert all(f.values.dtype == dtype for f in mrf.factors)
    log_z = mrf.log_partition()
    assert log_z.dtype == dtype and log_z.device == mrf.device
    torch.testing.assert_close(log_z.double(), ref.log_partition(), **tol)
    marg = mrf.marginals({"s0_0": 1})
    assert marg["s1_1"].dtype == dtype
    torch.testing.assert_close(marg["s1_1"].double(), ref.marginals({"s0_0": 1})["s1_1"], **tol)
    x = mrf.gibbs(3, n_chains=2, generator=torch.Generator().manual_seed(0))
    assert mrf.energy(x).dtype == dtype and mrf.log_prob(x).dtype == dtype
    bp = mrf.loopy_belief_propagation()
    assert bp.marginals["s0_0"].dtype == dtype and bp.log_partition.dtype == dtype
    # float64 potentials given to a float32 field are converted
    conv = MarkovRandomField({"a": 2}, [(("a",), torch.zeros(2, dtype=F64))], dtype=F32)
    assert conv.factors[0].values.dtype == F32
