"""Propagation jobs: a queue and one worker thread per device, progress, cancel.

A job propagates a session from one frame, forward and/or backward, to the next annotated frame or
the end. Every annotated frame stays a reference (the keyframe memory policy): the other annotated
frames are shown to the engine first (nearest last, so the keyframe limit keeps the nearest), then
the start frame with its label map (its annotation, or its current result), then the frames in the
job's direction. Each result is written to the workspace as it is computed.
"""
from __future__ import annotations

import queue
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field

from inference_core.predictor import SimVOSPredictor
from studio.store import Session, save_png_atomic
from util.errors import InputError
from util.threads import prefetched, writer_for

DIRECTIONS = ("forward", "backward", "both")
UNTIL = ("next", "end")


class Cancelled(Exception):
    pass


@dataclass
class Job:
    id: str
    session: Session
    frame: int
    direction: str
    until: str
    state: str = "queued"        # queued, running, done, failed, cancelled
    done: int = 0
    total: int = 0
    last_frame: int | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict:
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        eta = (self.total - self.done) / rate if rate else None
        return {"job": self.id, "session": self.session.id, "state": self.state, "done": self.done,
                "total": self.total, "last_frame": self.last_frame, "error": self.error,
                "seconds": round(elapsed, 2), "fps": round(rate, 2), "eta_seconds": None if eta is None else round(eta, 1)}


def plan(session: Session, frame: int, direction: str, until: str) -> list[range]:
    """The frame ranges a job walks (excluding the start frame), one per direction."""
    marks = session.annotated()
    ranges = []
    if direction in ("forward", "both"):
        later = [a for a in marks if a > frame]
        stop = later[0] + 1 if until == "next" and later else session.frames
        ranges.append(range(frame + 1, stop))
    if direction in ("backward", "both"):
        earlier = [a for a in marks if a < frame]
        stop = earlier[-1] - 1 if until == "next" and earlier else -1
        ranges.append(range(frame - 1, stop, -1))
    return ranges


def _frame_at(source, index: int):
    """One frame of a source, its reader closed at once (a video file is not left open)."""
    reader = source.read(range(index, index + 1))
    try:
        return next(reader)[1]
    finally:
        reader.close()


class JobRunner:
    def __init__(self, predictor: SimVOSPredictor, max_keyframes: int = 8):
        self.predictor = predictor
        self.max_keyframes = max_keyframes
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[Job] = queue.Queue()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name="studio-propagation", daemon=True)
        self.thread.start()

    def submit(self, session: Session, frame: int, direction: str, until: str) -> Job:
        if direction not in DIRECTIONS:
            raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if until not in UNTIL:
            raise InputError(f"until must be one of {', '.join(UNTIL)}, got {until!r}")
        if session.label_map(frame) is None:
            raise InputError(f"frame {frame} has no mask yet: draw or import one first")
        job = Job(secrets.token_hex(6), session, frame, direction, until)
        job.total = sum(len(r) for r in plan(session, frame, direction, until))
        with self.lock:
            self.jobs[job.id] = job
        self.queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if isinstance(job_id, str) else None

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        if job.state == "queued":
            job.state = "cancelled"

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            if job.cancel.is_set():
                job.state = "cancelled"
                continue
            job.state, job.started = "running", time.time()
            try:
                self._run(job)
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except InputError as exc:
                job.state, job.error = "failed", str(exc)
            except Exception as exc:  # a bug: the job fails with the message, the server stays up
                traceback.print_exc()
                job.state, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            job.finished = time.time()

    @staticmethod
    def _publish(job: Job, path: str, labels, index: int) -> None:
        """A result on disk, then counted: the page never asks for a frame that is not written yet."""
        save_png_atomic(path, labels)
        job.done += 1
        job.last_frame = index

    def _run(self, job: Job) -> None:
        session = job.session
        source = session.source()
        start_labels = session.label_map(job.frame)
        annotated = [a for a in session.annotated() if a != job.frame]
        for walk in plan(session, job.frame, job.direction, job.until):
            video = self.predictor.session(memory="keyframes", max_keyframes=self.max_keyframes)
            # Other annotated frames first, farthest first: they become references.
            for a in sorted(annotated, key=lambda t: -abs(t - job.frame)):
                video.step(_frame_at(source, a), session.label_map(a), index=a)
            video.step(_frame_at(source, job.frame), start_labels, index=job.frame)
            overlap = self.predictor.overlap_io
            with writer_for(overlap) as writer:  # as segment_video.py: decode ahead, write behind
                for index, rgb in prefetched(source.read(walk)) if overlap else source.read(walk):
                    if job.cancel.is_set():
                        raise Cancelled()
                    mask = session.label_map(index) if index in annotated else None
                    result = video.step(rgb, mask, index=index)
                    writer.submit(self._publish, job, session.path("results", index), result.labels(), index)
