"""Train a few iterations, evaluate the weights with the published evaluation script, score them;
and the named variants with the model flags the weights record."""
import json
import os

import pytest

import submit_eval_davis_ours_all
import train_simvos
from inference_core import SimVOSPredictor
from model.checkpoint import CheckpointMismatchError
from model.flags import add_model_flags, config_from_args
from model.variants import VARIANTS, resolve_config, unpublished_note

TINY = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False"]


@pytest.mark.slow
def test_train_evaluate_score(tmp_path, capsys):
    from dataset.synthetic import make_davis_dataset
    davis = tmp_path / "DAVIS/2017/trainval"
    make_davis_dataset(str(davis), n_train=3, n_val=2, size=(48, 64), n_frames=5, seed=2)
    train_simvos.main(["--id", "e2e", *TINY, "--pretrained", "none", "--yv_root", "none", "--davis_root",
                       str(tmp_path / "DAVIS"), "--img_size", "48", "--batch_size", "2", "--iterations", "3",
                       "--save_every", "3", "--no_amp", "--num_workers", "0", "--save_dir", str(tmp_path / "saves"),
                       "--log_dir", str(tmp_path / "runs")])
    weights = tmp_path / "saves/e2e/model_3.pth"
    recorded = json.loads((tmp_path / "saves/e2e/model_3.json").read_text())
    assert recorded["model"]["backbone_type"] == "vit_tiny" and recorded["model"]["layer_index"] == 0
    (tmp_path / "ckpts").mkdir()
    os.replace(weights, tmp_path / "ckpts/e2e.pth")
    os.replace(tmp_path / "saves/e2e/model_3.json", tmp_path / "ckpts/e2e.json")
    submit_eval_davis_ours_all.main(["--model_path", str(tmp_path / "ckpts"), "--davis_path", str(tmp_path / "DAVIS/2017"),
                                     "--output", str(tmp_path / "out"), *TINY, "--device", "cpu"])
    csv = (tmp_path / "out/e2e/global_results-val.csv").read_text().splitlines()
    assert csv[0].startswith("J&F-Mean") and 0 <= float(csv[1].split(",")[0]) <= 1
    # The recorded flags refuse other ones, naming the right ones.
    with pytest.raises(CheckpointMismatchError, match=r"layer_index 2 \(trained: 0\)[\s\S]*hint: pass --backbone_type vit_tiny --layer_index 0"):
        SimVOSPredictor.from_checkpoint(str(tmp_path / "ckpts/e2e.pth"), backbone_type="vit_tiny", layer_index=2)


def _args(argv):
    import argparse
    p = argparse.ArgumentParser()
    add_model_flags(p)
    return p.parse_args(argv)


def test_variants_stand_for_the_published_flags_which_win_when_both_are_given(capsys):
    bs = config_from_args(_args(["--variant", "simvos_bs"]))
    assert (bs.backbone_type, bs.layer_index, bs.use_token_learner) == ("vit_base", 4, True)
    large = config_from_args(_args(["--variant", "simvos_l"]))
    assert (large.backbone_type, large.layer_index, large.depth) == ("vit_large", 0, 24)
    mixed = config_from_args(_args(["--variant", "simvos_bs", "--use_local_window", "--num_bases_foreground", "16"]))
    assert mixed.use_local_window and mixed.num_bases_foreground == 16 and mixed.use_token_learner
    assert config_from_args(_args(["--variant", "simvos_bs", "--layer_index", "0", "--use_token_learner", "False"])).layer_index == 0
    assert capsys.readouterr().err == ""                         # each of these is a published network
    config_from_args(_args(["--variant", "simvos_bs", "--use_token_learner", "False"]))
    assert capsys.readouterr().err.count("note: the model flags") == 1
    for name, flags in VARIANTS.items():
        assert unpublished_note(resolve_config(name, {})) is None
        assert resolve_config(name, {}).backbone_type == flags["backbone_type"]
    default = config_from_args(_args([]))
    assert (default.layer_index, default.use_token_learner) == (4, False)
    assert "--variant simvos_bs" in capsys.readouterr().err
