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

import os
import pickle
import re
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
    """torch.load on CPU, tensors and plain containers only. A file it cannot load is a
    CheckpointError saying what the file is (text, an image, a foreign pickle, ...)."""
    if os.path.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pt", ".ckpt")))
        raise CheckpointError(f"{path}: a folder, not a checkpoint file" +
                              (f"; give the checkpoint in it ({', '.join(inside)})" if inside else ""))
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    # torch.load on bytes that are not a checkpoint raises almost anything (KeyError for some text,
    # IndexError or UnicodeDecodeError from the unpickler, BadZipFile, RuntimeError, EOFError, ...):
    # every failure to load an existing file is a fact about the file.
    except Exception as exc:
        raise CheckpointError(f"{path}: {_unreadable_reason(path, exc)}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


_IMAGE_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image"}


def _is_text(head: bytes) -> bool:
    """The first bytes of a file read as UTF-8 text (no NUL, printable or whitespace characters)."""
    if b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return False
        text = head[:exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\n\r\f\v" for c in text)


def _unreadable_reason(path: str, exc: BaseException) -> str:
    """One line a user can act on (torch's own message advises weights_only=False, which is no fix)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    link = f" (it links to {os.path.realpath(path)})" if os.path.islink(path) else ""
    if not head:
        return "empty file, not a PyTorch checkpoint" + link
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return f"this is {what}, not a PyTorch checkpoint (.pth)" + link
    if _is_text(head):
        sidecar = " (a sidecar of model flags? give the .pth file beside it)" if head.lstrip().startswith(b"{") else ""
        return f"this is a text file, not a PyTorch checkpoint (.pth){sidecar}" + link
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
        return ("not a checkpoint of tensors (a foreign pickle, or a file that holds objects other than weights); "
                "give a .pth file of weights" + link)
    return "not a PyTorch checkpoint (.pth), or a truncated one (an interrupted download or copy?)" + link


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


def backbone_shape(state: dict[str, torch.Tensor]) -> tuple[int, int, str | None] | None:
    """(width, depth, the preset of that size or None) of a state_dict's ViT (None: no ViT in it)."""
    weight = state.get("patch_embed.proj.weight")
    depths = [int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))]
    if weight is None or not depths:
        return None
    dim, depth = weight.shape[0], max(depths) + 1
    return dim, depth, next((n for n, p in PRESETS.items() if p.embed_dim == dim and p.depth == depth), None)


def _describe_backbone(state: dict[str, torch.Tensor]) -> str | None:
    shape = backbone_shape(state)
    if shape is None:
        return None
    dim, depth, preset = shape
    return f"dim {dim}, depth {depth}" + (f" (--backbone_type {preset})" if preset else "")


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
    trained = training_img_size(state, config)
    if trained is not None and trained != config.train_img_size:
        hints.append(f"the checkpoint was trained at {trained}x{trained}: build the model with "
                     f"train_img_size={trained} (build_predictor does), or load with resample_pos_embed=True")
    if any(s.startswith("stcn_decoder.") or s.startswith("fpn") for s in shapes) and not hints:
        hints.append("decoder widths differ: the checkpoint was trained with another preset (--backbone_type)")
    return hints


def _listing(title: str, keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit]) + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")
    return f"  {title} ({len(keys)}): {shown}"


def training_img_size(state: dict[str, torch.Tensor], config) -> int | None:
    """The square training size a state_dict's ``pos_embed_new`` grid stands for (None: no such
    key, or not a square grid of the config's width)."""
    pos = state.get("pos_embed_new")
    if pos is None or pos.dim() != 3 or pos.shape[2] != config.embed_dim:
        return None
    grid = round((pos.shape[1] - 1) ** 0.5)
    return grid * config.patch_size if grid * grid + 1 == pos.shape[1] else None


def load_weights(model: nn.Module, source: str | dict, name: str | None = None,
                 resample_pos_embed: bool = False) -> LoadReport:
    """Loads a checkpoint (path or loaded dict) into a SimVOS model, strictly. The model is not
    changed otherwise: a checkpoint trained at another size has another ``pos_embed_new`` grid, a
    shape mismatch, unless the model was built for it (``training_img_size``, as build_predictor
    does) or ``resample_pos_embed`` (fine-tuning at a new size: the grid is resampled, as for MAE).

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

    pos = state.get("pos_embed_new")
    trained = training_img_size(state, config) if fmt != "mae" else None
    if resample_pos_embed and trained is not None and trained != config.train_img_size:
        state = {**state, "pos_embed_new": resample_grid_pos_embed(pos, (config.train_grid, config.train_grid))}
        report.notes.append(f"pos_embed_new resampled from the checkpoint's {trained}x{trained} training grid "
                            f"to {config.train_img_size}x{config.train_img_size}")
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

