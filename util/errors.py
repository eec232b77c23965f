"""One exception type for bad user input; scripts print it as one line and exit non-zero."""


class InputError(Exception):
    """Bad input that the user can fix: the message names the file or flag and what is wrong."""
