"""Command-line flags shared by the scripts (the published names and defaults)."""
from __future__ import annotations

import argparse

from model import config_from_flags
from model.presets import PRESETS


def str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if value.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")


def add_model_flags(parser: argparse.ArgumentParser, layer_index: int = 4, use_token_learner: bool = False,
                    use_local_window: bool = False) -> None:
    """--backbone_type, --layer_index, --use_token_learner, --use_local_window, --num_bases_*.

    Boolean flags accept both the bare form (``--use_token_learner``) and an explicit value
    (``--use_token_learner False``), as the published scripts were called both ways.
    """
    g = parser.add_argument_group("model")
    g.add_argument("--backbone_type", default="vit_base", choices=sorted(PRESETS))
    g.add_argument("--layer_index", type=int, default=layer_index,
                   help="0: joint attention over all blocks (SimVOS-B/L); L>0: L within-frame blocks (SimVOS-BS: 4)")
    g.add_argument("--use_token_learner", type=str2bool, nargs="?", const=True, default=use_token_learner)
    g.add_argument("--use_local_window", type=str2bool, nargs="?", const=True, default=use_local_window)
    g.add_argument("--num_bases_foreground", type=int, default=384)
    g.add_argument("--num_bases_background", type=int, default=384)


def config_from_args(args: argparse.Namespace, train_img_size: int = 384):
    return config_from_flags(args.backbone_type, args.layer_index, args.use_token_learner,
                             args.num_bases_foreground, args.num_bases_background, args.use_local_window,
                             train_img_size=train_img_size)


def prepare_run(args: argparse.Namespace):
    """Shared start of the evaluation scripts: echo the flags, build the config, pick the device."""
    from util.device import pick_device, warn_if_amp_unsupported
    print(args)
    config = config_from_args(args)
    device = pick_device(args.device)
    warn_if_amp_unsupported(device, args.amp)
    return config, device
