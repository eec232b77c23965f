"""What a request may carry: bodies read up to a limit (whatever the transfer encoding), JSON
fields checked for type and range, uploads streamed to disk, PNG sizes read from the header.

Every refusal is an InputError (a 4xx with a JSON error in the routes): :class:`TooLarge` is 413.
"""
from __future__ import annotations

import json
import math
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


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number here")


async def read_json(request, limit: int = MAX_JSON_BYTES) -> dict:
    """A JSON object (NaN and Infinity refused), at most ``limit`` bytes."""
    body = await read_body(request, limit, "the JSON body")
    try:
        value = json.loads(body or b"{}", parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise InputError("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise InputError("the request body must be a JSON object")
    return value


_REQUIRED = object()


def int_field(body: dict, key: str, low: int, high: int, default=_REQUIRED) -> int:
    """An integer in [low, high]: an int, or a float with an integral value (not a bool, NaN, inf)."""
    if key not in body or body[key] is None:
        if default is _REQUIRED:
            raise InputError(f"{key!r} is missing: an integer from {low} to {high}")
        return default
    value = body[key]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{key!r} must be an integer from {low} to {high}, got {_short(value)}")
    return value


def str_field(body: dict, key: str, choices: tuple[str, ...] | None = None, default=_REQUIRED) -> str:
    if key not in body or body[key] is None:
        if default is _REQUIRED:
            raise InputError(f"{key!r} is missing")
        return default
    value = body[key]
    if not isinstance(value, str) or (choices is not None and value not in choices):
        wanted = f"one of {', '.join(choices)}" if choices else "a string"
        raise InputError(f"{key!r} must be {wanted}, got {_short(value)}")
    return value


def points_field(body: dict, key: str, width: int, height: int, limit: int = 20000) -> list[tuple[int, int, int]]:
    """[[x, y] or [x, y, radius], ...] inside the frame (radius 1-100; default 5) -> [(x, y, r)]."""
    value = body.get(key) or []
    if not isinstance(value, list) or len(value) > limit:
        raise InputError(f"{key!r} must be a list of at most {limit} points [x, y] or [x, y, radius]")
    points = []
    for item in value:
        if not isinstance(item, list) or len(item) not in (2, 3):
            raise InputError(f"{key!r}: each point is [x, y] or [x, y, radius], got {_short(item)}")
        fields = dict(zip(("x", "y", "radius"), item))
        points.append((int_field(fields, "x", 0, width - 1), int_field(fields, "y", 0, height - 1),
                       int_field(fields, "radius", 1, 100, 5)))
    return points


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


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
