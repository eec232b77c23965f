"""One exception type for bad user input; scripts print it as one line and exit non-zero."""
from __future__ import annotations


class InputError(Exception):
    """Bad input that the user can fix: the message names the file or flag and what is wrong;
    ``path``, when one file is the cause, names it for programs (the trainer's ``failed`` event)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path
