"""``mldl lab``: run the claims and write the report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import __version__
from .core import PROFILES, Context
from .runner import load_claims, run, select


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "lab",
        help="re-run the notes' claims as experiments and write a report",
        description="Re-run every claim of the notes as a seeded experiment and write "
        "index.html, summary.md and results.json.",
    )
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--only", nargs="+", metavar="ID", help="run these claims (or id prefixes)")
    p.add_argument("--full", action="store_true", help="longer runs, closer to the papers")
    p.add_argument("--profile", choices=PROFILES, help=argparse.SUPPRESS)  # 'tiny' for tests
    p.add_argument("--out", type=Path, default=Path("lab-report"), help="report folder")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device")
    p.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="claims run in this many processes at once, one thread each (default: 2, or 1 "
        "on a 1-core machine)",
    )
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if args.list:
        for c in load_claims().values():
            print(f"{c.id:34s} {c.section}")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("mldl lab: --device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    try:
        claims = select(args.only)
    except ValueError as exc:
        print(f"mldl {exc}", file=sys.stderr)
        return 2
    profile = args.profile or ("full" if args.full else "quick")
    context = Context(profile, torch.device(args.device), args.seed, progress=not args.quiet)
    start = time.perf_counter()
    if args.jobs < 1:
        print(f"mldl lab: --jobs: expected at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    results = run(claims, context, jobs=args.jobs)
    from . import report

    meta = {
        "version": __version__,
        "profile": profile,
        "seed": args.seed,
        "device": args.device,
        "torch": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - start,
    }
    paths = report.write(results, args.out, meta)
    _print_summary(results)
    print(f"\nreport: {paths['html']} (also {paths['markdown'].name}, {paths['json'].name})")
    return 1 if any(r.verdict == "error" for r in results) else 0


def _print_summary(results) -> None:
    width = max(len(r.claim.id) for r in results) if results else 10
    print(f"\n{'claim':{width}s}  {'verdict':13s}  {'time':>6s}  why")
    for r in results:
        reason = r.reason if len(r.reason) <= 90 else r.reason[:87] + "..."
        print(f"{r.claim.id:{width}s}  {r.verdict:13s}  {r.seconds:5.1f}s  {reason}")
