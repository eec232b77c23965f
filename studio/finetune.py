"""Fine-tuning from the studio: a job in the one queue (between propagation jobs) that runs
``train_simvos.py --finetune <workspace> --sessions ... --events <model>/events.jsonl`` as a
process on the studio's device.

The trainer's progress comes from its versioned event stream (util/run_events.py), never from its
human log (kept in ``models/<name>/train.log`` for people). The process gets SIGTERM when the
studio dies (``PR_SET_PDEATHSIG``, set between fork and exec; it follows the thread that forked,
the runner's worker, which lives as long as the studio), and saves its state and stops on it, as
it does when the job is cancelled. The job is recorded with the others (``jobs/<id>.json``); its
model (``models/<name>/``) is offered once the run finished with weights (studio/models.py).
"""
from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time

from dataset.annotated import held_out_sessions
from dataset.workspace import WorkspaceLayout
from model.variants import MODEL_FLAGS
from studio.job import Cancelled, Job
from studio.jobs import JobRunner
from studio.store import Workspace
from util.errors import InputError
from util.run_events import EventReader, EventsVersionError

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINER = (sys.executable, os.path.join(REPOSITORY, "train_simvos.py"))
MAX_QUEUED = 2            # fine-tuning jobs queued or running at once
MIN_ANNOTATED_FRAMES = 2  # per session
DEFAULT_MINUTES = 10.0
MIN_MINUTES, MAX_MINUTES = 0.1, 240.0
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with(parent: int):
    """preexec_fn: the child gets SIGTERM when the thread that forked it ends; a parent already
    gone before the call (the race prctl's manual warns of) ends it at once."""
    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


class FinetuneJob(Job):
    """A fine-tuning run of the current model on ``sessions`` for ``minutes``, making model ``model``;
    ``held_out``: the sessions kept for validation (the trainer holds out the last by id)."""

    kind = "finetune"

    def __init__(self, job_id: str, layout: WorkspaceLayout, sessions: list[str], minutes: float, model: str,
                 trainer: tuple[str, ...] = TRAINER):
        super().__init__(job_id, layout)
        self.sessions, self.minutes, self.model, self.trainer = sessions, minutes, model, trainer
        self.held_out = held_out_sessions(sessions, 1) if len(sessions) > 1 else []
        self.val_jf: float | None = None
        self.val_before: float | None = None
        self.weights: str | None = None
        self.process: subprocess.Popen | None = None

    def details(self) -> dict:
        return {"model": self.model, "sessions": self.sessions, "held_out": self.held_out, "minutes": self.minutes,
                "val_jf": self.val_jf, "val_jf_before": self.val_before, "weights": self.weights,
                "pid": self.process.pid if self.process is not None and self.state == "running" else None}

    def resources(self) -> set[str]:
        return {f"session:{s}" for s in self.sessions} | {f"model:{self.model}"}

    def label(self) -> str:
        return f"fine-tuning {self.model}"

    def stop(self) -> None:
        super().stop()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)   # the trainer saves its state and stops

    def command(self, runner: JobRunner) -> list[str]:
        folder = self.layout.model(self.model)
        config = runner.predictor.model.config
        flags = [f"--{k}={getattr(config, k)}" for k in MODEL_FLAGS]
        cmd = [*self.trainer, "--id", self.model, "--finetune", self.layout.root, "--sessions", *self.sessions,
               "--load_network", runner.checkpoint, *flags, "--minutes", str(self.minutes), "--num_workers", "1",
               "--save_dir", self.layout.models_dir, "--log_dir", folder.runs,
               "--device", str(runner.predictor.device), "--events", folder.events]
        if self.held_out:
            cmd += ["--val_videos", str(len(self.held_out))]
        if runner.predictor.device.type == "cpu":
            cmd.append("--no_amp")
        return cmd

    def run(self, runner: JobRunner) -> None:
        """The training process, to its end or a cancel; InputError when it fails (its ``failed``
        event's message, naming the file)."""
        if runner.checkpoint is None:
            raise InputError("this studio was started without a checkpoint file to fine-tune")
        folder = self.layout.model(self.model)
        os.makedirs(folder.root, exist_ok=True)
        if os.path.exists(folder.events):
            os.remove(folder.events)
        reader = EventReader(folder.events)
        outcome: dict = {}
        with open(folder.log, "ab") as log:
            try:
                self.process = subprocess.Popen(self.command(runner), cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, preexec_fn=_die_with(os.getpid()),
                                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except OSError as exc:
                raise InputError(f"{self.trainer[0]}: the trainer could not be started ({exc.strerror or exc})") from None
            if self.cancel.is_set():
                self.stop()
            while True:
                ended = self.process.poll() is not None
                self._take(reader, outcome)
                if ended:
                    break
                time.sleep(POLL_SECONDS)
        code = self.process.returncode
        if "failed" in outcome:
            raise InputError(outcome["failed"])
        if self.cancel.is_set():
            raise Cancelled()
        weights = outcome.get("weights") and os.path.join(REPOSITORY, outcome["weights"])  # the trainer's cwd
        if code != 0 or outcome.get("reason") not in ("done", "budget"):
            raise InputError(f"fine-tuning stopped (status {code}) without finishing its run: see "
                             f"{folder.log}")
        if not weights or not os.path.isfile(weights):
            raise InputError("fine-tuning ended without writing its model")
        self.weights = weights
        self.total = max(self.total, self.done)  # a budget spent before the plan was made: what it did

    def _take(self, reader: EventReader, outcome: dict) -> None:
        """The events written since the last call, into the job's progress and ``outcome``."""
        try:
            events = reader.read()
        except (EventsVersionError, ValueError) as exc:
            outcome["failed"] = f"{reader.path}: the trainer's events cannot be read ({exc})"
            self.stop()
            return
        for event in events:
            handle = getattr(self, f"_on_{event.type}", None)
            if handle is not None:
                handle(event, outcome)

    def _on_planned(self, event, outcome) -> None:
        self.total = event.iterations

    def _on_progress(self, event, outcome) -> None:
        self.done = event.iteration
        if event.total:
            self.total = event.total

    def _on_saved(self, event, outcome) -> None:
        self.done = max(self.done, event.iteration)

    def _on_validation(self, event, outcome) -> None:
        self.val_jf = event.jf
        if event.iteration == 0:
            self.val_before = event.jf

    def _on_finished(self, event, outcome) -> None:
        self.done = max(self.done, event.iteration)
        outcome.update(reason=event.reason, weights=event.weights)
        if event.best_jf is not None:
            self.val_jf = event.best_jf

    def _on_failed(self, event, outcome) -> None:
        where = f"{event.file}: " if event.file and event.file not in event.message else ""
        outcome["failed"] = where + event.message

    @classmethod
    def interrupted(cls, record: dict, workspace: Workspace) -> dict:
        return {**record, "state": "interrupted", "pid": None, "error": (
            f"interrupted by a restart of the studio after {record.get('done', 0)} iteration(s): its model "
            f"{record.get('model')} is not offered (delete it from the models list to free its space)")}


def new_finetune_job(workspace: Workspace, sessions: list[str], minutes: float) -> FinetuneJob:
    """A checked fine-tuning request: sessions of the workspace with at least two annotated frames."""
    if not sessions:
        raise InputError("choose at least one session to fine-tune on")
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise InputError(f"'minutes' must be from {MIN_MINUTES:g} to {MAX_MINUTES:g}, got {minutes:g}")
    for sid in sessions:
        session = workspace.session(sid)
        if len(session.annotated()) < MIN_ANNOTATED_FRAMES:
            raise InputError(f"session {sid} ({session.meta.name}) has {len(session.annotated())} annotated frame(s): "
                             f"fine-tuning needs at least {MIN_ANNOTATED_FRAMES} per video")
    name = time.strftime("finetuned-%Y%m%d-%H%M%S") + f"-{secrets.token_hex(2)}"
    return FinetuneJob(secrets.token_hex(6), workspace.layout, sorted(set(sessions)), float(minutes), name)
