"""What the predictor yields for each frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
