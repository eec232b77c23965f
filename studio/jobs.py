"""The studio's one queue and one worker thread for every job (studio/job.py's protocol: propagation
and fine-tuning alike), progress, cancel, the locks jobs hold on what they read, and the recovery of
the records a stopped server left queued or running (marked ``interrupted`` by their kind).
"""
from __future__ import annotations

import os
import queue
import secrets
import threading
import time
import traceback

from inference_core.memory import DEFAULT_MAX_KEYFRAMES
from inference_core.predictor import SimVOSPredictor
from studio.job import LIVE_STATES, Busy, Cancelled, Job, disk_message
from studio.propagation import DEFAULT_LIVE_SESSIONS, LiveSessions, PropagationJob, check_job, frames_to_write
from studio.store import Conflict, StoredSession, Workspace
from util.errors import InputError
from util.publish import write_json


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
