"""Does fine-tuning on a few annotated real videos make the model better on real videos it never saw?

    python -m benchmarks.finetune_real --data DIR [--checkpoint demo_output/checkpoints/demo.pth]
                                       [--minutes 10] [--test 5] [--every 10]

DIR: annotated videos in the generic layout (JPEGImages/<video>/, Annotations/<video>/), e.g. real
DAVIS clips. The last ``--test`` videos (by name) are held out; the model is fine-tuned on the others
(``train_simvos.py --finetune``, a ``--minutes`` CPU budget each) twice: with every frame's mask, and
with every ``--every``-th frame's only (sparse annotations). Each model and copying the first mask
are scored with the same code (evaluation/own_videos.py: first-frame protocol, every annotated frame
after the first; frames as the predictor runs them by default, shorter side at most 480) on the
held-out videos.
Prints one JSON table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from dataset.annotated import find_annotated_videos
from evaluation.own_videos import score_videos
from inference_core.predictor import SimVOSPredictor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _subset(data: str, names: list[str], out: str, every: int) -> None:
    """A generic-layout folder of links: the videos ``names``, masks of every ``every``-th frame."""
    for name in names:
        frames = sorted(os.listdir(os.path.join(data, "JPEGImages", name)))
        os.makedirs(os.path.join(out, "JPEGImages", name))
        os.makedirs(os.path.join(out, "Annotations", name))
        for t, frame in enumerate(frames):
            os.symlink(os.path.abspath(os.path.join(data, "JPEGImages", name, frame)), os.path.join(out, "JPEGImages", name, frame))
            mask = os.path.splitext(frame)[0] + ".png"
            if t % every == 0 and os.path.isfile(os.path.join(data, "Annotations", name, mask)):
                os.symlink(os.path.abspath(os.path.join(data, "Annotations", name, mask)), os.path.join(out, "Annotations", name, mask))


def _finetune(checkpoint: str, folder: str, saves: str, name: str, minutes: float) -> tuple[str, str]:
    cmd = [sys.executable, "train_simvos.py", "--id", name, "--finetune", folder, "--load_network", checkpoint,
           "--minutes", str(minutes), "--num_workers", "1", "--no_amp", "--save_dir", saves,
           "--log_dir", os.path.join(saves, "runs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return os.path.join(saves, name, "finetuned.pth"), proc.stdout


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", default=os.path.join(ROOT, "demo_output", "checkpoints", "demo.pth"))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--test", type=int, default=5)
    p.add_argument("--every", type=int, default=10)
    args = p.parse_args(argv)
    names = sorted(os.listdir(os.path.join(args.data, "JPEGImages")))
    train, test = names[:-args.test], names[-args.test:]
    with tempfile.TemporaryDirectory() as tmp:
        _subset(args.data, test, os.path.join(tmp, "test"), 1)
        held_out = find_annotated_videos([os.path.join(tmp, "test")])
        table = {"train videos": train, "test videos": test, "minutes": args.minutes,
                 "copy the first mask": score_videos(held_out)["J&F"],
                 "start model": score_videos(held_out, SimVOSPredictor.from_checkpoint(args.checkpoint, device="cpu"))["J&F"]}
        for label, every in (("every frame annotated", 1), (f"every {args.every}th frame annotated", args.every)):
            folder = os.path.join(tmp, f"train_{every}")
            _subset(args.data, train, folder, every)
            weights, log = _finetune(args.checkpoint, folder, os.path.join(tmp, "saves"), f"ft{every}", args.minutes)
            iterations = [line for line in log.splitlines() if line.startswith("fine-tuned")]
            scores = score_videos(held_out, SimVOSPredictor.from_checkpoint(weights, device="cpu"))
            table[f"fine-tuned, {label}"] = {"J&F": scores["J&F"], "per video": scores["videos"], "log": iterations}
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
