"""submit_eval_davis_ours_all.py on a tiny synthetic DAVIS tree with a published-format checkpoint."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import submit_eval_davis_ours_all as eval_davis
from dataset.palette_io import DAVIS_PALETTE
from dataset.synthetic import make_davis_dataset
from model import build_model, config_from_flags
from model.checkpoint import CheckpointMismatchError
from tests.conftest import dead_pid
from util.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    make_davis_dataset(str(root / "trainval"), n_train=1, n_val=3, size=(40, 72), n_frames=5, seed=3)
    ckpt_dir = root / "ckpts"
    ckpt_dir.mkdir()
    torch.manual_seed(0)
    model = build_model(config_from_flags("vit_tiny", train_img_size=64))
    with torch.no_grad():  # a random network whose objects do not all tie at p = 0.5
        model.stcn_decoder.pred.weight.mul_(200)
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, ckpt_dir / "tiny.pth")
    return root


def run(davis, out, *extra):
    argv = ["--model_path", str(davis / "ckpts"), "--davis_path", str(davis), "--output", str(out),
            "--backbone_type", "vit_tiny", "--layer_index", "0", "--device", "cpu", *extra]
    eval_davis.main(argv)


def test_writes_davis_pngs_scores_and_jf(davis, tmp_path, capsys):
    run(davis, tmp_path, "--save_scores")
    out = tmp_path / "tiny"
    names = open(davis / "trainval/ImageSets/2017/val.txt").read().split()
    for name in names:
        frames = sorted(os.listdir(davis / "trainval/JPEGImages/480p" / name))
        pngs = sorted(os.listdir(out / name))
        assert pngs == [f.replace(".jpg", ".png") for f in frames]
        img = Image.open(out / name / pngs[2])
        assert img.mode == "P" and img.getpalette()[:30] == DAVIS_PALETTE[:30] and img.size == (72, 40)
        scores = np.load(tmp_path / "tiny_scores" / name / pngs[2].replace(".png", ".npy"))
        first = np.array(Image.open(davis / "trainval/Annotations/480p" / name / "00000.png"))
        ids = [i for i in np.unique(first) if i]
        assert scores.dtype == np.float16 and scores.shape == (len(ids) + 1, 40, 72)
        lut = np.array([0] + ids)
        # float16 rounding can only flip near-ties: compare where the top two differ clearly.
        top2 = np.sort(scores.astype(np.float32), axis=0)[-2:]
        clear = top2[1] - top2[0] > 1e-2
        assert clear.mean() > 0.3
        np.testing.assert_array_equal(lut[scores.argmax(0)][clear], np.array(img)[clear])
        np.testing.assert_array_equal(np.array(Image.open(out / name / "00000.png")), first)
    csv = (out / "global_results-val.csv").read_text().splitlines()
    assert csv[0] == "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay" and len(csv) == 2
    printed = capsys.readouterr().out
    assert "FPS" in printed and "frames" in printed and "cpu fp32" in printed


def test_resume_skips_complete_and_redoes_partial(davis, tmp_path, capsys):
    run(davis, tmp_path, "--sequences", "val000", "val001")
    done = tmp_path / "tiny" / "val000" / "00003.png"
    stamp = done.stat().st_mtime_ns
    (tmp_path / "tiny" / "val001" / "00004.png").unlink()          # an incomplete sequence
    leftover = tmp_path / "tiny" / f".val002.{dead_pid()}-0123abcd.tmp"  # staged by a killed run
    leftover.mkdir()
    (leftover / "00000.png").write_bytes(b"half")
    run(davis, tmp_path)
    assert done.stat().st_mtime_ns == stamp
    assert (tmp_path / "tiny" / "val001" / "00004.png").exists()
    assert not leftover.exists() and (tmp_path / "tiny" / "val002").is_dir()
    assert not [p for p in (tmp_path / "tiny").iterdir() if p.name.startswith(".")]
    assert "(1 already done)" in capsys.readouterr().out
    run(davis, tmp_path, "--overwrite", "--sequences", "val000")
    assert done.stat().st_mtime_ns != stamp


def _copy_tree(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("problem,message", [
    ("no_split", "ImageSets/2017/val.txt: split file not found"),
    ("no_frames", "val001: no frames"),
    ("no_annotation", "00000.png: first-frame annotation of sequence val001 not found"),
    ("size", "00000.png: frame 0: mask is 10x10 but the frame is 72x40"),
    ("rgb", "mask is an RGB image, not an indexed (palette) PNG"),
    ("corrupt", "00002.jpg: unreadable or corrupt image"),
    ("greyscale", "distinct values: an anti-aliased or greyscale image"),
])
def test_bad_dataset_input(davis, tmp_path, problem, message):
    tree = _copy_tree(davis, tmp_path / "d")
    seq_frames = tree / "trainval/JPEGImages/480p/val001"
    seq_ann = tree / "trainval/Annotations/480p/val001/00000.png"
    if problem == "no_split":
        (tree / "trainval/ImageSets/2017/val.txt").unlink()
    elif problem == "no_frames":
        for f in seq_frames.iterdir():
            f.unlink()
    elif problem == "no_annotation":
        seq_ann.unlink()
    elif problem == "size":
        Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(seq_ann)
    elif problem == "rgb":
        Image.new("RGB", (72, 40)).save(seq_ann)
    elif problem == "corrupt":
        (seq_frames / "00002.jpg").write_bytes(b"\xff\xd8 broken")
    elif problem == "greyscale":
        Image.fromarray((np.arange(72 * 40) % 256).reshape(40, 72).astype(np.uint8), mode="L").save(seq_ann)
    with pytest.raises(InputError) as err:
        run(tree, tmp_path / "out")
    assert message in str(err.value)
    out = tmp_path / "out" / "tiny"
    if problem != "no_split":
        # The bad sequence is named; the others are complete, nothing half-written is left, no J&F.
        assert "1 sequence(s) failed" in str(err.value) and "val001: " in str(err.value)
        assert sorted(p.name for p in out.iterdir()) == ["val000", "val002"]
        assert len(list((out / "val002").iterdir())) == 5


def test_checkpoint_not_fitting_flags_and_empty_model_path(davis, tmp_path):
    with pytest.raises(CheckpointMismatchError, match="missing keys"):
        run(davis, tmp_path, "--layer_index", "4", "--use_token_learner")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no checkpoint files"):
        eval_davis.main(["--model_path", str(tmp_path / "empty"), "--davis_path", str(davis)])


@pytest.mark.slow
def test_command_line_error_is_one_line_and_nonzero(davis, tmp_path):
    """With the published defaults (vit_base, --layer_index 4, no token learner: no published network)
    a one-line note names the likely variants first; then the error, one line."""
    proc = subprocess.run([sys.executable, "submit_eval_davis_ours_all.py", "--model_path", str(tmp_path / "none"),
                           "--davis_path", str(davis)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    note, error = proc.stderr.strip().splitlines()
    assert note.startswith("note: the model flags") and "--variant simvos_bs" in note and "--variant simvos_b " in note
    assert error == f"error: {tmp_path / 'none'}: --model_path not found"
    proc = subprocess.run([sys.executable, "submit_eval_davis_ours_all.py", "--model_path", str(tmp_path / "none"),
                           "--davis_path", str(davis), "--variant", "simvos_bs"], cwd=ROOT, capture_output=True, text=True)
    assert proc.stderr.strip().splitlines() == [error]
