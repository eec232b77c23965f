"""Training: data sampling and augmentation, the loss, single-process runs, resume (two processes: test_resume.py)."""
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_erosion

import train_simvos
from dataset.vos_pairs import PairAugmentation, sample_pair, sample_with_previous
from model.losses import bootstrapped_ce, pair_loss, soft_dice
from training.schedule import bootstrap_fraction, lr_factor
from training.stages import STAGES
from model.inputs import IMAGENET_MEAN, IMAGENET_STD

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_argv(davis_root, tmp_path, *extra):
    return ["--id", "t", "--backbone_type", "vit_tiny", "--pretrained", "none", "--yv_root", "none",
            "--davis_root", str(davis_root), "--batch_size", "2", "--img_size", "32", "--num_workers", "0",
            "--log_every", "1", "--image_every", "2", "--save_dir", str(tmp_path / "saves"),
            "--log_dir", str(tmp_path / "runs"), "--no_amp", "--device", "cpu", *extra]


def test_lr_schedule_without_warmup_is_multisteplr_and_warms_up_linearly():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    reference = torch.optim.lr_scheduler.MultiStepLR(opt, [3, 7], 0.5)
    for it in range(10):
        assert 0.1 * lr_factor(it, 0, [3, 7], 0.5) == pytest.approx(reference.get_last_lr()[0])
        opt.step()
        reference.step()
    assert [lr_factor(it, 4, [6], 0.1) for it in range(8)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.1, 0.1])


@pytest.mark.parametrize("n,jump", [(2, 10), (5, 2), (30, 10), (12, 1)])
def test_pairs_stay_within_max_jump(n, jump):
    rng = random.Random(0)
    seen = set()
    for _ in range(2000):
        a, b = sample_pair(n, jump, rng)
        assert 0 <= a < n and 0 <= b < n and a != b
        assert abs(a - b) <= max(jump - 1, 1)
        seen.add((a, b))
    assert any(a > b for a, b in seen) and any(a < b for a, b in seen)


@pytest.mark.parametrize("n,jump", [(2, 10), (5, 3), (30, 10)])
def test_previous_frame_samples_are_what_inference_sees(n, jump):
    """--memory_frames 2: the middle frame is the one just before the query, walking from the
    reference towards it (the reference itself when they are neighbours)."""
    rng = random.Random(1)
    for _ in range(1000):
        reference, previous, query = sample_with_previous(n, jump, rng)
        step = 1 if query > reference else -1
        assert previous == query - step and 0 < abs(query - reference) <= max(jump - 1, 1)
        assert min(reference, query) <= previous <= max(reference, query)


def test_three_frame_items_train_on_the_last_frame(davis_root, tmp_path, capsys):
    from dataset.vos_pairs import VOSPairDataset, scan_videos
    trainval = davis_root / "2017/trainval"
    videos = scan_videos(str(trainval / "JPEGImages/480p"), str(trainval / "Annotations/480p"))
    item = VOSPairDataset(videos, max_jump=3, size=32, memory_frames=2)[1, 7]
    assert item["frames"].shape == (3, 3, 32, 32) and item["masks"].shape == (3, 2, 32, 32)
    for k in range(2):
        if item["selector"][k]:
            assert torch.equal(item["class_map"] == k + 1, item["masks"][2, k].bool())
    train_simvos.main(train_argv(davis_root, tmp_path, "--iterations", "2", "--save_every", "100", "--memory_frames", "2"))
    assert re.search(r"it 2/2 loss \d", capsys.readouterr().out)


def test_training_without_tensorboard_still_logs(davis_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # import fails, as where it is not installed
    train_simvos.main(train_argv(davis_root, tmp_path, "--iterations", "2", "--save_every", "100"))
    out = capsys.readouterr()
    assert "tensorboard is not installed" in out.err and re.search(r"it 2/2 loss \d", out.out)
    assert not (tmp_path / "runs").exists()


def test_the_events_stream_follows_a_published_stage_run(davis_root, tmp_path):
    from util.run_events import EventReader, Finished, Planned, Progress, Saved
    events = str(tmp_path / "events.jsonl")
    train_simvos.main(train_argv(davis_root, tmp_path, "--iterations", "2", "--save_every", "100", "--events", events))
    got = EventReader(events).read()
    saves = tmp_path / "saves" / "t"
    assert [type(e) for e in got] == [Planned, Progress, Progress, Saved, Saved, Finished]
    assert got[0].iterations == 2 and [(e.iteration, e.total) for e in got[1:3]] == [(1, 2), (2, 2)]
    assert all(np.isfinite(e.loss) and e.loss > 0 for e in got[1:3])
    assert {e.path for e in got[3:5]} == {str(saves / "model_2.pth"), str(saves / "checkpoint_2.pth")}
    assert got[-1] == Finished(2, "done", str(saves / "model_2.pth"), None)
    assert os.path.isfile(got[-1].weights)


def test_image_and_mask_stay_aligned_through_augmentation():
    torch.manual_seed(0)
    h, w = 60, 80
    labels = np.zeros((h, w), np.uint8)
    labels[5:30, 5:35], labels[25:55, 45:75] = 1, 2          # asymmetric: a flip or shift would show
    grey = (labels.astype(np.float32) * 100 + 20).astype(np.uint8)
    image = Image.fromarray(np.stack([grey] * 3, -1))
    aug = PairAugmentation(48)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for _ in range(30):
        frames, maps = aug([image, image], [labels, labels])
        for f, m in zip(frames, maps):
            value = ((f * std + mean).mean(0) * 255).numpy()
            for k in (1, 2):
                inside = binary_erosion(m.numpy() == k, iterations=2)
                if inside.sum() > 5:
                    assert abs(np.median(value[inside]) - (k * 100 + 20)) < 35


def direct_bootstrap(logits, target, p):
    logp = torch.log_softmax(logits.double(), dim=1)
    per_pixel = -logp.gather(1, target[:, None]).flatten()
    kept = torch.sort(per_pixel, descending=True).values[: int(per_pixel.numel() * p)]
    return kept.mean()


@pytest.mark.parametrize("iteration,p", [(0, 1.0), (19999, 1.0), (20000, 1.0), (45000, 0.575), (70000, 0.15), (90000, 0.15)])
def test_bootstrapped_loss_against_direct_computation(iteration, p):
    stage = STAGES[3]
    fraction = bootstrap_fraction(iteration, stage["start_warm"], stage["end_warm"], stage["top_p"])
    assert fraction == pytest.approx(p)
    torch.manual_seed(iteration)
    logits, target = torch.randn(2, 3, 17, 19), torch.randint(0, 3, (2, 17, 19))
    torch.testing.assert_close(bootstrapped_ce(logits, target, fraction).double(),
                               direct_bootstrap(logits, target, fraction), rtol=1e-5, atol=1e-6)


def test_soft_dice_against_direct_computation():
    """1 - Dice of each target's softmax probability and mask, counted pixel by pixel in numpy;
    the fine-tuning loss adds it to the cross-entropy, the published loss (weight 0) does not."""
    torch.manual_seed(3)
    logits, target = torch.randn(1, 3, 9, 11), torch.randint(0, 3, (1, 9, 11))
    probs = np.exp(logits[0].double().numpy())
    probs /= probs.sum(0)
    direct = []
    for k in (1, 2):
        truth = target[0].numpy() == k
        direct.append(1 - (2 * (probs[k] * truth).sum() + 1) / (probs[k].sum() + truth.sum() + 1))
    assert soft_dice(logits, target, 3).item() == pytest.approx(np.mean(direct), rel=1e-5)
    certain = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40
    assert soft_dice(certain, target, 3).item() < 1e-6
    selector = torch.ones(1, 2)
    assert pair_loss(logits, target, selector, 1.0, dice_weight=0.5).item() == pytest.approx(
        bootstrapped_ce(logits, target, 1.0).item() + 0.5 * np.mean(direct), rel=1e-5)


@pytest.mark.slow
def test_single_process_trains_saves_and_resumes(davis_root, tmp_path, capsys):
    train_simvos.main(train_argv(davis_root, tmp_path, "--iterations", "3", "--save_every", "2", "--steps", "3"))
    out = capsys.readouterr().out
    assert "world size 1, batch 2 per process = 2 global" in out and "davis_videos 4" in out
    assert re.search(r"it 3/3 loss \d", out)
    saves = tmp_path / "saves" / "t"
    assert {"model_2.pth", "checkpoint_2.pth", "model_3.pth", "checkpoint_3.pth"} <= set(os.listdir(saves))
    assert list((tmp_path / "runs" / "t").iterdir())
    state3 = torch.load(saves / "checkpoint_3.pth", weights_only=True)
    assert state3["it"] == 3 and state3["scheduler"]["_last_lr"][0] == pytest.approx(2e-6)
    # Resume from iteration 2: continues at 3 with the same schedule (lr drops at 3).
    train_simvos.main(train_argv(davis_root, tmp_path, "--iterations", "4", "--save_every", "100", "--steps", "3",
                                 "--id", "t", "--load_model", str(saves / "checkpoint_2.pth")))
    out = capsys.readouterr().out
    assert "resumed from" in out and "at iteration 2" in out
    assert "it 3/4" in out and "it 1/4" not in out
    state4 = torch.load(saves / "checkpoint_4.pth", weights_only=True)
    assert state4["it"] == 4 and state4["scheduler"]["_last_lr"][0] == pytest.approx(2e-6)
    # Its weights are a valid published-format checkpoint for evaluation, at their own training grid.
    from inference_core import build_predictor
    from model import config_from_flags
    predictor = build_predictor(str(saves / "model_4.pth"), config_from_flags("vit_tiny", layer_index=4,
                                use_token_learner=True), "cpu")
    assert predictor.model.config.train_img_size == 32


def test_missing_data_and_weights_are_clear_errors(davis_root, tmp_path):
    from util.errors import InputError
    with pytest.raises(InputError, match="--davis_root .*nowhere: no DAVIS-2017 trainval found"):
        train_simvos.main(train_argv(tmp_path / "nowhere", tmp_path, "--iterations", "1"))
    argv = train_argv(davis_root, tmp_path, "--iterations", "1")
    argv[argv.index("--pretrained") + 1] = str(tmp_path / "mae.pth")
    with pytest.raises(InputError, match="mae.pth: MAE pretrained weights not found"):
        train_simvos.main(argv)


@pytest.mark.parametrize("flags, message", [
    (["--iterations", "-5"], "--iterations must be at least 1, got -5"),
    (["--iterations", "0"], "--iterations must be at least 1, got 0"),
    (["--img_size", "0"], "--img_size must be at least 16, got 0"),
    (["--batch_size", "-1"], "--batch_size must be at least 1"),
    (["--lr", "0"], "--lr must be positive"),
    (["--load_network", "/etc/passwd"], "not a PyTorch checkpoint"),
    (["--save_dir", "A_FILE"], "names a file, not a folder"),
])
def test_bad_flags_are_one_line_and_leave_nothing(davis_root, tmp_path, flags, message):
    from util.errors import InputError
    (tmp_path / "a_file").write_text("not a folder")
    flags = [str(tmp_path / "a_file") if f == "A_FILE" else f for f in flags]
    argv = train_argv(davis_root, tmp_path, "--iterations", "2", "--save_dir", str(tmp_path / "saves"))
    events = str(tmp_path / "events.jsonl")
    with pytest.raises(InputError) as refused:
        train_simvos.main(argv + flags + ["--events", events])
    assert message in str(refused.value) and "\n" not in str(refused.value)
    from util.run_events import EventReader, Failed
    named = {"--load_network": "/etc/passwd", "--save_dir": str(tmp_path / "a_file")}.get(flags[0])
    assert EventReader(events).read() == [Failed(str(refused.value), named)]
    os.remove(events)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]   # no saves/, no runs/


def test_an_events_file_that_cannot_be_written_is_one_line(davis_root, tmp_path):
    from util.errors import InputError
    events = tmp_path / "gone" / "events.jsonl"
    with pytest.raises(InputError, match=f"^{re.escape(str(events))}: cannot write the events file"):
        train_simvos.main(train_argv(davis_root, tmp_path, "--iterations", "1", "--events", str(events)))
    assert sorted(os.listdir(tmp_path)) == []


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    import builtins
    import training.state
    from util.errors import InputError
    # The temporary file is opened on /dev/full, whose writes fail with ENOSPC (a full disk).
    monkeypatch.setattr(training.state, "open", lambda path, mode: builtins.open("/dev/full", mode), raising=False)
    with pytest.raises(InputError, match=r"model_3.pth: cannot be written: No space left on device$"):
        training.state.atomic_save({"w": torch.zeros(1000)}, str(tmp_path / "saves" / "model_3.pth"))
    assert os.listdir(tmp_path / "saves") == []


def test_a_reference_frame_without_objects_trains_the_first_target_as_empty(tmp_path):
    from dataset.synthetic import write_sequence
    from dataset.vos_pairs import VOSPairDataset, scan_videos
    frames = [np.full((40, 40, 3), 90, np.uint8)] * 3
    write_sequence(str(tmp_path), "empty", frames, [np.zeros((40, 40), np.uint8)] * 3)
    videos = scan_videos(str(tmp_path / "JPEGImages/480p"), str(tmp_path / "Annotations/480p"))
    item = VOSPairDataset(videos, max_jump=2, size=32)[0, 123]
    # As published: the first slot is trained as an empty target (the network learns to predict nothing).
    assert item["masks"].shape == (2, 2, 32, 32) and item["selector"].tolist() == [1.0, 0.0]
    assert item["class_map"].sum() == 0 and item["masks"].sum() == 0


@pytest.mark.slow
def test_sigterm_saves_the_state_before_exiting(davis_root, tmp_path):
    import signal
    import time
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    events = str(tmp_path / "events.jsonl")
    proc = subprocess.Popen([sys.executable, "train_simvos.py", *train_argv(davis_root, tmp_path, "--iterations", "100000",
                                                                          "--save_every", "100000", "--events", events)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("it 2/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped by signal at iteration" in err
    stopped = int(re.search(r"stopped by signal at iteration (\d+)", err).group(1))
    state = torch.load(tmp_path / "saves" / "t" / f"checkpoint_{stopped}.pth", weights_only=True)
    assert state["it"] == stopped >= 2
    from util.run_events import EventReader, Finished, Saved
    got = EventReader(events).read()
    assert Saved(stopped, str(tmp_path / "saves" / "t" / f"checkpoint_{stopped}.pth")) in got
    assert got[-1] == Finished(stopped, "stopped", str(tmp_path / "saves" / "t" / f"model_{stopped}.pth"), None)
