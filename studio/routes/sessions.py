"""Sessions: list, open (a video under --videos, or an upload), describe, frames."""
from __future__ import annotations

import asyncio
import os
import re

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from studio.errors import parse_json, workspace_writes
from studio.requests import receive_upload
from studio.schemas import OpenVideo, Session, SessionList
from studio.state import StudioDep
from studio.store import NotFound
from util.publish import temporary_path

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
VIDEO_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
OPEN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": OpenVideo.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["video"],
                                       "properties": {"video": {"type": "string", "format": "binary"}}}}}}}


def safe_name(filename: str) -> str:
    """A session name from an uploaded file's name: letters, digits, '.', '_', '-'; never hidden,
    never '.' or '..' (zip entries and exports are named after it)."""
    stem = os.path.splitext(os.path.basename(filename.replace("\\", "/")))[0]
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in stem)[:80].strip("._")
    return name or "video"


def index_of(name: str, ext: str) -> str:
    """The frame number of a file name ``<number><ext>`` (NotFound otherwise)."""
    if not name.endswith(ext) or not name[: -len(ext)].isdigit() or len(name) > 16:
        raise NotFound(f"{name[:40]!r}: expected <frame number>{ext}")
    return name[: -len(ext)]


@router.get("", response_model=SessionList)
def list_sessions(studio: StudioDep):
    """Every session, newest first, with what tells them apart (name, video, date, counts)."""
    return {"sessions": studio.workspace.sessions()}


@router.post("", response_model=Session, openapi_extra=OPEN_BODY)
async def create_session(request: Request, studio: StudioDep):
    """JSON ``{"video": name under --videos}``, or the multipart field ``video`` (an upload)."""
    workspace = studio.workspace
    if request.headers.get("content-type", "").startswith("application/json"):
        body = parse_json(OpenVideo, await request.body())
        path = workspace.video_choice(body.video)
        name = os.path.splitext(os.path.basename(path))[0]
        with workspace_writes(workspace.root):
            session = await asyncio.to_thread(workspace.create, path, name, False)
        return session.describe()
    with workspace_writes(workspace.root):
        tmp, filename = await receive_upload(request, "video", workspace.uploads, workspace.max_upload_bytes)
        try:
            suffix = os.path.splitext(filename)[1].lower()
            named = temporary_path(os.path.join(workspace.uploads, "upload" + (suffix if VIDEO_SUFFIX.match(suffix) else "")))
            os.replace(tmp, named)
            tmp = named
            session = await asyncio.to_thread(workspace.create, tmp, safe_name(filename), True, filename)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return session.describe()


@router.get("/{session_id}", response_model=Session)
def get_session(session_id: str, studio: StudioDep):
    return studio.workspace.session(session_id).describe()


@router.get("/{session_id}/frames/{name}", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}, "description": "a frame (or thumb_<n>.jpg: its thumbnail)"}})
def frame(session_id: str, name: str, studio: StudioDep):
    session = studio.workspace.session(session_id)
    kind = "thumbs" if name.startswith("thumb_") else "frames"
    index = session.frame_index(index_of(name.removeprefix("thumb_"), ".jpg"))
    path = session.path(kind, index)
    if not os.path.isfile(path):
        raise NotFound(f"{path}: missing from the workspace (deleted by hand?)")
    return FileResponse(path, media_type="image/jpeg")
