"""``--compile``: the network's per-frame stages through ``torch.compile`` (off by default).

Within a video every frame has the same shape, so each stage (``encode_query``, ``encode_memory``,
``segment``) is compiled for static shapes: one graph per shape seen (a new video size, object count
or memory length compiles once more; past torch's recompile limit a stage runs eagerly). Modes are
torch's: ``default`` (fused kernels), ``reduce-overhead`` (+ CUDA graphs on CUDA: one replay per
stage, no per-kernel launches), ``max-autotune`` (+ autotuned matmuls, CUDA graphs). Compiled results
equal the eager ones to float rounding (fusion reorders sums), not bit for bit.

The engine keeps stage outputs across frames (the memory) while CUDA graphs reuse their output
buffers at the next replay: under CUDA graphs each output is copied out before it is returned.
"""
from __future__ import annotations

import torch

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
STAGES = ("encode_query", "encode_memory", "segment")


def uses_cuda_graphs(mode: str, device: torch.device) -> bool:
    return device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")


class CompiledStages:
    """A SimVOS network whose inference stages run compiled; otherwise the same interface the engine
    uses (``config``, ``grid_size``, ``parameters``, the three stages). Holds no per-video state:
    one object serves every session of a predictor, so each shape compiles once."""

    def __init__(self, model, mode: str = "default"):
        if mode not in COMPILE_MODES or mode == "off":
            raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES[1:])}, got {mode!r}")
        self.model = model
        self.mode = mode
        self.config = model.config
        self.grid_size = model.grid_size
        self.cuda_graphs = uses_cuda_graphs(mode, next(model.parameters()).device)
        self._compiled = {name: torch.compile(getattr(model, name), mode=mode, dynamic=False) for name in STAGES}

    def parameters(self):
        return self.model.parameters()

    def _call(self, name: str, *args):
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
            return self._compiled[name](*args).clone()
        return self._compiled[name](*args)

    def encode_query(self, frames: torch.Tensor) -> torch.Tensor:
        return self._call("encode_query", frames)

    def encode_memory(self, frames: torch.Tensor, object_masks: torch.Tensor) -> torch.Tensor:
        return self._call("encode_memory", frames, object_masks)

    def segment(self, memory: torch.Tensor, query: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        return self._call("segment", memory, query, grid_hw)


def compiled_network(model, mode: str | None):
    """``model`` itself for ``off``/None, else its :class:`CompiledStages`."""
    if mode in (None, "off"):
        return model
    return CompiledStages(model, mode)
