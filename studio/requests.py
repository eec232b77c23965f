"""What a request may carry: bodies read up to a limit (whatever the transfer encoding; JSON bodies
before FastAPI parses them into their request models, studio/schemas.py), uploads streamed to
disk, PNG sizes read from the header.

Every refusal is an InputError (a 4xx with a JSON error in the routes): :class:`TooLarge` is 413.
"""
from __future__ import annotations

import json
import os
import struct

from python_multipart.multipart import MultipartParser, parse_options_header

from util.errors import InputError
from util.publish import temporary_path

MAX_JSON_BYTES = 4 * 2**20


class TooLarge(InputError):
    """A body or file over its limit (answered 413)."""


async def read_body(request, limit: int, what: str) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes (chunked bodies included)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what} larger than {_size(limit)}")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{what} larger than {_size(limit)}")
        parts.append(chunk)
    return b"".join(parts)


class BodyLimit:
    """ASGI middleware: a JSON body (every route FastAPI parses into a request model) is read here
    up to its limit, whatever the transfer encoding, and refused with 413 past it; the routes that
    stream their body themselves (``is_streamed(path)``) and multipart uploads are passed through."""

    def __init__(self, app, limit_of, is_streamed):
        self.app, self.limit_of, self.is_streamed = app, limit_of, is_streamed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") or \
                self.is_streamed(scope["path"]) or _is_multipart(scope):
            return await self.app(scope, receive, send)
        limit = self.limit_of(scope["path"])
        parts, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _refuse(send, f"the JSON body is larger than {_size(limit)}")
            parts.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(parts)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        await self.app(scope, replay, send)


def _is_multipart(scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return headers.get(b"content-type", b"").startswith(b"multipart/form-data")


async def _refuse(send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def png_size(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) from a PNG's header, before anything is decoded."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise InputError(f"{what} is not a PNG image")
    return struct.unpack(">II", data[16:24])


async def receive_upload(request, field: str, folder: str, limit: int) -> tuple[str, str]:
    """Streams the multipart file field ``field`` into a new file in ``folder``, refused past
    ``limit`` bytes while it arrives. -> (the file's path, its name as sent). The caller removes it."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InputError(f"send the video as the multipart field {field!r} (or JSON {{\"video\": name under --videos}})")
    state = {"name": None, "headers": [], "field": b"", "value": b"", "target": None, "size": 0}
    path = temporary_path(os.path.join(folder, "upload"))
    out = None

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"].append((state["field"].lower(), state["value"]))
        state["field"], state["value"] = b"", b""

    def on_headers_finished():
        nonlocal out
        disposition = dict(state["headers"]).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        if options.get(b"name", b"").decode("utf-8", "replace") == field and b"filename" in options and out is None:
            state["name"] = options[b"filename"].decode("utf-8", "replace")
            out = open(path, "xb")
            state["target"] = out
        state["headers"] = []

    def on_part_data(data, start, end):
        if state["target"] is not None:
            state["size"] += end - start
            if state["size"] > limit:
                raise TooLarge(f"upload larger than --max_upload_mb ({_size(limit)})")
            state["target"].write(data[start:end])

    def on_part_end():
        state["target"] = None

    parser = MultipartParser(boundary, {"on_header_field": on_header_field, "on_header_value": on_header_value,
                                        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
                                        "on_part_data": on_part_data, "on_part_end": on_part_end})
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + 2**20:  # the file and a little for the other fields and the framing
                raise TooLarge(f"upload larger than --max_upload_mb ({_size(limit)})")
            parser.write(chunk)
        parser.finalize()
    except InputError:
        _discard(out, path)
        raise
    except Exception as exc:  # the parser's own errors: a malformed body
        _discard(out, path)
        raise InputError(f"the upload is not a well-formed multipart body ({type(exc).__name__})") from None
    if out is None or not state["name"]:
        _discard(out, path)
        raise InputError(f"send the video as the multipart field {field!r} (or JSON {{\"video\": name under --videos}})")
    out.close()
    return path, state["name"]


def _discard(out, path: str) -> None:
    if out is not None:
        out.close()
    if os.path.exists(path):
        os.remove(path)


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit} bytes"
