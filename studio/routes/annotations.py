"""Annotations: a frame's mask (read, save, delete) and GrabCut on a frame."""
from __future__ import annotations

import asyncio
import base64
import io
import os

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from PIL import Image

from dataset.masks import read_mask_file
from studio.errors import workspace_writes
from studio.grabcut import run_grabcut
from studio.requests import png_size, read_body
from studio.routes.sessions import index_of
from studio.schemas import GrabCutRequest, MaskSaved
from studio.state import StudioDep
from studio.store import NotFound, save_png_atomic
from util.errors import InputError
from util.labels import MAX_OBJECTS, object_ids

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["annotations"])
MAX_MASK_BYTES = 32 * 2**20
PNG_BODY = {"requestBody": {"required": True, "description": "the frame's label map: an indexed or greyscale PNG "
                            "of the video's size, 0 = background, object ids 1 to MAX_OBJECTS",
                            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}}


def read_mask(data: bytes, width: int, height: int, what: str = "the mask") -> np.ndarray:
    """A label map of the video's size: the PNG header is checked first, then it is decoded; object
    ids from 1 to MAX_OBJECTS."""
    got = png_size(data, what)
    if got != (width, height):
        raise InputError(f"{what} is {got[0]}x{got[1]} but the video is {width}x{height}")
    labels = read_mask_file(io.BytesIO(data), what).labels
    if labels.max(initial=0) > MAX_OBJECTS:
        raise InputError(f"{what} has object id {int(labels.max())}: ids go from 1 to {MAX_OBJECTS} (MAX_OBJECTS)")
    return labels


@router.get("/masks/{name}", response_class=FileResponse, responses={
    200: {"content": {"image/png": {}}, "description": "the frame's label map; X-Annotated: true for an annotation, "
          "false for a propagated result"},
    204: {"description": "the frame has no mask yet"}})
def get_mask(session_id: str, name: str, studio: StudioDep):
    session = studio.workspace.session(session_id)
    index = session.frame_index(index_of(name, ".png"))
    for kind in ("masks", "results"):
        if os.path.isfile(session.path(kind, index)):
            return FileResponse(session.path(kind, index), media_type="image/png",
                                headers={"Cache-Control": "no-store", "X-Annotated": str(kind == "masks").lower()})
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@router.put("/masks/{name}", response_model=MaskSaved, openapi_extra=PNG_BODY)
async def put_mask(session_id: str, name: str, request: Request, studio: StudioDep):
    session = studio.workspace.session(session_id)
    index = session.frame_index(index_of(name, ".png"))
    body = await read_body(request, MAX_MASK_BYTES, "the mask")
    labels = read_mask(body, session.meta.width, session.meta.height)
    studio.runner.check_editable(session, index)
    with workspace_writes(studio.workspace.root):
        save_png_atomic(session.path("masks", index), labels)
    return {"frame": index, "annotated": session.annotated(), "objects": object_ids(labels)}


@router.delete("/masks/{name}", response_model=MaskSaved)
def delete_mask(session_id: str, name: str, studio: StudioDep):
    session = studio.workspace.session(session_id)
    index = session.frame_index(index_of(name, ".png"))
    path = session.path("masks", index)
    if not os.path.isfile(path):
        raise NotFound(f"frame {index} is not annotated")
    studio.runner.check_editable(session, index)
    with workspace_writes(studio.workspace.root):
        os.remove(path)
    return {"frame": index, "annotated": session.annotated()}


@router.post("/grabcut", response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "a binary PNG (0 / 255) of the object"}})
async def grabcut(session_id: str, body: GrabCutRequest, studio: StudioDep):
    session = studio.workspace.session(session_id)
    width, height = session.meta.width, session.meta.height
    index = session.frame_index(body.frame)
    strokes = []
    for name, points in (("foreground", body.foreground), ("background", body.background)):
        checked = []
        for point in points:
            if len(point) not in (2, 3):
                raise InputError(f"{name}: each point is [x, y] or [x, y, radius], got {point[:4]}")
            x, y, radius = (*point, 5) if len(point) == 2 else point
            if not (0 <= x < width and 0 <= y < height and 1 <= radius <= 100):
                raise InputError(f"{name}: point {point} is outside the {width}x{height} frame (or radius not 1-100)")
            checked.append((x, y, radius))
        strokes.append(checked)
    if any(abs(v) > 2 * max(width, height) for v in body.box):
        raise InputError(f"box {body.box} is far outside the {width}x{height} frame")
    current = None
    if body.mask is not None:
        try:
            raw = base64.b64decode(body.mask, validate=True)
        except ValueError:
            raise InputError("mask: not base64") from None
        current = read_mask(raw, width, height, "the current mask") > 0
    rgb = np.asarray(Image.open(session.path("frames", index)).convert("RGB"))
    mask = await asyncio.to_thread(run_grabcut, rgb, tuple(body.box), *strokes, current)
    buf = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buf, format="PNG")
    return Response(buf.getvalue(), media_type="image/png")
