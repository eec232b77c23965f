"""What the predictor yields for each frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FrameResult:
    """index: frame number; object_ids: ids in channel order (ascending);
    probs: [K+1, H, W] float32 at the frame's size, background first. independent: the objects
    were segmented each against the background only (inference_core/engine.py): channel k+1 is
    object k's own probability and the masks may overlap."""

    index: int
    object_ids: list[int]
    probs: torch.Tensor
    independent: bool = False

    def labels(self) -> np.ndarray:
        """Argmax mapped back to the object ids: [H, W] uint8 (0 = background). Independent
        objects: a pixel goes to the most confident of the objects whose own mask holds it (the
        lowest id on ties)."""
        lut = torch.tensor([0] + self.object_ids, dtype=torch.uint8, device=self.probs.device)
        return lut[self.probs.argmax(dim=0)].cpu().numpy()

    def object_masks(self) -> np.ndarray:
        """[K, H, W] bool, one mask per object of ``object_ids``: independent objects their own
        masks (probability above one half, overlaps kept); else the label map split by object."""
        if self.independent:
            return (self.probs[1:] > 0.5).cpu().numpy()
        labels = self.labels()
        return np.stack([labels == i for i in self.object_ids]) if self.object_ids else \
            np.zeros((0, *labels.shape), bool)
