"""Fine-tuning on people's own annotated videos: ``train_simvos.py --finetune DIR ... --load_network CK``.

The ``finetune`` stage preset is for one device: a learning rate by backbone (lower for larger
networks), constant then x0.1 for the last fifth, crops sized from the videos
(:func:`crop_size_for`: objects at the scale inference sees them, whatever size the checkpoint was
trained at; its position grid is resampled), a batch that fits, plain cross-entropy (no
bootstrapping) plus a soft Dice term. Validation runs frames as the predictor does by default
(shorter side at most 480). ``--minutes`` is a wall-clock budget: after the first iterations the
run measures its speed and fixes the number of iterations (and the schedule) that fit, validations
included; a training state records that plan, so ``--resume auto`` goes on with it. The model
flags come from the checkpoint's sidecar when none are given. Validation (J&F, first-frame
protocol) runs in the script, which passes it in.
"""
from __future__ import annotations

import os

from dataset.annotated import AnnotatedVideo, find_annotated_videos, image_size
from dataset.vos_pairs import AnnotatedPairDataset
from inference_core.predictor import DEFAULT_SIZE
from model.flags import config_from_args
from training.data import SeededConcat
from util.errors import InputError

LEARNING_RATES = {"vit_tiny": 1e-4, "vit_small": 2e-5, "vit_base": 1e-5, "vit_large": 5e-6}
# Plain cross-entropy (the bootstrapped fraction stays 1): at 15% from the start, as the published
# stage ends, the demo model collapsed to background within 30 iterations on real videos. The Dice
# term weighs each object by its area, so that small objects are not given up for background.
FINETUNE_PRESET = dict(weight_decay=1e-7, gamma=0.1, start_warm=10**9, end_warm=10**9 + 1, top_p=0.15, dice_weight=1.0,
                       max_jump=10, log_every=10)
# The published ratio of training crop to processed frame: 384-pixel crops of frames whose shorter
# side is 480 (the size they are evaluated at).
CROP_RATIO = 384 / 480
DEFAULT_ITERATIONS = 1000  # without --minutes or --iterations
UNBOUNDED = 10**9          # --iterations of a --minutes run until its plan is made
PLAN_WARM = 2   # iterations not timed (the loader starting, first kernels)
PLAN_AFTER = 5  # iterations timed before a --minutes budget is turned into iterations


def fill_finetune_flags(args, device_type: str) -> None:
    """The preset's values for the flags not given (after the checkpoint's recorded model flags)."""
    if not args.load_network:
        raise InputError("--finetune needs --load_network CK: the weights to start from (a published SimVOS "
                         "checkpoint, or one of this project's, e.g. demo_output/checkpoints/demo.pth)")
    if not os.path.isfile(args.load_network):
        raise InputError(f"{args.load_network}: --load_network not found", args.load_network)
    if args.minutes is not None and args.minutes <= 0:
        raise InputError(f"--minutes must be positive, got {args.minutes}")
    config = config_from_args(args, args.load_network)
    for flag in ("backbone_type", "layer_index", "use_token_learner", "use_local_window", "num_bases_foreground",
                 "num_bases_background"):
        if getattr(args, flag) is None and args.variant is None:
            setattr(args, flag, getattr(config, flag))
    large = config.backbone_type in ("vit_base", "vit_large")
    defaults = {**FINETUNE_PRESET, "lr": LEARNING_RATES[config.backbone_type],
                "batch_size": 4 if device_type == "cuda" or not large else 2,
                "drop_path": 0.1 if large else 0.0,
                "iterations": args.iterations or (UNBOUNDED if args.minutes else DEFAULT_ITERATIONS)}
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.steps is None:
        args.steps = [int(args.iterations * 0.8)] if args.minutes is None else []
    args.pretrained = "none"


def crop_size_for(videos: list[AnnotatedVideo], patch_size: int = 16) -> int:
    """The training crop for ``videos``: :data:`CROP_RATIO` of the shorter side their frames are
    processed at (the median over the videos, at most the predictor's default size), down to a
    multiple of ``patch_size``, at least 3 patches. 427x240 frames -> 192, 480p and larger -> 384."""
    sides = sorted(min(image_size(v.frames[0])) for v in videos)
    processed = min(sides[len(sides) // 2], DEFAULT_SIZE)
    return max(3 * patch_size, int(processed * CROP_RATIO) // patch_size * patch_size)


def finetune_videos(args) -> tuple[list[AnnotatedVideo], list[AnnotatedVideo]]:
    """(training videos, validation videos): ``--val DIR``, else the last ``--val_videos`` held out."""
    videos = find_annotated_videos(args.finetune, sessions=set(args.sessions) if args.sessions else None)
    if args.val:
        val = find_annotated_videos([args.val])
    elif args.val_videos:
        if args.val_videos >= len(videos):
            raise InputError(f"--val_videos {args.val_videos}: only {len(videos)} video(s) in --finetune; keep at least "
                             "one to train on (or pass --val DIR)")
        videos, val = videos[:-args.val_videos], videos[-args.val_videos:]
    else:
        val = []
    return videos, val


def build_finetune_dataset(args, videos: list[AnnotatedVideo]) -> tuple[SeededConcat, dict]:
    """The pairs of ``videos``, each video in every epoch ``repeat`` times (an epoch of at least
    about 200 samples, so that small sets do not spend their time between epochs)."""
    repeat = max(1, 200 // len(videos))
    dataset = SeededConcat([AnnotatedPairDataset(videos, args.max_jump, args.img_size)] * repeat)
    return dataset, {"finetune_videos": len(videos), "annotated_frames": sum(len(v.masks) for v in videos),
                     "samples_per_epoch": len(dataset)}


def plan_iterations(done: int, seconds: float, budget_seconds: float, validation_seconds: float,
                    validations: int) -> int:
    """The iterations a --minutes budget holds: ``done`` took ``seconds``; what is left of the budget,
    less the validations still to come, at the same speed."""
    rate = done / max(seconds, 1e-9)
    left = budget_seconds - seconds - validation_seconds * validations
    return max(done + 1, done + int(left * rate))
