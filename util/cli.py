"""Script entry wrapper: bad input ends with one line on stderr and a non-zero exit."""
from __future__ import annotations

import sys
from typing import Callable

from model.checkpoint import CheckpointError
from util.errors import InputError


def run_cli(main: Callable[[], None]) -> None:
    try:
        main()
    except (InputError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished sequences are kept, the unfinished one was removed", file=sys.stderr)
        sys.exit(130)
