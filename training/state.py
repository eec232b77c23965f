"""Training-state files: atomic writes, the newest loadable one (``--resume auto``), pruning."""
from __future__ import annotations

import errno
import os
import re

import torch

from model.checkpoint import CheckpointError, read_checkpoint
from util.errors import InputError
from util.publish import publishing

STATE_FILE = re.compile(r"checkpoint_(\d+)\.pth$")


# Write errors the user can act on (free space, a quota, permissions), reported as one line.
_FIXABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def atomic_save(obj, path: str) -> None:
    """torch.save into a temporary file, then rename: a crash never leaves a truncated ``path``.
    A full disk (or a quota, a read-only folder) is an InputError naming ``path``, the temporary
    file removed."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Through a Python file: torch's own writer reports a full disk as an internal 'enforce fail'.
        with publishing(path) as tmp, open(tmp, "wb") as f:
            torch.save(obj, f)
    except OSError as exc:
        if exc.errno in _FIXABLE:
            raise InputError(f"{path}: cannot be written: {exc.strerror}", path) from None
        raise


def state_files(save_dir: str) -> list[tuple[int, str]]:
    """Full-state files ``checkpoint_<it>.pth`` of a run, newest first."""
    if not os.path.isdir(save_dir):
        return []
    found = [(int(m.group(1)), os.path.join(save_dir, f)) for f in os.listdir(save_dir) if (m := STATE_FILE.match(f))]
    return sorted(found, reverse=True)


def read_state(path: str) -> dict:
    state = read_checkpoint(path)
    missing = [k for k in ("network", "optimizer", "scheduler", "it") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training state (no {', '.join(missing)}; use --load_network for weights only)")
    return state


def newest_state(save_dir: str, report=print) -> tuple[str, dict] | None:
    """The newest full-state file that loads; each one that does not is reported and skipped."""
    for _, path in state_files(save_dir):
        try:
            return path, read_state(path)
        except CheckpointError as exc:
            report(f"warning: skipping {exc}")
    return None


def prune_states(save_dir: str, keep: int) -> None:
    """Deletes all but the newest ``keep`` full-state files (weights files ``model_<it>.pth`` stay)."""
    for _, path in state_files(save_dir)[keep:]:
        os.remove(path)
