"""The per-checkpoint loop both evaluation scripts run: build, segment this process's share, report."""
from __future__ import annotations

import os
from typing import Callable

from evaluation.runner import PlannedSequence, RunStats, all_complete, run_sequences
from evaluation.sharding import Shard
from inference_core.cli import checkpoint_files, predictor_options
from inference_core.predictor import build_predictor
from model.flags import config_from_args
from model.variants import recorded_model_flags


def evaluate_checkpoints(args, shard: Shard, plans: list[PlannedSequence], output_of: Callable[[str], str],
                         finish: Callable[[str, str], None], waiting: str, scores_of: Callable[[str], str] | None = None,
                         independent_objects: bool = False) -> None:
    """For every checkpoint of ``--model_path``: segment ``plans`` into ``output_of(name)`` (frames
    as given, the published memory: the published evaluation; ``independent_objects``: each object
    against the background only); on the reporting rank, print the summary and call
    ``finish(name, out)`` once every sequence is complete, else say ``waiting``."""
    config = config_from_args(args)  # the flags given (a note first when they name no published network)
    for ckpt in checkpoint_files(args.model_path):
        name = os.path.splitext(os.path.basename(ckpt))[0]
        # With no model flag given, a checkpoint that records its flags (our training's sidecar) gives them.
        predictor = build_predictor(ckpt, config_from_args(args, ckpt) if recorded_model_flags(ckpt) else config, shard.device, args.amp, args.max_objects_per_batch, size=-1,
                                    independent_objects=independent_objects, **predictor_options(args))
        out = output_of(name)
        if shard.reports:
            print(f"{ckpt} -> {out} ({shard.describe()})")
        stats: RunStats = run_sequences(predictor, plans, out, scores_of(name) if scores_of else None,
                                        args.overwrite, shard)
        if not shard.reports:
            continue
        print(stats.summary(predictor.device, args.amp))
        if all_complete(plans, out):
            finish(name, out)
        else:
            print(f"{waiting}: other shards are still writing {out} (the last shard to finish, or a call "
                  "without --num_shards, does it)")
