"""`make demo`: the whole job on a synthetic DAVIS-layout dataset, on the CPU, in minutes.

1. generate (once, cached under data/demo) a synthetic DAVIS-2017 tree and a YouTube-VOS-layout
   variant whose objects may enter later;
2. train a small SimVOS (vit_tiny, from scratch) with train_simvos.py on both train splits;
3. evaluate it with submit_eval_davis_ours_all.py on the DAVIS val split (J&F by evaluation.davis_metrics),
   and with submit_eval_youtube.py on the YouTube-layout valid split (objects introduced later);
4. score the copy-the-first-mask baseline the same way, and both on a transfer set of the glyph
   family, which training never sees;
5. write overlay GIFs of a few val and transfer sequences under demo_output/, and the evaluation report
   of the DAVIS val split (demo_output/results/demo/report/index.html).

Interrupted (Ctrl-C, SIGTERM), it says so in one line and exits non-zero; run it again and it goes on:
training from its saved state (demo_output/saves/<run>/, exactly as uninterrupted), the evaluations
from the sequences they finished. Each run of other --iterations or --seed trains into its own folder
there; nothing finished is deleted. ``--iterations 300`` is a shorter run (a weaker model).
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import csv
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from dataset.davis import davis_sequence, read_split
from dataset.frames import iter_frames
from dataset.palette_io import read_label_png, write_label_png
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from training.stages import DEFAULT_SEED
from evaluation.davis_metrics import score_davis
from evaluation.jf import evaluate, generic_jobs, print_tables, write_csvs
from dataset.video_io import write_animation
from outputs.formats import overlay
from util.publish import publishing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Bumped whenever the generator or its settings change, so that a cached dataset is rebuilt.
DATA_VERSION = "9"
MODEL_FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False"]


@dataclass(frozen=True)
class Sizes:
    """The synthetic datasets and the training crop: ``full`` is the demo, ``smoke`` a seconds-long check
    that the whole pipeline runs (its scores mean nothing)."""
    davis_train: int
    davis_val: int
    davis_frames: int
    youtube_train: int
    youtube_valid: int
    youtube_frames: int
    transfer_val: int
    frame_size: tuple[int, int]   # (height, width)
    img_size: int                 # training crop


SIZES = {
    # frames of 8x14 tokens of 16 pixels; J&F boundary tolerance ceil(0.008 * diagonal) = 3 px
    "full": Sizes(60, 10, 24, 20, 5, 36, 20, (128, 224), 96),
    "smoke": Sizes(3, 1, 5, 2, 1, 11, 1, (48, 64), 48),
}


@dataclass(frozen=True)
class Layout:
    """Where the demo's data (``data``, cached between runs) and outputs (``out``) are."""
    data: str
    out: str
    size: str = "full"

    @property
    def davis(self) -> str:
        return os.path.join(self.data, "DAVIS")

    @property
    def trainval(self) -> str:
        return os.path.join(self.davis, "2017", "trainval")

    @property
    def youtube(self) -> str:
        return os.path.join(self.data, "YouTube")

    @property
    def transfer_data(self) -> str:          # glyph family: never trained on
        return os.path.join(self.data, "Transfer")

    @property
    def transfer(self) -> str:
        return os.path.join(self.transfer_data, "2017", "trainval")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.out, "checkpoints")

    def saves(self, iterations: int, seed: int) -> str:
        """The training run of these settings (its states and weights, under saves/demo/)."""
        return os.path.join(self.out, "saves", f"{self.size}-data{DATA_VERSION}-{iterations}it-seed{seed}")


DEFAULT_LAYOUT = Layout(os.path.join(ROOT, "data", "demo"), os.path.join(ROOT, "demo_output"))


class Interrupted(Exception):
    """A signal asked the demo to stop (``signum``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StageFailed(Exception):
    pass


class Stages:
    """Runs the demo's scripts one at a time, each in its own session: a signal to the demo (Ctrl-C,
    SIGTERM, a closed terminal's SIGHUP reach only it) is passed on to the running script once, as
    SIGINT, on which the trainer saves its state and the evaluations keep their finished sequences;
    the demo stops after it."""

    def __init__(self):
        self.child: subprocess.Popen | None = None
        self.signum: int | None = None
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if self.child is None:
            raise Interrupted(signum)
        if first:
            self.child.send_signal(signal.SIGINT)

    def run(self, cmd: list[str]) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)
        print("$ " + " ".join(cmd), flush=True)
        self.child = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, start_new_session=True)
        try:
            code = self.child.wait()
        finally:
            self.child = None
        if self.signum is not None:
            raise Interrupted(self.signum)
        if code:
            raise StageFailed(f"{cmd[0]} failed (exit status {code}; its message is above)")


def training_flags(iterations: int, workers: int, seed: int, layout: Layout = DEFAULT_LAYOUT) -> list[str]:
    """train_simvos.py's flags of the demo's model and schedule (the schedule scales with ``iterations``)."""
    it = iterations
    return ["--id", "demo", *MODEL_FLAGS, "--pretrained", "none", "--yv_root", layout.youtube, "--yv_subset", "none",
            "--davis_root", layout.davis, "--img_size", str(SIZES[layout.size].img_size), "--batch_size", "4",
            "--iterations", str(it), "--lr", "2e-4", "--steps", str(int(it * 0.8)), "--start_warm", str(it // 3),
            "--end_warm", str(int(it * 0.75)), "--davis_max_jump", "8", "--drop_path", "0", "--no_amp",
            "--num_workers", str(workers), "--seed", str(seed), "--log_every", str(min(100, max(1, it // 10))),
            "--image_every", str(it)]


def global_jf(results: str) -> float:
    with open(os.path.join(results, "global_results-val.csv")) as f:
        return float(next(csv.DictReader(f))["J&F-Mean"]) * 100


def ensure_datasets(layout: Layout = DEFAULT_LAYOUT) -> None:
    """Generates the synthetic datasets once; a stamp records the generator version and sizes."""
    stamp = os.path.join(layout.data, "VERSION")
    version = DATA_VERSION if layout.size == "full" else f"{DATA_VERSION} {layout.size}"
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if f.read().strip() == version:
                return
    print("generating the synthetic datasets (once) ...", flush=True)
    shutil.rmtree(layout.data, ignore_errors=True)
    s = SIZES[layout.size]
    make_davis_dataset(layout.trainval, n_train=s.davis_train, n_val=s.davis_val, size=s.frame_size,
                       n_frames=s.davis_frames, seed=0, family="rich")
    make_youtube_dataset(layout.youtube, n_train=s.youtube_train, n_valid=s.youtube_valid, size=s.frame_size,
                         n_frames=s.youtube_frames, seed=1, family="shapes")
    make_davis_dataset(layout.transfer, n_train=0, n_val=s.transfer_val, size=s.frame_size, n_frames=s.davis_frames,
                       seed=2, family="glyph")
    with open(stamp, "w") as f:
        f.write(version + "\n")


def score_youtube(layout: Layout, predictions: str, out: str) -> float:
    """J&F of the YouTube-layout valid output against the generator's ground truth (generic mode)."""
    metrics = evaluate(generic_jobs(os.path.join(layout.youtube, "valid_ground_truth"), predictions), workers=2)
    write_csvs(metrics, out, "val")
    print_tables(metrics, "val")
    return global_jf(out)


def copy_first_mask_baseline(root: str, out: str) -> None:
    for name in read_split(os.path.join(root, "ImageSets", "2017", "val.txt")):
        seq = davis_sequence(root, name)
        first = read_label_png(seq.annotations[0])
        os.makedirs(os.path.join(out, name), exist_ok=True)
        for stem in seq.stems:
            write_label_png(os.path.join(out, name, stem + ".png"), first)


def write_overlays(root: str, results: str, out: str, count: int = 4) -> None:
    os.makedirs(out, exist_ok=True)
    for name in read_split(os.path.join(root, "ImageSets", "2017", "val.txt"))[:count]:
        seq = davis_sequence(root, name)
        frames = [np.concatenate([overlay(rgb, read_label_png(os.path.join(root, "Annotations", "480p", name, s + ".png"))),
                                  overlay(rgb, read_label_png(os.path.join(results, name, s + ".png")))], axis=1)
                  for rgb, s in zip(iter_frames(seq), seq.stems)]
        write_animation(frames, os.path.join(out, f"{name}.gif"))
    print(f"overlays (left: ground truth, right: SimVOS): {out}/")


def train(stages: Stages, layout: Layout, args) -> bool:
    """Trains (or goes on training) the run of ``args`` and publishes its weights as checkpoints/demo.pth;
    -> whether demo.pth changed (then the evaluations start over)."""
    it, saves = args.iterations, layout.saves(args.iterations, args.seed)
    weights = os.path.join(saves, "demo", f"model_{it}.pth")
    if not os.path.isfile(weights):
        stages.run(["train_simvos.py", *training_flags(it, args.workers, args.seed, layout), "--resume", "auto",
                    "--save_every", str(max(1, it // 4)), "--keep_checkpoints", "1",
                    "--save_dir", saves, "--log_dir", os.path.join(layout.out, "runs")])
        if not os.path.isfile(weights):  # a signal to the trainer alone
            raise StageFailed(f"the training stopped before iteration {it} (its state is kept in {saves}): "
                              "run the demo again to go on")
    published = os.path.join(layout.checkpoints, "demo.pth")
    if os.path.isfile(published) and filecmp.cmp(weights, published, shallow=False):
        return False
    os.makedirs(layout.checkpoints, exist_ok=True)
    for source, name in ((weights[:-len(".pth")] + ".json", "demo.json"), (weights, "demo.pth")):  # the flags first
        with publishing(os.path.join(layout.checkpoints, name)) as tmp:
            shutil.copyfile(source, tmp)
    return True


def demo(stages: Stages, layout: Layout, args) -> None:
    start = time.time()
    ensure_datasets(layout)
    fresh = ["--overwrite"] if train(stages, layout, args) else []
    out, checkpoints = layout.out, layout.checkpoints
    stages.run(["submit_eval_davis_ours_all.py", "--model_path", checkpoints, "--davis_path", os.path.join(layout.davis, "2017"),
                "--output", os.path.join(out, "results"), "--split", "val", *MODEL_FLAGS, *fresh])
    stages.run(["submit_eval_youtube.py", "--model_path", checkpoints, "--yv_path", layout.youtube,
                "--output", os.path.join(out, "results_youtube"), *MODEL_FLAGS, *fresh])
    print("\nYouTube-VOS-layout valid (objects entering later), every 5th frame:")
    youtube_jf = score_youtube(layout, os.path.join(out, "results_youtube", "demo", "Annotations"),
                               os.path.join(out, "results_youtube", "demo"))
    transfer = transfer_check(stages, layout, fresh)
    results = os.path.join(out, "results", "demo")
    baseline = os.path.join(out, "baseline")
    copy_first_mask_baseline(layout.trainval, baseline)
    print("\ncopy-the-first-mask baseline (DAVIS val):")
    score_davis(layout.trainval, "val", baseline, workers=2)
    write_overlays(layout.trainval, results, os.path.join(out, "overlays"))
    print(f"\ndemo finished in {(time.time() - start) / 60:.1f} min; YouTube-layout J&F {youtube_jf:.1f}")
    print("\nSimVOS on the DAVIS-layout val split:")
    score_davis(layout.trainval, "val", results, workers=2, report=True)
    print(f"transfer J&F (glyph videos, a family never trained on): model={transfer[0]:.1f} baseline={transfer[1]:.1f}")
    print(f"demo J&F: model={global_jf(results):.1f} baseline={global_jf(baseline):.1f}")


def transfer_check(stages: Stages, layout: Layout, fresh: list[str]) -> tuple[float, float]:
    """J&F of the model and of copy-the-first-mask on the glyph family (other shapes, textures, motion)."""
    out = os.path.join(layout.out, "transfer")
    stages.run(["submit_eval_davis_ours_all.py", "--model_path", layout.checkpoints, "--davis_path",
                os.path.join(layout.transfer_data, "2017"), "--output", out, "--split", "val", *MODEL_FLAGS, *fresh])
    copy_first_mask_baseline(layout.transfer, os.path.join(out, "baseline"))
    print("\ncopy-the-first-mask baseline (transfer videos):")
    score_davis(layout.transfer, "val", os.path.join(out, "baseline"), workers=2)
    write_overlays(layout.transfer, os.path.join(out, "demo"), os.path.join(layout.out, "overlays_transfer"), count=2)
    return global_jf(os.path.join(out, "demo")), global_jf(os.path.join(out, "baseline"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=1800,
                   help="training iterations (the schedule scales with them); fewer: a shorter run, a weaker model")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="training seed (train_simvos.py --seed)")
    p.add_argument("--output", default=DEFAULT_LAYOUT.out, help="where the demo's outputs go")
    p.add_argument("--data", default=DEFAULT_LAYOUT.data, help="where the synthetic datasets are generated (once)")
    p.add_argument("--size", choices=sorted(SIZES), default="full",
                   help="smoke: tiny datasets, to check in seconds that the pipeline runs (meaningless scores)")
    args = p.parse_args(argv)
    if args.iterations < 1:
        p.error("--iterations must be 1 or more")
    layout = Layout(os.path.abspath(args.data), os.path.abspath(args.output), args.size)
    stages = Stages()
    try:
        demo(stages, layout, args)
    except Interrupted as stop:
        print(f"interrupted ({stop}): the training state and finished evaluations are kept in {layout.out}; "
              "run the demo again to go on from them", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
