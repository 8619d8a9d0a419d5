"""BayesianNetwork against brute force: the full joint table, enumerated assignment by
assignment with plain Python products of CPT entries, is the oracle for posteriors,
probabilities of evidence, log-likelihoods, joint queries and the most probable explanation
(asia, cancer, earthquake and random small DAGs from hypothesis, with exact zeros). Sampling
is checked with chi-square tests against the exact marginals and pairwise joints; fitting
against counts made in the test and the Dirichlet formulas; EM against a brute-force E-step.
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mldl.pgm import BayesianNetwork, ImpossibleEvidence

DATA = Path(__file__).parent / "data"
F64 = torch.float64
TOL = 1e-10
_EXAMPLES = min(30, settings.default.max_examples)


def load(name: str) -> BayesianNetwork:
    return BayesianNetwork.read_bif(DATA / f"{name}.bif.gz")


# ------------------------------------------------------------------------- brute force


def brute_joint(bn: BayesianNetwork) -> torch.Tensor:
    """P(x) for every assignment x (axes in bn.variables order), one Python product of CPT
    entries per assignment."""
    col = {v: i for i, v in enumerate(bn.variables)}
    cards = [len(bn.states[v]) for v in bn.variables]
    cpts = {v: bn.cpts[v].tolist() for v in bn.variables}
    joint = torch.empty(cards, dtype=F64)
    for x in itertools.product(*(range(k) for k in cards)):
        p = 1.0
        for v in bn.variables:
            t = cpts[v]
            for u in bn.parents[v]:
                t = t[x[col[u]]]
            p *= t[x[col[v]]]
        joint[x] = p
    return joint


def restrict(joint: torch.Tensor, row) -> torch.Tensor:
    """The joint with every assignment that disagrees with the evidence row set to 0."""
    index = tuple(int(s) if s >= 0 else slice(None) for s in row)
    out = torch.zeros_like(joint)
    out[index] = joint[index]
    return out


def sum_except(t: torch.Tensor, keep: tuple[int, ...]) -> torch.Tensor:
    """``t`` summed over every axis but ``keep`` (kept in increasing order)."""
    out = [d for d in range(t.dim()) if d not in keep]
    return t.sum(dim=out) if out else t  # (sum(dim=[]) would sum everything)


def brute_marginals(joint: torch.Tensor, row) -> list[torch.Tensor]:
    m = restrict(joint, row)
    total = m.sum()
    return [sum_except(m, (i,)) / total for i in range(joint.dim())]


def brute_mpe(joint: torch.Tensor, row) -> tuple[tuple[int, ...], float, float]:
    """(argmax assignment, its probability, the runner-up's probability)."""
    flat = restrict(joint, row).flatten()
    top = torch.topk(flat, min(2, flat.numel()))
    best = tuple(int(i) for i in torch.unravel_index(top.indices[0], joint.shape))
    second = float(top.values[1]) if flat.numel() > 1 else 0.0
    return best, float(top.values[0]), second


def possible_rows(joint: torch.Tensor, n_rows: int, g: torch.Generator, p_obs: float):
    """Evidence rows with positive probability: an assignment drawn from the joint, each
    variable then hidden with probability 1 - p_obs."""
    idx = torch.multinomial(joint.flatten(), n_rows, replacement=True, generator=g)
    full = torch.stack(torch.unravel_index(idx, joint.shape), 1)
    hide = torch.rand(full.shape, generator=g) > p_obs
    return torch.where(hide, torch.full_like(full, -1), full)


def check_posteriors(bn, joint, rows, post) -> None:
    assert set(post) == set(bn.variables)
    for r, row in enumerate(rows.tolist()):
        want = brute_marginals(joint, row)
        for i, v in enumerate(bn.variables):
            got = post[v][r]
            assert got.dtype == F64
            assert torch.allclose(got, want[i], atol=TOL, rtol=0), (v, row, got, want[i])


# ---------------------------------------------------------------------- random networks


@st.composite
def networks(draw, max_vars: int = 7):
    """A random DAG (parents respect a random order, not the order the variables are listed
    in), 2-3 states each, random CPTs with some exact zeros (never a whole row)."""
    n = draw(st.integers(1, max_vars))
    cards = draw(st.lists(st.integers(2, 3), min_size=n, max_size=n))
    names = [f"v{i}" for i in range(n)]
    topo = draw(st.permutations(range(n)))
    parents = {}
    for pos, i in enumerate(topo):
        earlier = [names[j] for j in topo[:pos]]
        count = draw(st.integers(0, min(3, pos)))
        parents[names[i]] = draw(st.permutations(earlier))[:count] if count else []
    zero_frac = draw(st.sampled_from([0.0, 0.25, 0.5]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    cpts = {}
    for i, v in enumerate(names):
        shape = [cards[names.index(p)] for p in parents[v]] + [cards[i]]
        t = torch.rand(shape, generator=g, dtype=F64) + 0.02
        zero = torch.rand(shape, generator=g) < zero_frac
        keep = torch.randint(cards[i], shape[:-1], generator=g)
        zero.scatter_(-1, keep.unsqueeze(-1), False)
        t = torch.where(zero, torch.zeros_like(t), t)
        cpts[v] = t / t.sum(-1, keepdim=True)
    states = {v: [f"{v}_s{j}" for j in range(cards[i])] for i, v in enumerate(names)}
    seed = draw(st.integers(0, 2**31 - 1))
    return BayesianNetwork(states, parents, cpts), seed


def _dense_network() -> BayesianNetwork:
    """The largest case: 7 variables of 3 and 2 states, three parents each where possible,
    listed in reverse topological order, with exact zeros."""
    g = torch.Generator().manual_seed(123)
    names = [f"x{i}" for i in range(7)]
    cards = {v: 3 if i % 2 == 0 else 2 for i, v in enumerate(names)}
    parents = {v: names[max(0, i - 3) : i][::-1] for i, v in enumerate(names)}
    cpts = {}
    for v in names:
        shape = [cards[p] for p in parents[v]] + [cards[v]]
        t = torch.rand(shape, generator=g, dtype=F64)
        t[..., 0] = torch.where(t[..., 0] < 0.3, 0.0, t[..., 0])
        cpts[v] = t / t.sum(-1, keepdim=True)
    states = {v: [f"{v}{j}" for j in range(cards[v])] for v in reversed(names)}
    return BayesianNetwork(states, parents, cpts)


def evidence_forms(bn, rows: torch.Tensor):
    """The same evidence rows as a (B, n) tensor and as a dict of (B,) tensors; the first row
    also as a dict of state names and indices."""
    as_dict_of_tensors = {v: rows[:, i].clone() for i, v in enumerate(bn.variables)}
    first = {}
    for i, v in enumerate(bn.variables):
        s = int(rows[0, i])
        if s >= 0:
            first[v] = bn.states[v][s] if i % 2 else s
    return as_dict_of_tensors, first


@settings(max_examples=_EXAMPLES)
@given(networks())
@example(net=(_dense_network(), 7))
def test_random_networks_posteriors_match_brute_force(net):
    bn, seed = net
    g = torch.Generator().manual_seed(seed)
    joint = brute_joint(bn)
    assert float(joint.sum()) == pytest.approx(1.0, abs=1e-12)
    rows = possible_rows(joint, 5, g, 0.4)
    rows[0] = -1  # no evidence at all
    for heuristic in ("min_fill", "min_weight"):
        check_posteriors(bn, joint, rows, bn.posterior_marginals(rows, heuristic=heuristic))
    dict_of_tensors, first = evidence_forms(bn, rows[1:])
    check_posteriors(bn, joint, rows[1:], bn.posterior_marginals(dict_of_tensors))
    check_posteriors(bn, joint, rows[1:2], bn.posterior_marginals(first))


@settings(max_examples=_EXAMPLES)
@given(networks())
@example(net=(_dense_network(), 8))
def test_random_networks_evidence_probability_and_query(net):
    bn, seed = net
    g = torch.Generator().manual_seed(seed)
    joint = brute_joint(bn)
    rows = possible_rows(joint, 6, g, 0.5)
    # and rows of any evidence, impossible ones included (probability 0, log -inf)
    cards = torch.tensor([len(bn.states[v]) for v in bn.variables])
    anything = (torch.rand(4, len(cards), generator=g) * (cards + 1)).long() - 1
    rows = torch.cat([rows, anything])
    want = torch.stack([restrict(joint, row).sum() for row in rows.tolist()])
    p = bn.probability_of_evidence(rows)
    assert p.shape == (len(rows),)
    assert torch.allclose(p, want, atol=TOL, rtol=0)
    log_p = bn.log_prob(rows)
    assert not bool(torch.isnan(log_p).any())
    pos = want > 0
    assert torch.allclose(log_p[pos], want[pos].log(), atol=1e-9, rtol=0)
    assert bool(torch.isneginf(log_p[~pos]).all())
    assert torch.allclose(bn.log_probability_of_evidence(rows), log_p)
    # the joint posterior of two variables given a dict of evidence
    if len(bn.variables) < 2:
        return
    i, j = torch.randperm(len(bn.variables), generator=g)[:2].tolist()
    a, b = bn.variables[i], bn.variables[j]
    row = rows[int(torch.randint(6, (), generator=g))].clone()
    if bool(torch.rand((), generator=g) < 0.7):
        row[[i, j]] = -1  # mostly: the queried variables unobserved
    evidence = {bn.variables[k]: int(s) for k, s in enumerate(row.tolist()) if s >= 0}
    q = bn.query([a, b], evidence)
    m = restrict(joint, row.tolist())
    pair = sum_except(m, (i, j))
    pair = pair / pair.sum()
    if i > j:
        pair = pair.T
    assert q.variables == (a, b)
    assert q.state_names == {a: bn.states[a], b: bn.states[b]}
    assert torch.allclose(q.values, pair, atol=TOL, rtol=0)


@settings(max_examples=_EXAMPLES)
@given(networks())
@example(net=(_dense_network(), 9))
def test_random_networks_mpe_matches_brute_force(net):
    bn, seed = net
    g = torch.Generator().manual_seed(seed)
    joint = brute_joint(bn)
    rows = possible_rows(joint, 4, g, 0.3)
    rows[0] = -1
    results = [bn.most_probable_explanation(rows, heuristic=h) for h in ("min_fill", "min_weight")]
    for r, row in enumerate(rows.tolist()):
        best, p_best, p_second = brute_mpe(joint, row)
        if p_best - p_second <= 1e-9 * p_best:
            continue  # a tie: any of the best is right
        for assignment, log_value in results:
            assert tuple(assignment[r].tolist()) == best, (row, assignment[r], best)
            assert float(log_value[r]) == pytest.approx(math.log(p_best), abs=1e-9)


# ---------------------------------------------------------------------- bnlearn networks


def _all_single_observations(bn, joint):
    rows = []
    for i, v in enumerate(bn.variables):
        for s in range(len(bn.states[v])):
            row = [-1] * len(bn.variables)
            row[i] = s
            if float(restrict(joint, row).sum()) > 0:
                rows.append(row)
    return torch.tensor(rows)


@pytest.mark.parametrize("name", ["asia", "cancer", "earthquake"])
def test_bnlearn_posteriors_match_brute_force(name):
    bn = load(name)
    joint = brute_joint(bn)
    g = torch.Generator().manual_seed(1)
    rows = torch.cat(
        [
            torch.full((1, len(bn.variables)), -1),
            _all_single_observations(bn, joint),
            possible_rows(joint, 20, g, 0.5),
        ]
    )
    for heuristic in ("min_fill", "min_weight"):
        check_posteriors(bn, joint, rows, bn.posterior_marginals(rows, heuristic=heuristic))
    dict_of_tensors, first = evidence_forms(bn, rows[-20:])
    check_posteriors(bn, joint, rows[-20:], bn.posterior_marginals(dict_of_tensors))
    check_posteriors(bn, joint, rows[-20:-19], bn.posterior_marginals(first))
    want = torch.stack([restrict(joint, row).sum() for row in rows.tolist()])
    assert torch.allclose(bn.probability_of_evidence(rows), want, atol=TOL, rtol=0)
    assert torch.allclose(bn.log_prob(rows), want.log(), atol=1e-9, rtol=0)


def test_asia_by_hand():
    bn = load("asia")
    # P(lung = yes) = 0.5 * 0.1 + 0.5 * 0.01
    post = bn.posterior_marginals()
    assert float(post["lung"][0, 0]) == pytest.approx(0.055, abs=1e-15)
    # P(tub = yes) = 0.01 * 0.05 + 0.99 * 0.01
    assert float(post["tub"][0, 0]) == pytest.approx(0.0104, abs=1e-15)
    # either = lung OR tub: P(either = no) = 0.945 * 0.9896
    assert float(post["either"][0, 1]) == pytest.approx(0.945 * 0.9896, abs=1e-15)
    # P(smoke = yes | lung = yes) = 0.05 / 0.055
    post = bn.posterior_marginals({"lung": "yes"})
    assert float(post["smoke"][0, 0]) == pytest.approx(0.05 / 0.055, abs=1e-14)
    assert post["lung"][0].tolist() == [1.0, 0.0]  # observed: one-hot
    assert float(post["either"][0, 0]) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("name", ["asia", "cancer", "earthquake"])
def test_bnlearn_query_and_mpe_match_brute_force(name):
    bn = load(name)
    joint = brute_joint(bn)
    g = torch.Generator().manual_seed(2)
    n = len(bn.variables)
    rows = possible_rows(joint, 12, g, 0.4)
    for row in rows.tolist():
        i, j = torch.randperm(n, generator=g)[:2].tolist()
        row[i] = row[j] = -1
        evidence = {
            bn.variables[k]: bn.states[bn.variables[k]][s] for k, s in enumerate(row) if s >= 0
        }
        q = bn.query([bn.variables[i], bn.variables[j]], evidence)
        m = restrict(joint, row)
        pair = sum_except(m, (i, j))
        pair = pair / pair.sum()
        assert torch.allclose(q.values, pair.T if i > j else pair, atol=TOL, rtol=0)
    rows[0] = -1
    for heuristic in ("min_fill", "min_weight"):
        assignment, log_value = bn.most_probable_explanation(rows, heuristic=heuristic)
        assert assignment.shape == (len(rows), n) and assignment.dtype == torch.long
        for r, row in enumerate(rows.tolist()):
            best, p_best, p_second = brute_mpe(joint, row)
            if p_best - p_second <= 1e-9 * p_best:
                continue
            assert tuple(assignment[r].tolist()) == best
            assert float(log_value[r]) == pytest.approx(math.log(p_best), abs=1e-9)
            # observed variables keep their states
            assert all(assignment[r, k] == s for k, s in enumerate(row) if s >= 0)


def test_query_of_one_variable_and_of_an_observed_one():
    bn = load("asia")
    joint = brute_joint(bn)
    q = bn.query(["bronc"], {"dysp": "yes"})
    row = [-1] * 8
    row[bn.variables.index("dysp")] = 0
    want = brute_marginals(joint, row)[bn.variables.index("bronc")]
    assert q.variables == ("bronc",)
    assert torch.allclose(q.values, want, atol=TOL, rtol=0)
    q = bn.query(["dysp", "bronc"], {"dysp": "yes"})
    assert torch.allclose(q.values[1], torch.zeros(2, dtype=F64), atol=TOL)
    assert torch.allclose(q.values[0], want, atol=TOL, rtol=0)


def test_query_refuses_a_batch_of_evidence_rows():
    # one probe table for the query: several rows would add their posteriors into it
    bn = load("asia")
    with pytest.raises(ValueError, match=r"query: evidence: expected one evidence row.*2 rows"):
        bn.query(["lung"], {"dysp": torch.tensor([0, 1])})
    one = bn.query(["lung"], {"dysp": torch.tensor([0])})  # a batch of one is one row
    assert torch.allclose(one.values, bn.query(["lung"], {"dysp": "yes"}).values)


def test_alarm_posteriors_are_distributions_and_consistent():
    """alarm is too large for brute force (about 10^16 assignments): what can still be checked
    exactly is that each posterior is a distribution, that observed variables are one-hot,
    and Bayes' rule between P(e) and the posteriors: P(v = x | e) = P(e, v = x) / P(e)."""
    bn = load("alarm")
    rows = bn.sample(16, generator=torch.Generator().manual_seed(3))
    hide = torch.rand(rows.shape, generator=torch.Generator().manual_seed(4)) > 0.3
    rows = torch.where(hide, torch.full_like(rows, -1), rows)
    post = bn.posterior_marginals(rows)
    p_e = bn.probability_of_evidence(rows)
    for i, v in enumerate(bn.variables):
        assert torch.allclose(post[v].sum(1), torch.ones(16, dtype=F64), atol=1e-12)
        seen = rows[:, i] >= 0
        assert torch.equal(post[v][seen].argmax(1), rows[seen, i])
    v = "HR"
    i = bn.variables.index(v)
    for s in range(len(bn.states[v])):
        with_s = rows.clone()
        with_s[:, i] = torch.where(rows[:, i] >= 0, rows[:, i], s)
        p_es = bn.probability_of_evidence(with_s)
        unseen = rows[:, i] < 0
        ratio = p_es[unseen] / p_e[unseen]
        assert torch.allclose(post[v][unseen, s], ratio, atol=1e-10, rtol=1e-8)


# --------------------------------------------------------------------------- sampling


def _chi_square_p(observed: torch.Tensor, probs: torch.Tensor) -> float:
    """Goodness-of-fit p-value, cells with expected count < 5 pooled into one."""
    observed, probs = observed.flatten().double(), probs.flatten()
    n = float(observed.sum())
    expected = probs * n
    assert float(observed[probs == 0].sum()) == 0  # impossible cells never occur
    small = expected < 5
    obs = observed[~small].tolist()
    exp = expected[~small].tolist()
    if float(expected[small].sum()) > 0:
        obs.append(float(observed[small].sum()))
        exp.append(float(expected[small].sum()))
    if len(obs) < 2:
        return 1.0
    scale = sum(obs) / sum(exp)  # exact totals (rounding in the probabilities)
    scipy_stats = pytest.importorskip("scipy.stats")
    return float(scipy_stats.chisquare(obs, [e * scale for e in exp]).pvalue)


@pytest.mark.parametrize(("name", "seed"), [("asia", 10), ("survey", 11), ("cancer", 12)])
def test_sample_frequencies_match_exact_marginals_and_pairs(name, seed):
    bn = load(name)
    joint = brute_joint(bn)
    n = 20_000
    x = bn.sample(n, generator=torch.Generator().manual_seed(seed))
    assert x.shape == (n, len(bn.variables)) and x.dtype == torch.long
    cards = [len(bn.states[v]) for v in bn.variables]
    for i, k in enumerate(cards):
        assert int(x[:, i].min()) >= 0 and int(x[:, i].max()) < k
    # no sample has probability 0
    assert bool((joint[tuple(x.T)] > 0).all())
    p_values = []
    d = joint.dim()
    for i, k in enumerate(cards):
        counts = torch.bincount(x[:, i], minlength=k)
        p_values.append(_chi_square_p(counts, sum_except(joint, (i,))))
    for i, j in itertools.combinations(range(d), 2):
        counts = torch.bincount(x[:, i] * cards[j] + x[:, j], minlength=cards[i] * cards[j])
        pair = sum_except(joint, (i, j))
        p_values.append(_chi_square_p(counts, pair))
    # Bonferroni: the family of tests fails by chance with probability at most 1e-3
    assert min(p_values) * len(p_values) > 1e-3, sorted(p_values)[:3]


def test_sample_deterministic_zeros_and_seeding():
    bn = load("asia")
    a = bn.sample(5000, generator=torch.Generator().manual_seed(5))
    b = bn.sample(5000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    col = {v: i for i, v in enumerate(bn.variables)}
    # either = lung OR tub ("yes" is state 0)
    either_yes = (a[:, col["lung"]] == 0) | (a[:, col["tub"]] == 0)
    assert torch.equal(a[:, col["either"]] == 0, either_yes)
    assert bn.sample(0).shape == (0, 8)
    with pytest.raises(ValueError):
        bn.sample(-1)
    with pytest.raises(TypeError):
        bn.sample(2.5)


# ---------------------------------------------------------------------------- fitting


def _counts(bn, data: torch.Tensor) -> dict[str, torch.Tensor]:
    """N_ijk by counting rows in Python."""
    col = {v: i for i, v in enumerate(bn.variables)}
    rows = [tuple(r) for r in data.tolist()]
    out = {}
    for v in bn.variables:
        cols = [*bn.parents[v], v]
        c = Counter(tuple(r[col[u]] for u in cols) for r in rows)
        t = torch.zeros([len(bn.states[u]) for u in cols], dtype=F64)
        for key, k in c.items():
            t[key] = k
        out[v] = t
    return out


def _dirichlet(counts: torch.Tensor, alpha) -> torch.Tensor:
    """(N_ijk + alpha_ijk) / sum_k (N_ijk + alpha_ijk), uniform where that is 0 / 0."""
    c = counts + alpha
    out = torch.empty_like(c)
    flat, rows = c.reshape(-1, c.shape[-1]), out.view(-1, c.shape[-1])
    for r in range(len(flat)):
        total = float(flat[r].sum())
        rows[r] = flat[r] / total if total > 0 else torch.full_like(flat[r], 1 / c.shape[-1])
    return out


def _fresh(name: str) -> BayesianNetwork:
    bn = load(name)
    uniform = {v: torch.full_like(t, 1 / t.shape[-1]) for v, t in bn.cpts.items()}
    return BayesianNetwork(bn.states, bn.parents, uniform)


def test_counts_and_mle_are_normalised_counts():
    data = load("asia").sample(3000, generator=torch.Generator().manual_seed(6))
    bn = _fresh("asia")
    want = _counts(bn, data)
    got = bn.counts(data)
    for v in bn.variables:
        assert torch.equal(got[v], want[v])
    assert bn.fit(data) is bn
    for v in bn.variables:
        assert torch.allclose(bn.cpts[v], _dirichlet(want[v], 0.0), atol=1e-14, rtol=0)


def test_unseen_parent_configurations_are_uniform():
    bn = BayesianNetwork(
        {"a": ["0", "1", "2"], "b": ["0", "1", "2"]},
        {"b": ["a"]},
        {"a": torch.full((3,), 1 / 3), "b": torch.full((3, 3), 1 / 3)},
    )
    data = torch.tensor([[0, 1], [0, 1], [0, 2], [2, 0]])
    bn.fit(data)
    assert torch.allclose(bn.cpts["a"], torch.tensor([3 / 4, 0, 1 / 4], dtype=F64))
    expected_b = [[0, 2 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3], [1, 0, 0]]
    assert torch.allclose(bn.cpts["b"], torch.tensor(expected_b, dtype=F64))
    # empty data: every CPT uniform
    bn.fit(torch.empty(0, 2, dtype=torch.long))
    assert torch.allclose(bn.cpts["b"], torch.full((3, 3), 1 / 3, dtype=F64))


@pytest.mark.parametrize("ess", [1.0, 5.0, 10.0])
def test_bdeu_prior_formula(ess):
    data = load("survey").sample(400, generator=torch.Generator().manual_seed(7))
    bn = _fresh("survey")
    counts = _counts(bn, data)
    bn.fit(data, prior="bdeu", equivalent_sample_size=ess)
    for v in bn.variables:
        r = len(bn.states[v])
        q = math.prod(len(bn.states[p]) for p in bn.parents[v])
        # (N_ijk + ess/(q r)) / (N_ij + ess/q)
        n_ij = counts[v].sum(-1, keepdim=True)
        want = (counts[v] + ess / (q * r)) / (n_ij + ess / q)
        assert torch.allclose(bn.cpts[v], want, atol=1e-14, rtol=0), v


def test_pseudo_count_and_dict_priors():
    data = load("cancer").sample(300, generator=torch.Generator().manual_seed(8))
    bn = _fresh("cancer")
    counts = _counts(bn, data)
    bn.fit(data, prior=2.5)
    for v in bn.variables:
        r = len(bn.states[v])
        want = (counts[v] + 2.5) / (counts[v].sum(-1, keepdim=True) + 2.5 * r)
        assert torch.allclose(bn.cpts[v], want, atol=1e-14, rtol=0)
    g = torch.Generator().manual_seed(9)
    alpha = {"Cancer": torch.rand(2, 2, 2, generator=g, dtype=F64) * 3, "Xray": 1.0}
    bn.fit(data, prior=alpha)
    for v in bn.variables:
        a = alpha.get(v, 0.0)
        assert torch.allclose(bn.cpts[v], _dirichlet(counts[v], a), atol=1e-14, rtol=0), v


def test_prior_errors():
    bn = _fresh("cancer")
    data = torch.zeros(3, 5, dtype=torch.long)
    with pytest.raises(ValueError):
        bn.fit(data, prior=-1.0)
    with pytest.raises(ValueError):
        bn.fit(data, prior="bdeu", equivalent_sample_size=0.0)
    with pytest.raises(ValueError, match="shape"):
        bn.fit(data, prior={"Cancer": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="negative"):
        bn.fit(data, prior={"Cancer": -torch.ones(2, 2, 2)})
    with pytest.raises(TypeError):
        bn.fit(data, prior="k2")


def _brute_expected_counts(bn, data):
    """E[N_ijk | data] and the log-likelihood by enumerating, per row, every completion."""
    joint = brute_joint(bn)
    col = {v: i for i, v in enumerate(bn.variables)}
    counts = {v: torch.zeros_like(bn.cpts[v]) for v in bn.variables}
    ll = 0.0
    for row in data.tolist():
        m = restrict(joint, row)
        total = float(m.sum())
        ll += math.log(total)
        for x in itertools.product(*(range(k) for k in joint.shape)):
            w = float(m[x])
            if w == 0:
                continue
            for v in bn.variables:
                counts[v][tuple(x[col[u]] for u in [*bn.parents[v], v])] += w / total
    return counts, ll


def _masked(data, p_missing, seed):
    hide = torch.rand(data.shape, generator=torch.Generator().manual_seed(seed)) < p_missing
    return torch.where(hide, torch.full_like(data, -1), data)


def test_expected_counts_on_complete_data_are_counts():
    truth = load("cancer")
    data = truth.sample(500, generator=torch.Generator().manual_seed(10))
    counts, ll = truth.expected_counts(data)
    want = _counts(truth, data)
    for v in truth.variables:
        assert torch.allclose(counts[v], want[v], atol=1e-9, rtol=0)
    joint = brute_joint(truth)
    assert float(ll) == pytest.approx(float(joint[tuple(data.T)].log().sum()), abs=1e-8)


def test_expected_counts_with_missing_values_match_brute_force():
    truth = load("cancer")
    data = _masked(truth.sample(200, generator=torch.Generator().manual_seed(11)), 0.4, 12)
    counts, ll = truth.expected_counts(data)
    want, want_ll = _brute_expected_counts(truth, data)
    for v in truth.variables:
        assert torch.allclose(counts[v], want[v], atol=1e-9, rtol=0), v
    assert float(ll) == pytest.approx(want_ll, abs=1e-8)


def test_fit_with_missing_values_runs_em(monkeypatch):
    truth = load("cancer")
    data = _masked(truth.sample(150, generator=torch.Generator().manual_seed(13)), 0.3, 14)
    bn = _fresh("cancer")
    calls = []
    original = bn.fit_em

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(bn, "fit_em", spy)
    bn.fit(data, prior=1.0, max_iter=3, tol=0.0)
    assert calls == [1]
    # three EM steps by brute force: E by enumeration, M by the pseudo-count formula
    ref = _fresh("cancer")
    for _ in range(3):
        counts, _ = _brute_expected_counts(ref, data)
        ref = BayesianNetwork(
            ref.states, ref.parents, {v: _dirichlet(counts[v], 1.0) for v in ref.variables}
        )
    for v in bn.variables:
        assert torch.allclose(bn.cpts[v], ref.cpts[v], atol=1e-9, rtol=0), v
    # complete data does not run EM
    calls.clear()
    bn.fit(truth.sample(10))
    assert calls == []


def _em_truth() -> BayesianNetwork:
    t = torch.tensor
    return BayesianNetwork(
        {"a": ["0", "1"], "b": ["0", "1", "2"], "c": ["0", "1"], "d": ["0", "1"]},
        {"b": ["a"], "c": ["a", "b"], "d": ["c"]},
        {
            "a": t([0.45, 0.55]),
            "b": t([[0.3, 0.4, 0.3], [0.45, 0.25, 0.3]]),
            "c": t([[[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]], [[0.1, 0.9], [0.65, 0.35], [0.4, 0.6]]]),
            "d": t([[0.75, 0.25], [0.2, 0.8]]),
        },
    )


def test_em_is_monotone_and_recovers_the_cpts():
    truth = _em_truth()
    data = _masked(truth.sample(10_000, generator=torch.Generator().manual_seed(15)), 0.25, 16)
    g = torch.Generator().manual_seed(17)
    start = {v: torch.rand(c.shape, generator=g, dtype=F64) + 0.5 for v, c in truth.cpts.items()}
    bn = BayesianNetwork(
        truth.states, truth.parents, {v: s / s.sum(-1, keepdim=True) for v, s in start.items()}
    )
    history = bn.fit_em(data, max_iter=40, tol=1e-7)
    assert len(history) >= 3
    for before, after in itertools.pairwise(history):
        assert after >= before - 1e-9 * abs(before), (before, after)
    for v in truth.variables:
        # the smallest parent configuration has about 1100 rows: 0.05 is over 3 sigma
        assert torch.allclose(bn.cpts[v], truth.cpts[v], atol=0.05), (v, bn.cpts[v])
    # the first entry is the starting CPTs' log-likelihood, the last the fitted CPTs'
    assert history[-1] == pytest.approx(float(bn.log_prob(data).sum()), rel=1e-12)
    start_bn = BayesianNetwork(
        truth.states, truth.parents, {v: s / s.sum(-1, keepdim=True) for v, s in start.items()}
    )
    assert history[0] == pytest.approx(float(start_bn.log_prob(data).sum()), rel=1e-12)


def test_fit_data_errors():
    bn = _fresh("cancer")
    good = torch.zeros(4, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="shape"):
        bn.fit(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        bn.fit(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError):
        bn.fit(good.double())
    with pytest.raises(TypeError):
        bn.fit(good.bool())
    with pytest.raises(TypeError):
        bn.fit(good.tolist())
    with pytest.raises(ValueError, match="not a state index"):
        bn.fit(torch.tensor([[0, 0, 2, 0, 0]]))
    with pytest.raises(ValueError, match="not a state index"):
        bn.fit(torch.tensor([[0, -2, 0, 0, 0]]))
    with pytest.raises(ValueError, match="not a state index"):
        bn.counts(torch.tensor([[0, -1, 0, 0, 0]]))  # counts needs complete data
    bn.fit(good.int())  # any integer dtype


# --------------------------------------------------------------------------- parameters


def test_num_parameters_asia_by_hand():
    bn = load("asia")
    # asia 1, tub 2, smoke 1, lung 2, bronc 2, either 4, xray 2, dysp 4
    assert bn.num_parameters() == 18
    assert bn.full_table_parameters() == 2**8 - 1


def test_num_parameters_alarm():
    bn = load("alarm")
    assert bn.num_parameters() == 509
    text = gzip.decompress((DATA / "alarm.bif.gz").read_bytes()).decode()
    cards = [int(k) for k in re.findall(r"type discrete \[ (\d+) \]", text)]
    assert len(cards) == 37
    want = math.prod(cards) - 1
    got = bn.full_table_parameters()
    assert isinstance(got, int) and got == want
    assert got > 2**53  # exact beyond float precision


# -------------------------------------------------------------------------------- errors


def _tiny(**overrides):
    spec = {
        "states": {"a": ["0", "1"], "b": ["x", "y", "z"]},
        "parents": {"b": ["a"]},
        "cpts": {
            "a": torch.tensor([0.4, 0.6], dtype=F64),
            "b": torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], dtype=F64),
        },
    }
    spec.update(overrides)
    return BayesianNetwork(spec["states"], spec["parents"], spec["cpts"])


def _edges_of(message: str) -> list[tuple[str, str]]:
    cycle = re.search(r"cycle through (.*)$", message).group(1).split(" -> ")
    assert cycle[0] == cycle[-1] and len(cycle) >= 3
    return list(itertools.pairwise(cycle))


@pytest.mark.parametrize(
    "parents",
    [
        {"b": ["a"], "c": ["b"], "a": ["c"]},
        {"b": ["a"], "c": ["b"], "a": ["c"], "0d": ["c"], "e": []},
        {"a": ["b"], "b": ["a"], "c": ["a"]},
        {"a": ["c"], "b": ["a", "e"], "c": ["b"], "e": ["0d"], "0d": ["e"]},
    ],
)
def test_cycle_is_named(parents):
    names = sorted({*parents, *(p for ps in parents.values() for p in ps)})
    states = {v: ["0", "1"] for v in names}
    cpts = {v: torch.full((2,) * (len(parents.get(v, [])) + 1), 0.5) for v in names}
    with pytest.raises(ValueError, match="cycle") as info:
        BayesianNetwork(states, parents, cpts)
    for x, y in _edges_of(str(info.value)):
        assert x in parents[y], (x, y, str(info.value))  # every arrow is an edge


def test_structure_and_cpt_errors():
    with pytest.raises(ValueError, match=r"needs shape \(2, 3\)"):
        _tiny(cpts={"a": torch.tensor([0.4, 0.6]), "b": torch.full((3, 2), 0.5)})
    with pytest.raises(ValueError, match="sums to"):
        _tiny(cpts={"a": torch.tensor([0.4, 0.5]), "b": torch.full((2, 3), 1 / 3)})
    with pytest.raises(ValueError, match="negative"):
        _tiny(cpts={"a": torch.tensor([1.5, -0.5]), "b": torch.full((2, 3), 1 / 3)})
    with pytest.raises(ValueError, match="non-finite"):
        _tiny(cpts={"a": torch.tensor([float("nan"), 1.0]), "b": torch.full((2, 3), 1 / 3)})
    with pytest.raises(ValueError, match="no CPT"):
        _tiny(cpts={"a": torch.tensor([0.4, 0.6])})
    with pytest.raises(ValueError, match="unknown"):
        _tiny(cpts={"a": torch.tensor([0.4, 0.6]), "b": torch.full((2, 3), 1 / 3), "c": 1})
    with pytest.raises(ValueError, match="unknown parents"):
        _tiny(parents={"b": ["q"]})
    with pytest.raises(ValueError, match="unknown"):
        _tiny(parents={"q": ["a"]})
    with pytest.raises(ValueError, match="itself"):
        _tiny(parents={"b": ["b"]})
    with pytest.raises(ValueError, match="distinct"):
        _tiny(states={"a": ["0", "0"], "b": ["x", "y", "z"]})
    _tiny()  # the unmodified network is fine


def test_evidence_errors():
    bn = _tiny()
    with pytest.raises(ValueError, match="unknown variables"):
        bn.posterior_marginals({"q": 0})
    with pytest.raises(ValueError, match="no state 'w'"):
        bn.posterior_marginals({"b": "w"})
    with pytest.raises(ValueError, match="outside"):
        bn.posterior_marginals({"b": 3})
    with pytest.raises(ValueError, match="outside"):
        bn.posterior_marginals({"b": -2})
    with pytest.raises(ValueError, match=r"row 1, 'b'"):
        bn.probability_of_evidence(torch.tensor([[0, 1], [0, 3]]))
    with pytest.raises(ValueError, match=r"row 0, 'a'"):
        bn.log_prob(torch.tensor([[-2, 1]]))
    with pytest.raises(ValueError, match="outside"):
        bn.posterior_marginals({"b": torch.tensor([0, 5])})
    with pytest.raises(TypeError):
        bn.posterior_marginals({"b": 1.0})
    with pytest.raises(TypeError):
        bn.posterior_marginals({"b": True})
    with pytest.raises(TypeError):
        bn.posterior_marginals({"b": torch.tensor([1.0])})
    with pytest.raises(TypeError):
        bn.posterior_marginals(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(TypeError):
        bn.posterior_marginals(torch.tensor([[True, False]]))
    with pytest.raises(TypeError):
        bn.posterior_marginals([0, 1])
    with pytest.raises(ValueError, match="shape"):
        bn.posterior_marginals(torch.tensor([[0, 1, 0]]))
    with pytest.raises(ValueError, match="rows"):
        bn.posterior_marginals({"a": torch.tensor([0, 1]), "b": torch.tensor([0, 1, 2])})
    with pytest.raises(ValueError, match="unknown"):
        bn.query(["q"])
    with pytest.raises(ValueError, match="heuristic"):
        load("cancer").posterior_marginals(heuristic="min_degree")


def test_evidence_forms_agree():
    bn = _tiny()
    rows = torch.tensor([[0, -1], [-1, 2], [1, 0], [-1, -1]])
    as_tensor = bn.posterior_marginals(rows)
    as_dict = bn.posterior_marginals({"a": rows[:, 0], "b": rows[:, 1]})
    as_int32 = bn.posterior_marginals(rows.int())
    for v in bn.variables:
        assert torch.equal(as_tensor[v], as_dict[v]) and torch.equal(as_tensor[v], as_int32[v])
    # a 1-D row, a 0-d tensor in a dict, None
    one = bn.posterior_marginals(torch.tensor([-1, 2]))["a"]
    assert torch.allclose(one, as_tensor["a"][1:2], atol=TOL)
    zero_d = bn.posterior_marginals({"b": torch.tensor(2)})["a"]
    assert torch.allclose(zero_d, one, atol=TOL)
    # by hand: P(a | b = z) = (0.4 * 0.5, 0.6 * 0) / 0.2
    assert torch.allclose(one, torch.tensor([[1.0, 0.0]], dtype=F64), atol=TOL)
    prior = bn.posterior_marginals(None)
    b = torch.tensor([[0.4 * 0.2 + 0.6, 0.4 * 0.3, 0.4 * 0.5]], dtype=F64)
    assert torch.allclose(prior["b"], b, atol=TOL)
    assert torch.equal(bn.evidence_tensor({"a": "1", "b": 2}), torch.tensor([[1, 2]]))
    assert torch.equal(bn.evidence_tensor(None), torch.tensor([[-1, -1]]))


def test_impossible_evidence():
    bn = _tiny()
    # b = y has probability 0.4 * 0.3; (a = 1, b = y) has probability 0
    rows = torch.tensor([[0, 1], [1, 1], [-1, 1], [1, 2]])
    with pytest.raises(ImpossibleEvidence, match=r"rows \[1, 3\]") as info:
        bn.posterior_marginals(rows)
    assert "2 row(s)" in str(info.value)
    with pytest.raises(ImpossibleEvidence, match=r"rows \[1, 3\]"):
        bn.most_probable_explanation(rows)
    with pytest.raises(ImpossibleEvidence):
        bn.posterior_marginals({"a": "1", "b": "y"})
    with pytest.raises(ImpossibleEvidence):
        bn.query(["a"], {"a": 1, "b": "y"})
    with pytest.raises(ImpossibleEvidence):
        bn.expected_counts(rows)
    assert issubclass(ImpossibleEvidence, ValueError)
    # the probability of evidence is 0 (log -inf), never NaN
    p = bn.probability_of_evidence(rows)
    assert torch.allclose(p, torch.tensor([0.12, 0.0, 0.12, 0.0], dtype=F64), atol=TOL, rtol=0)
    log_p = bn.log_prob(rows)
    assert not bool(torch.isnan(log_p).any())
    assert bool(torch.isneginf(log_p[[1, 3]]).all())
    # the possible rows alone are fine
    post = bn.posterior_marginals(rows[[0, 2]])
    assert not any(bool(torch.isnan(t).any()) for t in post.values())
    assert torch.allclose(post["a"], torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64))


def test_empty_evidence_batch():
    # Fixed bug: a (0, n) evidence tensor makes posterior_marginals, probability_of_evidence
    # and log_prob fail in Plan.log_partition (out.reshape(0, -1): "cannot reshape tensor of
    # 0 elements"); most_probable_explanation handles it.
    bn = load("cancer")
    empty = torch.empty(0, 5, dtype=torch.long)
    assignment, log_value = bn.most_probable_explanation(empty)
    assert assignment.shape == (0, 5) and log_value.shape == (0,)
    assert bn.probability_of_evidence(empty).shape == (0,)
    assert bn.log_prob(empty).shape == (0,)
    post = bn.posterior_marginals(empty)
    assert all(post[v].shape == (0, len(bn.states[v])) for v in bn.variables)


def test_repr_and_factors():
    bn = load("asia")
    assert "8 variables" in repr(bn) and "8 edges" in repr(bn) and "18 parameters" in repr(bn)
    factors = {f.variables[-1]: f for f in bn.factors()}
    assert factors["dysp"].variables == ("bronc", "either", "dysp")
    assert torch.equal(factors["dysp"].values, bn.cpts["dysp"])
    # the product of all CPT factors is the joint
    product = factors["asia"]
    for v in bn.variables[1:]:
        product = product * factors[v]
    joint = brute_joint(bn)
    perm = [product.variables.index(v) for v in bn.variables]
    assert torch.allclose(product.values.permute(perm), joint, atol=1e-15)


def test_long_chain_does_not_underflow():
    """A chain of 120 binary variables, x_i | x_{i-1} by ``step``: a row of zeros has
    probability 0.5 * 0.001^119 (far below the smallest double), so only the per-step
    rescaling keeps log P(e) finite. Observing every other variable, the transitions are
    those of step @ step; an unobserved x_i between x_{i-1} and x_{i+1} has the posterior
    step[x_{i-1}, s] * step[s, x_{i+1}], normalised."""
    n = 120
    names = [f"x{i}" for i in range(n)]
    step = torch.tensor([[0.001, 0.999], [0.995, 0.005]], dtype=F64)
    bn = BayesianNetwork(
        {v: ["0", "1"] for v in names},
        {v: [names[i - 1]] for i, v in enumerate(names) if i},
        {v: step if i else torch.tensor([0.5, 0.5], dtype=F64) for i, v in enumerate(names)},
    )
    zeros = torch.zeros(1, n, dtype=torch.long)
    every_other = torch.full((1, n), -1)
    seen = (torch.arange(n // 2) % 3 == 1).long()  # 0, 1, 0, 0, 1, 0, ... on x0, x2, ...
    every_other[0, ::2] = seen
    log_p = bn.log_prob(torch.cat([zeros, every_other]))
    assert float(log_p[0]) == pytest.approx(math.log(0.5) + 119 * math.log(0.001), rel=1e-12)
    two = step.tolist()
    two = [[sum(two[a][m] * two[m][b] for m in range(2)) for b in range(2)] for a in range(2)]
    s_ = seen.tolist()
    want = math.log(0.5) + sum(math.log(two[a][b]) for a, b in itertools.pairwise(s_))
    assert float(log_p[1]) == pytest.approx(want, rel=1e-12)
    post = bn.posterior_marginals(every_other)
    for i in (1, 3, 101):  # x1 between x0 = 0 and x2 = 1, x3 between 1 and 0, ...
        a, b = s_[(i - 1) // 2], s_[(i + 1) // 2]
        w = torch.tensor([two_step_weight(step, a, m, b) for m in range(2)], dtype=F64)
        assert torch.allclose(post[f"x{i}"][0], w / w.sum(), atol=1e-12)
    assert torch.allclose(post["x119"][0], step[s_[-1]], atol=1e-12)  # after x118
    assignment, log_value = bn.most_probable_explanation(zeros)
    assert torch.equal(assignment, zeros)
    assert float(log_value[0]) == pytest.approx(float(log_p[0]), rel=1e-12)


def two_step_weight(step: torch.Tensor, a: int, m: int, b: int) -> float:
    return float(step[a, m]) * float(step[m, b])
