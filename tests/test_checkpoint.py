"""Published-format checkpoints (built from the spec's key list) load strictly."""
import pytest
import torch
import torch.nn.functional as F

from model import build_model
from model.checkpoint import CheckpointError, CheckpointMismatchError, load_weights
from tests.conftest import tiny_config
from tests.published_format import mae_shapes, random_state, simvos_shapes


def _shapes(token_learner: bool):
    c = tiny_config(token_learner=token_learner)
    return simvos_shapes(c.embed_dim, c.depth, grid=c.train_grid, c8=c.decoder_channels[0], c4=c.decoder_channels[1],
                         n_fg=c.num_bases_foreground if token_learner else None,
                         n_bg=c.num_bases_background if token_learner else None)


@pytest.mark.parametrize("token_learner,prefix", [(False, ""), (True, ""), (True, "module.")])
def test_published_checkpoint_fills_every_parameter(tmp_path, token_learner, prefix):
    state = random_state(_shapes(token_learner), prefix=prefix)
    path = tmp_path / "simvos.pth"
    torch.save(state, path)
    model = build_model(tiny_config(token_learner=token_learner))
    report = load_weights(model, str(path))
    assert report.format == "simvos" and report.initialised == []
    loaded = model.state_dict()
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[prefix + key], msg=key)
    assert {prefix + k for k in report.ignored} == set(state) - {prefix + k for k in loaded}
    assert {"cls_token", "pos_embed", "head.weight", "fc_norm.bias"} <= set(report.ignored)


def test_b_model_ignores_token_learners_with_a_note(tmp_path):
    model = build_model(tiny_config())
    report = load_weights(model, random_state(_shapes(True)))
    assert any(k.startswith("tlearner.") for k in report.ignored)
    assert "--use_token_learner" in report.notes[0]


def test_bs_model_with_b_checkpoint_names_token_learner_and_hint():
    model = build_model(tiny_config(token_learner=True))
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(model, random_state(_shapes(False)), name="b.pth")
    assert "tlearner.norm.weight" in str(err.value) and "drop --use_token_learner" in str(err.value)


@pytest.mark.parametrize("change,expected", [
    ("remove", "missing keys (1): blocks.1.mlp.fc2.bias"),
    ("extra", "unexpected keys (1): stcn_decoder.extra.weight"),
    ("shape", "shape mismatches (1): fpn2.0.bias (7,) vs model (128,)"),
])
def test_one_bad_key_is_named(change, expected):
    state = random_state(_shapes(False))
    if change == "remove":
        del state["blocks.1.mlp.fc2.bias"]
    elif change == "extra":
        state["stcn_decoder.extra.weight"] = torch.zeros(3)
    else:
        state["fpn2.0.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(build_model(tiny_config()), state, name="bad.pth")
    assert str(err.value).startswith("bad.pth: simvos checkpoint does not fit")
    assert expected in str(err.value)


def test_wrong_backbone_type_hint():
    c = tiny_config()
    state = random_state(simvos_shapes(c.embed_dim, 12, grid=c.train_grid, c8=128, c4=64))
    with pytest.raises(CheckpointMismatchError, match=r"depth 12 \(--backbone_type vit_tiny\).*wrong --backbone_type"):
        load_weights(build_model(c), state)


def test_prototype_count_hint():
    c = tiny_config(token_learner=True)
    state = random_state(simvos_shapes(c.embed_dim, c.depth, grid=c.train_grid, c8=128, c4=64, n_fg=9, n_bg=5))
    with pytest.raises(CheckpointMismatchError, match="--num_bases_foreground 9"):
        load_weights(build_model(c), state)


def test_mae_checkpoint_initialises_backbone_and_resamples_pos_embed(tmp_path):
    c = tiny_config(token_learner=True)
    mae = random_state(mae_shapes(c.embed_dim, c.depth))
    torch.save({"model": mae}, tmp_path / "mae.pth")
    torch.manual_seed(1)
    model = build_model(c)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_weights(model, str(tmp_path / "mae.pth"))
    assert report.format == "mae"
    state = model.state_dict()
    for key in state:
        if key.startswith(("patch_embed.", "blocks.", "norm.")):
            torch.testing.assert_close(state[key], mae[key])
        elif key != "pos_embed_new":
            torch.testing.assert_close(state[key], fresh[key])
            assert key in report.initialised
    grid = mae["pos_embed"][:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(state["pos_embed_new"][:, 1:], expected)
    torch.testing.assert_close(state["pos_embed_new"][:, :1], mae["pos_embed"][:, :1])


def test_mae_checkpoint_missing_a_block_fails():
    c = tiny_config()
    mae = random_state(mae_shapes(c.embed_dim, c.depth))
    del mae["blocks.0.attn.qkv.weight"]
    with pytest.raises(CheckpointMismatchError, match="blocks.0.attn.qkv.weight"):
        load_weights(build_model(c), {"model": mae})


def test_training_state_and_unreadable_files(tmp_path):
    model = build_model(tiny_config())
    other = build_model(tiny_config())
    torch.save({"network": model.state_dict(), "it": 5}, tmp_path / "state.pth")
    assert load_weights(other, str(tmp_path / "state.pth")).format == "training-state"
    torch.testing.assert_close(other.state_dict(), model.state_dict())
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: not a PyTorch checkpoint"):
        load_weights(other, str(tmp_path / "junk.pth"))
    with pytest.raises(CheckpointError, match="nothing.pth: checkpoint file not found"):
        load_weights(other, str(tmp_path / "nothing.pth"))


def test_an_image_or_a_foreign_pickle_given_as_checkpoint_is_one_clear_line(tmp_path):
    from PIL import Image
    Image.new("RGB", (4, 4)).save(tmp_path / "frame.png")
    with pytest.raises(CheckpointError) as info:
        load_weights(build_model(tiny_config()), str(tmp_path / "frame.png"))
    assert str(info.value) == f"{tmp_path / 'frame.png'}: this is a PNG image, not a PyTorch checkpoint (.pth)"
    import argparse
    torch.save({"args": argparse.Namespace(a=1)}, tmp_path / "objects.pth")  # refused by weights_only loading
    with pytest.raises(CheckpointError) as info:
        load_weights(build_model(tiny_config()), str(tmp_path / "objects.pth"))
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    assert "not a checkpoint of tensors" in str(info.value)


def test_a_checkpoint_of_another_training_size_needs_its_grid(tmp_path):
    """load_weights leaves the model alone: another grid is a mismatch with a hint; the predictor
    builds the model at the checkpoint's grid; fine-tuning resamples explicitly."""
    from inference_core import build_predictor
    trained = build_model(tiny_config(train_img_size=96))
    torch.save(trained.state_dict(), tmp_path / "at96.pth")
    model = build_model(tiny_config())
    with pytest.raises(CheckpointMismatchError, match="trained at 96x96"):
        load_weights(model, str(tmp_path / "at96.pth"))
    assert model.config.train_img_size == 64
    predictor = build_predictor(str(tmp_path / "at96.pth"), tiny_config(), "cpu")
    assert predictor.model.config.train_img_size == 96
    torch.testing.assert_close(predictor.model.pos_embed_new, trained.pos_embed_new)
    report = load_weights(model, str(tmp_path / "at96.pth"), resample_pos_embed=True)
    assert model.pos_embed_new.shape == (1, 1 + 4 * 4, 192) and "resampled" in report.notes[0]
