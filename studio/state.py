"""What the studio's routes share: one small typed object, ``app.state.studio``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from studio.finetune import TRAINER
from studio.jobs import JobRunner
from studio.models import START, ModelCatalog
from studio.store import Workspace


@dataclass
class Studio:
    """``info``: the facts of the command line (checkpoint, variant, device, ...); ``current``: the
    model the next jobs use; ``trainer``: the command that fine-tunes (train_simvos.py)."""

    workspace: Workspace
    runner: JobRunner
    models: ModelCatalog
    info: dict
    current: str = START
    trainer: tuple[str, ...] = field(default=TRAINER)


def studio_of(request: Request) -> Studio:
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(studio_of)]
