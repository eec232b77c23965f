"""One frozen :class:`TrainConfig` per run, resolved once from the flags, the stage preset (or the
fine-tuning preset) and, for fine-tuning, the start checkpoint's sidecar, before anything runs.
Nothing changes it afterwards: what a run learns as it goes (the iterations a ``--minutes`` budget
holds) is the trainer's :class:`RunPlan`, not the config's.

The learning-rate and bootstrapping schedules are numbers too (:class:`LearningRate`,
:class:`BootstrapSchedule`); fine-tuning trains without bootstrapping (``bootstrap`` None) unless
``--start_warm`` and ``--end_warm`` are given.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass

from dataset.vos_pairs import VOSFolder, parse_vos_folder
from model.flags import config_from_args
from model.presets import ModelConfig
from training.schedule import bootstrap_fraction, lr_factor
from training.stages import (DEFAULT_FINETUNE_ITERATIONS, DEFAULT_LOG_EVERY, FINETUNE_PRESET, FINETUNE_STEP_AT,
                             LEARNING_RATES, MAE_DEFAULTS, STAGES)
from util.errors import InputError

# The least value each numeric flag takes (when given); below it a run would train nothing, divide
# by zero or write a model that was never trained.
LEAST = {"iterations": 1, "batch_size": 1, "img_size": 16, "num_workers": 0, "log_every": 1, "image_every": 1,
         "save_every": 1, "val_every": 1, "val_videos": 0, "max_jump": 1, "davis_max_jump": 1, "yv_max_jump": 1,
         "davis_repeat": 1, "warmup": 0, "keep_checkpoints": 0, "max_nonfinite": 1, "start_warm": 0, "end_warm": 0}


@dataclass(frozen=True)
class LearningRate:
    """``base`` x a linear warm-up over ``warmup`` iterations, x ``gamma`` at each of ``steps``."""

    base: float
    warmup: int = 0
    steps: tuple[int, ...] = ()
    gamma: float = 0.1

    def factor(self, iteration: int) -> float:
        return lr_factor(iteration, self.warmup, list(self.steps), self.gamma)


@dataclass(frozen=True)
class RunPlan:
    """How long a run is and its learning-rate schedule: the config's, or what a ``--minutes``
    budget was turned into once the run measured its speed."""

    iterations: int
    lr: LearningRate


@dataclass(frozen=True)
class BootstrapSchedule:
    """The bootstrapped loss: every pixel until ``start``, then linearly down to the hardest
    ``top_p`` of them at ``end``."""

    start: int
    end: int
    top_p: float

    def fraction(self, iteration: int) -> float:
        return bootstrap_fraction(iteration, self.start, self.end, self.top_p)


@dataclass(frozen=True)
class PublishedData:
    """The published stage's training set (training/data.py): DAVIS-2017 train repeated, YouTube-VOS
    train, and any more VOS-layout folders."""

    davis_root: str
    youtube_root: str | None      # None: DAVIS only
    youtube_subset: str | None    # None: every YouTube-VOS folder
    davis_repeat: int
    davis_max_jump: int
    youtube_max_jump: int
    memory_frames: int
    vos_folders: tuple[VOSFolder, ...] = ()   # more VOS-layout folders (--vos_datasets), each with its weight


@dataclass(frozen=True)
class FinetuneSettings:
    """Fine-tuning on one's own annotated videos (training/finetune.py)."""

    folders: tuple[str, ...]
    sessions: tuple[str, ...] | None   # of a studio workspace, only these
    val_folder: str | None             # validate on this folder ...
    val_videos: int                    # ... else on the last N videos held out (0: no validation)
    val_every: int | None              # None: a quarter of the run
    minutes: float | None              # a wall-clock budget
    max_jump: int


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run is, resolved once (see the module docstring)."""

    run_id: str
    model: ModelConfig
    iterations: int | None             # None: as many as ``finetune.minutes`` holds (planned once measured)
    lr: LearningRate
    weight_decay: float
    batch_size: int
    bootstrap: BootstrapSchedule | None   # None: plain cross-entropy throughout
    dice_weight: float
    drop_path: float
    amp: bool
    seed: int
    num_workers: int
    log_every: int
    image_every: int
    save_every: int
    keep_checkpoints: int              # 0: keep every training state
    max_nonfinite: int
    save_dir: str                      # this run's folder (saves/<id>)
    log_dir: str                       # this run's TensorBoard folder (runs/<id>)
    load_network: str | None           # start from these weights ...
    pretrained: str | None             # ... else from this MAE checkpoint, else (None) from scratch
    resume_from: str | None            # a training state to resume from ...
    resume_auto: bool                  # ... or the newest loadable one in save_dir, if any
    data: PublishedData | None         # the published stage's data, or
    finetune: FinetuneSettings | None  # fine-tuning's

    @property
    def img_size(self) -> int:
        return self.model.train_img_size

    def record(self) -> dict:
        """Plain values (for the training state)."""
        return dataclasses.asdict(self)


def check_flags(args: argparse.Namespace) -> None:
    """Refuses values no run can use (InputError naming the flag), and output folders that are files."""
    for name, least in LEAST.items():
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise InputError(f"--{name} must be at least {least}, got {value}")
    for name in ("lr", "minutes", "gamma", "top_p"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise InputError(f"--{name} must be positive, got {value}")
    for flag, folder in (("--save_dir", args.save_dir), ("--save_dir", os.path.join(args.save_dir, args.id)),
                         ("--log_dir", args.log_dir), ("--log_dir", os.path.join(args.log_dir, args.id))):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise InputError(f"{folder}: {flag} names a file, not a folder", folder)


def resolve_config(args: argparse.Namespace, device_type: str, crop_size: int | None = None) -> TrainConfig:
    """The config of a parsed command line (training/cli.py). For fine-tuning, ``device_type``
    picks the batch size and ``crop_size`` (measured from the videos) is the training crop unless
    ``--img_size`` is given. Bad values are an InputError naming the flag."""
    check_command_line(args)
    finetune = bool(args.finetune)
    img_size = args.img_size if args.img_size is not None else (crop_size if finetune else STAGES[args.stage]["img_size"])
    model = config_from_args(args, args.load_network if finetune else None, train_img_size=img_size)
    preset = _finetune_preset(model, device_type) if finetune else STAGES[args.stage]

    def value(name: str):
        """The flag's value if given, else the preset's."""
        return getattr(args, name) if getattr(args, name) is not None else preset[name]

    iterations = args.iterations if args.iterations is not None else (
        None if finetune and args.minutes is not None else preset["iterations"])
    steps = args.steps if args.steps is not None else (
        [int(iterations * FINETUNE_STEP_AT)] if finetune and iterations is not None else preset.get("steps", []))
    if finetune:
        bootstrap = (BootstrapSchedule(args.start_warm, args.end_warm, value("top_p"))
                     if args.start_warm is not None and args.end_warm is not None else None)
    else:
        bootstrap = BootstrapSchedule(value("start_warm"), value("end_warm"), value("top_p"))
    if bootstrap is not None and bootstrap.end < bootstrap.start:
        raise InputError(f"--end_warm {bootstrap.end} is before --start_warm {bootstrap.start}")
    return TrainConfig(
        run_id=args.id, model=model, iterations=iterations,
        lr=LearningRate(value("lr"), args.warmup, tuple(steps), value("gamma")),
        weight_decay=value("weight_decay"), batch_size=value("batch_size"), bootstrap=bootstrap,
        dice_weight=value("dice_weight"), drop_path=value("drop_path"), amp=not args.no_amp, seed=args.seed,
        num_workers=args.num_workers,
        log_every=args.log_every if args.log_every is not None else preset.get("log_every", DEFAULT_LOG_EVERY),
        image_every=args.image_every, save_every=args.save_every, keep_checkpoints=args.keep_checkpoints,
        max_nonfinite=args.max_nonfinite, save_dir=os.path.join(args.save_dir, args.id),
        log_dir=os.path.join(args.log_dir, args.id), load_network=args.load_network,
        pretrained=None if finetune else _pretrained(args, model),
        resume_from=args.load_model or (args.resume if args.resume not in (None, "auto") else None),
        resume_auto=args.resume == "auto" and not args.load_model,
        data=None if finetune else PublishedData(
            args.davis_root, None if args.yv_root.lower() == "none" else args.yv_root,
            None if args.yv_subset.lower() == "none" else args.yv_subset, value("davis_repeat"),
            value("davis_max_jump"), value("yv_max_jump"), args.memory_frames,
            tuple(map(parse_vos_folder, args.vos_datasets))),
        finetune=finetune_settings(args) if finetune else None)


def finetune_settings(args: argparse.Namespace) -> FinetuneSettings:
    """The fine-tuning part of a command line with ``--finetune`` (its videos are found from it
    before the rest is resolved: the training crop is measured from them)."""
    return FinetuneSettings(tuple(args.finetune), tuple(args.sessions) if args.sessions else None, args.val,
                            args.val_videos, args.val_every, args.minutes,
                            args.max_jump if args.max_jump is not None else FINETUNE_PRESET["max_jump"])


def check_command_line(args: argparse.Namespace) -> None:
    """What can be refused before any data is read: flag values, output folders that are files,
    fine-tuning without its start weights."""
    check_flags(args)
    if not args.finetune:
        return
    if not args.load_network:
        raise InputError("--finetune needs --load_network CK: the weights to start from (a published SimVOS "
                         "checkpoint, or one of this project's, e.g. demo_output/checkpoints/demo.pth)")
    if not os.path.isfile(args.load_network):
        raise InputError(f"{args.load_network}: --load_network not found", args.load_network)


def _finetune_preset(model: ModelConfig, device_type: str) -> dict:
    """The fine-tuning preset for ``model`` on ``device_type``: a learning rate by backbone, a batch that fits."""
    large = model.backbone_type in ("vit_base", "vit_large")
    return {**FINETUNE_PRESET, "lr": LEARNING_RATES[model.backbone_type], "iterations": DEFAULT_FINETUNE_ITERATIONS,
            "batch_size": 4 if device_type == "cuda" or not large else 2, "drop_path": 0.1 if large else 0.0}


def _pretrained(args: argparse.Namespace, model: ModelConfig) -> str | None:
    """The MAE checkpoint a published-stage run starts from (None: from scratch or --load_network)."""
    if args.load_network:
        return None
    if args.pretrained is not None and args.pretrained.lower() == "none":
        return None
    path = args.pretrained or MAE_DEFAULTS.get(model.backbone_type)
    if path is None:
        raise InputError(f"no MAE weights are published for --backbone_type {model.backbone_type}: pass --pretrained none")
    if not os.path.isfile(path):
        raise InputError(f"{path}: MAE pretrained weights not found; download them from the MAE repository "
                         "(facebookresearch/mae, 'pretrained checkpoints') into pretrained_models/, "
                         "or pass --pretrained none to train from scratch", path)
    return path
