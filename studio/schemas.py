"""The studio's HTTP API as types: every request body and every JSON answer (FastAPI validates
the bodies with them and publishes them at ``/openapi.json``). Requests are strict (no "3" for 3,
no true for 1, no NaN); fields a request does not name are ignored.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from inference_core.directions import JOB_DIRECTIONS
from studio.exports import EXPORTS
from studio.finetune import DEFAULT_MINUTES
from studio.propagation import UNTIL

Direction = Literal[JOB_DIRECTIONS]
Until = Literal[UNTIL]
ExportKind = Literal[EXPORTS]


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------- requests
class OpenVideo(Request):
    """A video file or frame folder under --videos, by its relative path."""
    video: str = Field(min_length=1, max_length=1000)


class PropagateRequest(Request):
    frame: int = Field(ge=0)
    direction: Direction = "forward"
    until: Until = "end"


class GrabCutRequest(Request):
    """box [x0, y0, x1, y1] in the frame's pixels; strokes [[x, y] or [x, y, radius], ...] inside the
    frame (radius 1-100, default 5); mask: base64 PNG of the object's current mask (then the
    strokes refine it)."""
    frame: int = Field(ge=0)
    box: list[int] = Field(min_length=4, max_length=4)
    foreground: list[list[int]] = Field(default_factory=list, max_length=20000)
    background: list[list[int]] = Field(default_factory=list, max_length=20000)
    mask: str | None = None


class FinetuneRequest(Request):
    sessions: list[str] = Field(min_length=1, max_length=1000)
    minutes: float = Field(default=DEFAULT_MINUTES, allow_inf_nan=False)


class ChooseModel(Request):
    name: str = Field(min_length=1, max_length=100)


# ---------------------------------------------------------------------- answers
class Session(Answer):
    id: str
    name: str
    video: str
    frames: int
    width: int
    height: int
    fps: float
    created: str = Field(description="ISO 8601, UTC")
    annotated: list[int]
    annotated_count: int
    computed: int
    computed_frames: list[int]


class SessionList(Answer):
    sessions: list[Session]


class MaskSaved(Answer):
    frame: int
    annotated: list[int]
    objects: list[int] = []


class JobStarted(Answer):
    job: str
    kind: str
    total: int
    note: str | None = None
    model: str | None = None
    held_out: list[str] | None = None


class JobState(Answer):
    """A job as it is now (or as recorded by an earlier run of the studio). Propagation adds
    session, frame, direction, until, last_frame, fps, eta_seconds; fine-tuning adds model,
    sessions, held_out, minutes, val_jf, val_jf_before, weights, pid."""
    job: str
    kind: Literal["propagation", "finetune"]
    state: str
    done: int
    total: int
    error: str | None = None
    note: str | None = None
    started: float | None = None
    position: int | None = None
    waiting_for: dict | None = None


class FinetunePlan(Answer):
    sessions: list[str]
    held_out: list[str]
    trains_on: list[str]
    minutes: float
    starts_from: str


class Model(Answer):
    name: str
    state: str
    usable: bool
    current: bool
    path: str | None
    size_bytes: int | None
    job: str | None = None
    sessions: list[str] | None = None
    held_out: list[str] | None = None
    val_jf: float | None = None
    val_jf_before: float | None = None
    error: str | None = None


class ModelList(Answer):
    models: list[Model]


class ModelChosen(Answer):
    model: str
    path: str
    variant: str | None
    backbone: str


class ModelDeleted(Answer):
    model: str
    freed_bytes: int


class Error(BaseModel):
    error: str


class Info(Answer):
    """The facts the page shares with the server (it hard-codes none of them)."""
    checkpoint: str | None = None
    model: str
    variant: str | None = None
    backbone: str | None = None
    device: str | None = None
    demo_model: bool | None = None
    published: bool | None = None
    max_objects: int
    directions: list[str]
    until: list[str]
    job_states: list[str]
    finished_job_states: list[str]
    exports: list[str]
    max_keyframes: int
    size: int | None
    limits: dict
    finetune: dict
    videos: list[str]
    max_upload_mb: int
