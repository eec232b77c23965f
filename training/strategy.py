"""What kind of run the trainer (training/trainer.py) is given: its data, when it validates, what it
keeps and how long it runs. :class:`PublishedStage` is the published training stage;
training/finetune.py's ``FinetuneStrategy`` is fine-tuning on one's own videos."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from training.config import RunPlan, TrainConfig
from training.data import SeededConcat, build_datasets

if TYPE_CHECKING:
    from training.trainer import Trainer


class Strategy(Protocol):
    """The hooks a :class:`~training.trainer.Trainer` calls. ``record()`` goes into each training
    state and ``restore()`` gets it back on resume (None: nothing of its own)."""

    def dataset(self) -> tuple[SeededConcat, dict]:
        """(the training pairs, sizes for the start-up line)."""

    def initial_plan(self) -> RunPlan | None:
        """A plan of its own that a resumed run goes on with (a --minutes budget's), if any."""

    def start(self, trainer: Trainer) -> None:
        """Before the first iteration of this process (after a resume too)."""

    def after_step(self, trainer: Trainer) -> None:
        """After each optimiser step (``trainer.iteration`` counts it)."""

    def end(self, trainer: Trainer) -> None:
        """After the last iteration, unless a signal stopped the run."""

    def weights(self, trainer: Trainer) -> str | None:
        """The weights the run gives (the ``finished`` event's), None if there are none yet."""

    def best_jf(self) -> float | None:
        """The best validation J&F so far (None: no validation)."""

    def record(self) -> dict | None:
        ...

    def restore(self, record: dict | None) -> None:
        ...


class PublishedStage:
    """The published stage: DAVIS-2017 + YouTube-VOS pairs, no validation, the last weights given."""

    def __init__(self, config: TrainConfig):
        if config.data is None:
            raise ValueError("the published stage needs config.data")
        self.config = config

    def dataset(self) -> tuple[SeededConcat, dict]:
        return build_datasets(self.config.data, self.config.img_size)

    def initial_plan(self) -> RunPlan | None:
        return None

    def start(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer) -> None:
        pass

    def end(self, trainer: Trainer) -> None:
        pass

    def weights(self, trainer: Trainer) -> str | None:
        return os.path.join(self.config.save_dir, f"model_{trainer.iteration}.pth")

    def best_jf(self) -> float | None:
        return None

    def record(self) -> dict | None:
        return None

    def restore(self, record: dict | None) -> None:
        pass
