"""The studio's routes: they parse, call the workspace / the job runner / the engine, and answer.

Every route needs the token (``?token=`` or ``Authorization: Bearer``); errors are JSON
``{"error": "..."}`` with a 4xx status, never a crash.
"""
from __future__ import annotations

import asyncio
import hmac
import io
import json
import os
import tempfile
import zipfile

import cv2
import numpy as np
from fastapi import FastAPI, Request
from starlette.datastructures import UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from PIL import Image

from dataset.masks import read_user_mask
from outputs.formats import ResultWriter
from outputs.video_job import write_overlay
from studio.jobs import JobRunner
from studio.store import NotFound, Workspace, save_png_atomic
from util.errors import InputError
from util.labels import ids_of_all, object_ids
from util.publish import publishing, staging, temporary_path

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
EXPORTS = ("palette", "objects", "coco", "mp4")
MAX_MASK_BYTES = 32 * 2**20


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(workspace: Workspace, runner: JobRunner, token: str, info: dict) -> FastAPI:
    app = FastAPI(title="SimVOS studio", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        given = request.query_params.get("token") or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _error(401, "missing or wrong token: open the URL the studio printed (it ends in ?token=...)")
        return await call_next(request)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return _error(404, str(exc))

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError):
        return _error(400, str(exc))

    # ------------------------------------------------------------------ page
    @app.get("/")
    def page():
        return FileResponse(os.path.join(STATIC, "index.html"), media_type="text/html",
                            headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC_FILES:
            return _error(404, f"no static file {name!r}")
        return FileResponse(os.path.join(STATIC, name), media_type=STATIC_FILES[name])

    @app.get("/api/info")
    def api_info():
        return {**info, "videos": workspace.video_list()}

    # ------------------------------------------------------------------ sessions
    @app.get("/api/sessions")
    def list_sessions():
        return {"sessions": workspace.sessions()}

    @app.post("/api/sessions")
    async def create_session(request: Request):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > workspace.max_upload_bytes + 2**20:
            return _error(413, f"upload larger than --max_upload_mb ({workspace.max_upload_bytes // 2**20} MB)")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            body = await _json(request)
            path = workspace.video_choice(body.get("video", ""))
            name = os.path.splitext(os.path.basename(path))[0]
            session = await asyncio.to_thread(workspace.create, path, name, False)
            return session.describe()
        form = await request.form(max_files=1, max_fields=4, max_part_size=workspace.max_upload_bytes)
        upload = form.get("video")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _error(400, "send the video as the multipart field 'video' (or JSON {\"video\": name under --videos})")
        ext = os.path.splitext(upload.filename)[1].lower()
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.splitext(os.path.basename(upload.filename))[0])[:80] or "video"
        tmp = temporary_path(os.path.join(workspace.uploads, "upload" + (ext if ext.isascii() and ext[1:].isalnum() and len(ext) <= 6 else "")))
        size = 0
        try:
            with open(tmp, "xb") as out:
                while chunk := await upload.read(2**20):
                    size += len(chunk)
                    if size > workspace.max_upload_bytes:
                        return _error(413, f"upload larger than --max_upload_mb ({workspace.max_upload_bytes // 2**20} MB)")
                    out.write(chunk)
            try:
                session = await asyncio.to_thread(workspace.create, tmp, name, True)
            except InputError as exc:  # name the user's file, not the temporary one
                return _error(400, str(exc).replace(tmp, os.path.basename(upload.filename)))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return session.describe()

    @app.get("/api/sessions/{session_id}")
    def get_session(session_id: str):
        return workspace.session(session_id).describe()

    @app.get("/api/sessions/{session_id}/frames/{name}")
    def frame(session_id: str, name: str):
        session = workspace.session(session_id)
        kind = "thumbs" if name.startswith("thumb_") else "frames"
        index = session.frame_index(_index_of(name.removeprefix("thumb_"), ".jpg"))
        return FileResponse(session.path(kind, index), media_type="image/jpeg")

    @app.get("/api/sessions/{session_id}/masks/{name}")
    def get_mask(session_id: str, name: str):
        session = workspace.session(session_id)
        index = session.frame_index(_index_of(name, ".png"))
        for kind in ("masks", "results"):
            if os.path.isfile(session.path(kind, index)):
                return FileResponse(session.path(kind, index), media_type="image/png",
                                    headers={"Cache-Control": "no-store", "X-Annotated": str(kind == "masks").lower()})
        return _error(404, f"frame {index} has no mask yet")

    @app.put("/api/sessions/{session_id}/masks/{name}")
    async def put_mask(session_id: str, name: str, request: Request):
        session = workspace.session(session_id)
        index = session.frame_index(_index_of(name, ".png"))
        body = await request.body()
        if len(body) > MAX_MASK_BYTES:
            return _error(413, "mask larger than 32 MB")
        labels = _read_mask_bytes(body)
        if labels.shape != (session.meta["height"], session.meta["width"]):
            return _error(400, f"mask is {labels.shape[1]}x{labels.shape[0]} but the video is "
                               f"{session.meta['width']}x{session.meta['height']}")
        save_png_atomic(session.path("masks", index), labels)
        return {"frame": index, "annotated": session.annotated(), "objects": object_ids(labels)}

    @app.delete("/api/sessions/{session_id}/masks/{name}")
    def delete_mask(session_id: str, name: str):
        session = workspace.session(session_id)
        index = session.frame_index(_index_of(name, ".png"))
        path = session.path("masks", index)
        if not os.path.isfile(path):
            return _error(404, f"frame {index} is not annotated")
        os.remove(path)
        return {"frame": index, "annotated": session.annotated()}

    @app.post("/api/sessions/{session_id}/grabcut")
    async def grabcut(session_id: str, request: Request):
        """{"frame": i, "box": [x0, y0, x1, y1], "foreground": [[x, y], ...], "background": [...], "radius": r}
        -> a binary PNG (0 / 255) of the object GrabCut finds in the box."""
        session = workspace.session(session_id)
        body = await _json(request)
        index = session.frame_index(body.get("frame"))
        rgb = np.asarray(Image.open(session.path("frames", index)).convert("RGB"))
        mask = await asyncio.to_thread(_grabcut, rgb, body)
        buf = io.BytesIO()
        Image.fromarray(mask, mode="L").save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")

    # ------------------------------------------------------------------ jobs
    @app.post("/api/sessions/{session_id}/propagate")
    async def propagate(session_id: str, request: Request):
        session = workspace.session(session_id)
        body = await _json(request)
        job = runner.submit(session, session.frame_index(body.get("frame")), body.get("direction", "forward"),
                            body.get("until", "end"))
        return {"job": job.id, "total": job.total}

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str):
        job = runner.get(job_id)
        return job.describe() if job else _error(404, f"no job {job_id!r}")

    @app.delete("/api/jobs/{job_id}")
    def cancel_job(job_id: str):
        job = runner.get(job_id)
        if not job:
            return _error(404, f"no job {job_id!r}")
        runner.cancel(job)
        return job.describe()

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str):
        job = runner.get(job_id)
        if not job:
            return _error(404, f"no job {job_id!r}")

        async def stream():
            last = None
            while True:
                state = job.describe()
                if state != last:
                    yield f"data: {json.dumps(state)}\n\n"
                    last = state
                if state["state"] in ("done", "failed", "cancelled"):
                    return
                await asyncio.sleep(0.25)
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ export
    @app.get("/api/sessions/{session_id}/export")
    async def export(session_id: str, format: str = "palette"):
        session = workspace.session(session_id)
        if format not in EXPORTS:
            return _error(400, f"format must be one of {', '.join(EXPORTS)}")
        path = await asyncio.to_thread(_export, session, format)
        media = {"coco": "application/json", "mp4": "video/mp4"}.get(format, "application/zip")
        return FileResponse(path, media_type=media, filename=os.path.basename(path))

    return app


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InputError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


def _index_of(name: str, ext: str) -> str:
    if not name.endswith(ext) or not name[: -len(ext)].isdigit():
        raise NotFound(f"{name!r}: expected <frame number>{ext}")
    return name[: -len(ext)]


def _read_mask_bytes(body: bytes) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        f.write(body)
        f.flush()
        return read_user_mask(f.name).labels


def _grabcut(rgb: np.ndarray, body: dict) -> np.ndarray:
    h, w = rgb.shape[:2]
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in body.get("box"))
        radius = max(1, min(int(body.get("radius", 5)), 100))
        fg = [(int(x), int(y)) for x, y in body.get("foreground", [])][:5000]
        bg = [(int(x), int(y)) for x, y in body.get("background", [])][:5000]
    except (TypeError, ValueError):
        raise InputError("grabcut needs box [x0, y0, x1, y1] and optional foreground/background [[x, y], ...]") from None
    x0, x1 = sorted((max(0, min(x0, w - 1)), max(0, min(x1, w - 1))))
    y0, y1 = sorted((max(0, min(y0, h - 1)), max(0, min(y1, h - 1))))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError("the GrabCut box is too small (draw a box around the object)")
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[y0:y1 + 1, x0:x1 + 1] = cv2.GC_PR_FGD
    for points, value in ((fg, cv2.GC_FGD), (bg, cv2.GC_BGD)):
        for x, y in points:
            cv2.circle(mask, (x, y), radius, int(value), -1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    return np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)


def _export(session, kind: str) -> str:
    """Writes the export of ``kind`` into the session's exports/ and returns its path (each export
    is made under names of its own and published whole: concurrent exports never share a file)."""
    exports = os.path.join(session.root, "exports")
    name = session.meta["name"]
    target = os.path.join(exports, {"mp4": f"{name}_overlay.mp4", "coco": f"{name}_coco.json"}.get(kind, f"{name}_{kind}.zip"))
    with staging(target) as stage:
        blank = np.zeros((session.meta["height"], session.meta["width"]), np.uint8)
        # Every object of the results was annotated somewhere: the annotations name them all.
        objects = ids_of_all(session.annotation(a) for a in session.annotated())
        stems = [f"{i:05d}" for i in range(session.frames)]
        times = session.meta.get("times") or [i / session.meta["fps"] for i in range(session.frames)]
        kinds = ["palette"] + ([kind] if kind in ("objects", "coco") else [])  # only what is asked
        writer = ResultWriter(stage, kinds, stems, times, objects,
                              {"video": name, "frames": session.frames, "fps": session.meta["fps"],
                               "width": session.meta["width"], "height": session.meta["height"], "object_ids": objects})
        for i in range(session.frames):  # one frame at a time: memory stays flat in the video's length
            labels = session.label_map(i)
            writer.write_frame(i, blank if labels is None else labels, None)
        writer.finish()
        with publishing(target) as tmp:
            if kind == "mp4":
                write_overlay(session.source(), os.path.join(stage, "palette"), tmp)
            elif kind == "coco":
                os.replace(os.path.join(stage, "coco.json"), tmp)
            else:
                folder = os.path.join(stage, "palette" if kind == "palette" else "objects")
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                    for root, _, files in os.walk(folder):
                        for f in sorted(files):
                            path = os.path.join(root, f)
                            z.write(path, os.path.join(name, os.path.relpath(path, folder)))
    return target
