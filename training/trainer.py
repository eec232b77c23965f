"""The training loop: DDP, mixed precision, bootstrapped loss, logging, atomic checkpoints, signals."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from contextlib import contextmanager

import torch
from torch.nn.parallel import DistributedDataParallel

from model import build_model
from model.aggregate import aggregate_logits
from model.checkpoint import load_weights
from model.variants import check_recorded_variant, write_sidecar
from model.inputs import IMAGENET_MEAN, IMAGENET_STD
from model.losses import iou, pair_loss
from training.config import LearningRate, RunPlan, TrainConfig
from training.data import DataFailure, derive_seed
from training.strategy import PublishedStage, Strategy
from training.state import atomic_save, newest_state, prune_states, read_state
from util.device import autocast_for
from util.distributed import all_reduce_max
from util.errors import InputError
from util.run_events import Event, EventWriter, Finished, Planned, Progress, Saved


def build_optimizer(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam (as published); the fused kernel where the device has one (about 10% of a small CPU step)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True if device.type in ("cpu", "cuda") else None)


@contextmanager
def stop_requests():
    """SIGINT and SIGTERM ask for a stop instead of ending the process (the handlers before are put
    back after); yields a function: whether one came."""
    received = []

    def handler(signum, frame):
        received.append(signum)
    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(received)
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


@contextmanager
def naming_the_file(path: str):
    """An InputError raised inside (a checkpoint that does not load) names ``path`` as the file at fault."""
    try:
        yield
    except InputError as exc:
        if exc.path is None:
            exc.path = path
        raise


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


STOPPED_BY_SIGNAL, STOPPED_BY_BUDGET = "stopped", "budget"   # the finished event's reasons
STOP_REASONS = (None, STOPPED_BY_BUDGET, STOPPED_BY_SIGNAL)     # by gravity


class Trainer:
    """Owns the network, optimiser and schedules, and where the run is: ``iteration`` (optimiser
    steps), ``epoch`` and ``batches_done`` (batches of that epoch consumed, skipped ones included),
    ``plan`` (None until a ``--minutes`` run has measured its speed). What kind of run it is (data,
    validation, what it keeps) is its ``strategy`` (training/strategy.py); ``events``: where rank 0
    reports progress (util/run_events.py), if anywhere."""

    def __init__(self, config: TrainConfig, dist_info, batches_per_epoch: int, strategy: Strategy | None = None,
                 events: EventWriter | None = None):
        self.config = config
        self.strategy = strategy if strategy is not None else PublishedStage(config)
        self.events = events
        self.dist = dist_info
        self.device = dist_info.device
        self.batches_per_epoch = batches_per_epoch
        self.save_dir = config.save_dir
        torch.manual_seed(config.seed)
        self.net = build_model(config.model, drop_path_rate=config.drop_path).to(self.device)
        self._initial_weights()
        self.model = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if dist_info.enabled else self.net
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(params, config.lr.base, config.weight_decay, self.device)
        self.plan = RunPlan(config.iterations, config.lr) if config.iterations is not None else None
        self.scheduler = self._scheduler(config.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp and self.device.type == "cuda")
        self.iteration = self.epoch = self.batches_done = 0
        self.resumed = self._resume()
        self.writer = None
        self.stopped: str | None = None   # why the run stops early: STOPPED_BY_SIGNAL or STOPPED_BY_BUDGET

    def _scheduler(self, lr: LearningRate, last_iteration: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
        """The learning rate of ``lr`` (numbers only), as if ``last_iteration + 1`` steps were taken."""
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr.factor, last_epoch=last_iteration)

    def replan(self, plan: RunPlan) -> None:
        """The run's length and schedule once known (a --minutes budget): from the next step on."""
        self.plan = plan
        self.scheduler = self._scheduler(plan.lr, self.iteration - 1)

    def stop_for_budget(self) -> None:
        self.stopped = self.stopped or STOPPED_BY_BUDGET

    def _initial_weights(self) -> None:
        config = self.config
        if config.load_network:
            with naming_the_file(config.load_network):
                check_recorded_variant(config.load_network, config.model)  # weights of ours record their flags
                report = load_weights(self.net, config.load_network, resample_pos_embed=True)
            for note in report.notes:
                self.say(f"note: {config.load_network}: {note}")
        elif config.pretrained:
            report = load_weights(self.net, config.pretrained)
            self.say(f"initialised from {config.pretrained} ({report.format}); new layers: {len(report.initialised)} "
                     "tensors", out=True)

    def _resume(self) -> str:
        """Restores a full training state (``config.resume_from``, or with ``resume_auto`` the newest
        loadable one in the run's folder, if any); -> what the start-up line says about it."""
        if self.config.resume_from:
            with naming_the_file(self.config.resume_from):
                path, state = self.config.resume_from, read_state(self.config.resume_from)
        elif self.config.resume_auto:
            found = newest_state(self.save_dir, report=self.say)
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
        self.strategy.restore(state.get("finetune"))
        planned = self.strategy.initial_plan()
        if planned is not None and self.plan is None:
            self.plan = planned
            self.scheduler = self._scheduler(planned.lr)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["it"]
        # States written before epochs were recorded: the position follows from the iteration.
        self.epoch = state.get("epoch", self.iteration // self.batches_per_epoch)
        self.batches_done = state.get("batches_done", self.iteration % self.batches_per_epoch)
        return (f"resumed from {path} at iteration {self.iteration} (epoch {self.epoch}, batch {self.batches_done}), "
                f"lr {self.scheduler.get_last_lr()[0]:.3g}")

    def emit(self, event: Event) -> None:
        if self.events is not None and self.dist.is_main:
            self.events.emit(event)

    def say(self, text: str, out: bool = False) -> None:
        """A line of the human log (rank 0): stdout when ``out``, else stderr."""
        if self.dist.is_main:
            print(text, file=sys.stdout if out else sys.stderr, flush=True)

    def scalar(self, name: str, value: float) -> None:
        """A TensorBoard scalar at the current iteration (rank 0)."""
        if self.dist.is_main:
            if self.writer is None:
                self.writer = _summary_writer(self.config.log_dir)
            self.writer.add_scalar(name, value, self.iteration)

    def save(self) -> None:
        if not self.dist.is_main:
            return
        it = self.iteration
        weights, state = os.path.join(self.save_dir, f"model_{it}.pth"), os.path.join(self.save_dir, f"checkpoint_{it}.pth")
        atomic_save(self.net.state_dict(), weights)
        write_sidecar(weights, self.config.model)
        self.emit(Saved(it, weights))
        atomic_save({"network": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "it": it,
                     "epoch": self.epoch, "batches_done": self.batches_done,
                     "config": dataclasses.asdict(self.config.model), "train_config": self.config.record(),
                     "finetune": self.strategy.record()},
                    state)
        self.emit(Saved(it, state))
        if self.config.keep_checkpoints:
            prune_states(self.save_dir, self.config.keep_checkpoints)
        print(f"saved {self.save_dir}/model_{it}.pth and checkpoint_{it}.pth", flush=True)

    def step(self, batch: dict, p: float) -> dict:
        frames = batch["frames"].to(self.device, non_blocking=True)
        masks = batch["masks"].to(self.device, non_blocking=True)
        class_map = batch["class_map"].to(self.device, non_blocking=True)
        selector = batch["selector"].to(self.device, non_blocking=True)
        # Which targets are present is decided on the host copy: no wait for the GPU (the previous
        # step's work) before this step's forward is queued, none per sample in the loss.
        present = batch["selector"].cpu() > 0
        with autocast_for(self.device, self.config.amp):
            # Absent target slots (selector 0) are skipped: their probabilities are zeroed below anyway.
            logits = self.model(frames[:, :-1], masks[:, :-1], frames[:, -1], present)   # [B, 2, S, S]
        probs = torch.sigmoid(logits.float()) * selector[:, :, None, None]
        agg = aggregate_logits(probs, dim=1)                                      # [B, 3, S, S]
        loss = pair_loss(agg, class_map, present.float(), p, self.config.dice_weight)
        return {"loss": loss, "agg": agg, "class_map": class_map, "frames": frames}

    def optimise(self, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), optimiser and scheduler step. The caller zeroes the gradients
        before the step that computed ``loss`` (``optimizer.zero_grad``); this does not."""
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def bootstrap_fraction(self) -> float:
        """The fraction of hardest pixels the loss keeps at this iteration (1: all, no bootstrapping)."""
        bootstrap = self.config.bootstrap
        return 1.0 if bootstrap is None else bootstrap.fraction(self.iteration)

    def _finished_planned_run(self) -> bool:
        return self.plan is not None and self.iteration >= self.plan.iterations

    def train(self, loader, sampler) -> None:
        """Runs to the plan's iterations from where the run is, mid-epoch included: the sampler starts
        after the batches already consumed, and every step's randomness (drop path) is seeded by
        (seed, iteration, rank), so a resumed run repeats the uninterrupted one exactly. SIGINT and
        SIGTERM stop it after the current step, its state saved."""
        with stop_requests() as signal_received:
            self._train(loader, sampler, signal_received)

    def _train(self, loader, sampler, signal_received) -> None:
        config = self.config
        nonfinite = 0
        if self.plan is not None:
            self.emit(Planned(self.plan.iterations))
        self.strategy.start(self)
        start_it, start_time = self.iteration, time.time()
        while not self._finished_planned_run() and not self.stopped:
            if self.batches_done >= self.batches_per_epoch:
                self.epoch, self.batches_done = self.epoch + 1, 0
            sampler.set_epoch(self.epoch)
            sampler.set_start(self.batches_done * config.batch_size)
            for batch in loader:
                failure = self._agreed_failure(batch if isinstance(batch, DataFailure) else None)
                if failure is not None:
                    self._stop_on(failure)
                self.batches_done += 1
                torch.manual_seed(derive_seed(config.seed, self.iteration, self.dist.rank, 1))
                p = self.bootstrap_fraction()
                self.net.train()
                out = self.step(batch, p)
                bad = all_reduce_max(float(not torch.isfinite(out["loss"]).item()), self.dist)
                self.optimizer.zero_grad(set_to_none=True)
                if bad:
                    nonfinite += 1
                    print(f"rank {self.dist.rank}: non-finite loss at iteration {self.iteration}, videos "
                          f"{list(batch['name'])}: step skipped ({nonfinite} in a row)", file=sys.stderr)
                    if nonfinite >= config.max_nonfinite:
                        raise RuntimeError(f"{nonfinite} non-finite losses in a row at iteration {self.iteration}: "
                                           "lower --lr, or try --no_amp")
                    continue
                nonfinite = 0
                self.optimise(out["loss"])
                self.iteration += 1
                self._log(out, batch, p, start_it, start_time)
                self.strategy.after_step(self)
                if self.iteration % config.save_every == 0:
                    self.save()
                # Every rank stops at the same iteration, for the gravest reason any of them has.
                wanted = STOPPED_BY_SIGNAL if signal_received() else self.stopped
                self.stopped = STOP_REASONS[int(all_reduce_max(float(STOP_REASONS.index(wanted)), self.dist))]
                if self._finished_planned_run() or self.stopped:
                    break
        if self.stopped == STOPPED_BY_SIGNAL:
            self.say(f"stopped by signal at iteration {self.iteration}")
        if self.iteration % config.save_every or self.stopped:
            self.save()
        if self.stopped != STOPPED_BY_SIGNAL:
            self.strategy.end(self)
        self.emit(Finished(self.iteration, self.stopped or "done", self.strategy.weights(self), self.strategy.best_jf()))

    def _agreed_failure(self, failure: DataFailure | None) -> DataFailure | None:
        """A data failure of any rank, the same on every rank (so that all stop together, before the
        step whose gradients they would wait on each other for)."""
        if not self.dist.enabled or not all_reduce_max(float(failure is not None), self.dist):
            return failure
        failures = [None] * self.dist.world_size
        torch.distributed.all_gather_object(failures, failure)
        return next(f for f in failures if f is not None)

    def _stop_on(self, failure: DataFailure) -> None:
        """A data file could not be read: the iterations done so far are saved, then the failure is
        raised as the one line the user sees."""
        if self.iteration and not os.path.isfile(os.path.join(self.save_dir, f"checkpoint_{self.iteration}.pth")):
            self.save()
        raise InputError(f"{failure.message} (training stopped at iteration {self.iteration}, its state saved in "
                         f"{self.save_dir}: --resume auto goes on once the data is back)", failure.path)

    def _log(self, out, batch, p, start_it, start_time) -> None:
        config, it = self.config, self.iteration
        if not self.dist.is_main or (it % config.log_every and it % config.image_every):
            return
        if self.writer is None:
            self.writer = _summary_writer(config.log_dir)
        pred = out["agg"].argmax(1)
        gt = out["class_map"]
        ious = [iou(pred == k, gt == k) for k in (1, 2)]
        if it % config.log_every == 0:
            lr = self.scheduler.get_last_lr()[0]
            loss = out["loss"].item()
            for name, value in (("loss", loss), ("lr", lr), ("bootstrap_p", p),
                                ("iou/target1", ious[0]), ("iou/target2", ious[1])):
                self.writer.add_scalar(name, value, it)
            total = self.plan.iterations if self.plan is not None else None
            self.emit(Progress(it, total, loss))
            rate = (it - start_it) / max(time.time() - start_time, 1e-9)
            if total is None:
                eta_text = "?"
            else:
                eta = (total - it) / max(rate, 1e-9)
                eta_text = f"{eta / 3600:.1f} h" if eta >= 3600 else f"{eta / 60:.1f} min" if eta >= 60 else f"{eta:.0f} s"
            print(f"it {it}/{total or '?'} loss {loss:.4f} iou {ious[0]:.3f}/{ious[1]:.3f} "
                  f"lr {lr:.3g} p {p:.2f} | {rate:.2f} it/s, ETA {eta_text}", flush=True)
        if it % config.image_every == 0:
            mean = torch.tensor(IMAGENET_MEAN, device=pred.device).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=pred.device).view(3, 1, 1)
            query = (out["frames"][0, -1] * std + mean).clamp(0, 1)
            colours = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float32, device=pred.device)
            row = torch.cat([query, colours[gt[0]].permute(2, 0, 1), colours[pred[0]].permute(2, 0, 1)], dim=2)
            self.writer.add_image("query | ground truth | prediction", row, it)

    def weights_checksum(self) -> float:
        return float(sum(p.detach().double().sum().item() for p in self.net.parameters()))
