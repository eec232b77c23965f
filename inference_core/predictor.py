"""User-facing video predictor: raw RGB frames and label maps in, probabilities out.

    predictor = SimVOSPredictor.from_checkpoint("simvos_bs.pth", layer_index=4, use_token_learner=True)
    for result in predictor.propagate(frames, masks={0: first_mask}):
        labels = result.labels()          # [H, W] uint8 object ids
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from inference_core.engine import InferenceCore
from inference_core.preprocess import centre_pad, image_to_tensor, pad, unpad
from model import build_model, config_from_flags
from model.checkpoint import load_weights
from util.device import pick_device
from util.errors import InputError


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
                ids = [i for i in ids if i in set(objects)]
            labels = pad(torch.from_numpy(mask).to(self.predictor.device), padding)
            new_masks = {i: (labels == i).float() for i in ids}
        ids, probs = self.core.step(frame, new_masks)
        result = FrameResult(self.index, ids, unpad(probs, padding))
        self.index += 1
        return result


class SimVOSPredictor:
    def __init__(self, model, device: torch.device | str | None = None, amp: bool = False,
                 max_objects_per_batch: int | None = None):
        self.device = pick_device(str(device) if device is not None else None)
        self.model = model.to(self.device).eval()
        self.amp = amp
        self.max_objects_per_batch = max_objects_per_batch

    @classmethod
    def from_checkpoint(cls, path: str, device=None, amp: bool = False, max_objects_per_batch=None,
                        **model_flags) -> "SimVOSPredictor":
        """model_flags: the published flags (backbone_type, layer_index, use_token_learner, ...)."""
        model = build_model(config_from_flags(**model_flags))
        load_weights(model, path)
        return cls(model, device, amp, max_objects_per_batch)

    def session(self) -> VideoSession:
        return VideoSession(self)

    def propagate(self, frames: Iterable[np.ndarray], masks: dict[int, np.ndarray]) -> Iterator[FrameResult]:
        """frames: RGB [H, W, 3] uint8, read lazily; masks: {frame index: label map}."""
        session = self.session()
        for index, rgb in enumerate(frames):
            yield session.step(rgb, masks.get(index))
