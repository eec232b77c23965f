"""torch.distributed set-up from the launcher's environment (torchrun or torch.distributed.launch)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from util.device import pick_device


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(local_rank_flag: int | None = None, device_name: str | None = None) -> DistInfo:
    """Rank / world size / local rank from RANK, WORLD_SIZE, LOCAL_RANK (or the old launcher's
    --local_rank); NCCL on CUDA, Gloo on CPU. One process without a launcher needs nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank_flag if local_rank_flag is not None else 0))
    device = pick_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _attempt_store(world_size)
        if store is None:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, device)


def _attempt_store(world_size: int) -> dist.Store | None:
    """Under torchrun the workers share the agent's TCPStore, which keeps the keys of the previous
    attempt after an elastic restart (--max-restarts): a restarted rank then reads the address of
    a rank that died and the process group fails to form (pytorch issue 135712). Each attempt gets
    its own key prefix. None (the default init) outside torchrun or without a shared store."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=False, timeout=timedelta(minutes=30))
    return dist.PrefixStore(f"attempt{restart}", store)


def all_reduce_max(value: float, info: DistInfo) -> float:
    """Max of a scalar over ranks (e.g. 'any rank saw a non-finite loss' or 'any rank got a signal')."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
