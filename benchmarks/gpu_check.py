"""`make gpu-check OUT=DIR [QUICK=1] [PY=python]`: everything measured on a lent GPU in one run.

Runs with the machine's own PyTorch (any version: it is named), installs nothing, needs no network:
the CUDA tests; inference of SimVOS-B, -BS and -L at 854x480 (1 and 3 objects, 30 frames) in fp32 /
fp16 / bf16 against the restated published loop (fp32) on the same device in the same run (FPS with
the first frames excluded, peak memory, max |p - p_published|); the DAVIS evaluation script end to end
on a synthetic 480p tree against the model alone; training it/s and peak memory (vit_base, 384, batch
4, fp16 + grad scaler); one DDP step of two ranks. Writes DIR/gpu_check.json and DIR/gpu_check.md and
prints the table. ``--quick``: the same steps in a tiny form (tiny presets, small frames), which is how
``make test`` keeps it from rotting on machines without a GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

from dataset.synthetic import make_davis_dataset, make_video
from evaluation.published_loop import published_loop
from inference_core import SimVOSPredictor
from model import build_model, config_from_flags
from util.device import pick_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_FRAMES = 3  # excluded from timing: allocator warm-up, kernel autotuning


def environment(device: torch.device) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": device.type, "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1))
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = "unknown (no nvidia-smi)"
    return env


def cuda_tests() -> dict:
    """tests/test_cuda.py with this Python's pytest (skipped tests say why, e.g. without CUDA)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"result": "timed out after 300 s"}
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return {"returncode": proc.returncode, "result": lines[-1] if lines else proc.stderr[-300:]}


def _cases(quick: bool) -> list[tuple[str, dict]]:
    if quick:
        return [("SimVOS-B (tiny)", dict(backbone_type="vit_tiny", layer_index=0, depth=4, train_img_size=64)),
                ("SimVOS-BS (tiny)", dict(backbone_type="vit_tiny", layer_index=2, use_token_learner=True, depth=4,
                                          num_bases_foreground=8, num_bases_background=8, train_img_size=64))]
    return [("SimVOS-B", dict(backbone_type="vit_base", layer_index=0)),
            ("SimVOS-BS", dict(backbone_type="vit_base", layer_index=4, use_token_learner=True)),
            ("SimVOS-L", dict(backbone_type="vit_large", layer_index=0))]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _engine_run(model, device, frames, first, precision, compile_mode="off"):
    """(FPS after the warm-up frames, probs [T][K+1, H, W] on the CPU, peak MiB)."""
    predictor = SimVOSPredictor(model, device, amp=precision == "fp16", compile=compile_mode)
    bf16 = precision == "bf16" and device.type == "cuda"
    _reset_peak(device)
    stamps, probs = [], []
    with torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        for result in predictor.segment_video(frames, {0: first}):
            result.labels()                       # the host copy of the output: the one sync per frame
            stamps.append(time.perf_counter())
            probs.append(result.probs.float().cpu())
    timed = stamps[WARMUP_FRAMES:]
    fps = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 else float("nan")
    return fps, probs, _peak_mib(device)


def _precisions(device: torch.device) -> list[str]:
    return ["fp32", "fp16", "bf16"] if device.type == "cuda" else ["fp32"]


COMPILED_RUNS = [("fp16", "default"), ("fp16", "reduce-overhead")]  # CUDA only, SimVOS-BS with 1 object
COMPILED_MODEL = "SimVOS-BS"


def _case_model(flags: dict, device: torch.device):
    torch.manual_seed(0)
    model = build_model(config_from_flags(**flags)).to(device).eval()
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(5)  # probabilities away from 0.5, as trained ones are
    return model


def _published(model, device, frames, first) -> dict:
    """The restated published loop (fp32) on the video: its probabilities on the CPU, seconds, peak."""
    published_loop(model, frames[:2], first)                   # warm-up
    _sync(device)
    _reset_peak(device)
    begin = time.perf_counter()
    reference, _ = published_loop(model, frames, first)
    _sync(device)
    return {"probs": reference.cpu(), "seconds": time.perf_counter() - begin, "peak_mib": _peak_mib(device)}


def _measure(model, device, frames, first, published, row) -> dict:
    """One engine run of ``row``'s precision and compile mode against ``published``: the row, filled."""
    n = len(frames)
    label = f"  {row['model']}, {row['objects']} object(s), {row['precision']}, compile {row['compile']}"
    try:
        fps, probs, peak = _engine_run(model, device, frames, first, row["precision"], row["compile"])
    except Exception as error:  # a failing mode is a result of the check, not its end
        print(f"{label}: {type(error).__name__}: {error}", flush=True)
        return dict(row, error=f"{type(error).__name__}: {str(error)[:300]}")
    error = max(float((p - published["probs"][:, t]).abs().max()) for t, p in enumerate(probs))
    print(f"{label}: {fps:.2f} FPS (published fp32 {row['published_fp32_fps']:.2f}), max |dp| {error:.1e}", flush=True)
    return dict(row, fps=fps, speedup=fps * published["seconds"] / (n - 1), peak_mib=peak, max_abs_p_error=error)


def inference(quick: bool, device: torch.device, budget_s: float) -> list[dict]:
    """Every case eagerly in every precision against the restated published loop, then (CUDA) the
    compiled runs of SimVOS-BS with 1 object: compiling takes longest, so it comes last. Rows past
    ``budget_s`` seconds are left out (and say so), so that the steps after this one still run."""
    h, w, n = (64, 96, 8) if quick else (480, 854, 30)
    rows, start, kept = [], time.perf_counter(), {}

    def run(model, name, objects, frames, labels, published, precision, compile_mode):
        row = {"model": name, "objects": objects, "frames": n, "size": f"{w}x{h}", "precision": precision,
               "compile": compile_mode, "published_fp32_fps": (n - 1) / published["seconds"],
               "published_peak_mib": published["peak_mib"]}
        if time.perf_counter() - start > budget_s:
            rows.append(dict(row, skipped=f"over the step's {budget_s:.0f} s budget"))
        else:
            rows.append(_measure(model, device, frames, labels[0], published, row))

    for name, flags in _cases(quick):
        model = _case_model(flags, device)
        for objects in (1, 3):
            frames, labels = make_video(np.random.default_rng(objects), n, h, w, objects)
            published = _published(model, device, frames, labels[0])
            for precision in _precisions(device):
                run(model, name, objects, frames, labels, published, precision, "off")
            if name.startswith(COMPILED_MODEL) and objects == 1:
                kept = {"name": name, "flags": flags, "frames": frames, "labels": labels, "published": published}
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type == "cuda" and kept:  # on a CPU --compile is tests/test_compile.py's (a cold build is slow)
        model = _case_model(kept["flags"], device)
        for precision, compile_mode in COMPILED_RUNS:
            run(model, kept["name"], 1, kept["frames"], kept["labels"], kept["published"], precision, compile_mode)
    return rows


def sdpa_kernels(quick: bool, device: torch.device) -> dict:
    """Whether one propagation step runs with SDPA held to each fused kernel (flash, memory-efficient)
    at the precision --amp uses on this device and in fp32: a kernel that does not apply raises."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return {"skipped": f"torch {torch.__version__} has no torch.nn.attention.sdpa_kernel"}
    flags = dict(backbone_type="vit_tiny", layer_index=2, use_token_learner=True, depth=4, train_img_size=64) if quick \
        else dict(backbone_type="vit_base", layer_index=4, use_token_learner=True)
    h, w = (64, 96) if quick else (480, 854)
    torch.manual_seed(0)
    model = build_model(config_from_flags(**flags)).to(device).eval()
    frames, labels = make_video(np.random.default_rng(0), 3, h, w, 2)
    result = {}
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
    for precision in ("amp", "fp32"):
        for name, backend in backends.items():
            try:
                with sdpa_kernel([backend]):
                    for r in SimVOSPredictor(model, device, amp=precision == "amp").segment_video(frames, {0: labels[0]}):
                        r.labels()
                result[f"{precision}_{name}"] = "ok"
            except RuntimeError as error:
                result[f"{precision}_{name}"] = f"not used: {str(error).splitlines()[0][:200]}"
    result["amp_dtype"] = "fp16" if device.type == "cuda" else "bf16 where the CPU has it, else fp32"
    return result


def evaluation_script(quick: bool, device: torch.device) -> dict:
    """submit_eval_davis_ours_all.py end to end (decoding, PNG writing) vs the model alone."""
    h, w, n, seqs = (64, 96, 8, 2) if quick else (480, 854, 30, 3)
    flags = (["--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False"] if quick
             else ["--variant", "simvos_b"])
    with tempfile.TemporaryDirectory() as tmp:
        make_davis_dataset(os.path.join(tmp, "2017", "trainval"), n_train=0, n_val=seqs, size=(h, w), n_frames=n, seed=5)
        config = config_from_flags("vit_tiny", layer_index=0) if quick else config_from_flags("vit_base", layer_index=0)
        torch.manual_seed(0)
        model = build_model(config)
        os.makedirs(os.path.join(tmp, "ckpt"))
        torch.save(model.state_dict(), os.path.join(tmp, "ckpt", "random.pth"))
        cmd = [sys.executable, "submit_eval_davis_ours_all.py", "--model_path", os.path.join(tmp, "ckpt"),
               "--davis_path", os.path.join(tmp, "2017"), "--output", os.path.join(tmp, "out"), "--split", "val",
               "--device", str(device), *flags]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            return {"error": proc.stderr.strip().splitlines()[-1:]}
        match = re.search(r"(\d+) frames, ([\d.]+) s, ([\d.]+) FPS", proc.stdout)
        script_fps = float(match.group(3))
        from dataset.davis import davis_sequence
        from dataset.frames import iter_frames
        from dataset.palette_io import read_label_png
        model = model.to(device).eval()
        names = sorted(os.listdir(os.path.join(tmp, "out", "random")))
        videos = [davis_sequence(os.path.join(tmp, "2017", "trainval"), s) for s in names if not s.endswith(".csv")]
        loaded = [(list(iter_frames(v)), read_label_png(v.annotations[0])) for v in videos]
        predictor = SimVOSPredictor(model, device)
        _sync(device)
        start, count = time.perf_counter(), 0
        for frames, first in loaded:
            for result in predictor.segment_video(frames, {0: first}):
                result.labels()
                count += 1
        alone = count / (time.perf_counter() - start)
    return {"sequences": len(loaded), "frames_each": n, "size": f"{w}x{h}", "script_fps": script_fps,
            "model_alone_fps": alone, "script_share_of_model": script_fps / alone}


def training(quick: bool, device: torch.device) -> dict:
    """Our training step (training/trainer.py) against the restated published one
    (training/published_step.py) on the same random pairs: it/s and peak memory of each."""
    from benchmarks.run_all import bench_training
    from training.published_step import published_optimizer, published_step
    preset, size, batch, iters = ("vit_tiny", 64, 2, 3) if quick else ("vit_base", 384, 4, 20)
    _reset_peak(device)
    row = bench_training(preset, size, batch, iters, device, amp=True)
    row["peak_mib"] = _peak_mib(device)
    torch.manual_seed(0)
    model = build_model(config_from_flags(preset, layer_index=0, train_img_size=size), drop_path_rate=0.1).to(device)
    model.pos_embed_new.requires_grad_(False)
    optimizer = published_optimizer(model)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    pair = {"frames": torch.randn(batch, 2, 3, size, size), "masks": (torch.rand(batch, 2, 2, size, size) > 0.5).float(),
            "class_map": torch.randint(0, 3, (batch, size, size)), "selector": torch.ones(batch, 2)}
    if device.type == "cuda":
        torch.cuda.empty_cache()
    _reset_peak(device)
    model.train()
    times = []
    for i in range(iters + 1):
        begin = time.perf_counter()
        published_step(model, optimizer, scaler, pair, 1.0, device, amp=True)
        _sync(device)
        if i:
            times.append(time.perf_counter() - begin)
    row["published_iterations_per_s"] = 1 / float(np.mean(times))
    row["published_peak_mib"] = _peak_mib(device)
    row["speedup"] = row["iterations_per_s"] / row["published_iterations_per_s"]
    return row


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_step(quick: bool, device: torch.device) -> dict:
    """One training step of two ranks (NCCL on CUDA: needs two GPUs, NCCL refuses two ranks on one)."""
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return {"skipped": "one GPU: NCCL does not run two ranks on the same device (the CUDA tests run one "
                           "torchrun NCCL step when two are there)"}
    with tempfile.TemporaryDirectory() as tmp:
        make_davis_dataset(os.path.join(tmp, "DAVIS", "2017", "trainval"), n_train=3, n_val=1, size=(48, 64),
                           n_frames=5, seed=1)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
               "train_simvos.py", "--id", "ddp", "--backbone_type", "vit_tiny", "--layer_index", "0",
               "--use_token_learner", "False", "--pretrained", "none", "--yv_root", "none",
               "--davis_root", os.path.join(tmp, "DAVIS"), "--img_size", "48", "--batch_size", "1", "--iterations", "1",
               "--save_every", "1", "--num_workers", "0", "--save_dir", os.path.join(tmp, "saves"),
               "--log_dir", os.path.join(tmp, "runs")] + (["--no_amp"] if device.type != "cuda" else [])
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        sums = dict(re.findall(r"rank (\d+) weights checksum ([0-9.e+-]+\d)", proc.stdout))
    return {"returncode": proc.returncode, "seconds": time.perf_counter() - start,
            "ranks_agree": sorted(sums) == ["0", "1"] and len(set(sums.values())) == 1, "checksums": sums,
            "stdout_tail": proc.stdout[-1500:], "backend": "nccl" if device.type == "cuda" else "gloo"}


def _mib(value) -> str:
    return f"{value:.0f}" if value is not None else "-"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# gpu-check ({'quick' if report['quick'] else 'full'})", "",
             ", ".join(f"{k} {v}" for k, v in env.items()), "",
             f"CUDA tests: {report.get('cuda_tests', {}).get('result')}", "",
             "| model | objects | precision | compile | FPS | published fp32 FPS | x | peak MiB | published peak MiB | max abs dp |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report.get("inference", []):
        head = f"| {r['model']} | {r['objects']} | {r['precision']} | {r['compile']} |"
        if "fps" not in r:
            lines.append(f"{head} {r.get('error') or r.get('skipped')} | | | | | |")
            continue
        lines.append(f"{head} {r['fps']:.2f} | {r['published_fp32_fps']:.2f} | {r['speedup']:.2f} | {_mib(r['peak_mib'])} "
                     f"| {_mib(r['published_peak_mib'])} | {r['max_abs_p_error']:.1e} |")
    lines += ["", f"SDPA kernels: {report.get('sdpa_kernels')}"]
    e = report.get("evaluation_script", {})
    lines += ["Evaluation script end to end: " + (f"{e['script_fps']:.2f} FPS vs model alone {e['model_alone_fps']:.2f} "
              f"({100 * e['script_share_of_model']:.0f}%), {e['sequences']} x {e['frames_each']} frames {e['size']}"
              if "script_fps" in e else str(e))]
    t = report.get("training")
    if t and "iterations_per_s" in t:
        lines += [f"Training: {t['preset']} {t['img_size']}px batch {t['batch']}, {t['precision']}: ours "
                  f"{t['iterations_per_s']:.2f} it/s (peak {_mib(t['peak_mib'])} MiB), published step "
                  f"{t['published_iterations_per_s']:.2f} it/s (peak {_mib(t['published_peak_mib'])} MiB): "
                  f"{t['speedup']:.2f}x"]
    else:
        lines += [f"Training: {t}"]
    lines += [f"DDP: { {k: v for k, v in (report.get('ddp') or {}).items() if k != 'stdout_tail'} }", f"Total: {report.get('seconds', 0):.0f} s"]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str) -> str:
    """DIR/gpu_check.json and DIR/gpu_check.md (rewritten after every step: a run cut short keeps
    what it measured)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    text = markdown(report)
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--quick", action="store_true", help="tiny presets and frames (the CPU form)")
    p.add_argument("--device", default=None)
    p.add_argument("--inference_budget_s", type=float, default=240,
                   help="inference rows past this many seconds are left out (the later steps still run)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    start = time.perf_counter()
    report = {"quick": args.quick, "environment": environment(device)}
    print(f"gpu-check on {report['environment']}", flush=True)
    steps = [("cuda_tests", lambda: cuda_tests()),
             ("inference", lambda: inference(args.quick, device, args.inference_budget_s)),
             ("sdpa_kernels", lambda: sdpa_kernels(args.quick, device)),
             ("evaluation_script", lambda: evaluation_script(args.quick, device)),
             ("training", lambda: training(args.quick, device)), ("ddp", lambda: ddp_step(args.quick, device))]
    for key, step in steps:
        print(f"[{key}]", flush=True)
        try:
            report[key] = step()
        except Exception as error:  # one failing step must not lose the others' numbers
            traceback.print_exc()
            report[key] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
        report["seconds"] = time.perf_counter() - start
        write_report(report, args.out)
    print(write_report(report, args.out))
    failed = [key for key, _ in steps if isinstance(report[key], dict) and "error" in report[key]]
    if failed:
        sys.exit(f"gpu-check: step(s) failed: {', '.join(failed)} (see {args.out}/gpu_check.json)")


if __name__ == "__main__":
    main()
