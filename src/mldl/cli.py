"""The ``mldl`` command: ``mldl lab`` runs the notes' claims; ``mldl bn`` inspects, queries
and samples Bayesian networks; ``mldl --version``."""

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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .lab import command as lab_command
    from .pgm import command as bn_command

    lab_command.add_parser(commands)
    bn_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args)
