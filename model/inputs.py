"""The network's input contract: RGB in [0, 1] normalised with the ImageNet mean / std (docs/method.md,
section 1), frames padded to multiples of the patch size, centred (docs/method.md, section 5)."""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """[H, W, 3] uint8 RGB -> [1, 3, H, W] float32, in [0, 1] then ImageNet-normalised."""
    if not (rgb.flags.writeable and rgb.flags.c_contiguous):
        rgb = np.array(rgb, order="C")  # torch.from_numpy needs a writable, contiguous array
    host = torch.from_numpy(rgb)
    if torch.device(device).type == "cuda":  # pinned memory: an asynchronous upload, no host sync
        x = host.pin_memory().to(device, non_blocking=True)
    else:
        x = host.to(device)
    x = x.permute(2, 0, 1).float().div_(255)
    mean, std = _normalisation(x.device)
    return ((x - mean) / std).unsqueeze(0)


@functools.lru_cache(maxsize=None)
def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std [3, 1, 1] on ``device``, made once (no per-frame upload)."""
    return (torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1),
            torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1))


def centre_pad(height: int, width: int, multiple: int = 16) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that makes H, W multiples; extra row/col bottom/right."""
    new_h, new_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return left, new_w - width - left, top, new_h - height - top


def pad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """[..., H, W] -> [..., H', W'] zero-padded by (left, right, top, bottom)."""
    return F.pad(x, padding) if any(padding) else x


def unpad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Inverse of :func:`pad`."""
    left, right, top, bottom = padding
    return x[..., top: x.shape[-2] - bottom, left: x.shape[-1] - right]
