"""Train SimVOS (spec section 7) with torch.distributed.

    python -m torch.distributed.launch --master_port 9842 --nproc_per_node=8 train_simvos.py --id retrain_s03 --stage 3
    torchrun --nproc_per_node=N train_simvos.py --id retrain_s03 --stage 3 [--layer_index 0 --use_token_learner False]
    python train_simvos.py --id cpu_try --stage 3 --backbone_type vit_tiny --pretrained none --yv_root none
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from dataset.davis import read_split
from dataset.vos_pairs import VOSPairDataset, scan_videos
from inference_core.engine import autocast_for
from inference_core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from model import build_model
from model.aggregate import aggregate_logits
from model.checkpoint import load_weights, read_checkpoint
from model.losses import bootstrap_fraction, iou, pair_loss
from util.args import add_model_flags, config_from_args
from util.cli import run_cli
from util.device import precision_name
from util.distributed import all_reduce_max, cleanup, init_distributed
from util.errors import InputError

# Stage presets; every value can be overridden by its flag.
STAGES = {
    3: dict(lr=2e-5, weight_decay=1e-7, iterations=210000, steps=[125000], gamma=0.1, batch_size=4, img_size=384,
            start_warm=20000, end_warm=70000, drop_path=0.1, davis_repeat=5, davis_max_jump=10, yv_max_jump=2),
}
DEFAULT_SEED = 14159265
MAE_DEFAULTS = {"vit_base": "pretrained_models/mae_pretrain_vit_base.pth",
                "vit_large": "pretrained_models/mae_pretrain_vit_large.pth"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", default="NULL", help="experiment name: saves/<id>, runs/<id>")
    p.add_argument("--stage", type=int, default=3, choices=sorted(STAGES))
    p.add_argument("--davis_root", default="../DAVIS", help="holds 2017/trainval (or is that folder)")
    p.add_argument("--yv_root", default="../YouTube", help="holds train_480p (or train); 'none' to train on DAVIS only")
    p.add_argument("--yv_subset", default=None, help="a file listing the YouTube-VOS videos to use")
    add_model_flags(p, layer_index=4, use_token_learner=True)
    p.add_argument("--pretrained", default=None,
                   help="MAE checkpoint (default pretrained_models/mae_pretrain_<size>.pth); 'none' = from scratch")
    for name, value in STAGES[3].items():
        kind = type(value[0]) if isinstance(value, list) else type(value)
        p.add_argument(f"--{name}", type=kind, nargs="+" if isinstance(value, list) else None, default=None,
                       help=f"stage preset: {value}")
    p.add_argument("--warmup", type=int, default=0,
                   help="linear learning-rate warm-up over this many iterations (published: 0); helps from scratch")
    p.add_argument("--num_workers", type=int, default=4)
    p.add_argument("--no_amp", action="store_true", help="fp32 (default: fp16 autocast + grad scaler on CUDA, bf16 on CPU)")
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--image_every", type=int, default=2000)
    p.add_argument("--save_every", type=int, default=10000)
    p.add_argument("--save_dir", default="saves")
    p.add_argument("--log_dir", default="runs")
    p.add_argument("--load_model", default=None, help="a full training state to resume from")
    p.add_argument("--load_network", default=None, help="weights only (any supported format)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--device", default=None)
    p.add_argument("--max_nonfinite", type=int, default=20, help="stop after this many non-finite losses in a row")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help="set by torch.distributed.launch")
    args = p.parse_args(argv)
    for name, value in STAGES[args.stage].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _find_root(root: str, candidates: list[str], what: str, flag: str) -> str:
    for sub in candidates:
        path = os.path.join(root, sub)
        if os.path.isdir(os.path.join(path, "JPEGImages")):
            return path
    tried = ", ".join(os.path.join(root, s, "JPEGImages") for s in candidates)
    raise InputError(f"{flag} {root}: no {what} found (looked for {tried})")


def build_datasets(args) -> tuple[ConcatDataset, dict]:
    davis = _find_root(args.davis_root, ["2017/trainval", "trainval", ""], "DAVIS-2017 trainval", "--davis_root")
    names = read_split(os.path.join(davis, "ImageSets", "2017", "train.txt"))
    davis_videos = scan_videos(os.path.join(davis, "JPEGImages", "480p"), os.path.join(davis, "Annotations", "480p"), names)
    parts = [VOSPairDataset(davis_videos, args.davis_max_jump, args.img_size)] * args.davis_repeat
    sizes = {"davis_videos": len(davis_videos)}
    if args.yv_root.lower() != "none":
        yv = _find_root(args.yv_root, ["train_480p", "train", ""], "YouTube-VOS train", "--yv_root")
        subset = read_split(args.yv_subset) if args.yv_subset else None
        yv_videos = scan_videos(os.path.join(yv, "JPEGImages"), os.path.join(yv, "Annotations"), subset)
        parts.append(VOSPairDataset(yv_videos, args.yv_max_jump, args.img_size))
        sizes["youtube_videos"] = len(yv_videos)
    dataset = ConcatDataset(parts)
    sizes["samples_per_epoch"] = len(dataset)
    return dataset, sizes


def lr_factor(iteration: int, warmup: int, steps: list[int], gamma: float) -> float:
    """Multiplier of the base learning rate after ``iteration`` optimiser steps: linear warm-up over
    ``warmup`` steps, then x ``gamma`` at each of ``steps`` (MultiStepLR when ``warmup`` is 0)."""
    warm = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    return warm * gamma ** sum(iteration >= s for s in steps)


def build_optimizer(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam (as published); the fused kernel where the device has one (about 10% of a small CPU step)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True if device.type in ("cpu", "cuda") else None)


def seed_worker(worker_id: int) -> None:
    """numpy / random seeds from torch's per-worker seed (distinct per rank, worker and epoch)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def atomic_save(obj, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


class Trainer:
    def __init__(self, args, dist_info):
        self.args = args
        self.dist = dist_info
        self.device = dist_info.device
        self.config = config_from_args(args, train_img_size=args.img_size)
        self.amp = not args.no_amp
        torch.manual_seed(args.seed)
        self.net = build_model(self.config, drop_path_rate=args.drop_path).to(self.device)
        self._initial_weights()
        self.model = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if dist_info.enabled else self.net
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(params, args.lr, args.weight_decay, self.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_factor(it, args.warmup, args.steps, args.gamma))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")
        self.iteration = 0
        if args.load_model:
            self._resume(args.load_model)
        torch.manual_seed(args.seed + dist_info.rank + self.iteration)
        random.seed(args.seed + dist_info.rank + self.iteration)
        self.writer = None
        self.save_dir = os.path.join(args.save_dir, args.id)
        self.stop_signal = 0

    def _initial_weights(self) -> None:
        args = self.args
        if args.load_network:
            load_weights(self.net, args.load_network)
            return
        path = args.pretrained or MAE_DEFAULTS.get(args.backbone_type)
        if path is None or path.lower() == "none":
            if args.pretrained is None:
                raise InputError(f"no MAE weights are published for --backbone_type {args.backbone_type}: pass --pretrained none")
            return
        if not os.path.isfile(path):
            raise InputError(f"{path}: MAE pretrained weights not found; download them from the MAE repository "
                             "(facebookresearch/mae, 'pretrained checkpoints') into pretrained_models/, "
                             "or pass --pretrained none to train from scratch")
        report = load_weights(self.net, path)
        if self.dist.is_main:
            print(f"initialised from {path} ({report.format}); new layers: {len(report.initialised)} tensors")

    def _resume(self, path: str) -> None:
        state = read_checkpoint(path)
        if "optimizer" not in state:
            raise InputError(f"{path}: not a training state (use --load_network for weights only)")
        load_weights(self.net, state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["it"]
        set_rng_state(state["rng"])
        if self.dist.is_main:
            print(f"resumed from {path} at iteration {self.iteration}, lr {self.scheduler.get_last_lr()[0]:.3g}")

    def save(self) -> None:
        if not self.dist.is_main:
            return
        it = self.iteration
        atomic_save(self.net.state_dict(), os.path.join(self.save_dir, f"model_{it}.pth"))
        atomic_save({"network": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "it": it,
                     "rng": rng_state(), "config": dataclasses.asdict(self.config)},
                    os.path.join(self.save_dir, f"checkpoint_{it}.pth"))
        print(f"saved {self.save_dir}/model_{it}.pth and checkpoint_{it}.pth")

    def step(self, batch: dict, p: float) -> dict:
        frames = batch["frames"].to(self.device, non_blocking=True)
        masks = batch["masks"].to(self.device, non_blocking=True)
        class_map = batch["class_map"].to(self.device, non_blocking=True)
        selector = batch["selector"].to(self.device, non_blocking=True)
        with autocast_for(self.device, self.amp):
            # Absent target slots (selector 0) are skipped: their probabilities are zeroed below anyway.
            logits = self.model(frames[:, :1], masks[:, :1], frames[:, 1], selector > 0)      # [B, 2, S, S]
        probs = torch.sigmoid(logits.float()) * selector[:, :, None, None]
        agg = aggregate_logits(probs, dim=1)                                      # [B, 3, S, S]
        loss = pair_loss(agg, class_map, selector, p)
        return {"loss": loss, "agg": agg, "class_map": class_map, "frames": frames}

    def train(self, loader, sampler) -> None:
        args = self.args
        start_it, start_time = self.iteration, time.time()
        nonfinite = 0
        epoch = self.iteration // max(len(loader), 1)
        self._install_signals()
        while self.iteration < args.iterations and not self.stop_signal:
            sampler.set_epoch(epoch)
            epoch += 1
            for batch in loader:
                p = bootstrap_fraction(self.iteration, args.start_warm, args.end_warm)
                self.net.train()
                out = self.step(batch, p)
                bad = all_reduce_max(float(not torch.isfinite(out["loss"]).item()), self.dist)
                self.optimizer.zero_grad(set_to_none=True)
                if bad:
                    nonfinite += 1
                    print(f"rank {self.dist.rank}: non-finite loss at iteration {self.iteration}, videos "
                          f"{list(batch['name'])}: step skipped ({nonfinite} in a row)", file=sys.stderr)
                    if nonfinite >= args.max_nonfinite:
                        raise RuntimeError(f"{nonfinite} non-finite losses in a row at iteration {self.iteration}: "
                                           "lower --lr, or try --no_amp")
                    continue
                nonfinite = 0
                self.scaler.scale(out["loss"]).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.iteration += 1
                self._log(out, batch, p, start_it, start_time)
                if self.iteration % args.save_every == 0:
                    self.save()
                self.stop_signal = int(all_reduce_max(float(self.stop_signal), self.dist))
                if self.iteration >= args.iterations or self.stop_signal:
                    break
        if self.stop_signal and self.dist.is_main:
            print(f"stopped by signal at iteration {self.iteration}", file=sys.stderr)
        if self.iteration % args.save_every or self.stop_signal:
            self.save()

    def _install_signals(self) -> None:
        def handler(signum, frame):
            self.stop_signal = 1
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)

    def _log(self, out, batch, p, start_it, start_time) -> None:
        args, it = self.args, self.iteration
        if not self.dist.is_main or (it % args.log_every and it % args.image_every):
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(args.log_dir, args.id))
        pred = out["agg"].argmax(1)
        gt = out["class_map"]
        ious = [iou(pred == k, gt == k) for k in (1, 2)]
        if it % args.log_every == 0:
            lr = self.scheduler.get_last_lr()[0]
            for name, value in (("loss", out["loss"].item()), ("lr", lr), ("bootstrap_p", p),
                                ("iou/target1", ious[0]), ("iou/target2", ious[1])):
                self.writer.add_scalar(name, value, it)
            rate = (it - start_it) / max(time.time() - start_time, 1e-9)
            eta = (args.iterations - it) / max(rate, 1e-9)
            print(f"it {it}/{args.iterations} loss {out['loss'].item():.4f} iou {ious[0]:.3f}/{ious[1]:.3f} "
                  f"lr {lr:.3g} p {p:.2f} | {rate:.2f} it/s, ETA {eta / 3600:.1f} h", flush=True)
        if it % args.image_every == 0:
            mean = torch.tensor(IMAGENET_MEAN, device=pred.device).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=pred.device).view(3, 1, 1)
            query = (out["frames"][0, 1] * std + mean).clamp(0, 1)
            colours = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float32, device=pred.device)
            row = torch.cat([query, colours[gt[0]].permute(2, 0, 1), colours[pred[0]].permute(2, 0, 1)], dim=2)
            self.writer.add_image("query | ground truth | prediction", row, it)

    def weights_checksum(self) -> float:
        return float(sum(p.detach().double().sum().item() for p in self.net.parameters()))


def main(argv=None) -> None:
    args = parse_args(argv)
    info = init_distributed(args.local_rank, args.device)
    try:
        dataset, sizes = build_datasets(args)
        trainer = Trainer(args, info)
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=args.seed, drop_last=True)
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers,
                            worker_init_fn=seed_worker, drop_last=True, pin_memory=info.device.type == "cuda",
                            persistent_workers=args.num_workers > 0)
        if len(loader) == 0:
            raise InputError(f"{sizes['samples_per_epoch']} samples over {info.world_size} process(es) is less than "
                             f"one batch of {args.batch_size}: lower --batch_size")
        if info.is_main:
            print(f"world size {info.world_size}, batch {args.batch_size} per process = {args.batch_size * info.world_size} "
                  f"global, lr {args.lr}" + (f" (warm-up {args.warmup})" if args.warmup else "") + f", iterations {args.iterations} (lr x{args.gamma} at {args.steps}), "
                  f"image {args.img_size}, {info.device.type} {precision_name(info.device, not args.no_amp)}; data: "
                  + ", ".join(f"{k} {v}" for k, v in sizes.items()), flush=True)
        trainer.train(loader, sampler)
        print(f"rank {info.rank} weights checksum {trainer.weights_checksum():.12e}", flush=True)
    finally:
        cleanup(info)


if __name__ == "__main__":
    run_cli(main)
