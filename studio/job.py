"""What every job of the studio is: the protocol (:class:`Job`) that the queue (studio/jobs.py) and
the routes use, whatever the kind (studio/propagation.py, studio/finetune.py): ``kind``,
``describe()``, ``record()``, ``resources()``, ``label()``, ``run()``, ``stop()``,
``interrupted()``; no caller tells the kinds apart. Every job is recorded in
``<workspace>/jobs/<id>.json`` (dataset/workspace.py) as it is queued, starts and ends.
"""
from __future__ import annotations

import errno
import os
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from dataset.workspace import WorkspaceLayout
from util.errors import InputError
from util.publish import write_json

if TYPE_CHECKING:  # the runner imports the kinds, which take it as an argument
    from studio.jobs import JobRunner
    from studio.store import Workspace

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


class Job(ABC):
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
    @abstractmethod
    def details(self) -> dict:
        """The kind's own fields of ``describe()``."""

    @abstractmethod
    def resources(self) -> set[str]:
        """What the job reads while queued or running ("session:<id>", "model:<name>"): kept from edits."""

    @abstractmethod
    def label(self) -> str:
        """How other jobs' ``waiting_for`` names this one."""

    @abstractmethod
    def run(self, runner: "JobRunner") -> None:
        """The work, to its end; raises Cancelled when cancelled, InputError when it cannot go on."""

    def stop(self) -> None:
        """Asks a running job to stop as soon as it can."""
        self.cancel.set()

    def forget(self, runner: "JobRunner") -> None:
        """After a crash of ``run``: drop whatever state it may have left half-updated."""

    def gone(self) -> bool:
        """True when what the job belongs to was deleted (then it keeps no record)."""
        return False

    @classmethod
    @abstractmethod
    def interrupted(cls, record: dict, workspace: Workspace) -> dict:
        """The record of a job of this kind that a stopped server left queued or running."""

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
