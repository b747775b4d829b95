"""The ``schedgym`` command line: one sub-command per module in :mod:`schedgym.commands`.

Each module there defines ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args) -> int``.

Expected errors (bad arguments, kwargs, files, checkpoints, results, an unreachable Ray cluster) end the
command with one line ``schedgym COMMAND: error: ...`` on stderr and exit status 2; a traceback is shown
only with ``--debug``. Exit status 1 means the command ran but found failures (e.g. rows that do not
replay).
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
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"schedgym.commands.{_MODULES.get(name, name)}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


#: Errors a user can cause with arguments or files: one line and exit 2 (``--debug``: the traceback).
#: ValueError covers kwargs/format errors (and UnicodeDecodeError); OSError covers missing files,
#: directories given for files, permissions and unreachable Ray clusters (ConnectionError).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, TimeoutError, OverflowError, MemoryError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + " ..."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted before or after the sub-command.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    try:
        return int(args._main(args) or 0)
    except EXPECTED_ERRORS as exc:
        if args.debug:
            raise
        what = "" if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: "
        print(f"schedgym {args.command}: error: {what}{_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"schedgym {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
