"""The studio's token: where it comes from, which requests must carry it, and the headers every answer carries.

No cookie at all (a cookie goes to every port of a host: a second studio in the same browser would
overwrite it and a page served by another local port would receive it). The page shell and its
modules (``/`` and ``/static/*``: no data, no secret) are served to anyone; everything else (``/api/*``,
``/openapi.json``) needs ``Authorization: Bearer <token>``. The page takes the token from the URL the
studio prints (``/?token=...``, which the server ignores), keeps it in ``localStorage`` (one per
origin, so per port) and sends it as that header; a page of another origin has neither.

The token is ``--token``, else ``$SIMVOS_STUDIO_TOKEN``, else the workspace's own (kept in
``<workspace>/token`` so that a restart keeps open tabs working), else a new random one saved there
readable by its owner only. A kept file that group or others may read is made owner-only with a
warning (the token may have been seen: pass a new one to replace it). A token shorter than
``MIN_LENGTH`` characters is refused, whatever its source.
"""
from __future__ import annotations

import hmac
import os
import secrets
import stat
from typing import NamedTuple

from dataset.workspace import WorkspaceLayout
from util.errors import InputError
from util.publish import publishing

ENVIRONMENT = "SIMVOS_STUDIO_TOKEN"
MIN_LENGTH = 16
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MISSING = "missing or wrong token: open the URL the studio printed (it ends in ?token=...)"


class Token(NamedTuple):
    value: str
    source: str          # "--token", "$SIMVOS_STUDIO_TOKEN" or the token file's path
    warning: str | None  # what was fixed on the way (a token file others could read), else None


def resolve_token(given: str | None, workspace_root: str) -> Token:
    """The studio's token from the flag, the environment, the workspace's file or a new one (saved there)."""
    if given is not None:
        return Token(_checked(given, "--token"), "--token", None)
    if os.environ.get(ENVIRONMENT):
        return Token(_checked(os.environ[ENVIRONMENT], f"${ENVIRONMENT}"), f"${ENVIRONMENT}", None)
    path = WorkspaceLayout.at(workspace_root).token_path
    try:
        # Not through a link, and without waiting on a FIFO (refused below as not a regular file).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return Token(_new_token(path), path, None)
    except OSError as exc:
        raise InputError(f"{path}: the token file cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{path}: the token file is not a regular file")
        try:
            kept = f.read(4096).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputError(f"{path}: the token file is not text (delete it for a new random token)") from None
        warning = None
        if mode & 0o077:
            os.fchmod(f.fileno(), 0o600)
            warning = (f"warning: {path} was readable by others (mode {stat.S_IMODE(mode):04o}): made readable by its "
                       "owner only; if someone may have read it, delete the file and restart for a new token")
    if not kept:
        return Token(_new_token(path), path, None)
    return Token(_checked(kept, path, "delete the file for a new random one"), path, warning)


def _checked(token: str, source: str, remedy: str = "leave it out for a random one") -> str:
    if len(token) < MIN_LENGTH:
        raise InputError(f"{source}: the token has {len(token)} characters, at least {MIN_LENGTH} are needed ({remedy})")
    return token


def _new_token(path: str) -> str:
    token = secrets.token_urlsafe(24)
    with publishing(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return token


def is_public(path: str) -> bool:
    """The page shell and its static files: served without the token (they hold no data)."""
    return path == "/" or path.startswith("/static/")


def authorized(request, token: str) -> bool:
    """The request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    return scheme.lower() == "bearer" and bool(given) and hmac.compare_digest(given.encode(), token.encode())
