"""Device and precision choices shared by the scripts."""
from __future__ import annotations

import torch


def pick_device(name: str | None = None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precision_name(device: torch.device, amp: bool) -> str:
    if not amp:
        return "fp32"
    return "fp16 autocast" if device.type == "cuda" else "bf16 autocast"


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident memory (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
