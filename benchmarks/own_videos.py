"""Own-video benchmarks (part of `make bench`; also `python -m benchmarks.own_videos`):

* a 1080p H.264 video through segment_video.py at --size 480 and at full size (-1): seconds per
  frame and peak memory, each in its own process;
* a 100-frame 480p video propagated by the studio (its job runner, through the HTTP API) and by
  segment_video.py, on the same model: seconds for the same frames.
Random vit_tiny weights (the demo's preset; speed does not depend on the weights).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from dataset.palette_io import write_label_png
from dataset.synthetic import make_video
from dataset.video_io import VideoWriter
from model import build_model, config_from_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False"]
SUMMARY = re.compile(r"(\d+) frames, ([\d.]+) s, ([\d.]+) FPS, peak memory (\d+) MiB")


def _video(folder: str, name: str, frames: int, height: int, width: int) -> tuple[str, str]:
    rgb, labels = make_video(np.random.default_rng(1), frames, height, width, 2)
    path = os.path.join(folder, f"{name}.mp4")
    with VideoWriter(path, 25.0, width, height) as writer:
        for frame in rgb:
            writer.write(frame)
    mask = os.path.join(folder, f"{name}_mask.png")
    write_label_png(mask, labels[0])
    return path, mask


def _checkpoint(folder: str) -> str:
    torch.manual_seed(0)
    path = os.path.join(folder, "tiny.pth")
    torch.save(build_model(config_from_flags("vit_tiny", layer_index=0)).state_dict(), path)
    return path


def _segment(checkpoint, video, mask, out, *extra) -> dict:
    proc = subprocess.run([sys.executable, "segment_video.py", "--checkpoint", checkpoint, "--input", video, "--mask", mask,
                           "--output", out, "--overlay", "none", "--device", "cpu", *FLAGS, *extra],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    frames, seconds, fps, peak = SUMMARY.search(proc.stdout).groups()
    return {"frames": int(frames), "seconds": float(seconds), "fps": float(fps), "peak_mib": int(peak)}


def bench_1080p(frames_480: int = 10, frames_full: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint(tmp)
        out = {}
        for key, count, size in (("size_480", frames_480, "480"), ("full_size", frames_full, "-1")):
            video, mask = _video(tmp, key, count, 1080, 1920)
            out[key] = _segment(ckpt, video, mask, os.path.join(tmp, "out_" + key), "--size", size)
            out[key]["seconds_per_frame"] = out[key]["seconds"] / out[key]["frames"]
    return {"video": "1920x1080 H.264, 2 objects, vit_tiny", **out}


def bench_overlap(frames: int = 20) -> dict:
    """segment_video.py on a 480p H.264 video with every export, I/O on threads or in one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint(tmp)
        video, mask = _video(tmp, "clip480", frames, 480, 854)
        runs = {flag: _segment(ckpt, video, mask, os.path.join(tmp, f"out_{flag}"), "--overlap_io", flag,
                               "--save", "palette", "objects", "coco") for flag in ("False", "True")}
    return {"video": f"{frames} frames 854x480 H.264, 2 objects, vit_tiny, --save palette objects coco",
            "one_thread_fps": runs["False"]["fps"], "overlapped_fps": runs["True"]["fps"],
            "gain": runs["True"]["fps"] / runs["False"]["fps"]}


def bench_compile(frames: int = 16, warmup: int = 3) -> dict:
    """The predictor on 854x480 frames, eager and with --compile default: seconds of the first
    ``warmup`` frames (the compiles, one per memory length) and per frame after them; the largest
    probability difference between the two."""
    from inference_core import SimVOSPredictor
    rgb, labels = make_video(np.random.default_rng(1), frames, 480, 854, 2)
    torch.manual_seed(0)
    model = build_model(config_from_flags("vit_tiny", layer_index=0)).eval()
    out, probs = {}, {}
    for mode in ("off", "default"):
        stamps, probs[mode] = [time.perf_counter()], []
        for result in SimVOSPredictor(model, "cpu", compile=mode).segment_video(rgb, {0: labels[0]}):
            result.labels()
            probs[mode].append(result.probs)
            stamps.append(time.perf_counter())
        out[mode] = {"first_frames_seconds": stamps[warmup] - stamps[0],
                     "seconds_per_frame": (stamps[-1] - stamps[warmup]) / (frames - warmup)}
    error = max(float((a - b).abs().max()) for a, b in zip(probs["off"], probs["default"]))
    return {"video": f"{frames} frames 854x480, 2 objects, vit_tiny, fp32", "warmup_frames": warmup,
            "eager": out["off"], "compiled": out["default"], "max_abs_p_difference": error,
            "steady_gain": out["off"]["seconds_per_frame"] / out["default"]["seconds_per_frame"]}


def markdown(report: dict) -> list[str]:
    lines = []
    if "own_video_1080p" in report:
        r = report["own_video_1080p"]
        lines += ["", f"Own video, {r['video']} (segment_video.py, one process each):", "",
                  "| --size | frames | s / frame | peak memory MiB |", "| --- | --- | --- | --- |"]
        lines += [f"| {label} | {r[key]['frames']} | {r[key]['seconds_per_frame']:.2f} | {r[key]['peak_mib']} |"
                  for key, label in (("size_480", "480"), ("full_size", "-1 (1920x1080)"))]
    if "overlap_io" in report:
        r = report["overlap_io"]
        lines += ["", f"Overlapped I/O, {r['video']}: {r['one_thread_fps']:.2f} FPS in one thread, "
                      f"{r['overlapped_fps']:.2f} FPS with the reader and writer threads (x{r['gain']:.2f})"]
    if "compile" in report:
        r = report["compile"]
        e, c = r["eager"], r["compiled"]
        lines += ["", f"--compile default, {r['video']}: first {r['warmup_frames']} frames {e['first_frames_seconds']:.1f} s "
                      f"eager, {c['first_frames_seconds']:.1f} s compiled (the compiles); then {e['seconds_per_frame']:.2f} vs "
                      f"{c['seconds_per_frame']:.2f} s/frame (x{r['steady_gain']:.2f}); max |dp| {r['max_abs_p_difference']:.1e}"]
    if "studio_vs_cli" in report:
        r = report["studio_vs_cli"]
        lines += ["", f"Studio vs segment_video.py, {r['video']}: studio {r['studio_seconds']:.1f} s for "
                      f"{r['studio_frames']} frames, segment_video.py {r['cli_seconds']:.1f} s for {r['cli_frames']} "
                      f"(per frame: studio / CLI = {r['studio_over_cli']:.2f})"]
    return lines


def bench_studio_vs_cli(frames: int = 100) -> dict:
    from fastapi.testclient import TestClient
    from inference_core.predictor import build_predictor
    from studio.app import create_app
    from studio.jobs import JobRunner
    from studio.store import Workspace
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint(tmp)
        video, mask = _video(tmp, "clip480", frames, 480, 854)
        cli = _segment(ckpt, video, mask, os.path.join(tmp, "cli"))
        predictor = build_predictor(ckpt, config_from_flags("vit_tiny", layer_index=0), "cpu")
        client = TestClient(create_app(Workspace(os.path.join(tmp, "ws")), JobRunner(predictor), "t", {}))
        auth = {"Authorization": "Bearer t"}
        with open(video, "rb") as f:
            sid = client.post("/api/sessions", files={"video": ("clip.mp4", f, "video/mp4")}, headers=auth).json()["id"]
        with open(mask, "rb") as f:
            client.put(f"/api/sessions/{sid}/masks/00000.png", content=f.read(), headers=auth)
        job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0, "direction": "forward"}, headers=auth).json()
        while (state := client.get(f"/api/jobs/{job['job']}", headers=auth).json())["state"] in ("queued", "running"):
            time.sleep(0.2)
    return {"video": f"{frames} frames 854x480 H.264, 2 objects, vit_tiny", "cli_seconds": cli["seconds"],
            "cli_frames": cli["frames"], "studio_seconds": state["seconds"], "studio_frames": state["done"],
            "studio_state": state["state"], "studio_over_cli": state["seconds"] / state["done"] / (cli["seconds"] / cli["frames"])}


def main() -> None:
    report = {"own_video_1080p": bench_1080p(), "overlap_io": bench_overlap(), "compile": bench_compile(),
              "studio_vs_cli": bench_studio_vs_cli()}
    print(json.dumps(report, indent=1))
    print("\n".join(markdown(report)))


if __name__ == "__main__":
    main()
