"""Train SimVOS (docs/method.md, section 7) with torch.distributed.

    python -m torch.distributed.launch --master_port 9842 --nproc_per_node=8 train_simvos.py --id retrain_s03 --stage 3
    torchrun --nproc_per_node=N train_simvos.py --id retrain_s03 --stage 3 [--layer_index 0 --use_token_learner False]
    python train_simvos.py --id cpu_try --stage 3 --backbone_type vit_tiny --pretrained none --yv_root none
    python train_simvos.py --id mine --finetune my_videos/ --load_network CK [--minutes 30 | --iterations N] [--val DIR | --val_videos 2]
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import errno
import sys

from torch.utils.data import DataLoader

from evaluation.own_videos import score_videos
from inference_core.predictor import DEFAULT_SIZE, SimVOSPredictor
from training.cli import parse_args as training_args
from training.config import check_command_line, finetune_settings, resolve_config
from training.data import SeededSampler, collate_samples
from training.finetune import FinetuneStrategy, FinetuneVideos, crop_size_for
from training.strategy import PublishedStage
from training.trainer import Trainer
from util.cli import run_cli
from util.device import precision_name
from util.distributed import cleanup, init_distributed
from util.errors import InputError
from util.run_events import EventWriter, Failed


def parse_args(argv=None) -> argparse.Namespace:
    return training_args(argv, __doc__)


def validation_of(videos, device, size: int):
    """net -> J&F of ``videos`` (first-frame protocol, evaluation/own_videos.py, frames at ``size``), the net in eval mode."""
    def validate(net) -> float:
        return score_videos(videos, SimVOSPredictor(net, device, size=size, overlap_io=False))["J&F"]
    return validate


def report_failure(events: EventWriter | None, error: InputError) -> None:
    """The ``failed`` event of ``error``, where the stream can still be written (not on a full disk)."""
    if events is not None:
        try:
            events.emit(Failed(str(error), error.path))
        except OSError:
            pass


def main(argv=None) -> None:
    args = parse_args(argv)
    info = init_distributed(args.local_rank, args.device)
    try:
        events = EventWriter(args.events) if args.events and info.is_main else None
    except OSError as exc:
        cleanup(info)
        raise InputError(f"{args.events}: cannot write the events file ({exc.strerror})", args.events) from None
    try:
        train(args, info, events)
    except InputError as exc:
        report_failure(events, exc)
        raise
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        full = InputError(f"{exc.filename or args.save_dir}: cannot be written: {exc.strerror}", exc.filename)
        report_failure(events, full)
        raise full from None
    finally:
        if events is not None:
            events.close()
        cleanup(info)


def train(args, info, events) -> None:
    """The run of ``main`` once the processes are set up: the config resolved once, then trained."""
    if args.finetune:
        check_command_line(args)   # before the videos are read
        videos = FinetuneVideos.find(finetune_settings(args))
        config = resolve_config(args, info.device.type, crop_size_for(videos.train))
        validate = validation_of(videos.val, info.device, DEFAULT_SIZE) if videos.val else None
        strategy = FinetuneStrategy(config, videos, validate)
    else:
        config = resolve_config(args, info.device.type)
        strategy = PublishedStage(config)
    dataset, sizes = strategy.dataset()
    sampler = SeededSampler(dataset, info.world_size, info.rank, config.seed)
    batches_per_epoch = len(sampler) // config.batch_size
    if batches_per_epoch == 0:
        raise InputError(f"{sizes['samples_per_epoch']} samples over {info.world_size} process(es) is less than "
                         f"one batch of {config.batch_size}: lower --batch_size")
    trainer = Trainer(config, info, batches_per_epoch, strategy, events)
    # Samples do not depend on worker RNG (see training/data.py): any --num_workers gives the same batches.
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                        collate_fn=collate_samples, drop_last=True, pin_memory=info.device.type == "cuda",
                        persistent_workers=config.num_workers > 0)
    if info.is_main:
        lr = config.lr
        plan = (f"iterations: as many as --minutes {config.finetune.minutes:g} holds" if trainer.plan is None else
                f"iterations {trainer.plan.iterations} (lr x{lr.gamma} at {list(trainer.plan.lr.steps)})")
        print(f"world size {info.world_size}, batch {config.batch_size} per process = {config.batch_size * info.world_size} "
              f"global, lr {lr.base}" + (f" (warm-up {lr.warmup})" if lr.warmup else "") + f", {plan}, "
              f"image {config.img_size}, {info.device.type} {precision_name(info.device, config.amp)}; data: "
              + ", ".join(f"{k} {v}" for k, v in sizes.items()) + f"; {trainer.resumed}", flush=True)
    trainer.train(loader, sampler)
    # One write of one short line, after everything buffered before it: the ranks share one pipe,
    # and a write of at most PIPE_BUF bytes is never interleaved with another process's.
    sys.stdout.flush()
    sys.stdout.write(f"rank {info.rank} weights checksum {trainer.weights_checksum():.12e}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    run_cli(main, "the training state was saved at the last completed iteration")
