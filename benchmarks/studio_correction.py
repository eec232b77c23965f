"""A correction in the studio: from "propagate from the correction on frame 50" to its first new mask.

    python -m benchmarks.studio_correction [--frames 100] [--height 480] [--width 854]

A video of 100 frames at 854x480 in a studio workspace, annotated on frames 0, 20, 40, 60 and 80.
The user has propagated once (a job from frame 80 to the end, which leaves the session live), then
saves a correction on frame 50 and propagates forward from it: measured is the time from submitting
that job to its first result on disk ("warm"). Then the studio restarts (a new job runner on the same
workspace) and the same job is submitted again ("after a restart": the session is rebuilt from the
workspace first). Random vit_tiny weights (the demo's preset; speed does not depend on them), CPU,
in one process through the job runner's Python interface (what the HTTP routes call).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from dataset.palette_io import write_label_png
from dataset.synthetic import make_video
from inference_core.predictor import SimVOSPredictor
from model import build_model, config_from_flags
from studio.jobs import JobRunner
from studio.store import Workspace

ANNOTATED = (0, 20, 40, 60, 80)
CORRECTION = 50


def _first_result_seconds(runner: JobRunner, session, frame: int, timeout: float = 600.0) -> float:
    start = time.perf_counter()
    job = runner.submit(session, frame, "forward", "next")
    while job.done < 1:
        if job.state in ("failed", "cancelled") or time.perf_counter() - start > timeout:
            raise RuntimeError(f"job {job.state}: {job.error}")
        time.sleep(0.002)
    seconds = time.perf_counter() - start
    runner.cancel(job)
    while job.state in ("queued", "running"):
        time.sleep(0.01)
    return seconds


def measure(frames: int, height: int, width: int) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    predictor = SimVOSPredictor(build_model(config_from_flags("vit_tiny", layer_index=0)), "cpu")
    rgb, labels = make_video(np.random.default_rng(1), frames, height, width, 2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "clip")
        os.makedirs(folder)
        for i, frame in enumerate(rgb):
            Image.fromarray(frame).save(os.path.join(folder, f"{i:05d}.jpg"), quality=92)
        workspace = Workspace(os.path.join(tmp, "workspace"))
        session = workspace.create(folder, "clip", owned=False)
        for i in ANNOTATED:
            write_label_png(session.path("masks", i), labels[i])
        runner = JobRunner(predictor, max_keyframes=8)
        _first_result_seconds(runner, session, ANNOTATED[-1])       # an earlier propagation
        write_label_png(session.path("masks", CORRECTION), labels[CORRECTION])
        warm = _first_result_seconds(runner, session, CORRECTION)
        restarted = _first_result_seconds(JobRunner(predictor, max_keyframes=8), session, CORRECTION)
    return {"frames": frames, "size": f"{width}x{height}", "annotations": len(ANNOTATED) + 1,
            "first_mask_seconds_warm": round(warm, 2), "first_mask_seconds_after_restart": round(restarted, 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.frames, args.height, args.width), indent=1))


if __name__ == "__main__":
    main()
