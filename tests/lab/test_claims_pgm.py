"""The networks claims (lab/claims/pgm.py): each runs in the tiny profile, returns the
numbers its decision reads and repeats itself; the helpers they rest on (forward-backward,
Viterbi, d-separation, acyclicity, conditional mutual information, the Binder crossing, the
CPT distances, the bundled networks) against brute force and known cases; the decisions on
hand-made inputs."""

from __future__ import annotations

import gzip
import itertools
import json
import math
from pathlib import Path

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import pgm as claim_pgm
from mldl.pgm import BayesianNetwork

from ._helpers import first_run as _first_run
from ._helpers import run_tiny as _run

CLAIMS = (
    "bn.hmm_is_a_dag",
    "bn.parameter_counts",
    "bn.fit_recovers_cpts",
    "mrf.cycle_needs_undirected",
    "mrf.ising_critical_temperature",
)
TEST_NETWORKS = Path(__file__).parents[1] / "pgm" / "data"


def test_registered_and_ordered():
    for claim_id in CLAIMS:
        assert claim_id in mldl.lab.REGISTRY
    assert {"bn", "mrf"} <= set(mldl.lab.claims.ORDER)
    ids = list(mldl.lab.load_claims())
    assert ids.index("bn.hmm_is_a_dag") < ids.index("mrf.cycle_needs_undirected")


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_runs_in_the_tiny_profile_with_a_valid_verdict(claim_id):
    result = _first_run(claim_id)
    assert result.error is None, result.error
    assert result.verdict in mldl.lab.VERDICTS
    assert result.reason
    assert result.numbers
    assert result.figures and all(f.caption for f in result.figures)
    json.dumps(result.numbers)  # the report writes them to results.json
    assert result.claim.decide(result.numbers) == (result.verdict, result.reason)


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_repeats_exactly(claim_id):
    assert _run(claim_id).numbers == _first_run(claim_id).numbers


def test_the_hmm_is_a_dag_and_its_inference_is_forward_backward():
    n = _first_run("bn.hmm_is_a_dag").numbers
    assert _first_run("bn.hmm_is_a_dag").verdict == "not supported"
    assert n["is_dag"] and n["cyclic_version_refused"]
    assert n["variables"] == 2 * n["length"] and n["edges"] == 2 * n["length"] - 1
    assert n["max_abs_diff_marginals"] < 1e-12 and n["max_abs_diff_log_px"] < 1e-10
    assert n["max_mpe_path_gap"] < 1e-10
    assert n["transition_diagram_short_cycles"] == 6  # 3 self-loops, 3 two-cycles


def test_parameter_counts():
    result = _first_run("bn.parameter_counts")
    assert result.verdict == "supported"
    rows = {r["name"]: r for r in result.numbers["networks"]}
    assert set(rows) == set(claim_pgm.NETWORKS)
    assert rows["asia"]["bn_parameters"] == 18 and rows["asia"]["full_table_parameters"] == 255
    assert rows["alarm"]["bn_parameters"] == 509
    assert result.numbers["library_counts_match"]
    assert result.table and len(result.table) == len(claim_pgm.NETWORKS)


def test_fit_errors_fall_with_n():
    n = _first_run("bn.fit_recovers_cpts").numbers
    for k in ("mle", "bdeu"):
        assert all(b < a for a, b in itertools.pairwise(n["tv"][k]))
        assert -0.7 < n["tv_slopes"][k] < -0.3
    assert all(math.isfinite(v) for v in n["kl"]["bdeu"])
    assert math.isinf(n["kl"]["mle"][0])  # unseen states get probability 0


def test_the_cycle_claim():
    result = _first_run("mrf.cycle_needs_undirected")
    n = result.numbers
    assert result.verdict == "supported"
    assert (n["orientations"], n["cyclic_orientations"], n["acyclic_orientations"]) == (16, 2, 14)
    assert n["cyclic_refused"] == 2
    assert n["orientations_representing_both"] == 0
    assert n["graph_separation_agrees"]
    assert n["chordal_d_separates"] == [True, False] and n["chordal_max_kl"] < 1e-12


def test_ising_sanity():
    # not the verdict: that the measurements mean what they say even on tiny lattices
    n = _first_run("mrf.ising_critical_temperature").numbers
    small, large = (str(L) for L in n["sizes"])
    for L in (small, large):
        m = n["abs_magnetization"][L]
        assert m[0] > 0.95 and m[-1] < m[0] / 2
        assert all(0.0 <= u <= 2 / 3 + 1e-9 for u in n["binder"][L])
    assert n["onsager"][-1] == 0.0 and n["onsager"][0] > 0.98


# ------------------------------------------------------------------------------ helpers


def _random_hmm(seed: int, states: int = 3, symbols: int = 4) -> claim_pgm.HMM:
    return claim_pgm.HMM.random(states, symbols, torch.Generator().manual_seed(seed))


def _brute_force(hmm: claim_pgm.HMM, x: torch.Tensor):
    """Every hidden path's log P(z, x), for one sequence: (paths (K^T, T), log-probs)."""
    k, length = hmm.A.shape[0], len(x)
    paths = torch.tensor(list(itertools.product(range(k), repeat=length)))
    lp = claim_pgm.path_log_prob(hmm, paths, x.expand(len(paths), length))
    return paths, lp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_backward_and_viterbi_against_brute_force(seed):
    hmm = _random_hmm(seed)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randint(4, (5, 6), generator=g)
    gamma, log_px = claim_pgm.forward_backward(hmm, x)
    path, score = claim_pgm.viterbi(hmm, x)
    for r in range(len(x)):
        paths, lp = _brute_force(hmm, x[r])
        torch.testing.assert_close(log_px[r], torch.logsumexp(lp, 0))
        weights = (lp - torch.logsumexp(lp, 0)).exp()
        for t in range(x.shape[1]):
            marginal = torch.zeros(3, dtype=torch.float64).index_add(0, paths[:, t], weights)
            torch.testing.assert_close(gamma[r, t], marginal)
        torch.testing.assert_close(score[r], lp.max())
        torch.testing.assert_close(
            claim_pgm.path_log_prob(hmm, path[r : r + 1], x[r : r + 1])[0], lp.max()
        )


def test_forward_backward_on_long_sequences_does_not_underflow():
    hmm = _random_hmm(3)
    x = torch.randint(4, (2, 2000), generator=torch.Generator().manual_seed(0))
    gamma, log_px = claim_pgm.forward_backward(hmm, x)
    assert torch.isfinite(log_px).all() and bool((log_px < -1000).all())
    torch.testing.assert_close(gamma.sum(-1), torch.ones(2, 2000, dtype=torch.float64))


def test_the_unrolled_hmm_network():
    hmm = _random_hmm(4)
    bn = hmm.network(5)
    assert bn.variables == [f"z{t}" for t in range(1, 6)] + [f"x{t}" for t in range(1, 6)]
    assert bn.parents["z1"] == [] and bn.parents["z3"] == ["z2"] and bn.parents["x3"] == ["z3"]
    x = torch.randint(4, (3, 5), generator=torch.Generator().manual_seed(1))
    evidence = torch.cat([torch.full((3, 5), -1), x], 1)
    _, log_px = claim_pgm.forward_backward(hmm, x)
    torch.testing.assert_close(bn.log_probability_of_evidence(evidence), log_px)


def test_is_acyclic():
    assert claim_pgm.is_acyclic({"a": [], "b": ["a"], "c": ["a", "b"]})
    assert claim_pgm.is_acyclic({"b": ["a"]})  # a parent with no entry of its own
    assert not claim_pgm.is_acyclic({"a": ["c"], "b": ["a"], "c": ["b"]})
    assert not claim_pgm.is_acyclic({"a": ["a"]})
    assert not claim_pgm.is_acyclic({"a": [], "b": ["a", "d"], "c": ["b"], "d": ["c"]})


def test_d_separation_known_cases():
    d = claim_pgm.d_separated
    chain = {"a": [], "b": ["a"], "c": ["b"]}
    assert not d(chain, ["a"], ["c"]) and d(chain, ["a"], ["c"], ["b"])
    fork = {"b": [], "a": ["b"], "c": ["b"]}
    assert not d(fork, ["a"], ["c"]) and d(fork, ["a"], ["c"], ["b"])
    collider = {"a": [], "c": [], "b": ["a", "c"], "e": ["b"]}
    assert d(collider, ["a"], ["c"])
    assert not d(collider, ["a"], ["c"], ["b"])
    assert not d(collider, ["a"], ["c"], ["e"])  # a descendant of the collider opens it
    asia = claim_pgm.network("asia").parents
    assert d(asia, ["asia"], ["smoke"])
    assert not d(asia, ["tub"], ["lung"], ["either"])
    assert d(asia, ["asia"], ["xray"], ["tub"])
    assert d(asia, ["xray"], ["dysp"], ["either", "bronc"])
    assert d(asia, ["xray"], ["dysp"], ["either"])
    assert not d(asia, ["xray"], ["dysp"])
    assert not d(asia, ["asia"], ["smoke"], ["dysp"])  # dysp: a descendant of colliders
    assert d(asia, ["smoke"], ["xray"], ["lung"])
    with pytest.raises(ValueError):
        d(chain, ["a"], ["a"])


def _joint(bn: BayesianNetwork) -> torch.Tensor:
    states = torch.cartesian_prod(*[torch.arange(len(bn.states[v])) for v in bn.variables])
    shape = [len(bn.states[v]) for v in bn.variables]
    return bn.log_prob(states).exp().reshape(shape)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_d_separation_matches_the_independences_of_random_networks(seed):
    # on a random DAG with random CPTs: d-separated <=> conditional MI 0 (generic CPTs are
    # faithful), for every pair and every conditioning set
    g = torch.Generator().manual_seed(seed)
    names = list("abcde")
    parents = {
        v: [u for u in names[:i] if torch.rand(1, generator=g) < 0.5] for i, v in enumerate(names)
    }
    cpts = {v: claim_pgm._dirichlet((2,) * len(parents[v]) + (2,), g) for v in names}
    bn = BayesianNetwork({v: ["0", "1"] for v in names}, parents, cpts)
    joint = _joint(bn)
    for x, y in itertools.combinations(names, 2):
        rest = [v for v in names if v not in (x, y)]
        for k in range(len(rest) + 1):
            for given in itertools.combinations(rest, k):
                cmi = claim_pgm.conditional_mutual_information(joint, names, x, y, given)
                if claim_pgm.d_separated(parents, [x], [y], given):
                    assert abs(cmi) < 1e-12, (x, y, given, cmi)
                else:
                    assert cmi > 1e-8, (x, y, given, cmi)


def test_conditional_mutual_information():
    cmi = claim_pgm.conditional_mutual_information
    p = torch.tensor([0.3, 0.7], dtype=torch.float64)
    q = torch.tensor([0.1, 0.5, 0.4], dtype=torch.float64)
    independent = p[:, None] * q[None, :]
    assert abs(cmi(independent, ["x", "y"], "x", "y")) < 1e-15
    copy = torch.diag(p)  # y = x: I(X; Y) = H(X)
    assert cmi(copy, ["x", "y"], "x", "y") == pytest.approx(float(-(p * p.log()).sum()))
    # x and y both copies of z: dependent, yet independent given z
    z_copies = torch.zeros(2, 2, 2, dtype=torch.float64)
    z_copies[0, 0, 0], z_copies[1, 1, 1] = 0.4, 0.6
    assert cmi(z_copies, ["x", "y", "z"], "x", "y") > 0.6
    assert abs(cmi(z_copies, ["x", "y", "z"], "x", "y", ["z"])) < 1e-15
    # axis order of the table does not matter
    moved = z_copies.permute(2, 0, 1)
    assert (
        abs(cmi(moved, ["z", "x", "y"], "x", "y") - cmi(z_copies, ["x", "y", "z"], "x", "y"))
        < 1e-15
    )


def test_orientations():
    all_orientations = claim_pgm.orientations()
    assert len(all_orientations) == 16
    edges = {frozenset((p, v)) for o in all_orientations for v in o for p in o[v]}
    assert edges == {frozenset(e) for e in claim_pgm.CYCLE_EDGES}
    assert sum(claim_pgm.is_acyclic(o) for o in all_orientations) == 14


def test_binder_crossing():
    temps = [2.0, 2.2, 2.4, 2.6]
    small = [0.60, 0.55, 0.45, 0.30]
    large = [0.65, 0.58, 0.35, 0.10]  # large - small: 0.05, 0.03, -0.10, -0.20
    crossing = claim_pgm.binder_crossing(temps, small, large)
    assert crossing == pytest.approx(2.2 + 0.2 * 0.03 / 0.13)
    assert claim_pgm.binder_crossing(temps, large, small) is None


def test_cpt_distances():
    truth = claim_pgm.network("asia")
    weights = claim_pgm.parent_weights(truth)
    assert claim_pgm.cpt_distances(truth, truth, weights) == (0.0, 0.0)
    torch.testing.assert_close(weights["either"].sum(), torch.tensor(1.0, dtype=torch.float64))
    data = truth.sample(50, generator=torch.Generator().manual_seed(0))
    mle = BayesianNetwork(truth.states, truth.parents, truth.cpts).fit(data)
    tv, kl = claim_pgm.cpt_distances(truth, mle, weights)
    assert 0 < tv < 1 and math.isinf(kl)  # asia is rare: 50 rows miss states
    smoothed = BayesianNetwork(truth.states, truth.parents, truth.cpts).fit(data, prior=1.0)
    # the joint KL from the per-CPT sum equals the KL of the joint tables
    p, q = _joint(truth), _joint(smoothed)
    direct = float(torch.where(p > 0, p * (p.log() - q.log()), 0.0).sum())
    assert claim_pgm.cpt_distances(truth, smoothed, weights)[1] == pytest.approx(direct, rel=1e-9)


def test_bundled_networks_are_the_tests_networks():
    for name in claim_pgm.NETWORKS:
        packaged = claim_pgm.network(name)
        assert packaged.variables
        bundled = (Path(claim_pgm.__file__).parents[1] / "networks" / f"{name}.bif.gz").read_bytes()
        original = (TEST_NETWORKS / f"{name}.bif.gz").read_bytes()
        assert gzip.decompress(bundled) == gzip.decompress(original)
    with pytest.raises(ValueError, match="unknown"):
        claim_pgm.network("nope")


# ---------------------------------------------------------------------------- decisions


def _hmm_numbers(**overrides):
    n = {
        "length": 8,
        "variables": 16,
        "edges": 15,
        "is_dag": True,
        "accepted_by_bayesian_network": True,
        "cyclic_version_refused": True,
        "sequences": 4,
        "max_abs_diff_marginals": 1e-16,
        "max_abs_diff_log_px": 1e-15,
        "max_abs_diff_mpe_log_prob": 1e-15,
        "max_mpe_path_gap": 1e-15,
        "mpe_same_path_fraction": 1.0,
        "transition_diagram_short_cycles": 6,
        "states": 3,
    }
    return {**n, **overrides}


def test_decision_hmm():
    decide = claim_pgm._decide_hmm
    assert decide(_hmm_numbers())[0] == "not supported"
    assert decide(_hmm_numbers(is_dag=False))[0] == "supported"
    assert decide(_hmm_numbers(max_abs_diff_marginals=0.1))[0] == "inconclusive"
    assert decide(_hmm_numbers(max_mpe_path_gap=0.5))[0] == "inconclusive"


def _row(name, variables, bn, full):
    return {
        "name": name,
        "variables": variables,
        "bn_parameters": bn,
        "full_table_parameters": full,
    }


def test_decision_counts():
    decide = claim_pgm._decide_counts
    good = [_row("a", 5, 10, 31), _row("b", 8, 18, 255)]
    assert decide({"networks": good, "library_counts_match": True})[0] == "supported"
    close = [_row("a", 5, 10, 31), _row("b", 8, 30, 255)]
    assert decide({"networks": close, "library_counts_match": True})[0] == "not supported"
    more = [_row("a", 3, 10, 7)]
    assert decide({"networks": more, "library_counts_match": True})[0] == "not supported"
    assert decide({"networks": good, "library_counts_match": False})[0] == "inconclusive"


def _fit_numbers(tv_mle, tv_bdeu, kl_bdeu, slopes, kl_slope):
    return {
        "network": "alarm",
        "sizes": [100, 1000, 10000],
        "replicates": 2,
        "tv": {"mle": tv_mle, "bdeu": tv_bdeu},
        "kl": {"mle": [math.inf] * 3, "bdeu": kl_bdeu},
        "tv_slopes": {"mle": slopes[0], "bdeu": slopes[1]},
        "bdeu_kl_slope": kl_slope,
    }


def test_decision_fit():
    decide = claim_pgm._decide_fit
    tv = [0.04, 0.012, 0.004]
    kl = [1.0, 0.1, 0.01]
    assert decide(_fit_numbers(tv, tv, kl, (-0.5, -0.5), -1.0))[0] == "supported"
    assert decide(_fit_numbers(tv, tv, kl, (-0.2, -0.5), -1.0))[0] == "not supported"
    assert decide(_fit_numbers(tv, tv, kl, (-0.5, -0.5), -0.4))[0] == "not supported"
    bumpy = [0.04, 0.05, 0.004]
    assert decide(_fit_numbers(bumpy, tv, kl, (-0.5, -0.5), -1.0))[0] == "not supported"


def _cycle_numbers(**overrides):
    n = {
        "fields": 3,
        "orientations": 16,
        "cyclic_orientations": 2,
        "cyclic_refused": 2,
        "acyclic_orientations": 14,
        "orientations_with_a_c": 7,
        "orientations_with_b_d": 7,
        "orientations_representing_both": 0,
        "max_cmi_separated": 1e-16,
        "min_cmi_not_separated": 1e-3,
        "min_kl_acyclic": 1e-3,
        "max_min_kl": 1e-2,
        "chordal_max_kl": 1e-15,
    }
    return {**n, **overrides}


def test_decision_cycle():
    decide = claim_pgm._decide_cycle
    assert decide(_cycle_numbers())[0] == "supported"
    assert decide(_cycle_numbers(orientations_representing_both=1))[0] == "not supported"
    assert decide(_cycle_numbers(min_kl_acyclic=1e-9))[0] == "not supported"
    assert decide(_cycle_numbers(max_cmi_separated=1e-3))[0] == "inconclusive"


def _ising_numbers(**overrides):
    n = {
        "sizes": [8, 16],
        "chains": 16,
        "samples": 250,
        "temperatures": [1.5, 2.0, 2.3, 3.5],
        "binder_crossing": 2.30,
        "steepest_descent": [2.4, 2.35],
        "susceptibility_peak": [2.5, 2.4],
        "max_gap_to_onsager_ordered": 0.01,
        "abs_m_hottest": 0.12,
    }
    return {**n, **overrides}


def test_decision_ising():
    decide = claim_pgm._decide_ising
    assert decide(_ising_numbers())[0] == "supported"
    assert decide(_ising_numbers(binder_crossing=2.269 - 0.149))[0] == "supported"
    assert decide(_ising_numbers(binder_crossing=2.45))[0] == "not supported"
    assert decide(_ising_numbers(max_gap_to_onsager_ordered=0.1))[0] == "not supported"
    assert decide(_ising_numbers(abs_m_hottest=0.6))[0] == "not supported"
    assert decide(_ising_numbers(binder_crossing=None))[0] == "inconclusive"
