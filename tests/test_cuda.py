"""CUDA-only checks: device placement after every kind of checkpoint load, fp16 autocast against
fp32, one DDP training step over NCCL, the engine and our training step against the restated
published ones, no host synchronisation per frame, attention on the fused SDPA kernels under --amp,
CUDA graphs (--compile reduce-overhead) against eager. Skipped, with the reason, without CUDA."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from dataset.synthetic import make_video
from inference_core.predictor import SimVOSPredictor, build_predictor
from model import build_model
from tests.conftest import tiny_config
from tests.published_format import mae_shapes, random_state
from tests.test_checkpoint import _shapes as published_shapes
from tests.test_training import ROOT, train_argv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")


def _moved(obj, device: str):
    """Every tensor of a (nested) checkpoint dict moved to ``device``."""
    if isinstance(obj, dict):
        return {k: _moved(v, device) for k, v in obj.items()}
    return obj.to(device) if torch.is_tensor(obj) else obj


def _checkpoint(tmp_path, kind: str, on: str) -> str:
    """A checkpoint file of ``kind`` whose tensors were saved from device ``on``."""
    c = tiny_config(token_learner=True)
    shapes = published_shapes(token_learner=True)
    if kind == "simvos":
        obj = random_state(shapes)
    elif kind == "ddp":
        obj = random_state(shapes, prefix="module.")
    elif kind == "mae":
        obj = {"model": random_state(mae_shapes(c.embed_dim, c.depth))}
    else:  # a full training state of ours
        obj = {"network": build_model(c).state_dict(), "it": 3}
    obj = _moved(obj, on)
    path = str(tmp_path / f"{kind}_{on.replace(':', '')}.pth")
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("on", ["cpu", "cuda:0"])
@pytest.mark.parametrize("kind", ["simvos", "ddp", "mae", "training-state"])
def test_every_checkpoint_kind_runs_on_the_gpu(tmp_path, kind, on):
    predictor = build_predictor(_checkpoint(tmp_path, kind, on), tiny_config(token_learner=True), device="cuda")
    tensors = dict(predictor.model.named_parameters()) | dict(predictor.model.named_buffers())
    assert {name for name, t in tensors.items() if t.device.type != "cuda"} == set()
    frames, labels = make_video(np.random.default_rng(0), 3, 64, 96, 2)
    for result in predictor.segment_video(frames, {0: labels[0]}):
        assert np.isfinite(np.asarray(result.probs)).all()


def test_fp16_autocast_matches_fp32():
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=True)).eval()
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(5)   # probabilities away from 0.5 and from saturation
    frames, labels = make_video(np.random.default_rng(1), 5, 96, 160, 2)
    probs = {}
    for amp in (False, True):
        predictor = SimVOSPredictor(model, "cuda", amp=amp)
        probs[amp] = np.stack([np.asarray(r.probs) for r in predictor.segment_video(frames, {0: labels[0]})])
    assert np.abs(probs[True] - probs[False]).max() < 2e-2


def test_one_ddp_step_over_nccl(davis_root, tmp_path):
    argv = train_argv(davis_root, tmp_path, "--iterations", "1", "--save_every", "100")
    argv[argv.index("--device") + 1] = "cuda"
    argv.remove("--no_amp")                            # the published fp16 autocast with a grad scaler
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train_simvos.py", *argv]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "it 1/1" in proc.stdout and "cuda" in proc.stdout
    assert re.search(r"rank 0 weights checksum [0-9.e+-]+\d", proc.stdout)


def test_propagation_steps_do_not_synchronise_with_the_host():
    """After the annotated frame, a step queues its work without waiting for the GPU: only the copy
    of the output (labels()) synchronises."""
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=True)).eval()
    frames, labels = make_video(np.random.default_rng(2), 4, 64, 96, 2)
    video = SimVOSPredictor(model, "cuda", overlap_io=False).open(frames)
    video.add_mask(0, labels[0])
    walk = video.propagate(0, "forward")
    next(walk)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        results = [next(walk) for _ in frames[1:]]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(r.labels().shape == (64, 96) for r in results)


@pytest.mark.parametrize("backend", ["FLASH_ATTENTION", "EFFICIENT_ATTENTION"])
def test_amp_attention_runs_on_the_fused_kernels(backend):
    """Under --amp (fp16) every attention call fits SDPA's flash and memory-efficient kernels (held to
    one kernel, SDPA raises when it does not apply), and the probabilities stay those of fp32."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=True)).eval()
    frames, labels = make_video(np.random.default_rng(3), 4, 64, 96, 2)
    fp32 = [r.probs for r in SimVOSPredictor(model, "cuda").segment_video(frames, {0: labels[0]})]
    with sdpa_kernel([getattr(SDPBackend, backend)]):
        amp = [r.probs for r in SimVOSPredictor(model, "cuda", amp=True).segment_video(frames, {0: labels[0]})]
    assert max(float((a - b).abs().max()) for a, b in zip(fp32, amp)) < 2e-2


def test_cuda_graphs_give_the_eager_probabilities():
    """--compile reduce-overhead: stage outputs are copied out of the graphs' buffers, so the memory
    kept across frames is not overwritten by the next replay."""
    torch.manual_seed(0)
    model = build_model(tiny_config(depth=2)).cuda().eval()
    frames, labels = make_video(np.random.default_rng(4), 6, 48, 64, 2)
    eager = [r.probs for r in SimVOSPredictor(model, "cuda").segment_video(frames, {0: labels[0]})]
    graphs = [r.probs for r in SimVOSPredictor(model, "cuda", compile="reduce-overhead").segment_video(frames, {0: labels[0]})]
    assert max(float((a - b).abs().max()) for a, b in zip(eager, graphs)) < 1e-4


def test_engine_matches_the_published_loop_on_the_gpu():
    """The CPU parity test's CUDA variant (fp32; cuDNN's TF32 convolutions in both paths)."""
    from evaluation.published_loop import published_loop
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=True, local_window=True)).cuda().eval()
    frames, labels = make_video(np.random.default_rng(5), 5, 48, 80, 3)
    expected, ids = published_loop(model, frames, labels[0])
    results = list(SimVOSPredictor(model, "cuda", max_objects_per_batch=2).segment_video(frames, {0: labels[0]}))
    assert [r.object_ids for r in results] == [ids] * len(frames)
    torch.testing.assert_close(torch.stack([r.probs for r in results], 1), expected, atol=2e-3, rtol=1e-3)


def test_our_training_step_matches_the_published_step_on_the_gpu(tmp_path):
    """tests/test_published_step.py's CUDA variant, in fp32: the same loss and gradients."""
    import copy
    from model.losses import pair_loss
    from tests.test_published_step import _batch, _trainer
    from training.published_step import published_forward
    trainer = _trainer(tmp_path, bs=True, device="cuda")
    reference = copy.deepcopy(trainer.net)
    batch = _batch(1)
    trainer.net.train(), reference.train()
    ours = trainer.step(batch, 0.5)["loss"]
    ours.backward()
    cuda = {k: v.cuda() for k, v in batch.items()}
    theirs = pair_loss(published_forward(reference, cuda["frames"], cuda["masks"], cuda["selector"]),
                       cuda["class_map"], cuda["selector"], 0.5)
    theirs.backward()
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    for (name, a), b in zip(trainer.net.named_parameters(), reference.parameters()):
        if b.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-2, msg=name)
