"""The studio's routes: they parse, call the workspace / the job runner / GrabCut, and answer.

Every route needs the token (studio/auth.py); every answer carries the security headers; errors are
JSON ``{"error": "..."}`` with a 4xx status (503 when the workspace cannot be written), never a crash.
Bodies are read up to their limits (studio/requests.py), never whole before the check.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import zipfile

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from PIL import Image

from dataset.masks import read_mask_file
from outputs.formats import ResultWriter
from outputs.video_job import write_overlay
from studio import auth
from inference_core.predictor import build_predictor
from model.variants import recorded_model_flags, resolve_config
from studio.finetune import list_models, new_finetune_job
from studio.jobs import DIRECTIONS, FINISHED, JobRunner
from studio.requests import TooLarge, int_field, png_size, points_field, read_body, read_json, receive_upload, str_field
from studio.store import Conflict, NotFound, Workspace, save_png_atomic
from util.errors import InputError
from util.labels import MAX_OBJECTS, ids_of_all, object_ids
from util.publish import publishing, staging, temporary_path

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
EXPORTS = ("palette", "objects", "coco", "mp4")
MAX_MASK_BYTES = 32 * 2**20
VIDEO_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(workspace: Workspace, runner: JobRunner, token: str, info: dict) -> FastAPI:
    app = FastAPI(title="SimVOS studio", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if auth.is_public(request.url.path) or auth.authorized(request, token):
            response = await call_next(request)
        else:
            response = _error(401, auth.MISSING)
        response.headers.update(auth.SECURITY_HEADERS)
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return _error(404, str(exc))

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge):
        return _error(413, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return _error(409, str(exc))

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError):
        return _error(400, str(exc))

    @app.exception_handler(OSError)
    async def unwritable(request: Request, exc: OSError):
        return _error(503, f"the workspace {workspace.root} cannot be used: {exc.strerror or exc} "
                           "(is it deleted, read-only or full?)")

    # ------------------------------------------------------------------ page
    @app.get("/")
    def page():
        return FileResponse(os.path.join(STATIC, "index.html"), media_type="text/html",
                            headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def static(name: str):
        kind = STATIC_TYPES.get(os.path.splitext(name)[1])
        if kind is None or name not in os.listdir(STATIC):
            return _error(404, f"no static file {name!r}")
        return FileResponse(os.path.join(STATIC, name), media_type=kind, headers={"Cache-Control": "no-store"})

    @app.get("/api/info")
    def api_info():
        return {**info, "videos": workspace.video_list(), "max_upload_mb": workspace.max_upload_bytes // 2**20,
                "finished_job_states": list(FINISHED), "max_objects": MAX_OBJECTS, "directions": list(DIRECTIONS),
                "exports": list(EXPORTS), "finetune": {"min_annotated_frames": 2, "min_minutes": 0.1, "max_minutes": 1440,
                                                       "default_minutes": 10}}

    # ------------------------------------------------------------------ sessions
    @app.get("/api/sessions")
    def list_sessions():
        return {"sessions": workspace.sessions()}

    @app.post("/api/sessions")
    async def create_session(request: Request):
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await read_json(request)
            path = workspace.video_choice(str_field(body, "video"))
            name = os.path.splitext(os.path.basename(path))[0]
            session = await asyncio.to_thread(workspace.create, path, name, False)
            return session.describe()
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
        body = await read_body(request, MAX_MASK_BYTES, "the mask")
        labels = _read_mask(body, session.meta["width"], session.meta["height"])
        runner.check_editable(session, index)
        save_png_atomic(session.path("masks", index), labels)
        return {"frame": index, "annotated": session.annotated(), "objects": object_ids(labels)}

    @app.delete("/api/sessions/{session_id}/masks/{name}")
    def delete_mask(session_id: str, name: str):
        session = workspace.session(session_id)
        index = session.frame_index(_index_of(name, ".png"))
        path = session.path("masks", index)
        if not os.path.isfile(path):
            return _error(404, f"frame {index} is not annotated")
        runner.check_editable(session, index)
        os.remove(path)
        return {"frame": index, "annotated": session.annotated()}

    @app.post("/api/sessions/{session_id}/grabcut")
    async def grabcut(session_id: str, request: Request):
        """{"frame", "box": [x0, y0, x1, y1], "foreground": [[x, y, r], ...], "background": [...],
        "mask": base64 PNG of the object's current mask (optional: then the strokes refine it)}
        -> a binary PNG (0 / 255) of the object."""
        session = workspace.session(session_id)
        body = await read_json(request, MAX_MASK_BYTES)
        width, height = session.meta["width"], session.meta["height"]
        index = session.frame_index(int_field(body, "frame", 0, session.frames - 1))
        box = body.get("box")
        if not isinstance(box, list) or len(box) != 4:
            raise InputError("'box' must be [x0, y0, x1, y1] in the frame's pixels")
        fields = dict(zip(("x0", "y0", "x1", "y1"), box))
        x0, x1 = (int_field(fields, k, -width, 2 * width) for k in ("x0", "x1"))
        y0, y1 = (int_field(fields, k, -height, 2 * height) for k in ("y0", "y1"))
        foreground = points_field(body, "foreground", width, height)
        background = points_field(body, "background", width, height)
        current = None
        if body.get("mask") is not None:
            if not isinstance(body["mask"], str):
                raise InputError("'mask' must be a base64 PNG of the object's current mask")
            try:
                raw = base64.b64decode(body["mask"], validate=True)
            except ValueError:
                raise InputError("'mask' is not base64") from None
            current = _read_mask(raw, width, height) > 0
        rgb = np.asarray(Image.open(session.path("frames", index)).convert("RGB"))
        mask = await asyncio.to_thread(run_grabcut, rgb, (x0, y0, x1, y1), foreground, background, current)
        buf = io.BytesIO()
        Image.fromarray(mask, mode="L").save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")

    # ------------------------------------------------------------------ jobs
    @app.post("/api/sessions/{session_id}/propagate")
    async def propagate(session_id: str, request: Request):
        session = workspace.session(session_id)
        body = await read_json(request)
        frame = session.frame_index(int_field(body, "frame", 0, session.frames - 1))
        job = runner.submit(session, frame, str_field(body, "direction", default="forward"),
                            str_field(body, "until", default="end"))
        return {"job": job.id, "total": job.total, "note": job.note}

    def described(job_id: str) -> dict | None:
        job = runner.get(job_id)
        return job.describe() if job else workspace.job_record(job_id)

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str):
        state = described(job_id)
        return state if state else _error(404, f"no job {job_id!r}")

    @app.delete("/api/jobs/{job_id}")
    def cancel_job(job_id: str):
        job = runner.get(job_id)
        if not job:
            return _error(404, f"no job {job_id!r}")
        runner.cancel(job)
        return job.describe()

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str):
        if not described(job_id):
            return _error(404, f"no job {job_id!r}")

        async def stream():
            last = None
            while True:
                state = described(job_id)
                if state != last:
                    yield f"data: {json.dumps(state)}\n\n"
                    last = state
                if state["state"] in FINISHED:
                    return
                await asyncio.sleep(0.25)
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ fine-tuning and models
    current = {"name": "start", "start": runner.checkpoint}

    @app.post("/api/finetune")
    async def finetune(request: Request):
        body = await read_json(request)
        job = runner.submit_finetune(new_finetune_job(workspace, body.get("sessions"), body.get("minutes", 10)))
        return {"job": job.id, "model": job.model}

    @app.get("/api/models")
    def models():
        found = list_models(workspace.root, current["start"])
        for model in found:
            model["current"] = model["name"] == current["name"]
        return {"models": found}

    @app.post("/api/model")
    async def switch_model(request: Request):
        body = await read_json(request)
        name = str_field(body, "name")
        chosen = next((m for m in list_models(workspace.root, current["start"]) if m["name"] == name), None)
        if chosen is None or not chosen["path"]:
            raise NotFound(f"no model {name!r} (GET /api/models lists them)")
        old = runner.predictor
        predictor = await asyncio.to_thread(
            build_predictor, chosen["path"], resolve_config(None, recorded_model_flags(chosen["path"]) or {}),
            old.device, old.amp, old.max_objects_per_batch, size=old.size, overlap_io=old.overlap_io, compile=old.compile)
        runner.switch_model(predictor, chosen["path"])
        current["name"] = name
        info.update(checkpoint=os.path.basename(chosen["path"]), demo_model=False if name != "start" else info.get("demo_model"))
        return {"model": name, "path": chosen["path"]}

    # ------------------------------------------------------------------ export
    @app.get("/api/sessions/{session_id}/export")
    async def export(session_id: str, format: str = "palette"):
        session = workspace.session(session_id)
        if format not in EXPORTS:
            return _error(400, f"format must be one of {', '.join(EXPORTS)}")
        handle, path = await asyncio.to_thread(_export, session, format)
        media = {"coco": "application/json", "mp4": "video/mp4"}.get(format, "application/zip")
        headers = {"Content-Length": str(os.fstat(handle.fileno()).st_size), "Cache-Control": "no-store",
                   "Content-Disposition": f'attachment; filename="{os.path.basename(path)}"'}
        return StreamingResponse(_chunks(handle), media_type=media, headers=headers)

    return app


def safe_name(filename: str) -> str:
    """A session name from an uploaded file's name: letters, digits, '.', '_', '-'; never hidden,
    never '.' or '..' (zip entries and exports are named after it)."""
    stem = os.path.splitext(os.path.basename(filename.replace("\\", "/")))[0]
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in stem)[:80].strip("._")
    return name or "video"


def _index_of(name: str, ext: str) -> str:
    if not name.endswith(ext) or not name[: -len(ext)].isdigit() or len(name) > 16:
        raise NotFound(f"{name[:40]!r}: expected <frame number>{ext}")
    return name[: -len(ext)]


def _read_mask(data: bytes, width: int, height: int) -> np.ndarray:
    """A mask of the video's size: the PNG header is checked first, then it is decoded."""
    got = png_size(data, "the mask")
    if got != (width, height):
        raise InputError(f"mask is {got[0]}x{got[1]} but the video is {width}x{height}")
    return read_mask_file(io.BytesIO(data), "the mask").labels


def run_grabcut(rgb: np.ndarray, box, foreground, background, current: np.ndarray | None = None) -> np.ndarray:
    """The object in ``box`` [x0, y0, x1, y1] by GrabCut; strokes (x, y, radius) are hard
    constraints. With the object's ``current`` mask [H, W] bool, GrabCut starts from it (probably
    foreground inside it, probably background elsewhere in the box) and the strokes refine it."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    x0, x1 = sorted((max(0, min(x0, w - 1)), max(0, min(x1, w - 1))))
    y0, y1 = sorted((max(0, min(y0, h - 1)), max(0, min(y1, h - 1))))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError("the GrabCut box is too small (draw a box around the object)")
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[y0:y1 + 1, x0:x1 + 1] = cv2.GC_PR_FGD if current is None else cv2.GC_PR_BGD
    if current is not None:
        inside = np.zeros((h, w), bool)
        inside[y0:y1 + 1, x0:x1 + 1] = True
        mask[current & inside] = cv2.GC_PR_FGD
    for points, value in ((foreground, cv2.GC_FGD), (background, cv2.GC_BGD)):
        for x, y, radius in points:
            cv2.circle(mask, (x, y), radius, int(value), -1)
    if not ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).any():
        return np.zeros((h, w), np.uint8)
    if ((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD)).any():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    return np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)


def _chunks(handle, size: int = 2**20):
    with handle:
        while chunk := handle.read(size):
            yield chunk


def _export(session, kind: str):
    """Writes the export of ``kind`` into the session's exports/; -> (the file, open for reading, and
    its path). Each export is made under names of its own and published whole, and the file is
    opened before it is published: concurrent exports never share or swap a file."""
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
                            z.write(path, f"{name}/{os.path.relpath(path, folder).replace(os.sep, '/')}")
            handle = open(tmp, "rb")
    return handle, target
