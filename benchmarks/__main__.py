"""``python -m benchmarks [module ...]``: run benchmark modules (all of them by default) and
rewrite their sections of RESULTS.md."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import torch

from . import MODULES
from ._harness import RESULTS, write_section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("modules", nargs="*", metavar="module", help=f"any of: {MODULES}")
    parser.add_argument(
        "--print", action="store_true", help="print the sections instead of writing RESULTS.md"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads, here and in the fresh processes "
        f"(default: torch's, {torch.get_num_threads()} here)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by the subprocesses' torch
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark module(s) {unknown}; known: {list(MODULES)}")
    for name in args.modules or MODULES:
        start = time.perf_counter()
        print(f"benchmarks.{name} ...", file=sys.stderr, flush=True)
        body = importlib.import_module(f"benchmarks.{name}").run()
        if args.print:
            print(body)
        else:
            write_section(name, body)
        took = time.perf_counter() - start
        where = "" if args.print else f", section '{name}' of {RESULTS.name} written"
        print(f"benchmarks.{name}: {took:.0f} s{where}", file=sys.stderr)


if __name__ == "__main__":
    main()
