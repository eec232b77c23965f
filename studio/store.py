"""The studio's sessions in the workspace (the one truth of the studio: the server can stop at any
moment). The layout is dataset/workspace.py's; this module checks what requests name (session ids,
frame numbers, --videos names: ``Workspace.session``, ``StoredSession.frame_index``,
``Workspace.video_choice``) so that nothing outside the workspace and the --videos folder is read
or written, creates sessions, and keeps the job records. Files are published atomically
(util/publish.py); what a killed server left half-written is removed when the workspace is opened.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dataset.davis import list_frames
from dataset.frames import FrameSource, check_frame_sizes
from dataset.palette_io import read_label_png, write_label_png
from dataset.video_io import VIDEO_EXTENSIONS, probe_video
from dataset.workspace import SESSION_FOLDERS, SessionFolder, SessionMeta, WorkspaceLayout
from util.errors import InputError
from util.publish import publishing, remove_leftovers

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
THUMB_HEIGHT = 48
DEFAULT_MAX_PIXELS = 3840 * 2160   # a 4K frame
DEFAULT_MAX_FRAMES = 20000         # about 13 minutes at 25 fps


class NotFound(InputError):
    """A session, frame or file that does not exist (answered 404)."""


class Conflict(InputError):
    """A change that a queued or running job depends on (answered 409)."""


class SourceMissing(InputError):
    """The video file or frame folder a session was made from is gone (answered 410)."""


class SessionGone(InputError):
    """A session folder deleted while a job used it."""


def save_png_atomic(path: str, labels: np.ndarray) -> None:
    with publishing(path) as tmp:
        write_label_png(tmp, labels)


@dataclass
class StoredSession:
    """A studio session as the workspace keeps it: one video, its annotations and results."""

    folder: SessionFolder
    meta: SessionMeta
    layout: WorkspaceLayout   # the workspace it belongs to (where its jobs are recorded)

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def root(self) -> str:
        return self.folder.root

    @property
    def frames(self) -> int:
        return self.meta.frames

    def frame_index(self, value) -> int:
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise InputError(f"frame must be an integer, got {value!r}") from None
        if not 0 <= index < self.frames:
            raise NotFound(f"frame {index} is outside the video (0-{self.frames - 1})")
        return index

    def path(self, kind: str, index: int) -> str:
        """The file of frame ``index`` in ``kind``: "frames", "thumbs", "masks" or "results"."""
        return {"frames": self.folder.frame, "thumbs": self.folder.thumb, "masks": self.folder.mask,
                "results": self.folder.result}[kind](index)

    def exists(self) -> bool:
        return os.path.isfile(self.folder.meta_path)

    def annotated(self) -> list[int]:
        return self.folder.annotated()

    def computed(self) -> list[int]:
        return self.folder.computed()

    def annotation(self, index: int) -> np.ndarray | None:
        """The frame's annotation (its label map under masks/), or None."""
        path = self.folder.mask(index)
        return read_label_png(path) if os.path.isfile(path) else None

    def label_map(self, index: int) -> np.ndarray | None:
        """The frame's current label map: its annotation, else its propagated result, else None."""
        for path in (self.folder.mask(index), self.folder.result(index)):
            if os.path.isfile(path):
                return read_label_png(path)
        return None

    def source(self) -> FrameSource:
        """The frames propagation reads (the original video, decoded lazily, or a frame folder);
        SourceMissing when it is gone."""
        src, name = self.meta.source, self.meta.name
        if not os.path.exists(src):
            raise SourceMissing(f"{src}: the video of session {self.id} ({name}) is missing (moved or deleted?): "
                                "put it back, or open the video again as a new session")
        return FrameSource(name, paths=list_frames(src)) if os.path.isdir(src) else FrameSource(name, video=probe_video(src))

    def describe(self) -> dict:
        computed = self.computed()
        annotated = self.annotated()
        meta = self.meta
        return {"id": meta.id, "name": meta.name, "video": meta.extra.get("video") or os.path.basename(meta.source),
                "frames": meta.frames, "width": meta.width, "height": meta.height, "fps": meta.fps,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meta.created)),
                "annotated": annotated, "annotated_count": len(annotated), "computed": len(computed),
                "computed_frames": computed}


class Workspace:
    """The sessions under ``root``; ``videos``: the folder the page may open videos from; limits on
    uploads (MB), pixels per frame and frames per video. Opening it removes what a killed server
    left half-written."""

    def __init__(self, root: str, videos: str | None = None, max_upload_mb: int = 2048,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = DEFAULT_MAX_FRAMES):
        self.layout = WorkspaceLayout.at(root)
        self.root = self.layout.root
        self.sessions_dir, self.uploads = self.layout.sessions_dir, self.layout.uploads_dir
        try:
            for folder in (self.sessions_dir, self.uploads, self.layout.jobs_dir, self.layout.models_dir):
                os.makedirs(folder, exist_ok=True)
            with publishing(os.path.join(self.root, "writable")) as probe, open(probe, "w"):
                pass
            os.remove(os.path.join(self.root, "writable"))
        except OSError as exc:
            raise InputError(f"{self.root}: the workspace cannot be written ({exc.strerror or exc}): pass "
                             "--workspace with a folder of yours") from None
        for folder in (self.sessions_dir, self.uploads, self.layout.jobs_dir):  # what a killed server left half-written
            remove_leftovers(folder)
        for sid in self.layout.session_ids():
            for kind in SESSION_FOLDERS:
                remove_leftovers(self.layout.session(sid).folder(kind))
        self.videos = os.path.realpath(videos) if videos else None
        self.max_upload_bytes = max_upload_mb * 2**20
        self.max_pixels, self.max_frames = max_pixels, max_frames

    # ------------------------------------------------------------------ job records
    def job_records(self) -> list[tuple[str, dict]]:
        """(path, record) of every job recorded in the workspace (unreadable records left out)."""
        out = []
        for job_id in self.layout.job_ids():
            path = self.layout.job(job_id)
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                out.append((path, record))
        return out

    def job_record(self, job_id: str) -> dict | None:
        """A job of an earlier run of the server, as it was recorded (None if there is none)."""
        try:
            path = self.layout.job(job_id)
            with open(path) as f:
                record = json.load(f)
        except (ValueError, OSError):
            return None
        return record if isinstance(record, dict) else None

    # ------------------------------------------------------------------ ids and paths
    def session(self, session_id: str) -> StoredSession:
        try:
            folder = self.layout.session(session_id)
        except ValueError:
            raise NotFound(f"no session {session_id!r}") from None
        try:
            meta = folder.read_meta()
        except FileNotFoundError:
            raise NotFound(f"no session {session_id}") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{folder.meta_path}: the session cannot be read ({exc})") from None
        return StoredSession(folder, meta, self.layout)

    def sessions(self) -> list[dict]:
        out = []
        for sid in self.layout.session_ids():
            try:
                out.append(self.session(sid))
            except (InputError, OSError):
                continue  # a half-created session (the server stopped while decoding): not listed
        return [s.describe() for s in sorted(out, key=lambda s: s.meta.created, reverse=True)]

    def video_choice(self, relative: str) -> str:
        """A file or frame folder under --videos, by its relative path (no '..', no absolute path)."""
        if self.videos is None:
            raise InputError("no --videos folder was given to the studio")
        parts = relative.replace("\\", "/").split("/") if isinstance(relative, str) else [""]
        if not relative or relative.startswith("/") or any(p in ("", ".", "..") or not SAFE_NAME.match(p) for p in parts):
            raise InputError(f"{relative!r}: not a name under --videos (letters, digits, '.', '_', '-', ' ' and '/')")
        path = os.path.realpath(os.path.join(self.videos, *parts))
        if os.path.commonpath([path, self.videos]) != self.videos or not os.path.exists(path):
            raise NotFound(f"{relative}: not found under --videos")
        return path

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return os.path.commonpath([real, self.videos]) == self.videos

    def video_list(self) -> list[str]:
        """The video files and frame folders under --videos that can be opened (links that lead
        outside it and names that video_choice refuses are not listed)."""
        if self.videos is None:
            return []
        found = []
        for folder, dirs, files in os.walk(self.videos):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and SAFE_NAME.match(d)
                             and self._inside(os.path.join(folder, d)))
            rel = os.path.relpath(folder, self.videos)
            if any(f.lower().endswith((".jpg", ".jpeg", ".png")) for f in files) and rel != ".":
                found.append(rel.replace(os.sep, "/"))
            found += [os.path.join(rel, f).replace(os.sep, "/").removeprefix("./") for f in sorted(files)
                      if f.lower().endswith(VIDEO_EXTENSIONS) and SAFE_NAME.match(f)
                      and self._inside(os.path.join(folder, f))]
        return found

    # ------------------------------------------------------------------ creation
    def create(self, source: str, name: str, owned: bool, shown_as: str | None = None) -> StoredSession:
        """A new session of a video file or frame folder (``owned``: an upload, moved into it).
        Decodes every frame once into JPEGs for the page; a bad video is an InputError naming it as
        ``shown_as`` (default: its path; also the session's ``video``), nothing kept."""
        video = shown_as or (os.path.relpath(source, self.videos) if self.videos and self._inside(source)
                             else os.path.basename(source))
        try:
            return self._create(source, name, owned, video)
        except InputError as exc:
            if shown_as is None:
                raise
            raise type(exc)(str(exc).replace(source, shown_as)) from None

    def _check_limits(self, width: int, height: int, frames: int | None, shown: str) -> None:
        if width * height > self.max_pixels:
            raise InputError(f"{shown}: frames of {width}x{height} are more than the studio takes "
                             f"({self.max_pixels} pixels a frame, --max_pixels)")
        if frames is not None and frames > self.max_frames:
            raise InputError(f"{shown}: {frames} frames are more than the studio takes ({self.max_frames} a video, "
                             "--max_frames): cut the video")

    def _create(self, source: str, name: str, owned: bool, video: str) -> StoredSession:
        session_id = secrets.token_hex(6)
        root = self.layout.session(session_id).root
        with publishing(root, folder=True) as staging:
            folder = SessionFolder(staging)
            if os.path.isdir(source):
                paths = list_frames(source)
                self._check_limits(1, 1, len(paths), source)
                width, height = check_frame_sizes(paths)
                self._check_limits(width, height, None, source)
                frames = FrameSource(name, paths=paths)
            else:
                info = probe_video(source, self.max_pixels, self.max_frames)
                if owned:
                    moved = os.path.join(staging, "source" + os.path.splitext(source)[1].lower())
                    os.replace(source, moved)
                    source = os.path.join(root, os.path.basename(moved))
                    info.path = moved
                frames = FrameSource(name, video=info)
            for kind in SESSION_FOLDERS:
                os.makedirs(folder.folder(kind))
            size = None
            for index, rgb in frames.read():
                img = Image.fromarray(rgb)
                img.save(folder.frame(index), quality=92)
                img.resize((max(1, round(rgb.shape[1] * THUMB_HEIGHT / rgb.shape[0])), THUMB_HEIGHT)).save(
                    folder.thumb(index), quality=80)
                size = rgb.shape[:2]
            meta = SessionMeta(session_id, name, len(frames), int(size[1]), int(size[0]), frames.fps, source, time.time(),
                               frames.times, {"video": video})
            with open(folder.meta_path, "w") as f:
                json.dump(meta.to_json(), f)
        return self.session(session_id)
