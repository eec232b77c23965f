"""Device and precision policy shared by every layer: which device, whether and how to autocast."""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import resource
import sys

import torch

from util.errors import InputError


def pick_device(name: str | None = None, local_rank: int | None = None) -> torch.device:
    """The requested device, or CUDA when available (GPU ``local_rank`` under a launcher), else CPU."""
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine")
        if device.type == "cuda" and device.index is None and local_rank is not None:
            return torch.device("cuda", local_rank)  # --device cuda under a launcher: one GPU per rank
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank) if local_rank is not None else torch.device("cuda")
    return torch.device("cpu")


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX on x86, the BF16 extension on Arm: without them bf16 is emulated, slower
    than fp32. (oneDNN's own check, ``mkldnn._is_mkldnn_bf16_supported``, also says yes on plain
    AVX-512, where it emulates bf16: measured 2x slower than fp32 on an Ice Lake Xeon.) Asked once:
    autocast_for calls it every frame and every training step."""
    try:
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            return True
    except AttributeError:
        pass
    if platform.machine().lower() in ("aarch64", "arm64") and os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("Features") and "bf16" in line.split() for line in f)
    return False


def amp_supported(device: torch.device) -> bool:
    """--amp runs mixed precision on CUDA, and on CPUs with native bf16; elsewhere it is fp32."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def autocast_dtype(device: torch.device) -> torch.dtype:
    """fp16 on CUDA (as published), bf16 on CPU."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def autocast_for(device: torch.device, enabled: bool):
    """The autocast context of :func:`autocast_dtype` where :func:`amp_supported`; else a no-op."""
    if not enabled or not amp_supported(device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype(device))


def precision_name(device: torch.device, amp: bool) -> str:
    if not amp:
        return "fp32"
    if not amp_supported(device):
        return "fp32 (--amp ignored: this CPU has no native bf16)"
    return "fp16 autocast" if device.type == "cuda" else "bf16 autocast"


def warn_if_amp_unsupported(device: torch.device, amp: bool) -> None:
    if amp and not amp_supported(device):
        print("warning: --amp: this CPU has no native bf16 (AVX512-BF16/AMX), where bf16 is emulated and "
              "slower than fp32: running in fp32", file=sys.stderr)


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident memory (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Linux: VmHWM is this process's own peak (ru_maxrss also counts the parent's size at the fork).
    if os.path.isfile("/proc/self/status"):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
