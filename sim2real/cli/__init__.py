"""The ``sim2real`` command line. Works without ROS.

Each subcommand lives in its own module ``sim2real/cli/<name>.py`` exposing
``register(subparsers)``; that function adds its parser and sets ``func(args) -> int``.
Errors derived from :class:`~sim2real.errors.Sim2RealError` print one clear line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from sim2real import __version__
from sim2real.errors import Sim2RealError

SUBCOMMANDS = ["heightmap", "act", "run", "report", "replay", "capture", "calibrate", "demos", "finetune", "console", "align"]
"""Subcommand modules, in the order ``sim2real --help`` lists them."""

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim2real", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sim2real {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"sim2real.cli.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``sim2real`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the exact command line, e.g. for the resume hint after Ctrl-C
    try:
        return int(args.func(args) or 0)
    except Sim2RealError as e:
        print(f"sim2real {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"sim2real {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
