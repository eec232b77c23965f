"""Training-state files: atomic writes, the newest loadable one (``--resume auto``), pruning."""
from __future__ import annotations

import errno
import os
import re
import shutil

import torch

from model.checkpoint import CheckpointError, read_checkpoint
from util.errors import InputError
from util.publish import publishing

STATE_FILE = re.compile(r"checkpoint_(\d+)\.pth$")


def atomic_save(obj, path: str) -> None:
    """torch.save into a temporary file, then rename: a crash never leaves a truncated ``path``. A
    failed write (a full disk) is one line (InputError), not torch's ``[enforce fail at inline_container.cc]``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with publishing(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:
        full = exc.errno == errno.ENOSPC if isinstance(exc, OSError) else "write failed" in str(exc)
        if not full:
            raise
        free = shutil.disk_usage(os.path.dirname(path)).free // 2**20
        raise InputError(f"{path}: cannot be written ({free} MB free on its disk: is it full?)") from None


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
