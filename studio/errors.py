"""One table from the studio's error kinds to HTTP status codes, and the handlers that answer them
as JSON ``{"error": "..."}``. ``OSError`` means "the workspace cannot be used" only inside
:func:`workspace_writes` (around the writes into the workspace); elsewhere it is a bug (500 JSON,
its traceback logged), never a crash.
"""
from __future__ import annotations

import errno
from contextlib import contextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from model.checkpoint import CheckpointError
from studio.job import Busy
from studio.models import BadModel
from studio.requests import TooLarge
from studio.store import Conflict, NotFound, SessionGone, SourceMissing
from util.errors import InputError


class WorkspaceUnusable(InputError):
    """A write into the workspace failed (answered 503)."""


# The most specific kind first: an error gets the status of the first kind it is.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (SessionGone, 404),
    (Conflict, 409),
    (SourceMissing, 410),
    (TooLarge, 413),
    (BadModel, 422),
    (CheckpointError, 422),
    (Busy, 429),
    (WorkspaceUnusable, 503),
    (InputError, 400),
)


def status_of(exc: Exception) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@contextmanager
def workspace_writes(root: str):
    """Writes into the workspace at ``root``: an OSError becomes WorkspaceUnusable (503)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise WorkspaceUnusable(f"the disk holding the workspace {root} is full: free some space") from None
        raise WorkspaceUnusable(f"the workspace {root} cannot be used: {exc.strerror or exc} "
                                "(is it deleted, read-only or full?)") from None


def parse_json(model: type[BaseModel], raw: bytes) -> BaseModel:
    """A request model from a raw JSON body (routes that take JSON or another content type)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(p.get("type") == "json_invalid" for p in exc.errors()):
            raise InputError("the request body is not JSON") from None
        raise InputError(_validation_message(exc.errors())) from None


def _validation_message(errors: list) -> str:
    parts = []
    for problem in errors[:3]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body") or "the request body"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request body is not valid"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if any(p.get("type") == "json_invalid" for p in exc.errors()):
            return error(400, "the request body is not JSON")
        return error(400, _validation_message(exc.errors()))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):  # Starlette logs the traceback after this answer
        return error(500, f"internal error: {type(exc).__name__}: {exc}")
