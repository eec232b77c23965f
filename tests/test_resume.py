"""Training that survives preemption: a run interrupted anywhere and resumed ends on exactly the
weights of the run that was never interrupted (same machine, same library versions)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.synthetic import make_youtube_dataset
from dataset.vos_pairs import PairAugmentation, VOSPairDataset, scan_videos
from model import build_model, config_from_flags
from model.checkpoint import load_weights
from model.inputs import IMAGENET_MEAN, IMAGENET_STD
from tests.published_format import mae_shapes, random_state
from training.data import youtube_videos

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
ITERATIONS = 8   # 20 samples / 2 ranks / batch 2 = 5 batches an epoch: saves at 3, 6 (mid-epoch) and 8

pytestmark = pytest.mark.slow  # launchers, subprocesses, resumes


def argv(davis_root, save_dir, *extra):
    return ["train_simvos.py", "--id", "r", "--backbone_type", "vit_tiny", "--pretrained", "none", "--yv_root", "none",
            "--davis_root", str(davis_root), "--batch_size", "2", "--img_size", "32", "--log_every", "4",
            "--image_every", "1000", "--save_dir", str(save_dir), "--log_dir", str(save_dir / "runs"),
            "--no_amp", "--device", "cpu", "--iterations", str(ITERATIONS), "--save_every", "3",
            "--drop_path", "0.1", *extra]


def torchrun(*args, restarts=0):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            f"--max-restarts={restarts}", *args]


def run(command, timeout=300):
    """Runs a command in its own process group; on a timeout the whole group is killed (no orphans)."""
    proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(command[:6])} ...\n{err[-2000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def wait_for(path, proc, timeout=300):
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)


def final_weights(save_dir):
    return torch.load(save_dir / "r" / f"model_{ITERATIONS}.pth", weights_only=True)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


def checksums(text):
    return dict(re.findall(r"rank (\d) weights checksum ([0-9.e+-]+\d)", text))


@pytest.fixture(scope="module")
def uninterrupted(davis_root, tmp_path_factory):
    """Two ranks over Gloo, no data-loader workers, never interrupted."""
    save = tmp_path_factory.mktemp("uninterrupted")
    proc = run(torchrun(*argv(davis_root, save, "--num_workers", "0")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = checksums(proc.stdout)
    assert set(sums) == {"0", "1"} and sums["0"] == sums["1"]                  # DDP keeps the ranks identical
    assert "world size 2, batch 2 per process = 4 global" in proc.stdout
    return save, sums["0"]


def test_resume_mid_epoch_with_other_workers_is_bit_exact(davis_root, uninterrupted, tmp_path):
    reference, checksum = uninterrupted
    state = torch.load(reference / "r" / "checkpoint_6.pth", weights_only=True)
    assert (state["epoch"], state["batches_done"]) == (1, 1)                     # mid-epoch
    os.makedirs(tmp_path / "r")
    shutil.copy(reference / "r" / "checkpoint_6.pth", tmp_path / "r" / "checkpoint_6.pth")
    proc = run(torchrun(*argv(davis_root, tmp_path, "--num_workers", "2", "--resume", "auto")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "at iteration 6 (epoch 1, batch 1)" in proc.stdout
    assert checksums(proc.stdout) == {"0": checksum, "1": checksum}
    assert_same_weights(final_weights(tmp_path), final_weights(reference))


def train_here(command, capsys):
    """``train_simvos.py`` in this process, one thread as the subprocesses (ENV); -> its stdout and stderr."""
    import train_simvos
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_simvos.main(command[1:])
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr()


def test_sigkill_then_resume_auto_skips_a_truncated_checkpoint(davis_root, tmp_path, capsys):
    reference = train_here(argv(davis_root, tmp_path / "a", "--num_workers", "0", "--resume", "auto"), capsys)
    assert "no training state in" in reference.out
    command = argv(davis_root, tmp_path / "b", "--num_workers", "0", "--resume", "auto", "--keep_checkpoints", "2")
    proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = tmp_path / "b" / "r" / "checkpoint_3.pth"
    wait_for(first, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = sorted(int(re.match(r"checkpoint_(\d+)", f).group(1)) for f in os.listdir(tmp_path / "b" / "r")
                   if re.fullmatch(r"checkpoint_\d+\.pth", f))
    assert 3 <= saved[-1] < ITERATIONS and len(saved) <= 2                   # --keep_checkpoints 2
    truncated = tmp_path / "b" / "r" / f"checkpoint_{saved[-1] + 1}.pth"
    data = first.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])                           # a crash during an old, non-atomic save
    rerun = train_here(command, capsys)
    assert f"skipping {truncated}" in rerun.err
    assert f"resumed from {tmp_path / 'b' / 'r' / f'checkpoint_{saved[-1]}.pth'}" in rerun.out
    assert checksums(rerun.out) == checksums(reference.out)
    assert_same_weights(final_weights(tmp_path / "b"), final_weights(tmp_path / "a"))


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_elastic_restart_after_a_worker_dies_ends_on_the_same_weights(davis_root, uninterrupted, tmp_path):
    reference, checksum = uninterrupted
    log = tmp_path / "torchrun.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(torchrun(*argv(davis_root, tmp_path, "--num_workers", "0", "--resume", "auto"), restarts=1),
                                cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(tmp_path / "r" / "checkpoint_3.pth", proc)
        workers = _children(proc.pid)
        assert workers, "no worker processes found"
        os.kill(workers[-1], signal.SIGKILL)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("torchrun did not finish after the restart:\n" + log.read_text()[-3000:])
    out = log.read_text()
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"resumed from \S+checkpoint_\d+\.pth at iteration", out), out[-3000:]
    assert checksums(out) == {"0": checksum, "1": checksum}
    assert_same_weights(final_weights(tmp_path), final_weights(reference))


def test_a_sample_is_a_pure_function_of_its_seed_and_leaves_the_global_generator_alone(davis_root):
    videos = scan_videos(str(davis_root / "2017/trainval/JPEGImages/480p"), str(davis_root / "2017/trainval/Annotations/480p"))
    data = VOSPairDataset(videos, max_jump=3, size=32)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b, c = data[1, 77], data[1, 77], data[1, 78]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["masks"], b["masks"])
    assert not torch.equal(a["frames"], c["frames"])


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()])


def test_masks_stay_aligned_with_their_images_to_a_twentieth_of_a_pixel():
    """Crop (bicubic image, pixel-centre nearest mask), flip and affine: the centroid of the bright
    object in the image and that of its mask agree on average (legacy tensor nearest: ~0.3 px off)."""
    h, w = 200, 260
    yy, xx = np.mgrid[:h, :w]
    label = (((yy - 90) / 70.0) ** 2 + ((xx - 120) / 95.0) ** 2 <= 1).astype(np.uint8)
    image = Image.fromarray(np.repeat(label[..., None] * 255, 3, axis=2).astype(np.uint8))
    augment = PairAugmentation(128)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    offsets = []
    torch.manual_seed(0)
    for _ in range(60):
        frames, maps = augment([image, image], [label, label])
        for frame, mask in zip(frames, maps):
            grey = ((frame * std + mean).mean(0) * 255).numpy()
            offsets.append(_centroid(grey > 190) - _centroid(mask.numpy() == 1))
    mean_offset = np.abs(np.mean(offsets, axis=0))
    assert (mean_offset < 0.05).all(), mean_offset


def test_loading_keeps_every_tensor_on_its_device_and_dtype(tmp_path):
    """After any kind of load (MAE, a checkpoint trained at another size, resampled), parameters and
    buffers keep the model's device and dtype."""
    model = build_model(config_from_flags("vit_tiny", layer_index=0, train_img_size=64)).double()
    before = {k: (v.device, v.dtype, v.shape) for k, v in model.state_dict().items()}
    load_weights(model, {"model": random_state(mae_shapes(192, 12))})
    other = build_model(config_from_flags("vit_tiny", layer_index=0, train_img_size=96)).state_dict()
    load_weights(model, other, resample_pos_embed=True)
    assert {k: (v.device, v.dtype, v.shape) for k, v in model.state_dict().items()} == before


def test_youtube_subset_keeps_listed_videos_and_counts_the_rest(tmp_path):
    make_youtube_dataset(str(tmp_path / "yt"), n_train=4, n_valid=1, size=(32, 48), n_frames=11, seed=0)
    (tmp_path / "subset.txt").write_text("train001\ntrain003\nnot_here\n")
    videos, counts = youtube_videos(str(tmp_path / "yt/train"), str(tmp_path / "subset.txt"))
    assert [v.name for v in videos] == ["train001", "train003"]
    assert counts == {"youtube_dropped": 2, "youtube_listed_missing": 1}
    shipped = open(os.path.join(ROOT, "dataset/lists/yv_subset.txt")).read().split()
    assert len(shipped) == len(set(shipped)) == 3464


def test_boolean_flags_take_values():
    import submit_eval_davis_ours_all
    import train_simvos
    a = train_simvos.parse_args(["--use_token_learner", "False", "--no_amp", "true"])
    assert a.use_token_learner is False and a.no_amp is True
    b = submit_eval_davis_ours_all.parse_args(["--use_token_learner", "--amp", "False", "--overwrite"])
    assert b.use_token_learner is True and b.amp is False and b.overwrite is True
