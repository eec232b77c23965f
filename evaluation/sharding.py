"""Evaluation over several processes: launcher ranks (torchrun, torch.distributed.launch, multi-node),
job-array shards (``--num_shards S --shard_id I``), or both (shard I of S, each a launcher job).

Each process takes a disjoint, deterministic share of the sequences (longest first to the least
loaded, by frames x objects); the masks need no communication. Ranks of one launcher job agree once
at the end (did any fail? how long did each take?) over Gloo (CPU) or NCCL (CUDA).
"""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from util.cli import describe_args
from util.distributed import DistInfo, cleanup, init_distributed
from util.errors import InputError


def add_shard_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sharding (see also torchrun --nproc_per_node)")
    g.add_argument("--num_shards", type=int, default=1, help="split the sequences into this many job-array shards")
    g.add_argument("--shard_id", type=int, default=0, help="this job's shard, 0..num_shards-1")
    g.add_argument("--local_rank", "--local-rank", type=int, default=None, help="set by torch.distributed.launch")


@dataclass
class Shard:
    """This process's share: ``index`` of ``count`` (job-array shard x launcher rank)."""

    index: int
    count: int
    num_shards: int
    dist: DistInfo

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def reports(self) -> bool:
        """Shows progress, the summary, and scores: rank 0 of its launcher job (every job-array job)."""
        return self.dist.is_main

    def describe(self) -> str:
        parts = []
        if self.num_shards > 1:
            parts.append(f"shard {self.index // self.dist.world_size} of {self.num_shards}")
        if self.dist.enabled:
            parts.append(f"{self.dist.world_size} ranks")
        return ", ".join(parts) or "one process"


def shard_from_args(args: argparse.Namespace) -> Shard:
    if args.num_shards < 1:
        raise InputError(f"--num_shards must be at least 1, got {args.num_shards}")
    if not 0 <= args.shard_id < args.num_shards:
        raise InputError(f"--shard_id must be in [0, {args.num_shards - 1}], got {args.shard_id}")
    info = init_distributed(args.local_rank, args.device)
    return Shard(args.shard_id * info.world_size + info.rank, args.num_shards * info.world_size, args.num_shards, info)


@contextlib.contextmanager
def sharded(args: argparse.Namespace) -> Iterator[Shard]:
    """This process's shard for a script's run (the flags echoed once); the process group is
    closed at the end, whatever happens."""
    shard = shard_from_args(args)
    try:
        if shard.reports:
            print(describe_args(args))
        yield shard
    finally:
        cleanup(shard.dist)


def balance(costs: list[int], count: int) -> list[list[int]]:
    """Indices of ``costs`` per share: longest first, each to the least-loaded share (lowest index
    on ties). Deterministic for a given list and count."""
    shares: list[list[int]] = [[] for _ in range(count)]
    loads = [0] * count
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        target = min(range(count), key=lambda r: (loads[r], r))
        shares[target].append(i)
        loads[target] += costs[i]
    return shares


def agree(shard: Shard, failed: bool, frames: int, seconds: float) -> tuple[bool, list[tuple[int, float]]]:
    """Called by every rank of a launcher job at the end: -> (did any rank fail, [(frames, seconds)
    per rank]). Without a launcher: this process's own values."""
    info = shard.dist
    if not info.enabled:
        return failed, [(frames, seconds)]
    table = torch.zeros(info.world_size, 3, dtype=torch.float64, device=info.device)
    table[info.rank] = torch.tensor([float(failed), frames, seconds], dtype=torch.float64)
    dist.all_reduce(table)
    rows = table.cpu().tolist()
    return any(r[0] > 0 for r in rows), [(int(r[1]), r[2]) for r in rows]
