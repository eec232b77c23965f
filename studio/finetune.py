"""Fine-tuning from the studio: a job in the one queue (between propagation jobs) that runs
``train_simvos.py --finetune <workspace> --sessions ...`` as a process on the studio's device, and
the models it makes.

Models live in the workspace: ``<workspace>/models/<name>/finetuned.pth`` (+ its sidecar, and
``info.json``: the sessions, minutes, J&F before and best). The job's progress comes from the
process's lines (iterations, the validation J&F); cancelling it stops the process (it saves its
state). Switching the model builds a predictor from the weights and their recorded flags; the jobs
after it use it (the live sessions are rebuilt: their references belong to the old model).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from util.errors import InputError
from util.publish import write_json

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPOSITORY, "train_simvos.py")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ITERATION = re.compile(r"^it (\d+)/(\d+|\?) ")
PLANNED = re.compile(r"(\d+) iterations fit the budget")
SAVED = re.compile(r"^saved .*model_(\d+)\.pth")
VALIDATION = re.compile(r"^validation J&F ([\d.]+|nan) at iteration (\d+)")


@dataclass
class FinetuneJob:
    """A fine-tuning run: ``describe()`` answers like a propagation job, with ``val_jf``."""

    id: str
    sessions: list[str]
    minutes: float
    model: str
    workspace: str
    state: str = "queued"
    done: int = 0
    total: int = 0
    val_jf: float | None = None
    val_before: float | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    position: int | None = None
    waiting_for: dict | None = None
    log: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen | None = None

    kind = "finetune"

    def describe(self) -> dict:
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        return {"job": self.id, "kind": self.kind, "state": self.state, "sessions": self.sessions, "model": self.model,
                "minutes": self.minutes, "done": self.done, "total": self.total, "val_jf": self.val_jf,
                "val_jf_before": self.val_before, "error": self.error, "seconds": round(elapsed, 1),
                "position": self.position if self.state == "queued" else None,
                "waiting_for": self.waiting_for if self.state == "queued" else None, "log": self.log[-5:]}

    def record(self) -> None:
        folder = os.path.join(self.workspace, "models", self.model)
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, "info.json"), {k: v for k, v in self.describe().items() if k != "log"})

    def run(self, runner) -> None:
        """The training process, to its end or a cancel (``cancel`` set: it returns); raises
        InputError when the process fails."""
        folder = os.path.join(self.workspace, "models")
        config = runner.predictor.model.config
        flags = [f"--{k}={getattr(config, k)}" for k in ("backbone_type", "layer_index", "use_token_learner",
                                                         "use_local_window", "num_bases_foreground", "num_bases_background")]
        cmd = [sys.executable, SCRIPT, "--id", self.model, "--finetune", self.workspace, "--sessions", *self.sessions,
               "--load_network", runner.checkpoint, *flags, "--minutes", str(self.minutes), "--num_workers", "1",
               "--save_dir", folder, "--log_dir", os.path.join(folder, "runs"), "--device", str(runner.predictor.device)]
        if len(self.sessions) > 1:
            cmd += ["--val_videos", "1"]
        if runner.predictor.device.type == "cpu":
            cmd.append("--no_amp")
        self.process = subprocess.Popen(cmd, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in self.process.stdout:
            line = line.rstrip()
            self.log.append(line)
            del self.log[:-50]
            if self.cancel.is_set() and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)   # the trainer saves its state and stops
            if m := ITERATION.match(line):
                self.done = int(m.group(1))
                self.total = int(m.group(2)) if m.group(2) != "?" else self.total
            elif m := PLANNED.search(line):
                self.total = int(m.group(1))
            elif m := SAVED.match(line):
                self.done = int(m.group(1))
            elif m := VALIDATION.match(line):
                self.val_jf = float(m.group(1))
                if int(m.group(2)) == 0:
                    self.val_before = self.val_jf
        code = self.process.wait()
        if self.cancel.is_set():
            return
        if code != 0:
            errors = [line for line in self.log if line.startswith("error:")]
            raise InputError(errors[-1].removeprefix("error: ") if errors else f"fine-tuning stopped with status {code}: "
                             + " | ".join(self.log[-3:]))
        if not os.path.isfile(os.path.join(folder, self.model, "finetuned.pth")):
            raise InputError("fine-tuning ended without writing its model")
        self.total = max(self.total, self.done)  # a budget spent before the plan was made: what it did

    def stop(self) -> None:
        self.cancel.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


def new_finetune_job(workspace, sessions, minutes) -> FinetuneJob:
    """A checked fine-tuning request: sessions of the workspace with at least two annotated frames."""
    if not isinstance(sessions, list) or not sessions or not all(isinstance(s, str) for s in sessions):
        raise InputError("'sessions' must be a list of session ids")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0.1 <= minutes <= 24 * 60:
        raise InputError(f"'minutes' must be a number from 0.1 to 1440, got {minutes!r}")
    for sid in sessions:
        session = workspace.session(sid)
        if len(session.annotated()) < 2:
            raise InputError(f"session {sid} ({session.meta['name']}) has {len(session.annotated())} annotated frame(s): "
                             "fine-tuning needs at least 2 per video")
    name = time.strftime("finetuned-%Y%m%d-%H%M%S") + f"-{secrets.token_hex(2)}"
    return FinetuneJob(secrets.token_hex(6), sorted(set(sessions)), float(minutes), name, workspace.root)


def list_models(workspace_root: str, current: str) -> list[dict]:
    """The studio's own checkpoint and every model fine-tuned in the workspace."""
    models = [{"name": "start", "path": current, "current": False, "val_jf": None}]
    folder = os.path.join(workspace_root, "models")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name, "finetuned.pth")
        if MODEL_NAME.match(name) and os.path.isfile(path):
            info = {}
            try:
                with open(os.path.join(folder, name, "info.json")) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                pass
            models.append({"name": name, "path": path, "current": False, "val_jf": info.get("val_jf"),
                           "val_jf_before": info.get("val_jf_before"), "sessions": info.get("sessions")})
    return models
