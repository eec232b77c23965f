"""`make bench`: inference, streaming memory, training, data loading and J&F scoring benchmarks.

Writes benchmarks/results/bench.json and bench.md (with the machine described). Random weights
(speed does not depend on them); synthetic frames and masks.
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

import numpy as np
import torch

from evaluation.published_loop import published_loop
from dataset.synthetic import make_video
from inference_core import SimVOSPredictor
from model import build_model, config_from_flags
from util.device import amp_supported, autocast_dtype, pick_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RESULTS = os.path.join(ROOT, "benchmarks", "results")


def machine() -> dict:
    cpu = platform.processor() or ""
    if os.path.isfile("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": "cuda" if gpu else "cpu", "gpu": gpu}


def _timed(fn, device: torch.device):
    """-> (fn(), seconds), synchronising CUDA around the call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls, after one warm-up call."""
    fn()
    return min(_timed(fn, device)[1] for _ in range(repeats))


def gemm_peaks(device: torch.device, repeats: int = 5) -> dict[str, float]:
    """The machine's measured matmul throughput, GFLOP/s per dtype: the best of ``repeats`` n x n x n
    products (n = 2048 on CPU, 8192 on CUDA). bf16 on a CPU without native bf16 is emulated (slow)."""
    n = 8192 if device.type == "cuda" else 2048
    dtypes = [torch.float32, torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    peaks = {}
    for dtype in dtypes:
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        peaks[str(dtype).removeprefix("torch.")] = 2 * n**3 / _best_seconds(lambda: torch.matmul(a, b), device, repeats) / 1e9
    return peaks


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU attention kernel (not in torch's flop registry): QK^T and PV, 2 each per MAC."""
    batch, heads, rows, dim = query
    return 2 * batch * heads * rows * key[-2] * (dim + value[-1])


def flops_per_frame(model, frames, first_labels, device) -> float:
    """Average FLOPs per frame of the propagation (matmuls, convolutions, attention), counted by
    torch's FlopCounterMode on an fp32 run."""
    from torch.utils.flop_counter import FlopCounterMode
    attention = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    with FlopCounterMode(display=False, custom_mapping=attention) as counter:
        for result in SimVOSPredictor(model, device).segment_video(frames, {0: first_labels}):
            result.probs
    return counter.get_total_flops() / len(frames)


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = 64) -> torch.Tensor:
    """Attention in query blocks from framework matmuls (scores in the input dtype, softmax in fp32):
    the alternative to SDPA that this benchmark measures. q [B, H, N, D], k/v [B, H, M, D] -> [B, H, N, D]."""
    b, h, n, d = q.shape
    m = k.shape[-2]
    q3 = (q * d**-0.5).reshape(b * h, n, d)
    kt = k.reshape(b * h, m, d).transpose(1, 2).contiguous()
    v3 = v.reshape(b * h, m, d)
    rows = [torch.bmm(torch.softmax(torch.bmm(q3[:, s:s + block], kt), -1, dtype=torch.float32).to(q.dtype), v3)
            for s in range(0, n, block)]
    return torch.cat(rows, 1).view(b, h, n, d)


def bench_attention(device: torch.device) -> list[dict]:
    """GFLOP/s of SDPA (fp32, bf16) and of :func:`blocked_attention` (bf16) at the joint stage's
    shapes of ViT-B (12 heads of 64): B and BS at 192x320 (3 objects), B at 480x864 (1 object)."""
    rows = []
    for name, tokens, batch in (("B 192x320", 3 * 240, 3), ("BS 192x320", 2 * 768 + 240, 3), ("B 480x864", 3 * 1620, 1)):
        q, k, v = (torch.randn(batch, 12, tokens, 64, device=device) for _ in range(3))
        flops = 4 * batch * 12 * tokens * tokens * 64
        row = {"case": name, "tokens": tokens, "objects": batch}
        for key, dtype, fn in (("sdpa_fp32", torch.float32, torch.nn.functional.scaled_dot_product_attention),
                               ("sdpa_bf16", torch.bfloat16, torch.nn.functional.scaled_dot_product_attention),
                               ("blocked_bf16", torch.bfloat16, blocked_attention)):
            args = [t.to(dtype) for t in (q, k, v)]
            row[f"{key}_gflops"] = flops / _best_seconds(lambda: fn(*args), device, 3) / 1e9
        rows.append(row)
    return rows


def _model(preset: str, bs: bool, device):
    torch.manual_seed(0)
    cfg = config_from_flags(preset, layer_index=4 if bs else 0, use_token_learner=bs)
    model = build_model(cfg).to(device).eval()
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(5)  # not all objects tied at 0.5, not saturated
    return model


def bench_inference(preset, bs, size, n_frames, n_objects, device, peaks: dict[str, float]) -> dict:
    """FPS of the restated published loop (fp32) and of ours (fp32, --amp) on one synthetic video,
    their largest probability difference, and the achieved GFLOP/s as a share of the GEMM peak."""
    frames, labels = make_video(np.random.default_rng(0), n_frames, *size, n_objects)
    model = _model(preset, bs, device)
    row = {"preset": preset + ("-BS" if bs else ""), "size": f"{size[0]}x{size[1]}", "frames": n_frames,
           "objects": n_objects, "gflop_per_frame": flops_per_frame(model, frames, labels[0], device) / 1e9}
    (ref, _), t_pub = _timed(lambda: published_loop(model, frames, labels[0]), device)
    row["published_fps"] = n_frames / t_pub
    for amp in (False, True):
        predictor = SimVOSPredictor(model, device, amp=amp)
        results, t = _timed(lambda: [r.probs for r in predictor.segment_video(frames, {0: labels[0]})], device)
        key = "amp" if amp else "fp32"
        row[f"{key}_fps"] = n_frames / t
        diff = (torch.stack(results, 1) - ref).abs()
        row[f"{key}_max_abs_diff_vs_published"] = float(diff.max())
        # Frame 1 is one step from the same memory; later frames also carry earlier argmax flips
        # (random weights leave objects nearly tied) through the previous-frame memory.
        row[f"{key}_max_abs_diff_frame1"] = float(diff[:, 1].max())
    row["fp32_speedup"] = row["fp32_fps"] / row["published_fps"]
    row["amp_speedup"] = row["amp_fps"] / row["published_fps"]
    amp_peak = str(autocast_dtype(device)).removeprefix("torch.") if amp_supported(device) else "float32"
    for key, peak in (("fp32", "float32"), ("amp", amp_peak)):
        row[f"{key}_gflops"] = row["gflop_per_frame"] * row[f"{key}_fps"]
        row[f"{key}_share_of_peak"] = row[f"{key}_gflops"] / peaks[peak]
    return row


_MEMORY_CHILD = """
import numpy as np, torch
from dataset.synthetic import make_video
from util.device import peak_memory_mib
from inference_core import SimVOSPredictor
from model import build_model, config_from_flags
torch.manual_seed(0)
model = build_model(config_from_flags('vit_small', layer_index=0))
frames, labels = make_video(np.random.default_rng(0), 30, 240, 432, 2)
predictor = SimVOSPredictor(model, 'cpu')
n = {n}
for r in predictor.segment_video((frames[i % 30] for i in range(n)), {{0: labels[0]}}):
    r.labels()
print(peak_memory_mib(torch.device('cpu')))
"""


def bench_memory() -> dict:
    peaks = {}
    for n in (30, 300):
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD.format(n=n)], capture_output=True,
                             text=True, check=True, cwd=ROOT)
        peaks[n] = float(out.stdout.strip().splitlines()[-1])
    return {"video": "240x432, 2 objects, vit_small", "peak_rss_mib_30_frames": peaks[30],
            "peak_rss_mib_300_frames": peaks[300], "ratio": peaks[300] / peaks[30]}


def bench_training(preset, img_size, batch, iters, device, amp: bool = False) -> dict:
    """Steps of the project's own Trainer (forward, loss, backward, optimiser) on random pairs."""
    from training.cli import parse_args
    from training.config import resolve_config
    from training.trainer import Trainer
    from util.distributed import DistInfo
    args = parse_args(["--backbone_type", preset, "--layer_index", "0", "--use_token_learner", "False",
                       "--pretrained", "none", "--img_size", str(img_size), "--batch_size", str(batch),
                       "--save_dir", tempfile.mkdtemp(), "--no_amp", str(not amp)])
    trainer = Trainer(resolve_config(args, device.type), DistInfo(0, 1, 0, device), batches_per_epoch=1)
    torch.manual_seed(0)
    pair = {"frames": torch.randn(batch, 2, 3, img_size, img_size),
            "masks": (torch.rand(batch, 2, 2, img_size, img_size) > 0.5).float(),
            "class_map": torch.randint(0, 3, (batch, img_size, img_size)), "selector": torch.ones(batch, 2)}
    times = []
    trainer.net.train()
    for i in range(iters + 1):
        start = time.perf_counter()
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.optimise(trainer.step(pair, 1.0)["loss"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return {"preset": preset, "img_size": img_size, "batch": batch, "iterations_per_s": 1 / np.mean(times),
            "device": device.type, "precision": "fp16 autocast + grad scaler" if amp and device.type == "cuda" else "fp32"}


def bench_loader(workers_list=(0, 2)) -> list[dict]:
    from torch.utils.data import DataLoader
    from dataset.synthetic import make_davis_dataset
    from dataset.vos_pairs import VOSPairDataset, scan_videos
    from training.data import SeededConcat, SeededSampler
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_davis_dataset(tmp, n_train=6, n_val=1, size=(480, 854), n_frames=10, seed=0)
        videos = scan_videos(os.path.join(tmp, "JPEGImages", "480p"), os.path.join(tmp, "Annotations", "480p"))
        dataset = SeededConcat([VOSPairDataset(videos, 10, 384)])
        for workers in workers_list:
            loader = DataLoader(dataset, batch_size=4, num_workers=workers, sampler=SeededSampler(dataset, 1, 0, 0))
            start, n = time.perf_counter(), 0
            for _ in range(3):
                for batch in loader:
                    n += batch["frames"].shape[0]
            rows.append({"workers": workers, "samples_per_s": n / (time.perf_counter() - start),
                         "frame_size": "480x854", "crop": 384})
    return rows


def make_scoring_set(root: str, sequences: int = 30, seed: int = 0) -> int:
    """DAVIS-2017-val-sized masks: 30 sequences of 480x854, ~2000 frames, 1..5 objects."""
    from dataset.palette_io import write_label_png
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:480, :854]
    total = 0
    names = []
    for s in range(sequences):
        name, n, k = f"seq{s:02d}", int(rng.integers(40, 95)), int(rng.integers(1, 6))
        names.append(name)
        centres = rng.uniform([60, 60], [420, 794], (k, 2))
        velocity = rng.uniform(-4, 4, (k, 2))
        radius = rng.uniform(25, 90, k)
        for t in range(n):
            gt = np.zeros((480, 854), np.uint8)
            pred = np.zeros((480, 854), np.uint8)
            for j in range(k):
                cy, cx = centres[j] + velocity[j] * t
                gt[(yy - cy) ** 2 + ((xx - cx) * 0.8) ** 2 <= radius[j] ** 2] = j + 1
                dy, dx = rng.normal(0, 4, 2)
                pred[(yy - cy - dy) ** 2 + ((xx - cx - dx) * 0.8) ** 2 <= (radius[j] * rng.uniform(0.9, 1.1)) ** 2] = j + 1
            for kind, lab in (("Annotations/480p", gt), ("pred", pred)):
                os.makedirs(os.path.join(root, kind, name), exist_ok=True)
                write_label_png(os.path.join(root, kind, name, f"{t:05d}.png"), lab)
            total += 1
    os.makedirs(os.path.join(root, "ImageSets", "2017"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return total


def bench_scoring(reference_subset: int = 4) -> dict:
    from evaluation.official_jf import official_evaluate
    from evaluation import jf
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["frames"] = make_scoring_set(tmp)
        for workers in (1, 2):
            start = time.perf_counter()
            jf.evaluate(jf.davis_jobs(tmp, "val", os.path.join(tmp, "pred")), workers)
            out[f"ours_{workers}_workers_s"] = time.perf_counter() - start
        names = sorted(os.listdir(os.path.join(tmp, "pred")))[:reference_subset]
        frames = sum(len(os.listdir(os.path.join(tmp, "pred", n))) for n in names)
        start = time.perf_counter()
        official_evaluate(os.path.join(tmp, "Annotations", "480p"), os.path.join(tmp, "pred"), names)
        out["official_algorithm_1_process_s_extrapolated"] = (time.perf_counter() - start) * out["frames"] / frames
        for workers in (1, 2):
            try:
                start = time.perf_counter()
                code = ("from vos_benchmark.benchmark import benchmark; "
                        f"benchmark([{os.path.join(tmp, 'Annotations', '480p')!r}], [{os.path.join(tmp, 'pred')!r}], "
                        f"num_processes={workers}, verbose=False)")
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
                out[f"vos_benchmark_{workers}_workers_s"] = time.perf_counter() - start
            except (subprocess.CalledProcessError, FileNotFoundError) as exc:
                out["vos_benchmark_error"] = str(exc)[:200]
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, device {m['device']}"
             + (f" ({m['gpu']})" if m["gpu"] else ""), ""]
    peaks = report["gemm_peaks"]
    lines += ["Measured GEMM peaks: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()), ""]
    lines += ["| preset | frame | frames | objects | GFLOP/frame | published loop fp32 FPS | ours fp32 FPS | ours --amp FPS "
              "| fp32 / --amp speed-up | fp32 / --amp GFLOP/s (share of peak) | max |p - p_published| fp32 / --amp (--amp at frame 1) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["inference"]:
        lines.append(f"| {r['preset']} | {r['size']} | {r['frames']} | {r['objects']} | {r['gflop_per_frame']:.1f} | "
                     f"{r['published_fps']:.2f} | {r['fp32_fps']:.2f} | {r['amp_fps']:.2f} | "
                     f"{r['fp32_speedup']:.2f}x / {r['amp_speedup']:.2f}x | "
                     f"{r['fp32_gflops']:.0f} ({r['fp32_share_of_peak']:.0%}) / {r['amp_gflops']:.0f} ({r['amp_share_of_peak']:.0%}) | "
                     f"{r['fp32_max_abs_diff_vs_published']:.1e} / {r['amp_max_abs_diff_vs_published']:.1e} "
                     f"({r['amp_max_abs_diff_frame1']:.1e}) |")
    lines += ["", "| attention (ViT-B joint stage) | tokens | objects | SDPA fp32 GFLOP/s | SDPA bf16 GFLOP/s | blocked bf16 GFLOP/s |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['case']} | {r['tokens']} | {r['objects']} | {r['sdpa_fp32_gflops']:.0f} | {r['sdpa_bf16_gflops']:.0f} | "
              f"{r['blocked_bf16_gflops']:.0f} |" for r in report["attention"]]
    mem = report["memory"]
    lines += ["", f"Streaming memory ({mem['video']}): peak RSS {mem['peak_rss_mib_30_frames']:.0f} MiB at 30 frames, "
              f"{mem['peak_rss_mib_300_frames']:.0f} MiB at 300 frames (x{mem['ratio']:.2f})", ""]
    lines += ["| training preset | image | batch | it/s |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['preset']} | {r['img_size']} | {r['batch']} | {r['iterations_per_s']:.2f} |" for r in report["training"]]
    lines += ["", "| data loader workers | samples/s (480x854 frames, 384 crops) |", "| --- | --- |"]
    lines += [f"| {r['workers']} | {r['samples_per_s']:.1f} |" for r in report["loader"]]
    s = report["scoring"]
    lines += ["", f"J&F scoring, {s['frames']} frames of 480x854 (30 sequences, 1-5 objects), seconds:", "",
              "| tool | 1 process | 2 processes |", "| --- | --- | --- |",
              f"| evaluation.davis_metrics | {s['ours_1_workers_s']:.1f} | {s['ours_2_workers_s']:.1f} |",
              f"| vos-benchmark 0.1.0 | {s.get('vos_benchmark_1_workers_s', float('nan')):.1f} | "
              f"{s.get('vos_benchmark_2_workers_s', float('nan')):.1f} |",
              f"| official algorithm (restated, extrapolated) | {s['official_algorithm_1_process_s_extrapolated']:.1f} | - |"]
    from benchmarks.own_videos import markdown as own_video_lines
    lines += own_video_lines(report)
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    p.add_argument("--only_scoring", action="store_true", help="re-run the J&F scoring part of an existing report")
    args = p.parse_args(argv)
    if args.only_scoring:
        with open(os.path.join(RESULTS, "bench.json")) as f:
            report = json.load(f)
        report["scoring"] = bench_scoring()
        _write(report)
        return
    device = pick_device()
    report = {"machine": machine(), "gemm_peaks": gemm_peaks(device)}
    print(json.dumps(report, indent=1), flush=True)
    # The case the speed targets name first: SimVOS-BS, 10 frames of 192x320, 3 objects.
    cases = [("vit_base", True, (192, 320), 10, 3), ("vit_base", False, (192, 320), 10, 3),
             ("vit_tiny", False, (240, 432), 12, 2), ("vit_tiny", True, (240, 432), 12, 2),
             ("vit_small", False, (240, 432), 8, 2)]
    if not args.quick:
        cases += [("vit_tiny", False, (480, 864), 8, 3), ("vit_base", True, (480, 864), 3, 2)]
    report["inference"] = [bench_inference(*c, device, report["gemm_peaks"]) for c in cases]
    report["attention"] = bench_attention(device)
    print(json.dumps(report["inference"], indent=1), flush=True)
    report["memory"] = bench_memory()
    report["training"] = [bench_training("vit_tiny", 96, 4, 5, device), bench_training("vit_tiny", 384, 4, 2, device),
                          bench_training("vit_base", 384, 1, 1, device)]
    report["loader"] = bench_loader()
    report["scoring"] = bench_scoring()
    from benchmarks import own_videos
    report["own_video_1080p"] = own_videos.bench_1080p()
    report["overlap_io"] = own_videos.bench_overlap()
    report["compile"] = own_videos.bench_compile()
    report["studio_vs_cli"] = own_videos.bench_studio_vs_cli()
    _write(report)


def _write(report: dict) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "bench.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = markdown(report)
    with open(os.path.join(RESULTS, "bench.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
