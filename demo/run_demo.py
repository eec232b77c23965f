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
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time

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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DATA = os.path.join(ROOT, "data", "demo")
DATA = os.path.join(DEMO_DATA, "DAVIS")
TRAINVAL = os.path.join(DATA, "2017", "trainval")
YOUTUBE = os.path.join(DEMO_DATA, "YouTube")
TRANSFER_DATA = os.path.join(DEMO_DATA, "Transfer")            # glyph family: never trained on
TRANSFER = os.path.join(TRANSFER_DATA, "2017", "trainval")
FRAME_SIZE = (128, 224)   # 8x14 tokens of 16 pixels; J&F boundary tolerance ceil(0.008 * diagonal) = 3 px
# Bumped whenever the generator or its settings change, so that a cached dataset is rebuilt.
DATA_VERSION = "9"
OUT = os.path.join(ROOT, "demo_output")
MODEL_FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False"]


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run([sys.executable, *cmd], check=True, cwd=ROOT)


def global_jf(results: str) -> float:
    with open(os.path.join(results, "global_results-val.csv")) as f:
        return float(next(csv.DictReader(f))["J&F-Mean"]) * 100


def ensure_datasets() -> None:
    """Generates the synthetic datasets once; a stamp records the generator version."""
    stamp = os.path.join(DEMO_DATA, "VERSION")
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if f.read().strip() == DATA_VERSION:
                return
    print("generating the synthetic datasets (once) ...", flush=True)
    shutil.rmtree(DEMO_DATA, ignore_errors=True)
    make_davis_dataset(TRAINVAL, n_train=60, n_val=10, size=FRAME_SIZE, n_frames=24, seed=0, family="rich")
    make_youtube_dataset(YOUTUBE, n_train=20, n_valid=5, size=FRAME_SIZE, n_frames=36, seed=1, family="shapes")
    make_davis_dataset(TRANSFER, n_train=0, n_val=20, size=FRAME_SIZE, n_frames=24, seed=2, family="glyph")
    with open(stamp, "w") as f:
        f.write(DATA_VERSION + "\n")


def score_youtube(predictions: str, out: str) -> float:
    """J&F of the YouTube-layout valid output against the generator's ground truth (generic mode)."""
    metrics = evaluate(generic_jobs(os.path.join(YOUTUBE, "valid_ground_truth"), predictions), workers=2)
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=1800, help="training iterations (schedule scales with them)")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="training seed (train_simvos.py --seed)")
    args = p.parse_args(argv)
    start = time.time()
    ensure_datasets()
    shutil.rmtree(OUT, ignore_errors=True)
    saves = os.path.join(OUT, "saves")
    it = args.iterations
    run(["train_simvos.py", "--id", "demo", *MODEL_FLAGS, "--pretrained", "none", "--yv_root", YOUTUBE, "--yv_subset", "none",
         "--davis_root", DATA, "--img_size", "96", "--batch_size", "4", "--iterations", str(it),
         "--lr", "2e-4", "--steps", str(int(it * 0.8)), "--start_warm", str(it // 3), "--end_warm", str(int(it * 0.75)),
         "--davis_max_jump", "8", "--drop_path", "0", "--no_amp", "--num_workers", str(args.workers), "--seed", str(args.seed), "--save_every", str(it),
         "--log_every", "100", "--image_every", str(it), "--save_dir", saves, "--log_dir", os.path.join(OUT, "runs")])
    checkpoints = os.path.join(OUT, "checkpoints")
    os.makedirs(checkpoints)
    shutil.copy(os.path.join(saves, "demo", f"model_{it}.pth"), os.path.join(checkpoints, "demo.pth"))
    shutil.copy(os.path.join(saves, "demo", f"model_{it}.json"), os.path.join(checkpoints, "demo.json"))  # its model flags
    run(["submit_eval_davis_ours_all.py", "--model_path", checkpoints, "--davis_path", os.path.join(DATA, "2017"),
         "--output", os.path.join(OUT, "results"), "--split", "val", *MODEL_FLAGS])
    run(["submit_eval_youtube.py", "--model_path", checkpoints, "--yv_path", YOUTUBE,
         "--output", os.path.join(OUT, "results_youtube"), *MODEL_FLAGS])
    print("\nYouTube-VOS-layout valid (objects entering later), every 5th frame:")
    youtube_jf = score_youtube(os.path.join(OUT, "results_youtube", "demo", "Annotations"),
                               os.path.join(OUT, "results_youtube", "demo"))
    transfer = transfer_check(checkpoints)
    results = os.path.join(OUT, "results", "demo")
    baseline = os.path.join(OUT, "baseline")
    copy_first_mask_baseline(TRAINVAL, baseline)
    print("\ncopy-the-first-mask baseline (DAVIS val):")
    score_davis(TRAINVAL, "val", baseline, workers=2)
    write_overlays(TRAINVAL, results, os.path.join(OUT, "overlays"))
    print(f"\ndemo finished in {(time.time() - start) / 60:.1f} min; YouTube-layout J&F {youtube_jf:.1f}")
    print("\nSimVOS on the DAVIS-layout val split:")
    score_davis(TRAINVAL, "val", results, workers=2, report=True)
    print(f"transfer J&F (glyph videos, a family never trained on): model={transfer[0]:.1f} baseline={transfer[1]:.1f}")
    print(f"demo J&F: model={global_jf(results):.1f} baseline={global_jf(baseline):.1f}")


def transfer_check(checkpoints: str) -> tuple[float, float]:
    """J&F of the model and of copy-the-first-mask on the glyph family (other shapes, textures, motion)."""
    out = os.path.join(OUT, "transfer")
    run(["submit_eval_davis_ours_all.py", "--model_path", checkpoints, "--davis_path", os.path.join(TRANSFER_DATA, "2017"),
         "--output", out, "--split", "val", *MODEL_FLAGS])
    copy_first_mask_baseline(TRANSFER, os.path.join(out, "baseline"))
    print("\ncopy-the-first-mask baseline (transfer videos):")
    score_davis(TRANSFER, "val", os.path.join(out, "baseline"), workers=2)
    write_overlays(TRANSFER, os.path.join(out, "demo"), os.path.join(OUT, "overlays_transfer"), count=2)
    return global_jf(os.path.join(out, "demo")), global_jf(os.path.join(out, "baseline"))


if __name__ == "__main__":
    main()
