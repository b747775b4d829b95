"""The ``schedgym`` command line: one sub-command per module in :mod:`schedgym.commands`.

Each module there defines ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Sub-commands, in the order ``schedgym --help`` lists them.
COMMANDS = ("envs", "list", "run", "train", "oversubscription", "bench", "validate", "leaderboard")
#: Sub-commands whose module name differs from the command (``list`` is a builtin).
_MODULES = {"list": "listing"}


def build_parser() -> argparse.ArgumentParser:
    from schedgym import __version__

    parser = argparse.ArgumentParser(
        prog="schedgym", description="RL environments for resource scheduling in ML systems."
    )
    parser.add_argument("--version", action="version", version=f"schedgym {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"schedgym.commands.{_MODULES.get(name, name)}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"schedgym {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
