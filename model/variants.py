"""The published networks as named variants, and what a checkpoint records of its own.

| variant     | flags                                                        |
| simvos_b    | --backbone_type vit_base  --layer_index 0                    |
| simvos_bs   | --backbone_type vit_base  --layer_index 4 --use_token_learner |
| simvos_l    | --backbone_type vit_large --layer_index 0                    |

A variant gives the flags' defaults; published flags given as well win. Weights written by this
project's training carry a sidecar ``<checkpoint stem>.json`` with the model flags they were trained
with (the ``.pth`` stays the published bare state_dict); loading them under other flags is refused.
"""
from __future__ import annotations

import json
import os

from model.checkpoint import CheckpointMismatchError
from model.presets import ConfigError, ModelConfig, config_from_flags
from util.publish import write_json

MODEL_FLAGS = ("backbone_type", "layer_index", "use_token_learner", "use_local_window",
               "num_bases_foreground", "num_bases_background")
VARIANTS: dict[str, dict] = {
    "simvos_b": {"backbone_type": "vit_base", "layer_index": 0, "use_token_learner": False},
    "simvos_bs": {"backbone_type": "vit_base", "layer_index": 4, "use_token_learner": True},
    "simvos_l": {"backbone_type": "vit_large", "layer_index": 0, "use_token_learner": False},
}
PUBLISHED_BACKBONES = {"vit_base", "vit_large"}


def variant_flags(name: str) -> str:
    """The published command-line flags a variant stands for."""
    flags = VARIANTS[name]
    text = f"--backbone_type {flags['backbone_type']} --layer_index {flags['layer_index']}"
    return text + (" --use_token_learner" if flags["use_token_learner"] else "")


def resolve_config(variant: str | None, flags: dict, **fields) -> ModelConfig:
    """The config of a variant (or the defaults) with the given flags on top (None = not given)."""
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(f"unknown --variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    values = dict(VARIANTS[variant]) if variant else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    return config_from_flags(**values, **fields)


def matching_variant(config: ModelConfig) -> str | None:
    """The published variant whose flags the config has (local windows are an option of any)."""
    for name, flags in VARIANTS.items():
        if all(getattr(config, k) == v for k, v in flags.items()):
            return name
    return None


def unpublished_note(config: ModelConfig) -> str | None:
    """A one-line note when published-size flags describe no published network (None otherwise)."""
    if config.backbone_type not in PUBLISHED_BACKBONES or matching_variant(config):
        return None
    if config.backbone_type == "vit_large":
        likely = ["simvos_l"]
    else:
        likely = ["simvos_bs"] if config.use_token_learner else ["simvos_bs", "simvos_b"]
    named = " or ".join(f"--variant {n} ({variant_flags(n)})" for n in likely)
    return (f"note: the model flags (--backbone_type {config.backbone_type} --layer_index {config.layer_index}, token "
            f"learner {'on' if config.use_token_learner else 'off'}) match no published SimVOS network; likely meant: "
            f"{named}. A checkpoint of another variant can load under these flags and compute something else.")


def recorded_flags(config: ModelConfig) -> dict:
    return {"variant": matching_variant(config), "model": {k: getattr(config, k) for k in MODEL_FLAGS}}


def sidecar_path(checkpoint: str) -> str:
    return os.path.splitext(checkpoint)[0] + ".json"


def write_sidecar(checkpoint: str, config: ModelConfig) -> None:
    """Records the model flags of ``checkpoint`` beside it (atomically)."""
    write_json(sidecar_path(checkpoint), recorded_flags(config), indent=1)


def recorded_model_flags(checkpoint: str) -> dict | None:
    """The model flags a checkpoint's sidecar records (None: no sidecar, or not one of ours)."""
    try:
        with open(sidecar_path(checkpoint)) as f:
            flags = json.load(f)["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: flags[k] for k in MODEL_FLAGS if k in flags} if isinstance(flags, dict) else None


def check_recorded_variant(checkpoint: str, config: ModelConfig, loaded: dict | None = None) -> None:
    """Refuses a checkpoint whose recorded model flags (its sidecar, or the ``config`` entry of a
    training state ``loaded``) differ from ``config``'s."""
    recorded = None
    if isinstance(loaded, dict) and isinstance(loaded.get("config"), dict):
        recorded, source = {"variant": None, "model": loaded["config"]}, "its training state"
    elif os.path.isfile(sidecar_path(checkpoint)):
        source = sidecar_path(checkpoint)
        try:
            with open(source) as f:
                recorded = json.load(f)
        except (OSError, ValueError):
            return  # not our sidecar (e.g. a user's own notes): nothing recorded
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model"), dict):
        return
    flags = recorded["model"]
    differ = [k for k in MODEL_FLAGS if k in flags and flags[k] != getattr(config, k)]
    if not differ:
        return
    name = recorded.get("variant") or next(
        (n for n, v in VARIANTS.items() if all(flags.get(k) == x for k, x in v.items())), None)
    wanted = f"--variant {name}" if name else " ".join(f"--{k} {flags[k]}" for k in MODEL_FLAGS if k in flags)
    got = ", ".join(f"{k} {getattr(config, k)} (trained: {flags[k]})" for k in differ)
    raise CheckpointMismatchError(f"{checkpoint}: trained with other model flags (recorded in {source}): {got}\n"
                                  f"  hint: pass {wanted}")
