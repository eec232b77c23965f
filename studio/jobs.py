"""Jobs: one protocol (:class:`Job`) for every kind of work the studio queues, one queue and one
worker thread, progress, cancel, records in the workspace and their recovery after a restart.
Kinds: :class:`PropagationJob` (here) and ``studio.finetune.FinetuneJob``; the runner and the
routes use only the protocol (``kind``, ``describe()``, ``record()``, ``resources()``, ``label()``, ``run()``,
``stop()``, ``interrupted()``): no caller tells the kinds apart.

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

All records live in ``<workspace>/jobs/<id>.json`` (dataset/workspace.py). A record left
``queued`` or ``running`` by a server that stopped is marked ``interrupted`` by its kind's
``interrupted()`` when the studio starts again (:func:`recover_jobs`).
"""
from __future__ import annotations

import errno
import os
import queue
import secrets
import threading
import time
import traceback
from collections import OrderedDict
from typing import ClassVar

from dataset.workspace import WorkspaceLayout
from inference_core.directions import JOB_DIRECTIONS
from inference_core.memory import DEFAULT_MAX_KEYFRAMES
from inference_core.predictor import SimVOSPredictor
from inference_core.session import VideoSession
from studio.store import Conflict, SessionGone, StoredSession, Workspace, save_png_atomic
from util.errors import InputError
from util.publish import write_json
from util.threads import writer_for

UNTIL = ("next", "end")
DEFAULT_LIVE_SESSIONS = 4
LIVE_STATES = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "interrupted")
JOB_STATES = LIVE_STATES + FINISHED


class Cancelled(Exception):
    pass


class Busy(InputError):
    """A queue that is full (answered 429)."""


def disk_message(exc: OSError, where: str) -> str:
    """One line for an OSError met while writing ``where``: a full disk said as such."""
    if exc.errno == errno.ENOSPC:
        return f"the disk holding {where} is full: free some space and start again"
    return f"{where} cannot be written: {exc.strerror or exc} (is it deleted or read-only?)"


class Job:
    """What every job has and does. Subclasses set ``kind`` and implement ``details()``,
    ``resources()``, ``label()``, ``run(runner)``, ``interrupted(record, workspace)``."""

    kind: ClassVar[str] = ""

    def __init__(self, job_id: str, layout: WorkspaceLayout):
        self.id, self.layout = job_id, layout     # the workspace where it is recorded
        self.state = "queued"
        self.done = self.total = 0
        self.error: str | None = None
        self.note: str | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.position: int | None = None  # place in the queue while queued (1: next)
        self.waiting_for: dict | None = None
        self.cancel = threading.Event()

    # ---- the protocol
    def details(self) -> dict:
        """The kind's own fields of ``describe()``."""
        raise NotImplementedError

    def resources(self) -> set[str]:
        """What the job reads while queued or running ("session:<id>", "model:<name>"): kept from edits."""
        raise NotImplementedError

    def label(self) -> str:
        """How other jobs' ``waiting_for`` names this one."""
        raise NotImplementedError

    def run(self, runner: "JobRunner") -> None:
        """The work, to its end; raises Cancelled when cancelled, InputError when it cannot go on."""
        raise NotImplementedError

    def stop(self) -> None:
        """Asks a running job to stop as soon as it can."""
        self.cancel.set()

    def forget(self, runner: "JobRunner") -> None:
        """After a crash of ``run``: drop whatever state it may have left half-updated."""

    def gone(self) -> bool:
        """True when what the job belongs to was deleted (then it keeps no record)."""
        return False

    @classmethod
    def interrupted(cls, record: dict, workspace: Workspace) -> dict:
        """The record of a job of this kind that a stopped server left queued or running."""
        raise NotImplementedError

    # ---- common
    def describe(self) -> dict:
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        return {"job": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "error": self.error, "note": self.note, "started": self.started, "finished": self.finished,
                "seconds": round(elapsed, 2), "position": self.position if self.state == "queued" else None,
                "waiting_for": self.waiting_for if self.state == "queued" else None, **self.details()}

    def to_record(self) -> dict:
        return self.describe()

    def record(self) -> None:
        """The job in the workspace (what a restart reports of it); none for a job whose session was deleted."""
        path = self.layout.job(self.id)
        if self.gone():
            if os.path.exists(path):
                os.remove(path)
            return
        write_json(path, self.to_record())


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


class JobRunner:
    """One queue and one worker for every job (propagations and fine-tuning runs); ``checkpoint``:
    the weights the predictor was built from (what fine-tuning starts from)."""

    def __init__(self, predictor: SimVOSPredictor, max_keyframes: int = DEFAULT_MAX_KEYFRAMES, live_sessions: int = DEFAULT_LIVE_SESSIONS,
                 checkpoint: str | None = None):
        self.predictor, self.checkpoint = predictor, checkpoint
        self.max_keyframes, self.live_sessions = max_keyframes, live_sessions
        self.live = LiveSessions(predictor, max_keyframes, live_sessions)
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[Job] = queue.Queue()
        self.waiting: list[Job] = []
        self.running: Job | None = None
        self.lock = threading.Lock()
        # The worker lives as long as the studio: a trainer it starts gets SIGTERM when it ends
        # (PR_SET_PDEATHSIG follows the thread that forked, studio/finetune.py).
        self.thread = threading.Thread(target=self._work, name="studio-jobs", daemon=True)
        self.thread.start()

    def submit(self, session: StoredSession, frame: int, direction: str, until: str) -> PropagationJob:
        annotated = session.annotated()
        check_job(annotated, frame, direction, until)
        job = PropagationJob(secrets.token_hex(6), session, frame, direction, until)
        job.frames = frames_to_write(annotated, session.frames, frame, direction, until)
        job.total = len(job.frames)
        if frame not in annotated:
            job.note = (f"frame {frame} is not annotated: it is segmented from the annotated frames "
                        f"({', '.join(map(str, annotated))}) like the others")
        return self.enqueue(job)

    def enqueue(self, job: Job, limit: tuple[str, int] | None = None) -> Job:
        """A job into the one queue, recorded in the workspace; ``limit`` (kind, n): refused with
        Busy when n jobs of that kind are already queued or running."""
        with self.lock:
            if limit is not None:
                kind, most = limit
                live = [j for j in self.jobs.values() if j.kind == kind and j.state in LIVE_STATES]
                if len(live) >= most:
                    raise Busy(f"{len(live)} {kind} job(s) already queued or running ({', '.join(j.id for j in live)}); "
                               f"at most {most}: wait for one to finish or cancel one")
            self.jobs[job.id] = job
            self.waiting.append(job)
            self._update_queue()
        os.makedirs(job.layout.jobs_dir, exist_ok=True)
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
        ahead = None if running is None else {"job": running.id, "kind": running.kind, "label": running.label(),
                                              **{k: v for k, v in running.details().items() if k in ("session", "model")}}
        for position, job in enumerate(self.waiting, 1):
            job.position, job.waiting_for = position, ahead

    def holder(self, resource: str) -> Job | None:
        """The first queued or running job that holds ``resource`` ("session:<id>", "model:<name>")."""
        with self.lock:
            return next((j for j in self.jobs.values() if j.state in LIVE_STATES and resource in j.resources()), None)

    def check_editable(self, session: StoredSession, index: int) -> None:
        """An annotation may change unless a queued or running job reads the session: then a
        Conflict (409) that names the job."""
        job = self.holder(f"session:{session.id}")
        if job is not None:
            raise Conflict(f"frame {index} cannot change while job {job.id} ({job.kind}, {job.state}: {job.label()}) reads "
                           "this video's annotations: cancel it or wait for it; your drawing stays in the page")

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if isinstance(job_id, str) else None

    def cancel(self, job: Job) -> None:
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
                    self._update_queue()
                    continue
                job.state, job.started = "running", time.time()
                self.running = job
                self._update_queue()
            try:
                job.record()
                job.run(self)
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except InputError as exc:
                job.state, job.error = "failed", str(exc)
            except OSError as exc:
                job.state, job.error = "failed", disk_message(exc, exc.filename or "the workspace")
            except Exception as exc:  # a bug: the job fails with the message, the server stays up
                traceback.print_exc()
                job.forget(self)
                job.state, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            job.finished = time.time()
            with self.lock:
                self.running = None
                self._update_queue()
            try:
                job.record()
            except OSError as exc:  # the workspace went away: the job's state stays in memory
                print(f"warning: job {job.id}: its record could not be written ({exc})")


def recover_jobs(workspace: Workspace, kinds: dict[str, type[Job]]) -> list[str]:
    """Marks the jobs a stopped server left queued or running as interrupted, each by its kind
    (``kinds``: kind -> Job class). -> their ids."""
    marked = []
    for path, record in workspace.job_records():
        cls = kinds.get(record.get("kind"))
        if record.get("state") in LIVE_STATES and cls is not None:
            write_json(path, cls.interrupted(record, workspace))
            marked.append(record.get("job"))
    return marked
