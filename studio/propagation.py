"""Propagation jobs: a studio session's annotations propagated from a frame, over live sessions.

The studio keeps one live :class:`inference_core.session.VideoSession` per open studio session (as
Cutie's GUI controller keeps its engine), at most ``live_sessions`` at once, the least recently used
dropped first. Before a job runs, its live session is brought up to date with the workspace: each
annotation added or changed on disk is one ``add_mask`` (its references encoded, nothing
segmented), each one deleted a ``remove_mask``; after a restart, or when it was dropped, the live
session is rebuilt the same way. Every annotation is a reference (the keyframe memory policy).

A job walks from its frame, by ``video.propagate(start, direction, stop)``:
* ``forward`` / ``backward``: to the frame before the next annotated frame that way, or to the end;
* ``both_ways``: forward and backward from the frame, each to its neighbouring annotation (or the end).
A frame that is not annotated is segmented from the annotations (the start frame too); annotated
frames keep their annotation. Each result is written to the workspace as it is computed.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from inference_core.directions import JOB_DIRECTIONS
from inference_core.predictor import SimVOSPredictor
from inference_core.session import VideoSession
from studio.job import Cancelled, Job
from studio.store import SessionGone, StoredSession, Workspace, save_png_atomic
from util.errors import InputError
from util.threads import writer_for

if TYPE_CHECKING:
    from studio.jobs import JobRunner

UNTIL = ("next", "end")
DEFAULT_LIVE_SESSIONS = 4


class PropagationJob(Job):
    """Propagation of a studio session's annotations from ``frame`` (see the module docstring)."""

    kind = "propagation"

    def __init__(self, job_id: str, session: StoredSession, frame: int, direction: str, until: str):
        super().__init__(job_id, session.layout)
        self.session, self.frame, self.direction, self.until = session, frame, direction, until
        self.frames: list[int] = []   # what it computes and writes
        self.last_frame: int | None = None

    def details(self) -> dict:
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        eta = (self.total - self.done) / rate if rate else None
        return {"session": self.session.id, "frame": self.frame, "direction": self.direction, "until": self.until,
                "last_frame": self.last_frame, "fps": round(rate, 2), "eta_seconds": None if eta is None else round(eta, 1)}

    def to_record(self) -> dict:
        return {**self.describe(), "frames": self.frames}

    def resources(self) -> set[str]:
        return {f"session:{self.session.id}"}

    def label(self) -> str:
        return f"propagation in {self.session.meta.name}"

    def gone(self) -> bool:
        return not self.session.exists()

    def forget(self, runner: "JobRunner") -> None:
        runner.live.drop(self.session.id)  # its state may be half-updated: rebuilt next time

    def run(self, runner: "JobRunner") -> None:
        session = self.session
        if self.gone():
            raise SessionGone(f"session {session.id} ({session.meta.name}) was deleted")
        annotated = session.annotated()
        check_job(annotated, self.frame, self.direction, self.until)  # the annotations may have changed since
        todo = frames_to_write(annotated, session.frames, self.frame, self.direction, self.until)
        self.frames, self.total = todo, len(todo)
        video = runner.live.get(session)
        pending = set(todo)
        try:
            with writer_for(runner.predictor.overlap_io) as writer:  # as segment_video.py: decode ahead, write behind
                for start, way, stop in walks(annotated, session.frames, self.frame, self.direction, self.until):
                    for result in video.propagate(start, way, stop):
                        if self.cancel.is_set():
                            raise Cancelled()
                        if result.index in pending:
                            pending.discard(result.index)
                            writer.submit(self._publish, session.path("results", result.index), result.labels(),
                                          result.index)
        except OSError:
            if self.gone():
                raise SessionGone(f"session {session.id} ({session.meta.name}) was deleted while it was propagated") from None
            raise

    def _publish(self, path: str, labels, index: int) -> None:
        """A result on disk, then counted: the page never asks for a frame that is not written yet."""
        save_png_atomic(path, labels)
        self.done += 1
        self.last_frame = index

    @classmethod
    def interrupted(cls, record: dict, workspace: Workspace) -> dict:
        """Interrupted, with the frames computed since it started kept (and counted)."""
        started = record.get("started") or 0
        kept = 0
        try:
            session = workspace.session(record.get("session"))
        except InputError:
            session = None
        for index in record.get("frames", []) if session else []:
            result = session.path("results", index)
            if started and os.path.isfile(result) and os.path.getmtime(result) >= started:
                kept += 1
        return {**record, "state": "interrupted", "done": kept, "error": (
            f"interrupted by a restart of the studio: {kept} of {record.get('total', 0)} frames were computed "
            "and kept; propagate again to finish")}


def walks(annotated: list[int], frames: int, frame: int, direction: str, until: str) -> list[tuple[int, str, int]]:
    """The walks of a job, (start, "forward" | "backward", stop) with stop included: from ``frame``
    to the frame before the next annotation that way (``until="next"``) or to the end of the video."""
    out = []
    if direction in ("forward", "both_ways"):
        later = [a for a in annotated if a > frame]
        out.append((frame, "forward", later[0] - 1 if until == "next" and later else frames - 1))
    if direction in ("backward", "both_ways"):
        earlier = [a for a in annotated if a < frame]
        out.append((frame, "backward", earlier[-1] + 1 if until == "next" and earlier else 0))
    return out


def frames_to_write(annotated: list[int], frames: int, frame: int, direction: str, until: str) -> list[int]:
    """The frames a job computes and writes, in its order: every frame of its walks once, but the annotated ones."""
    seen, out = set(annotated), []
    for start, way, stop in walks(annotated, frames, frame, direction, until):
        step = 1 if way == "forward" else -1
        for t in range(start, stop + step, step):
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def check_job(annotated: list[int], frame: int, direction: str, until: str) -> None:
    """A job that would propagate from nothing is refused: some annotation must be behind its
    frame (or on it) in each direction it walks."""
    if direction not in JOB_DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(JOB_DIRECTIONS)}, got {direction!r}")
    if until not in UNTIL:
        raise InputError(f"until must be one of {', '.join(UNTIL)}, got {until!r}")
    if not annotated:
        raise InputError("no annotated frame yet: draw or import a mask first")
    if direction in ("forward", "both_ways") and not any(a <= frame for a in annotated):
        raise InputError(f"no annotated frame at or before frame {frame} to propagate forward from "
                         f"(annotated: {annotated})")
    if direction in ("backward", "both_ways") and not any(a >= frame for a in annotated):
        raise InputError(f"no annotated frame at or after frame {frame} to propagate backward from "
                         f"(annotated: {annotated})")


class LiveSessions:
    """At most ``capacity`` live VideoSessions, by studio session id, least recently used dropped."""

    def __init__(self, predictor: SimVOSPredictor, max_keyframes: int, capacity: int = DEFAULT_LIVE_SESSIONS):
        if not isinstance(capacity, int) or capacity < 1:
            raise InputError(f"live_sessions must be at least 1, got {capacity!r}")
        self.predictor, self.max_keyframes, self.capacity = predictor, max_keyframes, capacity
        self.entries: OrderedDict[str, tuple[VideoSession, dict[int, tuple[int, int]]]] = OrderedDict()

    def get(self, session: StoredSession) -> VideoSession:
        """The session's live VideoSession with the workspace's annotations (rebuilt if not live)."""
        entry = self.entries.pop(session.id, None)
        if entry is None:
            video = self.predictor.open(session.source(), memory="keyframes", max_keyframes=self.max_keyframes)
            entry = (video, {})
        self.entries[session.id] = entry
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        video, known = entry
        on_disk = {a: _signature(session.path("masks", a)) for a in session.annotated()}
        for a in [a for a in known if a not in on_disk]:
            video.remove_mask(a)
            del known[a]
        for a, signature in on_disk.items():
            if signature is not None and known.get(a) != signature:
                labels = session.annotation(a)
                if labels is not None:
                    video.add_mask(a, labels)
                    known[a] = signature
        return video

    def drop(self, session_id: str) -> None:
        self.entries.pop(session_id, None)


def _signature(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
