"""The studio's token: where it comes from, how a request proves it, and the headers every answer carries.

As Jupyter does: the URL the studio prints carries ``?token=``; that first load sets an HttpOnly,
SameSite=Strict cookie and the page removes the token from the address bar, so it is in no link,
no EventSource URL and no history entry. The API takes the cookie or ``Authorization: Bearer``
(scripts; ``?token=`` too). A request that changes something and comes with the cookie must come
from the studio's own origin. The token is ``--token``, else ``$SIMVOS_STUDIO_TOKEN``, else the
workspace's own (kept in ``<workspace>/token``, readable by its owner only, so that a restart keeps
open tabs working), else a new random one saved there.
"""
from __future__ import annotations

import hmac
import os
import secrets

from util.publish import publishing

COOKIE = "simvos_studio_token"
ENVIRONMENT = "SIMVOS_STUDIO_TOKEN"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def resolve_token(given: str | None, workspace_root: str) -> tuple[str, str]:
    """-> (token, where it came from)."""
    if given:
        return given, "--token"
    if os.environ.get(ENVIRONMENT):
        return os.environ[ENVIRONMENT], f"${ENVIRONMENT}"
    path = os.path.join(workspace_root, "token")
    try:
        with open(path) as f:
            kept = f.read().strip()
        if kept:
            return kept, path
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(24)
    with publishing(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return token, path


def matches(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def request_token(request) -> tuple[str, str]:
    """(the token a request carries, how: "bearer", "query", "cookie" or "")."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "bearer"
    if request.query_params.get("token"):
        return request.query_params["token"], "query"
    if request.cookies.get(COOKIE):
        return request.cookies[COOKIE], "cookie"
    return "", ""


def same_origin(request) -> bool:
    """The request's Origin (or, without one, its Referer) is the studio's own address."""
    origin = request.headers.get("origin") or ""
    if not origin:
        referer = request.headers.get("referer") or ""
        origin = "/".join(referer.split("/")[:3]) if referer else ""
    host = request.headers.get("host", "")
    return bool(origin) and origin in (f"http://{host}", f"https://{host}")
