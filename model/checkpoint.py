"""Loading weights, strictly, from the three formats users have.

* MAE pretraining (``{'model': ...}`` with MAE decoder keys): backbone only; ``pos_embed``
  (14x14 + class row) is resampled to the training grid and becomes ``pos_embed_new``; the
  SimVOS-specific layers keep their fresh initialisation.
* Published SimVOS (a bare state_dict, maybe with a ``module.`` prefix), B, BS or L.
* This project's own: weights-only (same as published) or a training state ``{'network': ...}``.

Anything else that does not fit -- a missing key, an unexpected key beyond the documented unused
ones, a shape mismatch -- raises :class:`CheckpointMismatchError` naming the keys and a likely fix.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field

import torch
from torch import nn

from model.presets import PRESETS
from model.vit import resample_grid_pos_embed
from util.errors import InputError

# Keys present in published checkpoints that no SimVOS stage reads.
UNUSED_KEYS = {"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"}
UNUSED_PREFIXES = ("head.", "fc_norm.", "decoder_embed.", "decoder_blocks.", "decoder_norm.", "decoder_pred.")
TOKEN_LEARNER_PREFIXES = ("tlearner.", "tlearner_back.")
# Parts of the network an MAE checkpoint has: everything else starts fresh.
MAE_PREFIXES = ("patch_embed.", "blocks.", "norm.", "pos_embed_new")


class CheckpointError(InputError):
    """A checkpoint file that cannot be read or is not a known format."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not fit the chosen model."""


@dataclass
class LoadReport:
    format: str
    ignored: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_checkpoint(path: str) -> dict:
    """torch.load on CPU, tensors and plain containers only."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    # What torch.load raises for a truncated zip, a foreign pickle, a text file (KeyError) or an empty file.
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


def unwrap(obj: dict) -> tuple[str, dict[str, torch.Tensor]]:
    """(format name, flat state_dict without ``module.``) of a loaded checkpoint object."""
    if isinstance(obj.get("network"), dict):
        fmt, state = "training-state", obj["network"]
    elif isinstance(obj.get("model"), dict):
        fmt, state = "mae", obj["model"]
    elif isinstance(obj.get("state_dict"), dict):
        fmt, state = "simvos", obj["state_dict"]
    else:
        fmt, state = "simvos", obj
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("checkpoint holds non-tensor values where weights were expected")
    if fmt == "simvos" and "pos_embed_new" not in state and "pos_embed" in state:
        fmt = "mae"  # a bare MAE / timm ViT state_dict
    return fmt, state


def _is_unused(key: str) -> bool:
    return key in UNUSED_KEYS or key.startswith(UNUSED_PREFIXES)


def _describe_backbone(state: dict[str, torch.Tensor]) -> str | None:
    weight = state.get("patch_embed.proj.weight")
    depths = [int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))]
    if weight is None or not depths:
        return None
    dim, depth = weight.shape[0], max(depths) + 1
    names = [n for n, p in PRESETS.items() if p.embed_dim == dim and p.depth == depth]
    return f"dim {dim}, depth {depth}" + (f" (--backbone_type {names[0]})" if names else "")


def _hints(model: nn.Module, state: dict, missing: list[str], shapes: list[str]) -> list[str]:
    config = model.config
    hints = []
    have = _describe_backbone(state)
    want = f"dim {config.embed_dim}, depth {config.depth}"
    if have and not have.startswith(want + " ") and have != want:
        hints.append(f"the checkpoint's ViT has {have}, the model built has {want} (--backbone_type {config.backbone_type}): wrong --backbone_type?")
    if any(k.startswith(TOKEN_LEARNER_PREFIXES) for k in missing):
        hints.append("the checkpoint has no token learner (a SimVOS-B/L checkpoint?): drop --use_token_learner and use --layer_index 0")
    for prefix, flag in (("tlearner.", "--num_bases_foreground"), ("tlearner_back.", "--num_bases_background")):
        w = state.get(prefix + "patch_to_cluster_linear.weight")
        if w is not None and config.use_token_learner and any(s.startswith(prefix) for s in shapes):
            hints.append(f"the checkpoint has {w.shape[0]} prototypes in {prefix[:-1]}: pass {flag} {w.shape[0]}")
    if any(s.startswith("stcn_decoder.") or s.startswith("fpn") for s in shapes) and not hints:
        hints.append("decoder widths differ: the checkpoint was trained with another preset (--backbone_type)")
    return hints


def _listing(title: str, keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit]) + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")
    return f"  {title} ({len(keys)}): {shown}"


def _adopt_training_grid(model: nn.Module, pos_embed_new: torch.Tensor | None) -> None:
    """A checkpoint trained at another square size carries another ``pos_embed_new`` grid: the
    model takes that grid (it is resampled to each frame at run time anyway)."""
    if pos_embed_new is None or pos_embed_new.dim() != 3 or pos_embed_new.shape == model.pos_embed_new.shape:
        return
    grid = round((pos_embed_new.shape[1] - 1) ** 0.5)
    if grid * grid + 1 != pos_embed_new.shape[1] or pos_embed_new.shape[2] != model.pos_embed_new.shape[2]:
        return  # reported as a shape mismatch
    model.config = dataclasses.replace(model.config, train_img_size=grid * model.config.patch_size)
    # A new buffer of the checkpoint's grid, on the model's device and in its dtype.
    model.pos_embed_new = model.pos_embed_new.new_zeros(pos_embed_new.shape)


def load_weights(model: nn.Module, source: str | dict, name: str | None = None) -> LoadReport:
    """Loads a checkpoint (path or loaded dict) into a SimVOS model, strictly.

    Returns what was ignored (documented unused keys) and what kept its initialisation
    (SimVOS layers when starting from MAE). Raises CheckpointMismatchError otherwise.
    """
    label = name or (source if isinstance(source, str) else "checkpoint")
    fmt, state = unwrap(read_checkpoint(source) if isinstance(source, str) else source)
    report = LoadReport(format=fmt)
    expected = model.state_dict()
    config = model.config

    if fmt == "mae":
        if "pos_embed" not in state:
            raise CheckpointMismatchError(f"{label}: MAE checkpoint without 'pos_embed'")
        state = dict(state)
        pos = state.pop("pos_embed")
        state["pos_embed_new"] = resample_grid_pos_embed(pos, (config.train_grid, config.train_grid))
        report.initialised = sorted(k for k in expected if not k.startswith(MAE_PREFIXES))

    _adopt_training_grid(model, state.get("pos_embed_new"))
    expected = model.state_dict()
    config = model.config
    uses_tl = config.use_token_learner
    mapped, ignored = {}, []
    for key, value in state.items():
        if _is_unused(key) or (not uses_tl and key.startswith(TOKEN_LEARNER_PREFIXES)):
            ignored.append(key)
        else:
            mapped[key] = value
    if not uses_tl and any(k.startswith(TOKEN_LEARNER_PREFIXES) for k in ignored):
        report.notes.append("the checkpoint carries token-learner weights that this model does not use "
                            "(normal for SimVOS-B/L; for a SimVOS-BS checkpoint pass --layer_index 4 --use_token_learner)")
    missing = sorted(k for k in expected if k not in mapped and k not in report.initialised)
    unexpected = sorted(k for k in mapped if k not in expected)
    shapes = sorted(f"{k} {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                    for k, v in mapped.items() if k in expected and v.shape != expected[k].shape)
    if missing or unexpected or shapes:
        lines = [f"{label}: {fmt} checkpoint does not fit the model ({config.backbone_type}, "
                 f"layer_index {config.layer_index}, token learner {'on' if uses_tl else 'off'})"]
        if missing:
            lines.append(_listing("missing keys", missing))
        if unexpected:
            lines.append(_listing("unexpected keys", unexpected))
        if shapes:
            lines.append(_listing("shape mismatches", shapes))
        lines += [f"  hint: {h}" for h in _hints(model, state, missing, shapes)]
        raise CheckpointMismatchError("\n".join(lines))

    full = {k: (mapped[k] if k in mapped else expected[k]) for k in expected}
    model.load_state_dict(full, strict=True)
    report.ignored = sorted(ignored)
    return report

