"""``mldl bn info|query|sample``: what it prints is what the library computes, and bad input
ends with exit status 2 and one line naming the problem (never a traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mldl.cli import main
from mldl.pgm import BayesianNetwork

DATA = Path(__file__).parent / "data"
ASIA = DATA / "asia.bif.gz"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["bn", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def _probability_rows(out: str) -> dict[tuple[str, str], float]:
    """The query table's rows as {(variable, state): probability}; a variable's name is on
    its first state's row only."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows, variable = {}, None
    for line in lines[start:]:
        if not line.strip():
            break
        parts = line.split()
        if not line.startswith(" "):
            variable, parts = parts[0], parts[1:]
        rows[variable, parts[0]] = float(parts[1])
    return rows


def test_info_counts_variables_edges_and_parameters(capsys):
    status, out, err = run(capsys, "info", ASIA)
    assert status == 0 and err == ""
    bn = BayesianNetwork.read_bif(ASIA)
    assert "asia: 8 variables, 8 edges" in out  # "network unknown" in the file: its name
    # the factorisation's 18 free parameters against the 2^8 - 1 of the full table
    assert f"parameters: {bn.num_parameters()} " in out and "needs 255," in out
    for v in bn.variables:
        assert any(line.split()[0] == v for line in out.splitlines() if line.strip())
    dysp = next(line for line in out.splitlines() if line.startswith("dysp"))
    assert dysp.split()[-2:] == ["bronc,", "either"]


def test_query_prints_the_posteriors_and_p_of_evidence(capsys):
    status, out, err = run(capsys, "query", ASIA, "-e", "xray=yes", "dysp=yes")
    assert status == 0 and err == ""
    bn = BayesianNetwork.read_bif(ASIA)
    evidence = {"xray": "yes", "dysp": "yes"}
    p_e = float(bn.probability_of_evidence(evidence))
    assert out.startswith(f"P(e) = {p_e:.6g} (xray=yes, dysp=yes)")
    rows = _probability_rows(out)
    post = bn.posterior_marginals(evidence)
    shown = {v for v, _ in rows}
    assert shown == set(bn.variables) - set(evidence)  # every unobserved variable
    for (v, s), p in rows.items():
        assert p == pytest.approx(float(post[v][0, bn.states[v].index(s)]), abs=5e-5)


def test_query_selected_variables_and_mpe(capsys):
    status, out, _ = run(capsys, "query", ASIA, "-e", "smoke=yes", "-v", "lung", "--mpe")
    assert status == 0
    bn = BayesianNetwork.read_bif(ASIA)
    assert {v for v, _ in _probability_rows(out.split("most probable")[0])} == {"lung"}
    assignment, log_value = bn.most_probable_explanation({"smoke": "yes"})
    want = ", ".join(
        f"{v}={bn.states[v][int(s)]}" for v, s in zip(bn.variables, assignment[0], strict=True)
    )
    assert f"log P(x, e) = {float(log_value[0]):.4f}" in out
    assert out.rstrip().endswith(want)


def test_sample_is_csv_seeded_and_follows_the_states(capsys):
    status, out, _ = run(capsys, "sample", ASIA, "-n", "50", "--seed", "3")
    assert status == 0
    lines = out.splitlines()
    bn = BayesianNetwork.read_bif(ASIA)
    assert lines[0] == ",".join(bn.variables) and len(lines) == 51
    want = bn.sample(50, generator=torch.Generator().manual_seed(3))
    for line, row in zip(lines[1:], want.tolist(), strict=True):
        assert line.split(",") == [bn.states[v][s] for v, s in zip(bn.variables, row, strict=True)]
    assert run(capsys, "sample", ASIA, "-n", "50", "--seed", "3")[1] == out
    assert run(capsys, "sample", ASIA, "-n", "0")[1].splitlines() == [lines[0]]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", ASIA, "-e", "smoke"], "expected VAR=STATE, got 'smoke'"),
        (["query", ASIA, "-e", "smokes=yes"], "unknown variables ['smokes']"),
        (["query", ASIA, "-e", "smoke=maybe"], "maybe"),
        (["query", ASIA, "-v", "lungs"], "--variables: unknown ['lungs']"),
        # either = tub OR lung: lung=yes with either=no has probability 0
        (["query", ASIA, "-e", "lung=yes", "either=no"], "have probability 0"),
        (["sample", ASIA, "-n", "-1"], "-n: expected a non-negative number of samples, got -1"),
        (["info", DATA / "no-such-network.bif"], "no-such-network.bif"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("mldl bn: ") and err.count("\n") == 1
    assert message in err


def test_a_malformed_file_names_its_line(capsys, tmp_path):
    bad = tmp_path / "bad.bif"
    bad.write_text(
        "network n {\n}\n"
        'variable a {\n  type discrete [ 2 ] { "x", "y" };\n}\n'
        "probability ( a ) {\n  table 0.5, 0.6;\n}\n"
    )
    status, _, err = run(capsys, "info", bad)
    assert status == 2 and err.startswith("mldl bn: ")
    assert "line 7" in err


def test_python_dash_m_mldl_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "mldl", "bn", "info", str(ASIA)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "asia: 8 variables, 8 edges" in done.stdout
