"""Device and precision choices shared by the scripts."""
from __future__ import annotations

import sys

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
    from inference_core.engine import amp_supported
    if not amp:
        return "fp32"
    if not amp_supported(device):
        return "fp32 (--amp ignored: this CPU has no native bf16)"
    return "fp16 autocast" if device.type == "cuda" else "bf16 autocast"


def warn_if_amp_unsupported(device: torch.device, amp: bool) -> None:
    from inference_core.engine import amp_supported
    if amp and not amp_supported(device):
        print("warning: --amp: this CPU has no native bf16 (AVX512-BF16/AMX), where bf16 is emulated and "
              "slower than fp32: running in fp32", file=sys.stderr)


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident memory (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
