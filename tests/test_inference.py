"""Propagation: the engine against a direct re-statement of the published loop (docs/method.md, section 5)."""
import os

import numpy as np
import pytest
import torch

from evaluation.published_loop import published_loop
from inference_core import SimVOSPredictor
from util.device import cpu_has_native_bf16
from model import build_model
from tests.conftest import tiny_config


def _video(n=6, h=40, w=72, k=3, seed=0):
    from dataset.synthetic import make_video
    return make_video(np.random.default_rng(seed), n, h, w, k)


@pytest.mark.parametrize("bs", [False, True])
def test_engine_matches_published_loop(bs):
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=bs, local_window=bs)).eval()
    frames, labels = _video()
    expected, ids = published_loop(model, frames, labels[0])
    predictor = SimVOSPredictor(model, "cpu", max_objects_per_batch=2)
    results = list(predictor.segment_video(iter(frames), {0: labels[0]}))
    assert [r.object_ids for r in results] == [ids] * len(frames)
    got = torch.stack([r.probs for r in results], dim=1)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    # Labels map back to the annotation's ids, in any order of ids.
    assert set(np.unique(results[0].labels())) <= {0, *ids}
    np.testing.assert_array_equal(results[0].labels(), labels[0])


def test_label_values_are_kept():
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=3, k=2)
    first = np.where(labels[0] == 2, 7, labels[0]).astype(np.uint8)
    results = list(SimVOSPredictor(model, "cpu").segment_video(frames, {0: first}))
    assert results[1].object_ids == [1, 7]
    assert set(np.unique(results[2].labels())) <= {0, 1, 7}


@torch.no_grad()
def test_late_objects_join_with_their_own_reference():
    """YouTube-VOS's meaning (partial masks): objects 2 and 3 start on frame 2."""
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=6, k=3)
    first = np.where(labels[0] == 1, 1, 0).astype(np.uint8)
    later = np.where(labels[2] >= 2, labels[2], 0).astype(np.uint8)
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, first, complete=False)
    video.add_mask(2, later, complete=False)
    walk = video.propagate(0, "forward")
    out = [next(walk) for _ in range(4)]
    assert [r.object_ids for r in out] == [[1], [1], [1, 2, 3], [1, 2, 3]]
    # On its annotation frame, a new object's mask wins wherever it is.
    np.testing.assert_array_equal(out[2].labels()[later > 0], later[later > 0])
    # On the next frame its memory is its reference frame alone, exactly as in a video that
    # started on frame 2 with those objects; object 1 has reference + previous frame.
    fresh = SimVOSPredictor(model, "cpu").open(frames[2:])
    fresh.add_mask(0, later)
    fresh_walk = fresh.propagate(0, "forward")
    next(fresh_walk), next(fresh_walk)
    memory = video.core.memory
    for obj in (2, 3):
        assert obj not in memory.previous
        torch.testing.assert_close(memory.read(obj), fresh.core.memory.read(obj))
    assert memory.read(1).shape[0] == 2 * memory.read(2).shape[0]
    out.append(next(walk))
    assert memory.read(2).shape == memory.read(1).shape
    assert out[-1].object_ids == [1, 2, 3]


@torch.no_grad()
def test_state_does_not_grow_with_video_length():
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=4, k=2)
    video = SimVOSPredictor(model, "cpu", overlap_io=False).open([frames[t % 4] for t in range(40)])
    video.add_mask(0, labels[0])
    core = video.core
    sizes = []
    for _ in video.propagate(0, "forward"):
        held = [m for refs in core.memory.references.values() for _, m in refs]
        held += [*core.memory.previous.values(), core.pending.frame, core.pending.probs]
        sizes.append(sum(t.numel() for t in held))
    assert len(sizes) == 40 and sizes[2] == sizes[-1]


@pytest.mark.skipif(not cpu_has_native_bf16(),
                    reason="this CPU has no native bf16 (AVX512-BF16/AMX): --amp runs fp32 here, nothing to compare")
@pytest.mark.parametrize("bs", [False, True])
def test_amp_keeps_the_residual_stream_in_fp32_and_stays_close(bs):
    torch.manual_seed(0)
    model = build_model(tiny_config(token_learner=bs)).eval()
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(5)  # probabilities away from 0.5
    seen = []
    hooks = [blk.register_forward_pre_hook(lambda _, args: seen.append(args[0].dtype)) for blk in model.blocks]
    frames, labels = _video(n=4)
    fp32 = list(SimVOSPredictor(model, "cpu").segment_video(frames, {0: labels[0]}))
    seen.clear()
    bf16 = list(SimVOSPredictor(model, "cpu", amp=True).segment_video(frames, {0: labels[0]}))
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {torch.float32}          # bf16 only inside the matmuls and convolutions
    assert max(float((a.probs - b.probs).abs().max()) for a, b in zip(fp32, bf16)) < 5e-2


def test_mask_of_wrong_size_is_refused():
    from util.errors import InputError
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=2)
    with pytest.raises(InputError, match="mask is 10x5 but the frame is 72x40"):
        SimVOSPredictor(model, "cpu").open(frames).add_mask(0, np.zeros((5, 10), np.uint8))


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="needs Linux /proc (VmRSS, VmHWM)")
@pytest.mark.slow
def test_peak_memory_is_the_process_own_not_its_parents():
    """A script started from a large process (torchrun, the demo) reports its own peak: ru_maxrss
    alone would report at least the parent's size at the fork."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    held = np.ones(2**30 // 8)                             # 1 GiB held by this process
    with open("/proc/self/status") as f:
        parent = [int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:")][0]
    code = ("import sys, torch; sys.path.insert(0, %r); from util.device import peak_memory_mib; "
            "print(peak_memory_mib(torch.device('cpu')))" % ROOT)
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert held.sum() > 0 and parent > 1024 and child < parent - 512
