"""The CRF claim (lab/claims/crf.py): it runs in the tiny profile, returns the numbers its
decision reads and repeats itself; its data come from the HMM it describes; the decision on
hand-made inputs."""

from __future__ import annotations

import functools
import json

import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import crf as claim_crf

CLAIM = "crf.beats_independent"
NUMBERS = {
    "seeds",
    "train_sequences",
    "test_sequences",
    "length",
    "states",
    "features",
    "noise",
    "stay",
    "next",
    "independent_accuracy",
    "crf_accuracy",
    "oracle_accuracy",
    "independent_train_nll_per_token",
    "crf_train_nll_per_token",
    "transition_correlation",
    "raw_transition_correlation",
    "learned_transitions_seed0",
    "true_log_transitions",
}


def _run(seed: int = 0) -> mldl.lab.Result:
    return mldl.lab.run_claim(mldl.lab.REGISTRY[CLAIM], mldl.lab.Context("tiny", seed=seed))


@functools.cache
def _first_run() -> mldl.lab.Result:
    return _run()


def test_registered_and_ordered():
    assert CLAIM in mldl.lab.REGISTRY
    assert "crf" in mldl.lab.claims.ORDER


def test_runs_in_the_tiny_profile_with_a_valid_verdict():
    result = _first_run()
    assert result.error is None, result.error
    assert result.verdict in mldl.lab.VERDICTS
    assert set(result.numbers) == NUMBERS
    assert result.reason
    assert result.figures and all(f.caption for f in result.figures)
    json.dumps(result.numbers)  # the report writes them to results.json
    assert result.claim.decide(result.numbers) == (result.verdict, result.reason)
    n = result.numbers
    for key in ("independent_accuracy", "crf_accuracy", "oracle_accuracy"):
        assert len(n[key]) == n["seeds"]
        assert all(0.0 <= a <= 1.0 for a in n[key])
    assert all(-1.0 <= c <= 1.0 for c in n["transition_correlation"])
    assert torch.tensor(n["learned_transitions_seed0"]).shape == (n["states"], n["states"])


def test_repeats_exactly():
    assert _run().numbers == _first_run().numbers


def test_the_chain_helps_even_in_the_tiny_profile():
    # not part of the verdict: a sanity check that the experiment measures what it says
    n = _first_run().numbers
    for crf_acc, ind, oracle in zip(
        n["crf_accuracy"], n["independent_accuracy"], n["oracle_accuracy"], strict=True
    ):
        assert crf_acc > ind + 0.05
        assert oracle > ind
    assert min(n["transition_correlation"]) > 0.8


def test_the_generating_chain():
    p = claim_crf.true_transitions()
    torch.testing.assert_close(p.sum(1), torch.ones(claim_crf.STATES, dtype=torch.float64))
    torch.testing.assert_close(p.sum(0), torch.ones(claim_crf.STATES, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    means = torch.randn(claim_crf.STATES, claim_crf.FEATURES, generator=g, dtype=torch.float64)
    x, y = claim_crf._sample(400, 30, means, g)
    assert x.shape == (400, 30, claim_crf.FEATURES) and y.shape == (400, 30)
    stays = (y[:, 1:] == y[:, :-1]).double().mean()
    assert abs(float(stays) - claim_crf.STAY) < 0.02
    m = torch.randn(4, 4, generator=g)
    centred = claim_crf.double_centred(m)
    assert centred.sum(0).abs().max() < 1e-5 and centred.sum(1).abs().max() < 1e-5
    # row and column constants vanish
    shifted = m + torch.randn(4, 1, generator=g) + torch.randn(1, 4, generator=g)
    torch.testing.assert_close(claim_crf.double_centred(shifted), centred)


def _numbers(crf, independent, corr):
    k = len(crf)
    return {
        "seeds": k,
        "crf_accuracy": crf,
        "independent_accuracy": independent,
        "oracle_accuracy": [0.9] * k,
        "transition_correlation": corr,
    }


def test_decision():
    decide = claim_crf._decide
    ind = [0.60, 0.62, 0.58, 0.61]
    better = [a + 0.2 for a in ind]
    assert decide(_numbers(better, ind, [0.95] * 4))[0] == "supported"
    assert decide(_numbers(ind, better, [0.95] * 4))[0] == "not supported"
    assert decide(_numbers(better, ind, [0.2] * 4))[0] == "not supported"
    assert decide(_numbers(better, ind, [0.7] * 4))[0] == "inconclusive"
    noisy = [0.70, 0.50, 0.68, 0.55]
    assert decide(_numbers(noisy, ind, [0.95] * 4))[0] == "inconclusive"
