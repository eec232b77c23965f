"""The demo's training speed alone and beside busy processes, with PyTorch's thread defaults and with the
settings of util/cpu_threads.py (passive OpenMP waits, threads from the usable cores).

    python -m benchmarks.under_load [--iterations 20] [--max_seconds 40] [--busy 0 1 2]

Each measurement is a fresh process (OpenMP reads its settings when torch loads) running the demo's
training step (make demo's model, flags and data loader: forward, backward, Adam) for ``--iterations``
after a warm-up, or for as many as ``--max_seconds`` allows; a busy process is ``python -c 'while True:
pass'``, started before and killed after. Prints a table and writes benchmarks/results/under_load.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "under_load.json")
# What each measured process is started with, on top of the environment without OpenMP settings.
SETTINGS = {"torch defaults": {"SIMVOS_THREADS": "default"}, "util/cpu_threads": {}}
BUSY_LOOP = "while True: pass"


@dataclass(frozen=True)
class Measurement:
    """One process's result (printed by the child as one JSON line)."""
    iterations: int
    seconds: float
    threads: int
    wait_policy: str | None

    @property
    def rate(self) -> float:
        return self.iterations / self.seconds


def measure_training(iterations: int, warmup: int, max_seconds: float) -> Measurement:
    """The demo's training steps in this process: ``warmup`` untimed, then up to ``iterations`` timed."""
    import torch
    from torch.utils.data import DataLoader

    from demo.run_demo import training_flags
    from training.cli import parse_args
    from training.config import resolve_config
    from training.data import SeededSampler, build_datasets
    from training.stages import DEFAULT_SEED
    from training.trainer import Trainer
    from util.distributed import init_distributed

    with tempfile.TemporaryDirectory() as tmp:
        config = resolve_config(parse_args(training_flags(warmup + iterations, workers=1, seed=DEFAULT_SEED)
                                           + ["--save_dir", tmp, "--log_dir", tmp, "--device", "cpu"]), "cpu")
        info = init_distributed(None, "cpu")
        dataset, _ = build_datasets(config.data, config.img_size)
        sampler = SeededSampler(dataset, 1, 0, config.seed)
        loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                            drop_last=True, persistent_workers=True)
        trainer = Trainer(config, info, len(sampler) // config.batch_size)
        done, start = 0, None
        for batch in loader:
            if done == warmup:
                start = time.perf_counter()
            out = trainer.step(batch, config.bootstrap.fraction(done) if config.bootstrap else 1.0)
            trainer.optimizer.zero_grad(set_to_none=True)
            trainer.optimise(out["loss"])
            done += 1
            if done == warmup + iterations or (start is not None and time.perf_counter() - start > max_seconds):
                break
        return Measurement(done - warmup, time.perf_counter() - start, torch.get_num_threads(),
                           os.environ.get("OMP_WAIT_POLICY"))


def measured_process(settings: dict[str, str], args) -> Measurement:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_") and k != "SIMVOS_THREADS"}
    env.update(settings)
    cmd = [sys.executable, "-m", "benchmarks.under_load", "--child", "--iterations", str(args.iterations),
           "--warmup", str(args.warmup), "--max_seconds", str(args.max_seconds)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the measured process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def beside_busy(count: int, settings: dict[str, str], args) -> Measurement:
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        return measured_process(settings, args)
    finally:
        for process in busy:
            process.kill()
            process.wait()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=20, help="timed iterations per measurement (after the warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--max_seconds", type=float, default=40, help="stop timing a measurement after this long")
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="numbers of busy processes beside it")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(asdict(measure_training(args.iterations, args.warmup, args.max_seconds))))
        return
    from demo.run_demo import ensure_datasets
    ensure_datasets()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average before: {load_average()}")
    rows = []
    for count in args.busy:
        for name, settings in SETTINGS.items():
            before = load_average()
            m = beside_busy(count, settings, args)
            rows.append({"busy": count, "settings": name, "it_per_s": round(m.rate, 3), "iterations": m.iterations,
                         "threads": m.threads, "wait_policy": m.wait_policy, "load_average_before": before})
            print(f"busy {count}  {name:18s} {m.rate:6.2f} it/s  ({m.iterations} iterations, {m.threads} threads, "
                  f"OMP_WAIT_POLICY {m.wait_policy}; load average before {before})", flush=True)
    print(f"load average after: {load_average()}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                   "rows": rows}, f, indent=1)
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
