"""Does fine-tuning make a model better on held-out videos of a family it never saw? (synthetic, CPU)

    python -m benchmarks.finetune_synthetic [--pretrain_iterations 300] [--iterations 200]

A start model made as `make demo` makes its own, in small (vit_tiny from scratch on the generator's
'shapes' family, 64x96 frames); fine-tuned with ``train_simvos.py --finetune`` on 6 videos of the
'glyph' family with a mask on every 2nd frame, validating on 2 held out ones; the weights it keeps and
the start model are then scored on those 2 by evaluation/own_videos.py (first-frame protocol).
Prints one JSON line: J&F before, after, and the seconds each part took.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from dataset.annotated import find_annotated_videos
from dataset.palette_io import write_label_png
from dataset.synthetic import make_davis_dataset
from dataset.synthetic_rich import make_glyph_video
from evaluation.own_videos import score_videos
from inference_core import SimVOSPredictor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME_SIZE = (64, 96)


def write_glyph_videos(root: str, count: int, every: int, seed: int, frames: int = 12) -> str:
    """``count`` glyph videos in the generic layout, a mask on every ``every``-th frame."""
    rng = np.random.default_rng(seed)
    for v in range(count):
        rgb, labels = make_glyph_video(rng, frames, *FRAME_SIZE, int(rng.integers(1, 3)))
        os.makedirs(os.path.join(root, "JPEGImages", f"v{v}"))
        os.makedirs(os.path.join(root, "Annotations", f"v{v}"))
        for t, (frame, label) in enumerate(zip(rgb, labels)):
            Image.fromarray(frame).save(os.path.join(root, "JPEGImages", f"v{v}", f"{t:05d}.jpg"), quality=95)
            if t % every == 0:
                write_label_png(os.path.join(root, "Annotations", f"v{v}", f"{t:05d}.png"), label)
    return root


def train(args: list[str]) -> str:
    proc = subprocess.run([sys.executable, "train_simvos.py", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return proc.stdout


def start_model(folder: str, iterations: int) -> str:
    """vit_tiny trained from scratch on the 'shapes' family (never glyphs), as make demo trains, in small."""
    make_davis_dataset(os.path.join(folder, "DAVIS", "2017", "trainval"), n_train=8, n_val=1, size=FRAME_SIZE,
                       n_frames=10, seed=1)
    it = iterations
    train(["--id", "start", "--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False",
           "--pretrained", "none", "--yv_root", "none", "--davis_root", os.path.join(folder, "DAVIS"), "--img_size", "64",
           "--batch_size", "4", "--iterations", str(it), "--lr", "2e-4", "--steps", str(int(it * 0.8)),
           "--start_warm", str(it // 3), "--end_warm", str(int(it * 0.75)), "--davis_max_jump", "5", "--drop_path", "0",
           "--no_amp", "--num_workers", "0", "--device", "cpu", "--save_every", str(it), "--log_every", "100",
           "--save_dir", os.path.join(folder, "saves"), "--log_dir", os.path.join(folder, "runs")])
    return os.path.join(folder, "saves", "start", f"model_{it}.pth")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain_iterations", type=int, default=300)
    p.add_argument("--iterations", type=int, default=200, help="fine-tuning iterations")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.time()
        checkpoint = start_model(tmp, args.pretrain_iterations)
        pretrain_seconds = time.time() - clock
        data = write_glyph_videos(os.path.join(tmp, "glyphs"), 8, every=2, seed=3)
        clock = time.time()
        train(["--id", "ft", "--finetune", data, "--load_network", checkpoint, "--num_workers", "0", "--no_amp",
               "--device", "cpu", "--iterations", str(args.iterations), "--val_videos", "2",
               "--val_every", str(max(1, args.iterations // 4)), "--save_dir", os.path.join(tmp, "saves"),
               "--log_dir", os.path.join(tmp, "runs")])
        finetune_seconds = time.time() - clock
        held_out = find_annotated_videos([data])[-2:]
        before = score_videos(held_out, SimVOSPredictor.from_checkpoint(checkpoint, device="cpu"))["J&F"]
        after = score_videos(held_out, SimVOSPredictor.from_checkpoint(
            os.path.join(tmp, "saves", "ft", "finetuned.pth"), device="cpu"))["J&F"]
    print(json.dumps({"held_out_jf_before": round(before, 2), "held_out_jf_after": round(after, 2),
                      "pretrain_iterations": args.pretrain_iterations, "finetune_iterations": args.iterations,
                      "pretrain_seconds": round(pretrain_seconds), "finetune_seconds": round(finetune_seconds)}))


if __name__ == "__main__":
    main()
