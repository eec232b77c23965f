"""The studio workspace on disk: its one layout, read and written only through this module (the
studio, dataset/annotated.py for fine-tuning, and through it the trainer).

    <workspace>/token                          the studio's access token (owner-readable only)
               /uploads/                       videos while they arrive
               /sessions/<id>/meta.json        what the video is (SessionMeta)
                             /source.<ext>      the uploaded video (or meta names a file/folder under --videos)
                             /frames/<i>.jpg    decoded frames, as displayed and as fine-tuning reads them
                             /thumbs/<i>.jpg    timeline thumbnails
                             /masks/<i>.png     annotations (indexed label maps): the annotated frames
                             /results/<i>.png   propagated label maps
                             /exports/          files of the last exports
               /jobs/<job>.json                every job (propagation and fine-tuning) as last recorded
               /models/<name>/finetuned.pth    a fine-tuned model (+ finetuned.json, its model flags)
                             /events.jsonl      the trainer's progress stream (util/run_events.py)
                             /train.log         the trainer's human log (for people; never parsed)
                             /runs/             its TensorBoard logs; model_<i>.pth, checkpoint_<i>.pth: its states

``<i>`` is the frame number, zero-padded to five digits (:func:`frame_stem`); session and job ids
are 12 lowercase hex digits; model names are letters, digits, '_' and '-'. Whatever a request or
a folder names is checked against these before a path is made of it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

SESSION_ID = re.compile(r"^[0-9a-f]{12}$")
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SESSION_FOLDERS = ("frames", "thumbs", "masks", "results", "exports")
WEIGHTS_NAME = "finetuned.pth"
EVENTS_NAME = "events.jsonl"
LOG_NAME = "train.log"
_STEM = re.compile(r"^\d{5}$")


def frame_stem(index: int) -> str:
    """The file stem of frame ``index`` in every per-frame folder of a session: 7 -> '00007'."""
    return f"{index:05d}"


@dataclass
class SessionMeta:
    """meta.json of a session. ``source``: the video file or frame folder propagation reads;
    ``times``: each frame's time in seconds; ``created``: seconds since the epoch."""

    id: str
    name: str
    frames: int
    width: int
    height: int
    fps: float
    source: str
    created: float
    times: list[float] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: dict, path: str) -> "SessionMeta":
        try:
            known = {k: value[k] for k in ("id", "name", "frames", "width", "height", "fps", "source", "created")}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a session's meta.json (missing {exc})") from None
        return cls(**known, times=value.get("times"),
                   extra={k: v for k, v in value.items() if k not in known and k != "times"})

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "frames": self.frames, "width": self.width, "height": self.height,
                "fps": self.fps, "source": self.source, "created": self.created, "times": self.times, **self.extra}


@dataclass(frozen=True)
class SessionFolder:
    """The files of one session under ``root`` (``<workspace>/sessions/<id>``)."""

    root: str

    @property
    def id(self) -> str:
        return os.path.basename(self.root)

    @property
    def meta_path(self) -> str:
        return os.path.join(self.root, "meta.json")

    def folder(self, kind: str) -> str:
        if kind not in SESSION_FOLDERS:
            raise ValueError(f"no per-session folder {kind!r}")
        return os.path.join(self.root, kind)

    def frame(self, index: int) -> str:
        return os.path.join(self.root, "frames", frame_stem(index) + ".jpg")

    def thumb(self, index: int) -> str:
        return os.path.join(self.root, "thumbs", frame_stem(index) + ".jpg")

    def mask(self, index: int) -> str:
        return os.path.join(self.root, "masks", frame_stem(index) + ".png")

    def result(self, index: int) -> str:
        return os.path.join(self.root, "results", frame_stem(index) + ".png")

    def exports(self) -> str:
        return os.path.join(self.root, "exports")

    def read_meta(self) -> SessionMeta:
        """meta.json; OSError when it cannot be read, ValueError when it is not a session's."""
        with open(self.meta_path) as f:
            return SessionMeta.from_json(json.load(f), self.meta_path)

    def indices(self, kind: str) -> list[int]:
        """The frame numbers that have a file in ``kind`` ("masks", "results", ...), sorted."""
        folder = self.folder(kind)
        ext = ".jpg" if kind in ("frames", "thumbs") else ".png"
        names = os.listdir(folder) if os.path.isdir(folder) else []
        return sorted(int(f[:-4]) for f in names if f.endswith(ext) and _STEM.match(f[:-4]))

    def annotated(self) -> list[int]:
        return self.indices("masks")

    def computed(self) -> list[int]:
        return self.indices("results")


@dataclass(frozen=True)
class ModelFolder:
    """A fine-tuned model's folder (``<workspace>/models/<name>``)."""

    root: str

    @property
    def name(self) -> str:
        return os.path.basename(self.root)

    @property
    def weights(self) -> str:
        return os.path.join(self.root, WEIGHTS_NAME)

    @property
    def events(self) -> str:
        return os.path.join(self.root, EVENTS_NAME)

    @property
    def log(self) -> str:
        return os.path.join(self.root, LOG_NAME)

    @property
    def runs(self) -> str:
        return os.path.join(self.root, "runs")

    def size_bytes(self) -> int:
        """What the folder keeps on disk (links not followed)."""
        total = 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total


@dataclass(frozen=True)
class WorkspaceLayout:
    """The paths of a workspace rooted at ``root`` (absolute)."""

    root: str

    @classmethod
    def at(cls, root: str) -> "WorkspaceLayout":
        return cls(os.path.abspath(os.path.expanduser(root)))

    @property
    def sessions_dir(self) -> str:
        return os.path.join(self.root, "sessions")

    @property
    def uploads_dir(self) -> str:
        return os.path.join(self.root, "uploads")

    @property
    def jobs_dir(self) -> str:
        return os.path.join(self.root, "jobs")

    @property
    def models_dir(self) -> str:
        return os.path.join(self.root, "models")

    @property
    def token_path(self) -> str:
        return os.path.join(self.root, "token")

    @staticmethod
    def is_workspace(folder: str) -> bool:
        return os.path.isdir(os.path.join(folder, "sessions"))

    def session(self, session_id: str) -> SessionFolder:
        """The folder of a session id (ValueError for a string that is not one)."""
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return SessionFolder(os.path.join(self.sessions_dir, session_id))

    def session_ids(self) -> list[str]:
        """Ids of the session folders (sorted; hidden and half-written ones left out)."""
        names = os.listdir(self.sessions_dir) if os.path.isdir(self.sessions_dir) else []
        return sorted(n for n in names if SESSION_ID.match(n))

    def job(self, job_id: str) -> str:
        """The record of a job id (ValueError for a string that is not one)."""
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return os.path.join(self.jobs_dir, f"{job_id}.json")

    def job_ids(self) -> list[str]:
        names = os.listdir(self.jobs_dir) if os.path.isdir(self.jobs_dir) else []
        return sorted(n[:-5] for n in names if n.endswith(".json") and JOB_ID.match(n[:-5]))

    def model(self, name: str) -> ModelFolder:
        """The folder of a model name (ValueError for a string that is not one)."""
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise ValueError(f"not a model name: {name!r}")
        return ModelFolder(os.path.join(self.models_dir, name))

    def model_names(self) -> list[str]:
        names = os.listdir(self.models_dir) if os.path.isdir(self.models_dir) else []
        return sorted(n for n in names if MODEL_NAME.match(n) and os.path.isdir(os.path.join(self.models_dir, n)))
