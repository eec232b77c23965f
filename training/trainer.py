"""The training loop: DDP, mixed precision, bootstrapped loss, logging, atomic checkpoints, signals."""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time

import torch
from torch.nn.parallel import DistributedDataParallel

from model import build_model
from model.aggregate import aggregate_logits
from model.checkpoint import load_weights
from model.flags import config_from_args
from model.variants import check_recorded_variant, write_sidecar
from model.inputs import IMAGENET_MEAN, IMAGENET_STD
from model.losses import iou, pair_loss
from training.data import DataFailure, derive_seed
from training.finetune import PLAN_AFTER, PLAN_WARM, UNBOUNDED, plan_iterations
from training.schedule import bootstrap_fraction, lr_factor
from training.stages import MAE_DEFAULTS
from training.state import atomic_save, newest_state, prune_states, read_state
from util.device import autocast_for
from util.distributed import all_reduce_max
from util.errors import InputError
from util.run_events import Event, EventWriter, Finished, Planned, Progress, Saved, Validation


def build_optimizer(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam (as published); the fused kernel where the device has one (about 10% of a small CPU step)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True if device.type in ("cpu", "cuda") else None)


class _NoSummaryWriter:
    """Stands in for TensorBoard's writer where tensorboard is not installed: the log lines still print."""

    def add_scalar(self, *args) -> None:
        pass

    def add_image(self, *args) -> None:
        pass


def _summary_writer(folder: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("note: tensorboard is not installed: no TensorBoard logs (pip install tensorboard); "
              "the log lines below are printed as usual", file=sys.stderr)
        return _NoSummaryWriter()
    return SummaryWriter(folder)


class Trainer:
    """Owns the network, optimiser and schedules, and where the run is: ``iteration`` (optimiser
    steps), ``epoch`` and ``batches_done`` (batches of that epoch consumed, skipped ones included)."""

    def __init__(self, args, dist_info, batches_per_epoch: int, validate=None, events: EventWriter | None = None):
        """validate: for fine-tuning, net -> validation J&F (kept as the best when it improves);
        events: where rank 0 reports progress (util/run_events.py), if anywhere."""
        self.clock_start = time.time()
        self.args = args
        self.events = events
        self.validate = validate
        self.finetune = {"before": None, "best": None, "best_it": None, "last_val_it": None,
                         "planned": None, "steps": None} if getattr(args, "finetune", None) else None
        self.dist = dist_info
        self.device = dist_info.device
        self.batches_per_epoch = batches_per_epoch
        self.save_dir = os.path.join(args.save_dir, args.id)
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
        self.iteration = self.epoch = self.batches_done = 0
        self.resumed = self._resume()
        self.writer = None
        self.stop_signal = 0

    def _initial_weights(self) -> None:
        args = self.args
        if args.load_network:
            check_recorded_variant(args.load_network, self.config)  # weights of ours record their flags
            report = load_weights(self.net, args.load_network, resample_pos_embed=True)
            for note in report.notes:
                self._say(f"note: {args.load_network}: {note}")
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

    def _resume(self) -> str:
        """Restores a full training state (--load_model, --resume PATH, or --resume auto: the newest
        loadable one in saves/<id>, if any); -> what the start-up line says about it."""
        args = self.args
        path = args.load_model or (args.resume if args.resume not in (None, "auto") else None)
        if path:
            state = read_state(path)
        elif args.resume == "auto":
            found = newest_state(self.save_dir, report=self._say)
            chosen = int(all_reduce_max(float(found[1]["it"]) if found else -1.0, self.dist))
            if chosen < 0:
                return f"no training state in {self.save_dir}: starting fresh"
            if found is None or found[1]["it"] != chosen:
                raise InputError(f"rank {self.dist.rank} cannot load {self.save_dir}/checkpoint_{chosen}.pth, "
                                 "which another rank resumes from")
            path, state = found
        else:
            return "starting fresh"
        load_weights(self.net, state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["it"]
        if self.finetune is not None and isinstance(state.get("finetune"), dict):
            self.finetune.update(state["finetune"])
            if self.finetune["planned"] is not None:  # the plan of a --minutes budget goes on
                args.iterations, args.steps = self.finetune["planned"], self.finetune["steps"]
        # States written before epochs were recorded: the position follows from the iteration.
        self.epoch = state.get("epoch", self.iteration // self.batches_per_epoch)
        self.batches_done = state.get("batches_done", self.iteration % self.batches_per_epoch)
        return (f"resumed from {path} at iteration {self.iteration} (epoch {self.epoch}, batch {self.batches_done}), "
                f"lr {self.scheduler.get_last_lr()[0]:.3g}")

    def _emit(self, event: Event) -> None:
        if self.events is not None and self.dist.is_main:
            self.events.emit(event)

    def _say(self, text: str) -> None:
        if self.dist.is_main:
            print(text, file=sys.stderr, flush=True)

    def save(self) -> None:
        if not self.dist.is_main:
            return
        it = self.iteration
        weights, state = os.path.join(self.save_dir, f"model_{it}.pth"), os.path.join(self.save_dir, f"checkpoint_{it}.pth")
        atomic_save(self.net.state_dict(), weights)
        write_sidecar(weights, self.config)
        self._emit(Saved(it, weights))
        atomic_save({"network": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "it": it,
                     "epoch": self.epoch, "batches_done": self.batches_done, "config": dataclasses.asdict(self.config),
                     "finetune": self.finetune},
                    state)
        self._emit(Saved(it, state))
        if self.args.keep_checkpoints:
            prune_states(self.save_dir, self.args.keep_checkpoints)
        print(f"saved {self.save_dir}/model_{it}.pth and checkpoint_{it}.pth", flush=True)

    def step(self, batch: dict, p: float) -> dict:
        frames = batch["frames"].to(self.device, non_blocking=True)
        masks = batch["masks"].to(self.device, non_blocking=True)
        class_map = batch["class_map"].to(self.device, non_blocking=True)
        selector = batch["selector"].to(self.device, non_blocking=True)
        # Which targets are present is decided on the host copy: no wait for the GPU (the previous
        # step's work) before this step's forward is queued, none per sample in the loss.
        present = batch["selector"].cpu() > 0
        with autocast_for(self.device, self.amp):
            # Absent target slots (selector 0) are skipped: their probabilities are zeroed below anyway.
            logits = self.model(frames[:, :-1], masks[:, :-1], frames[:, -1], present)   # [B, 2, S, S]
        probs = torch.sigmoid(logits.float()) * selector[:, :, None, None]
        agg = aggregate_logits(probs, dim=1)                                      # [B, 3, S, S]
        loss = pair_loss(agg, class_map, present.float(), p, self.args.dice_weight)
        return {"loss": loss, "agg": agg, "class_map": class_map, "frames": frames}

    def optimise(self, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), optimiser and scheduler step. The caller zeroes the gradients
        before the step that computed ``loss`` (``optimizer.zero_grad``); this does not."""
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def train(self, loader, sampler) -> None:
        """Runs to ``--iterations`` from where the run is, mid-epoch included: the sampler starts
        after the batches already consumed, and every step's randomness (drop path) is seeded by
        (seed, iteration, rank), so a resumed run repeats the uninterrupted one exactly."""
        args = self.args
        nonfinite = 0
        self._install_signals()
        if args.iterations < UNBOUNDED:
            self._emit(Planned(args.iterations))
        if self.finetune is not None:
            self._validate_start()
        start_it, start_time = self.iteration, time.time()
        while self.iteration < args.iterations and not self.stop_signal:
            if self.batches_done >= self.batches_per_epoch:
                self.epoch, self.batches_done = self.epoch + 1, 0
            sampler.set_epoch(self.epoch)
            sampler.set_start(self.batches_done * args.batch_size)
            for batch in loader:
                if isinstance(batch, DataFailure):
                    self._stop_on(batch)
                self.batches_done += 1
                torch.manual_seed(derive_seed(args.seed, self.iteration, self.dist.rank, 1))
                p = bootstrap_fraction(self.iteration, args.start_warm, args.end_warm, args.top_p)
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
                self.optimise(out["loss"])
                self.iteration += 1
                self._log(out, batch, p, start_it, start_time)
                if self.finetune is not None:
                    self._finetune_step(start_it, start_time)
                if self.iteration % args.save_every == 0:
                    self.save()
                self.stop_signal = int(all_reduce_max(float(self.stop_signal), self.dist))
                if self.iteration >= args.iterations or self.stop_signal:
                    break
        if self.stop_signal == 1 and self.dist.is_main:
            print(f"stopped by signal at iteration {self.iteration}", file=sys.stderr)
        if self.iteration % args.save_every or self.stop_signal:
            self.save()
        if self.finetune is not None and self.stop_signal != 1:
            self._finetune_end()
        self._emit(self._finished())

    def _stop_on(self, failure: DataFailure) -> None:
        """A data file could not be read: the iterations done so far are saved, then the failure is
        raised as the one line the user sees."""
        if self.iteration and not os.path.isfile(os.path.join(self.save_dir, f"checkpoint_{self.iteration}.pth")):
            self.save()
        raise InputError(f"{failure.message} (training stopped at iteration {self.iteration}, its state saved in "
                         f"{self.save_dir}: --resume auto goes on once the data is back)", failure.path)

    def _finished(self) -> Finished:
        reason = {0: "done", 1: "stopped", 2: "budget"}[self.stop_signal]
        if self.finetune is None:
            weights = os.path.join(self.save_dir, f"model_{self.iteration}.pth")
        else:
            weights = self._finetuned_path() if os.path.isfile(self._finetuned_path()) else None
        best = self.finetune["best"] if self.finetune is not None else None
        return Finished(self.iteration, reason, weights, best)

    # ------------------------------------------------------------------ fine-tuning
    def _finetuned_path(self) -> str:
        return os.path.join(self.save_dir, "finetuned.pth")

    def _keep(self) -> None:
        """The current weights as saves/<id>/finetuned.pth, with their sidecar."""
        if self.dist.is_main:
            atomic_save(self.net.state_dict(), self._finetuned_path())
            write_sidecar(self._finetuned_path(), self.config)
            self._emit(Saved(self.iteration, self._finetuned_path()))

    def _run_validation(self) -> float | None:
        """Rank 0 validates (the others wait at the next collective); -> its J&F, else None."""
        if not self.dist.is_main:
            return None
        start = time.time()
        jf = float(self.validate(self.net))
        self.validation_seconds = time.time() - start
        self.finetune["last_val_it"] = self.iteration
        best = self.finetune["best"] is None or jf > self.finetune["best"]
        self._emit(Validation(self.iteration, jf if math.isfinite(jf) else None, best))
        if best:
            self.finetune.update(best=jf, best_it=self.iteration)
            self._keep()
        print(f"validation J&F {jf:.2f} at iteration {self.iteration} (best {self.finetune['best']:.2f} at iteration "
              f"{self.finetune['best_it']}; {self.validation_seconds:.0f} s)", flush=True)
        if self.writer is None:
            self.writer = _summary_writer(os.path.join(self.args.log_dir, self.args.id))
        self.writer.add_scalar("val/J&F", jf, self.iteration)
        return jf

    def _validate_start(self) -> None:
        self.validation_seconds = 0.0
        if self.validate is not None and self.finetune["before"] is None and self.iteration == 0:
            self.finetune["before"] = self._run_validation()
        if self.args.val_every is None and self.finetune["planned"] is None and self.args.minutes is None:
            self.args.val_every = max(1, self.args.iterations // 4)

    def _finetune_step(self, start_it: int, start_time: float) -> None:
        args, ft = self.args, self.finetune
        if args.minutes is not None and ft["planned"] is None and self.iteration - start_it == PLAN_WARM:
            self.plan_clock = time.time()  # the first iterations (loader start, first kernels) are not timed
        if args.minutes is not None and ft["planned"] is None and self.iteration - start_it == PLAN_WARM + PLAN_AFTER:
            vals = 4 if self.validate is not None else 0
            now = time.time()
            planned = plan_iterations(PLAN_AFTER, now - self.plan_clock, args.minutes * 60 - (self.plan_clock - self.clock_start),
                                      self.validation_seconds, vals)
            planned = int(all_reduce_max(float(self.iteration - PLAN_AFTER + planned), self.dist))
            args.iterations, args.steps = planned, [int(planned * 0.8)]
            ft.update(planned=planned, steps=args.steps)
            self._emit(Planned(planned, (now - self.plan_clock) / PLAN_AFTER))
            if args.val_every is None:
                args.val_every = max(1, planned // 4)
            self._say(f"--minutes {args.minutes:g}: {planned} iterations fit the budget (lr x{args.gamma} at {args.steps[0]})")
        if self.validate is not None and args.val_every and self.iteration % args.val_every == 0 \
                and self.iteration < args.iterations:
            self._run_validation()
        if args.minutes is not None and time.time() - self.clock_start > args.minutes * 60:
            self._say(f"--minutes {args.minutes:g}: the budget is spent at iteration {self.iteration}")
            self.stop_signal = 2

    def _finetune_end(self) -> None:
        ft = self.finetune
        if self.validate is not None:
            if ft["last_val_it"] != self.iteration:
                self._run_validation()
            if self.dist.is_main:
                print(f"fine-tuned: validation J&F {ft['before']:.2f} before, {ft['best']:.2f} best (iteration "
                      f"{ft['best_it']}) -> {self._finetuned_path()}", flush=True)
        else:
            self._keep()
            if self.dist.is_main:
                print(f"fine-tuned for {self.iteration} iterations (no validation: the last weights) -> "
                      f"{self._finetuned_path()}", flush=True)

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
            self.writer = _summary_writer(os.path.join(args.log_dir, args.id))
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
            eta_text = f"{eta / 3600:.1f} h" if eta >= 3600 else f"{eta / 60:.1f} min" if eta >= 60 else f"{eta:.0f} s"
            total = args.iterations if args.iterations < UNBOUNDED else "?"
            self._emit(Progress(it, args.iterations if args.iterations < UNBOUNDED else None, out["loss"].item()))
            print(f"it {it}/{total} loss {out['loss'].item():.4f} iou {ious[0]:.3f}/{ious[1]:.3f} "
                  f"lr {lr:.3g} p {p:.2f} | {rate:.2f} it/s, ETA {eta_text if total != '?' else '?'}", flush=True)
        if it % args.image_every == 0:
            mean = torch.tensor(IMAGENET_MEAN, device=pred.device).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=pred.device).view(3, 1, 1)
            query = (out["frames"][0, -1] * std + mean).clamp(0, 1)
            colours = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float32, device=pred.device)
            row = torch.cat([query, colours[gt[0]].permute(2, 0, 1), colours[pred[0]].permute(2, 0, 1)], dim=2)
            self.writer.add_image("query | ground truth | prediction", row, it)

    def weights_checksum(self) -> float:
        return float(sum(p.detach().double().sum().item() for p in self.net.parameters()))
