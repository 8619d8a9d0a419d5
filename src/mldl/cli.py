"""The ``mldl`` command: ``mldl --version`` now; subcommands (lab, bench, bn) as they land."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mldl",
        description="The notes 'Machine Learning and Deep Learning' made executable.",
    )
    parser.add_argument("--version", action="version", version=f"mldl {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0  # pragma: no cover - no subcommands yet
