"""Command-line flags shared by every script that builds a predictor, and ``--model_path``."""
from __future__ import annotations

import os

from inference_core.compiled import COMPILE_MODES
from inference_core.directions import VIDEO_PLANS
from inference_core.memory import DEFAULT_MAX_KEYFRAMES, MEMORY_POLICIES, check_max_keyframes
from inference_core.session import check_size
from util.cli import add_bool_flag
from util.errors import InputError

CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt")
# Old names of the plans that users' command lines still have: old name -> plan.
DEPRECATED_PLANS = {"both": "nearest"}


def add_predictor_flags(parser) -> None:
    """--amp, --device, --max_objects_per_batch, --overlap_io, --compile: how a predictor runs (the
    scripts share them; :func:`predictor_options` turns the last two into predictor options)."""
    add_bool_flag(parser, "--amp", False, "fp16 autocast on CUDA, bf16 on CPUs with native bf16")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA if available)")
    parser.add_argument("--max_objects_per_batch", type=int, default=None, help="chunk objects to bound memory")
    add_bool_flag(parser, "--overlap_io", True, "decode frames and write outputs on threads beside the network "
                                               "(same results; False: all in one thread)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="off",
                        help="torch.compile the per-frame stages (reduce-overhead: + CUDA graphs on CUDA); each "
                             "new frame size or object count compiles once (seconds to minutes); default off")


def predictor_options(args) -> dict:
    """The predictor options of :func:`add_predictor_flags`' --overlap_io and --compile."""
    return {"overlap_io": args.overlap_io, "compile": args.compile}


def add_video_flags(parser, size: int = 480) -> None:
    """--size, --direction, --memory, --max_keyframes, --independent_objects: how own videos are
    propagated (--direction takes a whole-video plan, ``VIDEO_PLANS``; :func:`video_plan` reads it)."""
    g = parser.add_argument_group("propagation")
    g.add_argument("--size", type=int, default=size,
                   help=f"shorter side the network sees (frames are never enlarged; -1: as given; default {size}); "
                        "outputs are always at the input's resolution")
    g.add_argument("--direction", choices=VIDEO_PLANS + tuple(DEPRECATED_PLANS), default="forward",
                   metavar="{" + ",".join(VIDEO_PLANS) + "}",
                   help="the whole-video plan: forward from the first annotation, backward from the last, or nearest "
                        "(each object on each frame from its nearest annotated frame; ties go to the forward walk; "
                        "'both' is its old name)")
    g.add_argument("--memory", choices=MEMORY_POLICIES, default="published",
                   help="published: an object's latest annotation + the previous frame; keyframes: every annotated "
                        "frame of an object stays a reference (+ the previous frame)")
    g.add_argument("--max_keyframes", type=int, default=DEFAULT_MAX_KEYFRAMES,
                   help="with --memory keyframes: references kept per object (the first annotation always; "
                        "default %(default)s)")
    add_independent_flag(g)


def add_independent_flag(parser) -> None:
    """--independent_objects (default off: the published soft aggregation between objects)."""
    add_bool_flag(parser, "--independent_objects", False,
                  "segment each object against the background only (no competition between objects: overlapping "
                  "objects are all kept; a label map gives a pixel to the most confident object)")


def video_options(args) -> dict:
    """The predictor options of :func:`add_video_flags`' flags."""
    check_max_keyframes(args.max_keyframes, "--max_keyframes")
    return {"size": check_size(args.size, "--size"), "memory": args.memory, "max_keyframes": args.max_keyframes,
            "independent_objects": args.independent_objects}


def video_plan(args, say=print) -> str:
    """The plan of :func:`add_video_flags`' --direction; an old name says its new one (``say``)."""
    if args.direction in DEPRECATED_PLANS:
        plan = DEPRECATED_PLANS[args.direction]
        say(f"note: --direction {args.direction} is now called --direction {plan} (the same plan); "
            f"the old name still works")
        return plan
    return args.direction


def checkpoint_files(model_path: str) -> list[str]:
    """``--model_path``: one checkpoint file, or every checkpoint file of a folder (sorted)."""
    if os.path.isfile(model_path):
        return [model_path]
    if not os.path.isdir(model_path):
        raise InputError(f"{model_path}: --model_path not found")
    files = sorted(os.path.join(model_path, f) for f in os.listdir(model_path) if f.endswith(CHECKPOINT_EXTENSIONS))
    if not files:
        raise InputError(f"{model_path}: no checkpoint files ({', '.join(CHECKPOINT_EXTENSIONS)}) in --model_path")
    return files
