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

from model.checkpoint import TOKEN_LEARNER_PREFIXES, CheckpointError, CheckpointMismatchError, backbone_shape
from model.presets import ConfigError, ModelConfig, config_from_flags
from util.publish import write_json

# The model flags a checkpoint records, with the JSON type each must have.
FLAG_TYPES = {"backbone_type": str, "layer_index": int, "use_token_learner": bool, "use_local_window": bool,
              "num_bases_foreground": int, "num_bases_background": int}
MODEL_FLAGS = tuple(FLAG_TYPES)
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}
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


def checked_flags(flags: dict, source: str) -> dict:
    """The model flags among recorded ``flags`` (``MODEL_FLAGS``), each of its JSON type and
    together a valid network; else a CheckpointError naming ``source`` (the file) and the field."""
    checked = {}
    for name, kind in FLAG_TYPES.items():
        if name not in flags:
            continue
        value = flags[name]
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise CheckpointError(f"{source}: \"{name}\" must be {_TYPE_NAMES[kind]}, got {value!r} "
                                  "(a damaged record of the model flags: fix it, or remove it and give the flags)")
        checked[name] = value
    try:
        resolve_config(None, checked)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: the recorded model flags describe no network: {exc}") from None
    return checked


def read_sidecar(checkpoint: str) -> dict | None:
    """What ``checkpoint``'s sidecar records: {"variant": a variant or None, "model": {flag: value}}
    (None: no sidecar, or a file that is not one: not JSON, or without a "model" object, e.g. a
    user's own notes). Recorded values of the wrong type are a CheckpointError naming the sidecar
    and the field."""
    path = sidecar_path(checkpoint)
    try:
        with open(path) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model"), dict):
        return None
    variant = recorded.get("variant")
    if variant is not None and variant not in VARIANTS:
        raise CheckpointError(f"{path}: \"variant\" must be one of {', '.join(VARIANTS)} or null, got {variant!r}")
    return {"variant": variant, "model": checked_flags(recorded["model"], path)}


def recorded_model_flags(checkpoint: str) -> dict | None:
    """The model flags a checkpoint's sidecar records (None: no sidecar, or not one of ours)."""
    record = read_sidecar(checkpoint)
    return record["model"] if record else None


def check_recorded_variant(checkpoint: str, config: ModelConfig, loaded: dict | None = None) -> None:
    """Refuses a checkpoint whose recorded model flags (its sidecar, or the ``config`` entry of a
    training state ``loaded``) differ from ``config``'s."""
    if isinstance(loaded, dict) and isinstance(loaded.get("config"), dict):
        source = f"{checkpoint}'s training state"
        recorded = {"variant": None, "model": checked_flags(loaded["config"], source)}
    else:
        source, recorded = sidecar_path(checkpoint), read_sidecar(checkpoint)
    if recorded is None:
        return
    flags = recorded["model"]
    differ = [k for k in MODEL_FLAGS if k in flags and flags[k] != getattr(config, k)]
    if not differ:
        return
    name = recorded["variant"] or next(
        (n for n, v in VARIANTS.items() if all(flags.get(k) == x for k, x in v.items())), None)
    wanted = f"--variant {name}" if name else " ".join(f"--{k} {flags[k]}" for k in MODEL_FLAGS if k in flags)
    got = ", ".join(f"{k} {getattr(config, k)} (trained: {flags[k]})" for k in differ)
    raise CheckpointMismatchError(f"{checkpoint}: trained with other model flags (recorded in {source}): {got}\n"
                                  f"  hint: pass {wanted}")


def likely_flags(state: dict) -> str | None:
    """The model flags a state_dict's weights suggest: the published variant of its ViT size and
    token learners, or its --backbone_type (None: no ViT in it)."""
    shape = backbone_shape(state)
    if shape is None or shape[2] is None:
        return None
    preset, token_learner = shape[2], any(k.startswith(TOKEN_LEARNER_PREFIXES) for k in state)
    for name, flags in VARIANTS.items():
        if (flags["backbone_type"], flags["use_token_learner"]) == (preset, token_learner):
            return f"--variant {name}"
    return f"--backbone_type {preset}" + (" --use_token_learner --layer_index N (N > 0)" if token_learner
                                          else " --layer_index N")


def missing_sidecar_hint(checkpoint: str, loaded: dict, state: dict) -> str | None:
    """For a checkpoint that does not fit the network built: when nothing records its model flags
    (no sidecar, no training state's config), a hint naming the missing sidecar and the flags its
    weights suggest; None when its flags are recorded."""
    if isinstance(loaded.get("config"), dict) or read_sidecar(checkpoint) is not None:
        return None
    likely = likely_flags(state)
    return (f"no sidecar {sidecar_path(checkpoint)} records the model flags this checkpoint was trained with, so "
            f"the network was built from the flags given (or the defaults): pass its flags"
            + (f", likely {likely}" if likely else " (--variant or --backbone_type ...)"))
