"""Propagation jobs: one queue and one worker thread, live sessions, progress, cancel.

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
import queue
import secrets
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field

from inference_core.predictor import SimVOSPredictor
from inference_core.session import VideoSession
from studio.finetune import FinetuneJob
from studio.store import Conflict, StoredSession, save_png_atomic
from util.errors import InputError
from util.publish import write_json
from util.threads import writer_for

DIRECTIONS = ("forward", "backward", "both_ways")
UNTIL = ("next", "end")
DEFAULT_LIVE_SESSIONS = 4
FINISHED = ("done", "failed", "cancelled", "interrupted")


class Cancelled(Exception):
    pass


@dataclass
class Job:
    id: str
    session: StoredSession
    frame: int
    direction: str
    until: str
    state: str = "queued"        # queued, running, done, failed, cancelled (interrupted: a record of an earlier run)
    done: int = 0
    total: int = 0
    frames: list[int] = field(default_factory=list)  # what it computes and writes
    last_frame: int | None = None
    error: str | None = None
    note: str | None = None      # what the user should know about its start
    started: float | None = None
    finished: float | None = None
    position: int | None = None  # place in the queue while queued (1: next)
    waiting_for: dict | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict:
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        eta = (self.total - self.done) / rate if rate else None
        return {"job": self.id, "kind": "propagation", "session": self.session.id, "state": self.state, "done": self.done,
                "total": self.total, "last_frame": self.last_frame, "error": self.error, "note": self.note,
                "frame": self.frame, "direction": self.direction, "until": self.until,
                "position": self.position if self.state == "queued" else None,
                "waiting_for": self.waiting_for if self.state == "queued" else None, "started": self.started,
                "seconds": round(elapsed, 2), "fps": round(rate, 2), "eta_seconds": None if eta is None else round(eta, 1)}

    def record(self) -> None:
        """The job in the workspace (what a restart reports of it)."""
        folder = os.path.join(self.session.root, "jobs")
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, f"{self.id}.json"), {**self.describe(), "frames": self.frames})


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
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
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


class JobRunner:
    """One queue and one worker for every job (propagations and fine-tuning runs); ``checkpoint``:
    the weights the predictor was built from (what fine-tuning starts from)."""

    def __init__(self, predictor: SimVOSPredictor, max_keyframes: int = 8, live_sessions: int = DEFAULT_LIVE_SESSIONS,
                 checkpoint: str | None = None):
        self.predictor, self.checkpoint = predictor, checkpoint
        self.max_keyframes, self.live_sessions = max_keyframes, live_sessions
        self.live = LiveSessions(predictor, max_keyframes, live_sessions)
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[Job] = queue.Queue()
        self.waiting: list[Job] = []
        self.running: Job | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name="studio-propagation", daemon=True)
        self.thread.start()

    def submit(self, session: StoredSession, frame: int, direction: str, until: str) -> Job:
        annotated = session.annotated()
        check_job(annotated, frame, direction, until)
        job = Job(secrets.token_hex(6), session, frame, direction, until)
        job.frames = frames_to_write(annotated, session.frames, frame, direction, until)
        job.total = len(job.frames)
        if frame not in annotated:
            job.note = (f"frame {frame} is not annotated: it is segmented from the annotated frames "
                        f"({', '.join(map(str, annotated))}) like the others")
        return self._enqueue(job)

    def submit_finetune(self, job: FinetuneJob) -> FinetuneJob:
        if self.checkpoint is None:
            raise InputError("this studio was started without a checkpoint file to fine-tune")
        return self._enqueue(job)

    def _enqueue(self, job):
        """A job into the one queue, recorded in the workspace."""
        with self.lock:
            self.jobs[job.id] = job
            self.waiting.append(job)
            self._update_queue()
        job.record()
        self.queue.put(job)
        return job

    def switch_model(self, predictor: SimVOSPredictor, checkpoint: str) -> None:
        """The next jobs use ``predictor``; live sessions are rebuilt (their references were the old model's)."""
        with self.lock:
            self.predictor, self.checkpoint = predictor, checkpoint
            self.live = LiveSessions(predictor, self.max_keyframes, self.live_sessions)

    def _update_queue(self) -> None:
        """Queued jobs' positions and what they wait for (under the lock)."""
        self.waiting = [j for j in self.waiting if j.state == "queued"]
        running = self.running
        ahead = None
        if isinstance(running, Job):
            ahead = {"job": running.id, "kind": "propagation", "session": running.session.id,
                     "name": running.session.meta["name"]}
        elif running is not None:
            ahead = {"job": running.id, "kind": "finetune", "session": None, "name": f"fine-tuning {running.model}"}
        for position, job in enumerate(self.waiting, 1):
            job.position, job.waiting_for = position, ahead

    def check_editable(self, session: StoredSession, index: int) -> None:
        """An annotation may change unless a queued or running job of the session depends on it:
        then a Conflict (409) that names the job."""
        with self.lock:
            busy = [j for j in self.jobs.values() if isinstance(j, Job) and j.session.id == session.id
                    and j.state in ("queued", "running")]
        if busy:
            job = busy[0]
            raise Conflict(f"frame {index} cannot change while job {job.id} ({job.state}, {job.direction} from frame "
                           f"{job.frame}) propagates this video from its annotations: cancel it or wait for it; "
                           "your drawing stays in the page")

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if isinstance(job_id, str) else None

    def cancel(self, job) -> None:
        job.cancel.set()
        if isinstance(job, FinetuneJob):
            job.stop()
        with self.lock:
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
                job.record()
            self._update_queue()

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            with self.lock:
                if job.cancel.is_set() or job.state != "queued":
                    job.state = "cancelled"
                    self._update_queue()
                    continue
                job.state, job.started = "running", time.time()
                self.running = job
                self._update_queue()
            try:
                job.record()
                if isinstance(job, FinetuneJob):
                    job.run(self)
                    job.state = "cancelled" if job.cancel.is_set() else "done"
                else:
                    self._run(job)
                    job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except InputError as exc:
                job.state, job.error = "failed", str(exc)
            except OSError as exc:
                job.state, job.error = "failed", f"the workspace cannot be written: {exc.strerror or exc}"
            except Exception as exc:  # a bug: the job fails with the message, the server stays up
                traceback.print_exc()
                if isinstance(job, Job):
                    self.live.drop(job.session.id)  # its state may be half-updated: rebuilt next time
                job.state, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            job.finished = time.time()
            with self.lock:
                self.running = None
                self._update_queue()
            try:
                job.record()
            except OSError as exc:  # the workspace went away: the job's state stays in memory
                print(f"warning: job {job.id}: its record could not be written ({exc})")

    @staticmethod
    def _publish(job: Job, path: str, labels, index: int) -> None:
        """A result on disk, then counted: the page never asks for a frame that is not written yet."""
        save_png_atomic(path, labels)
        job.done += 1
        job.last_frame = index

    def _run(self, job: Job) -> None:
        session = job.session
        annotated = session.annotated()
        check_job(annotated, job.frame, job.direction, job.until)  # the annotations may have changed since
        todo = frames_to_write(annotated, session.frames, job.frame, job.direction, job.until)
        job.frames, job.total = todo, len(todo)
        video = self.live.get(session)
        pending = set(todo)
        with writer_for(self.predictor.overlap_io) as writer:  # as segment_video.py: decode ahead, write behind
            for start, way, stop in walks(annotated, session.frames, job.frame, job.direction, job.until):
                for result in video.propagate(start, way, stop):
                    if job.cancel.is_set():
                        raise Cancelled()
                    if result.index in pending:
                        pending.discard(result.index)
                        writer.submit(self._publish, job, session.path("results", result.index), result.labels(),
                                      result.index)
