"""User-facing video predictor: raw RGB frames and label maps in, probabilities out.

    predictor = SimVOSPredictor.from_checkpoint("simvos_bs.pth", layer_index=4, use_token_learner=True)
    for result in predictor.propagate(frames, masks={0: first_mask}):
        labels = result.labels()          # [H, W] uint8 object ids

:func:`build_predictor` (build the network, load a checkpoint strictly, pick the device) is the
one way every script and the Python API make a predictor.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from evaluation.engine import InferenceCore
from model import ModelConfig, build_model, config_from_flags
from model.flags import add_bool_flag
from model.checkpoint import load_weights
from model.inputs import centre_pad, image_to_tensor, pad, unpad
from util.device import pick_device, warn_if_amp_unsupported
from util.errors import InputError

CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt")


@dataclass
class FrameResult:
    """index: frame number; object_ids: ids in channel order (ascending);
    probs: [K+1, H, W] float32 at the frame's size, background first."""

    index: int
    object_ids: list[int]
    probs: torch.Tensor

    def labels(self) -> np.ndarray:
        """Argmax mapped back to the object ids: [H, W] uint8 (0 = background)."""
        lut = torch.tensor([0] + self.object_ids, dtype=torch.uint8, device=self.probs.device)
        return lut[self.probs.argmax(dim=0)].cpu().numpy()


class VideoSession:
    """One video: ``step(rgb, mask=None)`` per frame, in order."""

    def __init__(self, predictor: "SimVOSPredictor"):
        self.predictor = predictor
        self.core = InferenceCore(predictor.model, predictor.amp, predictor.max_objects_per_batch)
        self.index = 0

    def step(self, rgb: np.ndarray, mask: np.ndarray | None = None, objects: Iterable[int] | None = None) -> FrameResult:
        """rgb [H, W, 3] uint8; mask [H, W] label map with objects first annotated on this frame
        (``objects`` restricts which labels of it are taken; 0 and 255 are never objects)."""
        height, width = rgb.shape[:2]
        padding = centre_pad(height, width)
        frame = pad(image_to_tensor(rgb, self.predictor.device), padding)
        new_masks = None
        if mask is not None:
            if mask.shape != (height, width):
                raise InputError(f"frame {self.index}: mask is {mask.shape[1]}x{mask.shape[0]} but the frame is {width}x{height}")
            ids = [int(i) for i in np.unique(mask) if i not in (0, 255)]
            if objects is not None:
                wanted = set(objects)
                ids = [i for i in ids if i in wanted]
            labels = pad(torch.from_numpy(mask).to(self.predictor.device), padding)
            new_masks = {i: (labels == i).float() for i in ids}
        ids, probs = self.core.step(frame, new_masks)
        result = FrameResult(self.index, ids, unpad(probs, padding))
        self.index += 1
        return result


class SimVOSPredictor:
    """A network on its device (picked here: ``device`` or CUDA when available, else CPU) with the
    precision policy (``amp``) and the object chunking (``max_objects_per_batch``) of its videos."""

    def __init__(self, model, device: torch.device | str | None = None, amp: bool = False,
                 max_objects_per_batch: int | None = None):
        self.device = pick_device(str(device) if device is not None else None)
        warn_if_amp_unsupported(self.device, amp)
        self.model = model.to(self.device).eval()
        self.amp = amp
        self.max_objects_per_batch = max_objects_per_batch

    @classmethod
    def from_checkpoint(cls, path: str, device=None, amp: bool = False, max_objects_per_batch=None,
                        **model_flags) -> "SimVOSPredictor":
        """model_flags: the published flags (backbone_type, layer_index, use_token_learner, ...)."""
        return build_predictor(path, config_from_flags(**model_flags), device, amp, max_objects_per_batch)

    def session(self) -> VideoSession:
        return VideoSession(self)

    def propagate(self, frames: Iterable[np.ndarray], masks: dict[int, np.ndarray]) -> Iterator[FrameResult]:
        """frames: RGB [H, W, 3] uint8, read lazily; masks: {frame index: label map}."""
        session = self.session()
        for index, rgb in enumerate(frames):
            yield session.step(rgb, masks.get(index))


def build_predictor(checkpoint: str, config: ModelConfig, device: torch.device | str | None = None,
                    amp: bool = False, max_objects_per_batch: int | None = None) -> SimVOSPredictor:
    """Builds the network of ``config``, loads ``checkpoint`` strictly (any supported format) and
    wraps it; prints the loader's notes (e.g. unused token learners in a SimVOS-B checkpoint)."""
    model = build_model(config)
    report = load_weights(model, checkpoint)
    for note in report.notes:
        print(f"note: {checkpoint}: {note}")
    return SimVOSPredictor(model, device, amp, max_objects_per_batch)


def add_predictor_flags(parser) -> None:
    """--amp, --device, --max_objects_per_batch: how a predictor runs (the scripts share them)."""
    add_bool_flag(parser, "--amp", False, "fp16 autocast on CUDA, bf16 on CPUs with native bf16")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA if available)")
    parser.add_argument("--max_objects_per_batch", type=int, default=None, help="chunk objects to bound memory")


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
