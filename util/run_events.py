"""Training progress as a versioned JSON-lines stream: the contract between the trainer and whoever
runs it (the studio's fine-tuning jobs, a scheduler, a script). The trainer's human log may change
freely; this stream may only grow new optional fields or new event types within a version.

``train_simvos.py ... --events FILE`` appends one JSON object per line, flushed as it happens:

    {"v": 1, "type": "planned",    "time": 1764962000.1, "iterations": 900, "seconds_per_iteration": 0.62}
    {"v": 1, "type": "progress",   "time": ..., "iteration": 10, "total": 900, "loss": 0.41}
    {"v": 1, "type": "validation", "time": ..., "iteration": 0, "jf": 26.9, "best": true}
    {"v": 1, "type": "saved",      "time": ..., "iteration": 100, "path": "saves/x/model_100.pth"}
    {"v": 1, "type": "finished",   "time": ..., "iteration": 900, "reason": "done", "weights": "saves/x/finetuned.pth", "best_jf": 40.3}
    {"v": 1, "type": "failed",     "time": ..., "message": "masks/00003.png: a JPEG ...", "file": "masks/00003.png"}

``finished.reason``: ``done`` (every planned iteration ran), ``budget`` (the time budget ran out) or
``stopped`` (a signal asked it to stop; the state is saved, ``weights`` may be null). ``failed`` is
the last event of a run that could not go on; its ``message`` is the one line the user sees. A reader
(``EventReader``) takes the lines written so far, keeps an unfinished last line for the next read and
refuses another version.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import IO, ClassVar

VERSION = 1
FINISH_REASONS = ("done", "budget", "stopped")


@dataclass(frozen=True)
class Planned:
    iterations: int
    seconds_per_iteration: float | None = None
    type: ClassVar[str] = "planned"


@dataclass(frozen=True)
class Progress:
    iteration: int
    total: int | None
    loss: float | None = None
    type: ClassVar[str] = "progress"


@dataclass(frozen=True)
class Validation:
    iteration: int
    jf: float | None
    best: bool = False
    type: ClassVar[str] = "validation"


@dataclass(frozen=True)
class Saved:
    iteration: int
    path: str
    type: ClassVar[str] = "saved"


@dataclass(frozen=True)
class Finished:
    iteration: int
    reason: str
    weights: str | None = None
    best_jf: float | None = None
    type: ClassVar[str] = "finished"


@dataclass(frozen=True)
class Failed:
    message: str
    file: str | None = None
    type: ClassVar[str] = "failed"


Event = Planned | Progress | Validation | Saved | Finished | Failed
EVENT_TYPES: dict[str, type] = {cls.type: cls for cls in (Planned, Progress, Validation, Saved, Finished, Failed)}


class EventsVersionError(ValueError):
    """The stream was written by another version of the contract."""


def encode(event: Event, now: float | None = None) -> str:
    """One line (without the newline) for ``event``."""
    if isinstance(event, Finished) and event.reason not in FINISH_REASONS:
        raise ValueError(f"finished.reason must be one of {FINISH_REASONS}, got {event.reason!r}")
    body = {"v": VERSION, "type": event.type, "time": time.time() if now is None else now}
    body.update(asdict(event))
    return json.dumps(body, allow_nan=False)


def decode(line: str) -> Event | None:
    """The event of one line; None for a type this version does not know (a newer writer's addition).
    Fields this version does not know are ignored."""
    body = json.loads(line)
    if body.get("v") != VERSION:
        raise EventsVersionError(f"events of version {body.get('v')!r}, this reader takes version {VERSION}")
    cls = EVENT_TYPES.get(body.get("type"))
    if cls is None:
        return None
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in body.items() if k in known})


class EventWriter:
    """Appends events to a file, one flushed line each (a reader sees whole events as they happen)."""

    def __init__(self, path: str):
        self.path = path
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: the event stream is closed")
        self._file.write(encode(event) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventReader:
    """Reads the events a writer has flushed so far; call ``read()`` again for the newer ones."""

    def __init__(self, path: str):
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[Event]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        events = []
        for raw in lines:
            if raw.strip():
                event = decode(raw.decode("utf-8"))
                if event is not None:
                    events.append(event)
        return events
