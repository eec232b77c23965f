"""The workspace on disk: the one truth of the studio (the server can stop at any moment).

    <workspace>/sessions/<id>/meta.json        what the video is (frames, size, fps, its source)
                             /source.<ext>      the uploaded video (or meta names a file under --videos)
                             /frames/<i>.jpg    decoded frames, as displayed (the page's view)
                             /thumbs/<i>.jpg    timeline thumbnails
                             /masks/<i>.png     annotations (indexed label maps): the annotated frames
                             /results/<i>.png   propagated label maps
                             /exports/          files of the last exports
                             /jobs/<job>.json   each propagation job as last recorded
Session ids, frame numbers and --videos names are checked here (``Workspace.session``,
``StoredSession.frame_index``, ``Workspace.video_choice``); the routes pass what requests name
through them, so nothing outside the workspace and the --videos folder is read or written. Files
are published atomically (util/publish.py); what a killed server left half-written is removed
when the workspace is opened again.
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
from util.errors import InputError
from util.publish import publishing, remove_leftovers, write_json

SESSION_ID = re.compile(r"^[0-9a-f]{12}$")
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
THUMB_HEIGHT = 48


DEFAULT_MAX_PIXELS = 3840 * 2160   # a 4K frame
DEFAULT_MAX_FRAMES = 20000         # about 13 minutes at 25 fps
JOB_STATES_LIVE = ("queued", "running")


class NotFound(InputError):
    """A session, frame or file that does not exist (answered 404)."""


class Conflict(InputError):
    """A change that a queued or running job depends on (answered 409)."""


def save_png_atomic(path: str, labels: np.ndarray) -> None:
    with publishing(path) as tmp:
        write_label_png(tmp, labels)


@dataclass
class StoredSession:
    """A studio session as the workspace keeps it: one video, its annotations and results."""

    root: str
    meta: dict

    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def frames(self) -> int:
        return self.meta["frames"]

    def frame_index(self, value) -> int:
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise InputError(f"frame must be an integer, got {value!r}") from None
        if not 0 <= index < self.frames:
            raise NotFound(f"frame {index} is outside the video (0-{self.frames - 1})")
        return index

    def path(self, kind: str, index: int) -> str:
        ext = ".jpg" if kind in ("frames", "thumbs") else ".png"
        return os.path.join(self.root, kind, f"{index:05d}{ext}")

    def annotated(self) -> list[int]:
        folder = os.path.join(self.root, "masks")
        return sorted(int(f[:-4]) for f in os.listdir(folder) if re.fullmatch(r"\d{5}\.png", f))

    def computed(self) -> list[int]:
        folder = os.path.join(self.root, "results")
        return sorted(int(f[:-4]) for f in os.listdir(folder) if re.fullmatch(r"\d{5}\.png", f))

    def annotation(self, index: int) -> np.ndarray | None:
        """The frame's annotation (its label map under masks/), or None."""
        path = self.path("masks", index)
        return read_label_png(path) if os.path.isfile(path) else None

    def label_map(self, index: int) -> np.ndarray | None:
        """The frame's current label map: its annotation, else its propagated result, else None."""
        for kind in ("masks", "results"):
            path = self.path(kind, index)
            if os.path.isfile(path):
                return read_label_png(path)
        return None

    def source(self) -> FrameSource:
        """The frames propagation reads (the original video, decoded lazily, or a frame folder)."""
        src, name = self.meta["source"], self.meta["name"]
        return FrameSource(name, paths=list_frames(src)) if os.path.isdir(src) else FrameSource(name, video=probe_video(src))

    def describe(self) -> dict:
        computed = self.computed()
        return {**{k: self.meta[k] for k in ("id", "name", "frames", "width", "height", "fps", "created")},
                "annotated": self.annotated(), "computed": len(computed), "computed_frames": computed}


class Workspace:
    """The sessions under ``root``; ``videos``: the folder the page may open videos from; limits on
    uploads (MB), pixels per frame and frames per video. Opening it removes what a killed server
    left half-written and marks the jobs it was running as interrupted."""

    def __init__(self, root: str, videos: str | None = None, max_upload_mb: int = 2048,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = DEFAULT_MAX_FRAMES):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.sessions_dir = os.path.join(self.root, "sessions")
        self.uploads = os.path.join(self.root, "uploads")
        try:
            os.makedirs(self.sessions_dir, exist_ok=True)
            os.makedirs(self.uploads, exist_ok=True)
            with publishing(os.path.join(self.root, "writable")) as probe, open(probe, "w"):
                pass
            os.remove(os.path.join(self.root, "writable"))
        except OSError as exc:
            raise InputError(f"{self.root}: the workspace cannot be written ({exc.strerror or exc}): pass "
                             "--workspace with a folder of yours") from None
        for folder in (self.sessions_dir, self.uploads):  # what a killed server left half-written
            remove_leftovers(folder)
        for name in os.listdir(self.sessions_dir):
            for kind in ("masks", "results", "exports", "jobs"):
                remove_leftovers(os.path.join(self.sessions_dir, name, kind))
            self._mark_interrupted(os.path.join(self.sessions_dir, name))
        self.videos = os.path.realpath(videos) if videos else None
        self.max_upload_bytes = max_upload_mb * 2**20
        self.max_pixels, self.max_frames = max_pixels, max_frames

    # ------------------------------------------------------------------ job records
    def _mark_interrupted(self, session_root: str) -> None:
        """Jobs recorded as queued or running when the server stopped: interrupted, with the frames kept."""
        folder = os.path.join(session_root, "jobs")
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue
            if not isinstance(record, dict) or record.get("state") not in JOB_STATES_LIVE:
                continue
            started = record.get("started") or 0
            kept = 0
            for index in record.get("frames", []):
                result = os.path.join(session_root, "results", f"{index:05d}.png")
                if started and os.path.isfile(result) and os.path.getmtime(result) >= started:
                    kept += 1
            record.update(state="interrupted", done=kept, error=(
                f"interrupted by a restart of the studio: {kept} of {record.get('total', 0)} frames were computed "
                "and kept; propagate again to finish"))
            write_json(path, record)

    def job_record(self, job_id: str) -> dict | None:
        """A job of an earlier run of the server, as it was recorded (None if there is none)."""
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            return None
        for name in os.listdir(self.sessions_dir):
            path = os.path.join(self.sessions_dir, name, "jobs", f"{job_id}.json")
            if os.path.isfile(path):
                try:
                    with open(path) as f:
                        record = json.load(f)
                except (OSError, ValueError):
                    return None
                record.pop("frames", None)
                return record
        return None

    # ------------------------------------------------------------------ ids and paths
    def session(self, session_id: str) -> StoredSession:
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            raise NotFound(f"no session {session_id!r}")
        root = os.path.join(self.sessions_dir, session_id)
        meta_path = os.path.join(root, "meta.json")
        if not os.path.isfile(meta_path):
            raise NotFound(f"no session {session_id}")
        with open(meta_path) as f:
            return StoredSession(root, json.load(f))

    def sessions(self) -> list[dict]:
        out = []
        for name in sorted(os.listdir(self.sessions_dir)):
            try:
                out.append(self.session(name).describe())
            except (NotFound, OSError, ValueError, KeyError):
                continue  # a half-created session (the server stopped while decoding): not listed
        return sorted(out, key=lambda s: s["created"], reverse=True)

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
        ``shown_as`` (default: its path), nothing kept."""
        try:
            return self._create(source, name, owned)
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

    def _create(self, source: str, name: str, owned: bool) -> StoredSession:
        session_id = secrets.token_hex(6)
        root = os.path.join(self.sessions_dir, session_id)
        with publishing(root, folder=True) as staging:
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
            for kind in ("frames", "thumbs", "masks", "results", "exports", "jobs"):
                os.makedirs(os.path.join(staging, kind))
            size = None
            for index, rgb in frames.read():
                img = Image.fromarray(rgb)
                img.save(os.path.join(staging, "frames", f"{index:05d}.jpg"), quality=92)
                img.resize((max(1, round(rgb.shape[1] * THUMB_HEIGHT / rgb.shape[0])), THUMB_HEIGHT)).save(
                    os.path.join(staging, "thumbs", f"{index:05d}.jpg"), quality=80)
                size = rgb.shape[:2]
            meta = {"id": session_id, "name": name, "frames": len(frames), "height": int(size[0]), "width": int(size[1]),
                    "fps": frames.fps, "times": frames.times, "source": source, "created": time.time()}
            with open(os.path.join(staging, "meta.json"), "w") as f:
                json.dump(meta, f)
        return self.session(session_id)
