"""The studio's app: the page, the token, and the routers by resource (studio/routes/); state in one
typed object (studio/state.py), errors answered by one table (studio/errors.py).

The page and its static files are public; every other route needs the token (studio/auth.py); every
answer carries the security headers; errors are JSON ``{"error": "..."}`` with a 4xx status (503 when
the workspace cannot be written), never a crash.
JSON bodies are read up to their limits before they are parsed (studio/requests.py); the schema of
every request and answer is at ``/openapi.json`` (studio/schemas.py).
"""
from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse

from inference_core.directions import JOB_DIRECTIONS
from studio import auth
from studio.errors import error as _error
from studio.errors import install_error_handlers
from studio.exports import EXPORTS
from studio.finetune import DEFAULT_MINUTES, MAX_MINUTES, MAX_QUEUED, MIN_ANNOTATED_FRAMES, MIN_MINUTES, TRAINER, FinetuneJob
from studio.job import FINISHED, JOB_STATES
from studio.jobs import JobRunner, recover_jobs
from studio.models import START, ModelCatalog, StartModel
from studio.propagation import UNTIL, PropagationJob
from studio.requests import MAX_JSON_BYTES, BodyLimit
from studio.routes import annotations, exports, jobs, models, sessions
from studio.routes.annotations import MAX_MASK_BYTES
from studio.schemas import Info
from studio.state import Studio, StudioDep
from studio.store import Workspace
from util.labels import MAX_OBJECTS

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
JOB_KINDS = {cls.kind: cls for cls in (PropagationJob, FinetuneJob)}
BODY_LIMITS = {"/grabcut": MAX_MASK_BYTES}   # a base64 mask; the other JSON bodies: MAX_JSON_BYTES


def _body_limit(path: str) -> int:
    return next((limit for suffix, limit in BODY_LIMITS.items() if path.endswith(suffix)), MAX_JSON_BYTES)


def _is_streamed(path: str) -> bool:
    """PUT .../masks/<n>.png reads its own body (up to MAX_MASK_BYTES); uploads are multipart."""
    return "/masks/" in path


def create_app(workspace: Workspace, runner: JobRunner, token: str, info: dict,
               trainer: tuple[str, ...] = TRAINER) -> FastAPI:
    """The app over ``workspace`` and ``runner`` (its predictor: the start model, as the command line
    gave it); ``info``: the facts of the command line for /api/info; ``trainer``: the command that
    fine-tunes. Jobs a stopped studio left queued or running are marked interrupted first."""
    recover_jobs(workspace, JOB_KINDS)
    start = StartModel(runner.checkpoint, runner.predictor.model.config)
    studio = Studio(workspace, runner, ModelCatalog(workspace, start), info, START, trainer)
    app = FastAPI(title="SimVOS studio", docs_url=None, redoc_url=None)
    app.state.studio = studio
    app.add_middleware(BodyLimit, limit_of=_body_limit, is_streamed=_is_streamed)

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if auth.is_public(request.url.path) or auth.authorized(request, token):
            response = await call_next(request)
        else:
            response = _error(401, auth.MISSING)
        response.headers.update(auth.SECURITY_HEADERS)
        return response

    install_error_handlers(app)

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

    @app.get("/api/info", response_model=Info)
    def api_info(studio: StudioDep):
        """The facts the page shares with the server: limits, vocabularies, the model."""
        return facts(studio)

    for router in (sessions.router, annotations.router, jobs.router, models.router, exports.router):
        app.include_router(router)
    return app


def facts(studio: Studio) -> dict:
    runner, workspace = studio.runner, studio.workspace
    return {**studio.info, "model": studio.current, "demo_model": bool(studio.info.get("demo_model")) and studio.current == START, "checkpoint": os.path.basename(runner.checkpoint or "") or None,
            "max_objects": MAX_OBJECTS, "directions": list(JOB_DIRECTIONS), "until": list(UNTIL), "job_states": list(JOB_STATES),
            "finished_job_states": list(FINISHED), "exports": list(EXPORTS), "max_keyframes": runner.max_keyframes,
            "size": runner.predictor.size,
            "limits": {"max_upload_mb": workspace.max_upload_bytes // 2**20, "max_pixels": workspace.max_pixels,
                       "max_frames": workspace.max_frames, "max_mask_mb": MAX_MASK_BYTES // 2**20,
                       "max_json_mb": MAX_JSON_BYTES // 2**20},
            "finetune": {"max_queued": MAX_QUEUED, "min_annotated_frames": MIN_ANNOTATED_FRAMES,
                         "default_minutes": DEFAULT_MINUTES, "min_minutes": MIN_MINUTES, "max_minutes": MAX_MINUTES,
                         "available": runner.checkpoint is not None},
            "videos": workspace.video_list(), "max_upload_mb": workspace.max_upload_bytes // 2**20}
