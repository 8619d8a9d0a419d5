"""``mldl bn``: look at a Bayesian network, query it, sample from it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .bayesnet import BayesianNetwork, ImpossibleEvidence
from .bif import BIFError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bn",
        help="inspect, query and sample a Bayesian network (BIF file)",
        description="Inspect, query and sample a Bayesian network read from a BIF file "
        "(plain or gzip).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="variables, parents, parameters vs the k^n table")
    info.add_argument("network", type=Path)
    query = actions.add_parser("query", help="posterior marginals given evidence")
    query.add_argument("network", type=Path)
    query.add_argument("--evidence", "-e", nargs="+", default=[], metavar="VAR=STATE")
    query.add_argument(
        "--variables",
        "-v",
        nargs="+",
        metavar="VAR",
        help="only these variables (default: every unobserved one)",
    )
    query.add_argument(
        "--mpe", action="store_true", help="also print the most probable explanation"
    )
    sample = actions.add_parser("sample", help="ancestral samples as CSV")
    sample.add_argument("network", type=Path)
    sample.add_argument("-n", type=int, default=10, help="how many samples (default 10)")
    sample.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=main)


def _evidence(bn: BayesianNetwork, items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--evidence: expected VAR=STATE, got {item!r}")
        var, state = item.split("=", 1)
        out[var.strip()] = state.strip()
    bn.evidence_tensor(out)  # checks names and states, with clear messages
    return out


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), line, *map(fmt, rows)])


def main(args: argparse.Namespace) -> int:
    try:
        bn = BayesianNetwork.read_bif(args.network)
        if args.action == "info":
            return _info(bn, args.network)
        if args.action == "query":
            return _query(bn, args)
        return _sample(bn, args)
    except (BIFError, ImpossibleEvidence, ValueError, OSError) as exc:
        print(f"mldl bn: {exc}", file=sys.stderr)
        return 2


def _info(bn: BayesianNetwork, path: Path) -> int:
    edges = sum(len(p) for p in bn.parents.values())
    full = bn.full_table_parameters()
    # bnlearn's files all say "network unknown": the file's name says more
    name = bn.name if bn.name and bn.name != "unknown" else path.name.split(".")[0]
    print(f"{name}: {len(bn.variables)} variables, {edges} edges")
    print(
        f"parameters: {bn.num_parameters():,} (the unstructured table over all variables "
        f"needs {full:,}, about 10^{len(str(full)) - 1})"
    )
    print(f"largest clique of the junction tree (min-fill): {bn.plan().width:,} states\n")
    rows = [
        [v, len(bn.states[v]), ", ".join(bn.states[v]), ", ".join(bn.parents[v]) or "-"]
        for v in bn.variables
    ]
    print(_table(rows, ["variable", "k", "states", "parents"]))
    return 0


def _query(bn: BayesianNetwork, args: argparse.Namespace) -> int:
    evidence = _evidence(bn, args.evidence)
    post = bn.posterior_marginals(evidence)
    show = args.variables or [v for v in bn.variables if v not in evidence]
    unknown = [v for v in show if v not in bn.states]
    if unknown:
        raise ValueError(f"--variables: unknown {unknown}")
    given = ", ".join(f"{k}={v}" for k, v in evidence.items()) or "no evidence"
    print(f"P(e) = {float(bn.probability_of_evidence(evidence)):.6g} ({given})\n")
    rows = []
    for v in show:
        for s, p in zip(bn.states[v], post[v][0].tolist(), strict=True):
            rows.append([v, s, f"{p:.4f}", "#" * round(30 * p)])
            v = ""
    print(_table(rows, ["variable", "state", "P(state | e)", ""]))
    if args.mpe:
        assignment, log_value = bn.most_probable_explanation(evidence)
        print(f"\nmost probable explanation (log P(x, e) = {float(log_value[0]):.4f}):")
        print(
            ", ".join(
                f"{v}={bn.states[v][int(s)]}"
                for v, s in zip(bn.variables, assignment[0], strict=True)
            )
        )
    return 0


def _sample(bn: BayesianNetwork, args: argparse.Namespace) -> int:
    if args.n < 0:
        raise ValueError(f"-n: expected a non-negative number of samples, got {args.n}")
    samples = bn.sample(args.n, generator=torch.Generator().manual_seed(args.seed))
    print(",".join(bn.variables))
    for row in samples.tolist():
        print(",".join(bn.states[v][s] for v, s in zip(bn.variables, row, strict=True)))
    return 0
