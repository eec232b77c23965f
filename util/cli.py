"""Script entry wrapper: the project's own input errors end with one line on stderr and exit 2.

Everything else (programming errors) keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from util.errors import InputError


def run_cli(main: Callable[[], None], interrupted: str = "interrupted") -> None:
    """Runs ``main``; ``interrupted`` is what Ctrl-C prints (what was kept, what was not)."""
    try:
        main()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        sys.exit(130)


def str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if value.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")


def add_bool_flag(parser, name: str, default: bool | None, help: str | None = None) -> None:
    """``--name`` (True), ``--name True`` / ``--name False``: the published scripts were called both ways."""
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)


def describe_args(args: argparse.Namespace) -> str:
    """The flags of a run as one readable line: ``flags: --a 1 --b x``."""
    parts = [f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
             for k, v in sorted(vars(args).items()) if v is not None and not k.startswith("_")]
    return "flags: " + " ".join(parts)
