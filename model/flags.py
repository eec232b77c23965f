"""The published model flags (``--backbone_type --layer_index --use_token_learner ...``) -> config.

Defaults come from :class:`model.presets.ModelConfig`, so the command line and the Python API agree.
"""
from __future__ import annotations

import argparse
import dataclasses

from model.presets import PRESETS, ModelConfig, config_from_flags

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if value.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")


def add_bool_flag(parser, name: str, default: bool, help: str | None = None) -> None:
    """``--name`` (True), ``--name True`` / ``--name False``: the published scripts were called both ways."""
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)


def add_model_flags(parser: argparse.ArgumentParser, **defaults) -> None:
    """--backbone_type, --layer_index, --use_token_learner, --use_local_window, --num_bases_*.

    ``defaults`` override the config defaults for one script (training: ``use_token_learner=True``).
    """
    value = {**_DEFAULTS, "backbone_type": "vit_base", **defaults}
    g = parser.add_argument_group("model")
    g.add_argument("--backbone_type", default=value["backbone_type"], choices=sorted(PRESETS))
    g.add_argument("--layer_index", type=int, default=value["layer_index"],
                   help="0: joint attention over all blocks (SimVOS-B/L); L>0: L within-frame blocks (SimVOS-BS: 4)")
    add_bool_flag(g, "--use_token_learner", value["use_token_learner"])
    add_bool_flag(g, "--use_local_window", value["use_local_window"])
    g.add_argument("--num_bases_foreground", type=int, default=value["num_bases_foreground"])
    g.add_argument("--num_bases_background", type=int, default=value["num_bases_background"])


def config_from_args(args: argparse.Namespace, **fields) -> ModelConfig:
    """The config of the flags added by :func:`add_model_flags` (``fields``: e.g. train_img_size)."""
    return config_from_flags(args.backbone_type, layer_index=args.layer_index, use_token_learner=args.use_token_learner,
                             num_bases_foreground=args.num_bases_foreground,
                             num_bases_background=args.num_bases_background,
                             use_local_window=args.use_local_window, **fields)
