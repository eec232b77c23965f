"""Fine-tuning on people's own annotated videos: ``train_simvos.py --finetune DIR ... --load_network CK``.

The preset (training/stages.py) is for one device; crops are sized from the videos
(:func:`crop_size_for`: objects at the scale inference sees them, whatever size the checkpoint was
trained at; its position grid is resampled). :class:`FinetuneStrategy` is what the trainer is
given: the videos' pairs, validation (J&F, first-frame protocol, run by the script, which passes
it in) before the run, every ``val_every`` iterations and at the end, the best weights kept as
``finetuned.pth`` (the last ones without validation), and a ``--minutes`` budget: after the first
iterations the run measures its speed and fixes the iterations (and the schedule) that fit,
validations included (:func:`plan_iterations`); a training state records that plan, so
``--resume auto`` goes on with it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from dataset.annotated import AnnotatedVideo, find_annotated_videos, image_size
from dataset.vos_pairs import AnnotatedPairDataset
from inference_core.predictor import DEFAULT_SIZE
from model.variants import write_sidecar
from training.config import FinetuneSettings, RunPlan, TrainConfig
from training.data import SeededConcat
from training.stages import FINETUNE_STEP_AT
from training.state import atomic_save
from util.distributed import all_reduce_max
from util.errors import InputError
from util.run_events import Planned, Saved, Validation

if TYPE_CHECKING:
    from training.trainer import Trainer

# The published ratio of training crop to processed frame: 384-pixel crops of frames whose shorter
# side is 480 (the size they are evaluated at).
CROP_RATIO = 384 / 480
PLAN_WARM = 2   # iterations not timed (the loader starting, first kernels)
PLAN_AFTER = 5  # iterations timed before a --minutes budget is turned into iterations
VALIDATIONS = 4  # a run without --val_every validates every quarter of it (3 times, then at the end)


@dataclass
class FinetuneVideos:
    train: list[AnnotatedVideo]
    val: list[AnnotatedVideo]

    @classmethod
    def find(cls, settings: FinetuneSettings) -> "FinetuneVideos":
        """The videos of ``settings.folders`` (of a studio workspace, only its ``sessions``),
        validated on ``val_folder`` or the last ``val_videos`` of them held out."""
        videos = find_annotated_videos(list(settings.folders), sessions=set(settings.sessions) if settings.sessions else None)
        val_videos = settings.val_videos
        if settings.val_folder:
            return cls(videos, find_annotated_videos([settings.val_folder]))
        if val_videos >= len(videos):
            raise InputError(f"--val_videos {val_videos}: only {len(videos)} video(s) in --finetune; keep at least "
                             "one to train on (or pass --val DIR)")
        if val_videos:
            return cls(videos[:-val_videos], videos[-val_videos:])
        return cls(videos, [])


def crop_size_for(videos: list[AnnotatedVideo], patch_size: int = 16) -> int:
    """The training crop for ``videos``: :data:`CROP_RATIO` of the shorter side their frames are
    processed at (the median over the videos, at most the predictor's default size), down to a
    multiple of ``patch_size``, at least 3 patches. 427x240 frames -> 192, 480p and larger -> 384."""
    sides = sorted(min(image_size(v.frames[0])) for v in videos)
    processed = min(sides[len(sides) // 2], DEFAULT_SIZE)
    return max(3 * patch_size, int(processed * CROP_RATIO) // patch_size * patch_size)


def validation_every(settings: FinetuneSettings, iterations: int) -> int:
    return settings.val_every or max(1, iterations // VALIDATIONS)


def validations_after(done: int, iterations: int, every: int) -> int:
    """Validations a run still makes after iteration ``done`` of ``iterations``: at each multiple
    of ``every`` before the end, then one at the end."""
    return (iterations - 1) // every - done // every + 1 if iterations > done else 0


def plan_iterations(done: int, elapsed: float, seconds_per_iteration: float, seconds_per_validation: float,
                    budget: float, settings: FinetuneSettings, seconds_at_end: float = 0.0) -> int:
    """The most iterations whose run fits ``budget`` seconds: ``done`` took ``elapsed`` (the start
    validation included); each further iteration takes ``seconds_per_iteration``, each validation
    still to come (:func:`validations_after`, at the spacing that total gives) ``seconds_per_validation``,
    the end (the last state saved) ``seconds_at_end``. At least ``done + 1`` (the budget then stops the run)."""
    def seconds(total: int) -> float:
        every = validation_every(settings, total)
        return (elapsed + (total - done) * seconds_per_iteration + seconds_at_end
                + validations_after(done, total, every) * seconds_per_validation)
    # From the most iterations the budget holds with one validation (the last) down to the first that fits.
    total = done + int(max(0.0, budget - elapsed - seconds_per_validation - seconds_at_end)
                       / max(seconds_per_iteration, 1e-9))
    while total > done + 1 and seconds(total) > budget:
        total -= 1
    return max(total, done + 1)


def _jf(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


class FinetuneStrategy:
    """Fine-tuning (see the module docstring). ``validate``: net -> validation J&F (None: the
    videos hold none out)."""

    def __init__(self, config: TrainConfig, videos: FinetuneVideos, validate: Callable | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if config.finetune is None:
            raise ValueError("fine-tuning needs config.finetune")
        self.config, self.settings, self.videos = config, config.finetune, videos
        self.validate = validate if videos.val else None
        self.clock = clock
        self.started = clock()                    # the budget runs from here
        self.before: float | None = None          # J&F of the start weights
        self.best: float | None = None
        self.best_it: int | None = None
        self.last_val_it: int | None = None
        self.planned: RunPlan | None = None       # what a --minutes budget was turned into
        self.seconds_per_iteration: float | None = None
        self.seconds_per_validation = 0.0
        self.seconds_at_end = 0.0                 # the last weights and state saved (estimated from a kept copy)
        self._first_it = 0                        # of this process (a resumed run starts later)
        self._timed_from = 0.0

    # ------------------------------------------------------------------ the Strategy hooks
    def dataset(self) -> tuple[SeededConcat, dict]:
        """The pairs of the training videos, each video in every epoch ``repeat`` times (an epoch
        of at least about 200 samples, so that small sets do not spend their time between epochs)."""
        videos = self.videos.train
        repeat = max(1, 200 // len(videos))
        dataset = SeededConcat([AnnotatedPairDataset(videos, self.settings.max_jump, self.config.img_size)] * repeat)
        sizes = {"finetune_videos": len(videos), "annotated_frames": sum(len(v.masks) for v in videos),
                 "samples_per_epoch": len(dataset)}
        if self.videos.val:
            sizes["validation_videos"] = len(self.videos.val)
        return dataset, sizes

    def start(self, trainer: Trainer) -> None:
        if self.validate is not None and self.before is None and trainer.iteration == 0:
            self.before = self._validation(trainer)
        self._first_it = trainer.iteration

    def after_step(self, trainer: Trainer) -> None:
        if trainer.plan is None:
            self._time(trainer)
        if trainer.plan is not None and self.validate is not None and trainer.iteration < trainer.plan.iterations \
                and trainer.iteration % validation_every(self.settings, trainer.plan.iterations) == 0:
            self._validation(trainer)
        if self.settings.minutes is not None and self._budget_spent():
            trainer.say(f"--minutes {self.settings.minutes:g}: the budget is spent at iteration {trainer.iteration}")
            trainer.stop_for_budget()

    def end(self, trainer: Trainer) -> None:
        if self.validate is not None:
            if self.last_val_it != trainer.iteration:
                self._validation(trainer)
            if trainer.dist.is_main:   # the other ranks do not validate
                trainer.say(f"fine-tuned: validation J&F {_jf(self.before)} before, {_jf(self.best)} best (iteration "
                            f"{self.best_it}) -> {self.path}", out=True)
        else:
            self._keep(trainer)
            trainer.say(f"fine-tuned for {trainer.iteration} iterations (no validation: the last weights) -> "
                        f"{self.path}", out=True)

    def weights(self, trainer: Trainer) -> str | None:
        return self.path if os.path.isfile(self.path) else None

    def best_jf(self) -> float | None:
        return self.best

    def record(self) -> dict:
        return {"before": self.before, "best": self.best, "best_it": self.best_it, "last_val_it": self.last_val_it,
                "planned": None if self.planned is None else self.planned.iterations,
                "steps": None if self.planned is None else list(self.planned.lr.steps)}

    def restore(self, record: dict | None) -> None:
        if not isinstance(record, dict):
            return
        self.before, self.best = record.get("before"), record.get("best")
        self.best_it, self.last_val_it = record.get("best_it"), record.get("last_val_it")
        if record.get("planned") is not None:  # the plan of a --minutes budget goes on
            self.planned = RunPlan(record["planned"], dataclasses.replace(self.config.lr, steps=tuple(record["steps"])))

    def initial_plan(self) -> RunPlan | None:
        """The plan a resumed --minutes run goes on with (None: a fresh one plans as it goes)."""
        return self.planned

    # ------------------------------------------------------------------ internals
    @property
    def path(self) -> str:
        return os.path.join(self.config.save_dir, "finetuned.pth")

    def _keep(self, trainer: Trainer) -> None:
        """The current weights as finetuned.pth, with their sidecar."""
        if trainer.dist.is_main:
            start = self.clock()
            atomic_save(trainer.net.state_dict(), self.path)
            # The end writes the weights again and a state about three times their size (Adam's moments).
            self.seconds_at_end = 4 * (self.clock() - start)
            write_sidecar(self.path, self.config.model)
            trainer.emit(Saved(trainer.iteration, self.path))

    def _validation(self, trainer: Trainer) -> float | None:
        """Rank 0 validates (the others wait at the next collective); -> its J&F, else None."""
        if not trainer.dist.is_main:
            return None
        start = self.clock()
        jf = float(self.validate(trainer.net))
        self.seconds_per_validation = self.clock() - start
        self.last_val_it = trainer.iteration
        best = self.best is None or jf > self.best
        trainer.emit(Validation(trainer.iteration, jf if math.isfinite(jf) else None, best))
        if best:
            self.best, self.best_it = jf, trainer.iteration
            self._keep(trainer)
        trainer.say(f"validation J&F {jf:.2f} at iteration {trainer.iteration} (best {self.best:.2f} at iteration "
                    f"{self.best_it}; {self.seconds_per_validation:.0f} s)", out=True)
        trainer.scalar("val/J&F", jf)
        return jf

    def _time(self, trainer: Trainer) -> None:
        """Times PLAN_AFTER iterations after PLAN_WARM, then turns the budget into a plan."""
        if trainer.iteration - self._first_it == PLAN_WARM:
            self._timed_from = self.clock()
        elif trainer.iteration - self._first_it == PLAN_WARM + PLAN_AFTER:
            now = self.clock()
            self.seconds_per_iteration = (now - self._timed_from) / PLAN_AFTER
            planned = plan_iterations(trainer.iteration, now - self.started, self.seconds_per_iteration,
                                      self.seconds_per_validation if self.validate is not None else 0.0,
                                      self.settings.minutes * 60, self.settings, self.seconds_at_end)
            # Rank 0 alone validates (it measured the validations): every rank takes the shortest plan.
            planned = int(-all_reduce_max(-float(planned), trainer.dist))
            steps = self.config.lr.steps or (int(planned * FINETUNE_STEP_AT),)
            self.planned = RunPlan(planned, dataclasses.replace(self.config.lr, steps=tuple(steps)))
            trainer.replan(self.planned)
            trainer.emit(Planned(planned, self.seconds_per_iteration))
            trainer.say(f"--minutes {self.settings.minutes:g}: {planned} iterations fit the budget "
                        f"({self.seconds_per_iteration:.2f} s each, validations {self.seconds_per_validation:.0f} s; "
                        f"lr x{self.config.lr.gamma} at {steps[0]})")

    def _budget_spent(self) -> bool:
        """Whether one more iteration and the final validation would run past the budget."""
        left = self.settings.minutes * 60 - (self.clock() - self.started)
        final = self.seconds_per_validation if self.validate is not None else 0.0
        return left < (self.seconds_per_iteration or 0.0) + final + self.seconds_at_end
