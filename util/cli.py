"""Script entry wrapper: the project's own input errors end with one line on stderr and exit 2.

Everything else (programming errors) keeps its traceback.
"""
from __future__ import annotations

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
