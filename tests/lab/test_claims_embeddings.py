"""The metric-learning and CTC claims (lab/claims/embeddings.py, sequence.py): each runs in
the tiny profile, returns the numbers its decision reads, repeats itself exactly; their
helpers and decisions on hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch

import mldl.lab
import mldl.lab.claims  # registers the claims
from mldl.lab.claims import embeddings, sequence

EXPECTED = {
    "embeddings.triplet_and_distance": {
        "knn_accuracy",
        "distance_ratio",
        "match_auc",
        "match_ece",
        "mean_match_probability",
        "learned_scale",
        "learned_offset",
        "final_train_loss",
        "epochs",
        "embedding_dim",
        "test_pairs",
    },
    "sequence.ctc_transcribes": {
        "sequence_accuracy",
        "label_error_rate",
        "aligned_sequence_accuracy",
        "aligned_label_error_rate",
        "baseline_sequence_accuracy",
        "baseline_label_error_rate",
        "raw_frames_sequence_accuracy",
        "raw_frames_label_error_rate",
        "sequence_accuracy_by_adjacent_repeat",
        "final_train_loss",
        "epochs",
        "noise_sigma",
    },
}


@pytest.fixture(scope="module")
def tiny_results():
    results = {
        cid: mldl.lab.run_claim(mldl.lab.REGISTRY[cid], mldl.lab.Context(profile="tiny"))
        for cid in EXPECTED
    }
    return results


@pytest.mark.parametrize("cid", sorted(EXPECTED))
def test_claim_runs_in_the_tiny_profile(tiny_results, cid):
    result = tiny_results[cid]
    assert result.verdict in mldl.lab.VERDICTS, result.error
    assert EXPECTED[cid] <= set(result.numbers)
    assert result.reason
    assert len(result.figures) == 2 and all(f.caption for f in result.figures)


def test_embedding_numbers_are_in_range(tiny_results):
    n = tiny_results["embeddings.triplet_and_distance"].numbers
    assert set(n["knn_accuracy"]) == {"raw pixels", "triplet", "distance match"}
    assert all(0 <= v <= 1 for v in n["knn_accuracy"].values())
    assert all(0 < v < 1.5 for v in n["distance_ratio"].values())
    assert 0 <= n["match_auc"] <= 1 and 0 <= n["match_ece"] <= 1
    assert n["learned_scale"] > 0


def test_sequence_numbers_are_in_range(tiny_results):
    n = tiny_results["sequence.ctc_transcribes"].numbers
    for key in ("sequence_accuracy", "aligned_sequence_accuracy", "baseline_sequence_accuracy"):
        assert 0 <= n[key] <= 1
    assert n["label_error_rate"] >= 0 and math.isfinite(n["final_train_loss"])
    table = tiny_results["sequence.ctc_transcribes"].table
    assert table and {"target", "CTC decoding", "edits"} <= set(table[0])


@pytest.mark.parametrize("cid", sorted(EXPECTED))
def test_same_seed_same_numbers(tiny_results, cid):
    again = mldl.lab.run_claim(mldl.lab.REGISTRY[cid], mldl.lab.Context(profile="tiny"))
    assert again.numbers == tiny_results[cid].numbers


def test_the_experiments_restore_the_thread_count():
    threads = torch.get_num_threads()
    mldl.lab.run_claim(
        mldl.lab.REGISTRY["sequence.ctc_transcribes"], mldl.lab.Context(profile="tiny")
    )
    assert torch.get_num_threads() == threads


# ------------------------------------------------------------------------------ helpers


def test_edit_distance():
    d = sequence._edit_distance
    assert d([], []) == 0
    assert d([1, 2, 3], []) == 3 and d([], [1, 2]) == 2
    assert d([1, 2, 3], [1, 3]) == 1  # one deletion
    assert d([1, 2, 3], [1, 4, 3]) == 1  # one substitution
    assert d([1, 2], [2, 1]) == 2


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    # frames' best classes: 1 1 0 1 2 2 0 | padding (ignored)
    best = torch.tensor([1, 1, 0, 1, 2, 2, 0, 3])
    log_probs = torch.log_softmax(10 * torch.nn.functional.one_hot(best, 4).float(), -1)
    decoded = sequence._greedy(log_probs.unsqueeze(1), torch.tensor([7]))
    assert decoded == [[1, 1, 2]]


def test_scores():
    acc, ler = sequence._scores([[1, 2], [3]], [[1, 2], [3, 4]])
    assert acc == 0.5 and ler == pytest.approx(1 / 4)


def test_generated_sequences_separate_equal_labels():
    seqs = sequence._sequences(200, torch.Generator().manual_seed(0))
    for sym, n, target in zip(seqs.frame_symbols, seqs.frame_lengths, seqs.strings(), strict=True):
        path = torch.unique_consecutive(sym[:n])
        assert path[path != 0].tolist() == target  # the frames collapse to the transcript
    assert seqs.frames.shape[-1] == len(sequence.ALPHABET)


def test_auc_and_distance_ratio():
    assert embeddings._auc(torch.tensor([0.9, 0.8, 0.1, 0.2]), torch.tensor([1, 1, 0, 0])) == 1
    assert embeddings._auc(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == 0.5
    z = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 0.0], [5.0, 0.1]])
    assert embeddings._distance_ratio(z, torch.tensor([0, 0, 1, 1])) < 0.05


def test_knn_accuracy():
    train = torch.tensor([[0.0], [0.1], [0.2], [0.3], [0.4], [9.0], [9.1], [9.2], [9.3], [9.4]])
    y = torch.tensor([0] * 5 + [1] * 5)
    assert embeddings._knn_accuracy(train, y, torch.tensor([[0.2], [9.2]]), torch.tensor([0, 1]))


def test_sampler_draws_the_right_classes():
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    s = embeddings._Sampler(y)
    g = torch.Generator().manual_seed(0)
    anchors = y.repeat(20)
    assert (y[s.same(anchors, g)] == anchors).all()
    assert (y[s.other(anchors, g)] != anchors).all()


# ----------------------------------------------------------------------------- decisions


def _ctc_numbers(**changes):
    n = {
        "test_sequences": 100,
        "sequence_accuracy": 0.9,
        "label_error_rate": 0.03,
        "aligned_sequence_accuracy": 0.95,
        "aligned_label_error_rate": 0.01,
        "baseline_sequence_accuracy": 0.0,
        "baseline_label_error_rate": 0.8,
        "raw_frames_sequence_accuracy": 0.5,
        "raw_frames_label_error_rate": 0.2,
    }
    return {**n, **changes}


def test_ctc_decision():
    decide = mldl.lab.REGISTRY["sequence.ctc_transcribes"].decide
    assert decide(_ctc_numbers())[0] == "supported"
    assert decide(_ctc_numbers(sequence_accuracy=0.5))[0] == "not supported"
    assert decide(_ctc_numbers(label_error_rate=0.2))[0] == "not supported"
    assert decide(_ctc_numbers(aligned_sequence_accuracy=0.3))[0] == "inconclusive"
    assert "0.900" in decide(_ctc_numbers())[1]


def _embedding_numbers(**changes):
    n = {
        "knn_accuracy": {"raw pixels": 0.97, "triplet": 0.97, "distance match": 0.96},
        "distance_ratio": {"raw pixels": 0.7, "triplet": 0.3, "distance match": 0.1},
        "match_auc": 0.99,
        "match_ece": 0.02,
        "mean_match_probability": {"same": 0.9, "different": 0.05},
    }
    return {**n, **changes}


def test_embedding_decision():
    decide = mldl.lab.REGISTRY["embeddings.triplet_and_distance"].decide
    assert decide(_embedding_numbers())[0] == "supported"
    worse = {"raw pixels": 0.97, "triplet": 0.90, "distance match": 0.96}
    assert decide(_embedding_numbers(knn_accuracy=worse))[0] == "not supported"
    loose = {"raw pixels": 0.7, "triplet": 0.6, "distance match": 0.1}
    assert decide(_embedding_numbers(distance_ratio=loose))[0] == "not supported"
    assert decide(_embedding_numbers(match_ece=0.2))[0] == "not supported"
    assert decide(_embedding_numbers(match_auc=0.8))[0] == "not supported"
