"""The published model flags (``--backbone_type --layer_index --use_token_learner ...``) and
``--variant`` -> config.

Defaults come from :class:`model.presets.ModelConfig` (or a script's own), then the variant's flags,
then the flags given: the command line and the Python API agree.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from model.presets import PRESETS, ModelConfig
from model.variants import MODEL_FLAGS, VARIANTS, recorded_model_flags, resolve_config, unpublished_note
from util.cli import add_bool_flag

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def add_model_flags(parser: argparse.ArgumentParser, **defaults) -> None:
    """--variant, --backbone_type, --layer_index, --use_token_learner, --use_local_window, --num_bases_*.

    ``defaults`` override the config defaults for one script (training: ``use_token_learner=True``).
    """
    value = {**_DEFAULTS, "backbone_type": "vit_base", **defaults}
    g = parser.add_argument_group("model")
    g.add_argument("--variant", choices=sorted(VARIANTS), default=None,
                   help="a published network (simvos_b, simvos_bs, simvos_l); the flags below win over it")
    g.add_argument("--backbone_type", default=None, choices=sorted(PRESETS), help=f"default {value['backbone_type']}")
    g.add_argument("--layer_index", type=int, default=None,
                   help="0: joint attention over all blocks (SimVOS-B/L); L>0: L within-frame blocks (SimVOS-BS: 4); "
                        f"default {value['layer_index']}")
    add_bool_flag(g, "--use_token_learner", None, f"default {value['use_token_learner']}")
    add_bool_flag(g, "--use_local_window", None, f"default {value['use_local_window']}")
    g.add_argument("--num_bases_foreground", type=int, default=None, help=f"default {value['num_bases_foreground']}")
    g.add_argument("--num_bases_background", type=int, default=None, help=f"default {value['num_bases_background']}")
    parser.set_defaults(_model_defaults={k: value[k] for k in MODEL_FLAGS})


def config_from_args(args: argparse.Namespace, checkpoint: str | None = None, **fields) -> ModelConfig:
    """The config of the flags added by :func:`add_model_flags` (``fields``: e.g. train_img_size).
    With no model flag given, a ``checkpoint`` that records its model flags (our training's
    sidecar) gives them. Prints a note (rank 0) when published-size flags match no published network."""
    given = {k: getattr(args, k) for k in MODEL_FLAGS}
    recorded = recorded_model_flags(checkpoint) if checkpoint and args.variant is None and all(
        v is None for v in given.values()) else None
    base = {} if args.variant else {**args._model_defaults, **(recorded or {})}
    config = resolve_config(args.variant, {**base, **{k: v for k, v in given.items() if v is not None}}, **fields)
    note = unpublished_note(config)
    if note and os.environ.get("RANK", "0") == "0":
        print(note, file=sys.stderr)
    return config
