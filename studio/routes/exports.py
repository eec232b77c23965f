"""Exports of a session: palette or per-object PNGs (zip), COCO JSON, an overlay MP4."""
from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from studio.errors import workspace_writes
from studio.exports import MEDIA_TYPES, chunks, export
from studio.schemas import ExportKind
from studio.state import StudioDep

router = APIRouter(tags=["exports"])


@router.get("/api/sessions/{session_id}/export", response_class=StreamingResponse,
            responses={200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))},
                             "description": "the export as an attachment"}})
async def export_session(session_id: str, studio: StudioDep, format: ExportKind = "palette"):
    session = studio.workspace.session(session_id)
    with workspace_writes(studio.workspace.root):
        handle, path = await asyncio.to_thread(export, session, format)
    headers = {"Content-Length": str(os.fstat(handle.fileno()).st_size), "Cache-Control": "no-store",
               "Content-Disposition": f'attachment; filename="{os.path.basename(path)}"'}
    return StreamingResponse(chunks(handle), media_type=MEDIA_TYPES[format], headers=headers)
