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
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02not a checkpoint\x00")
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


def test_text_junk_folders_and_links_given_as_checkpoint_are_one_line(tmp_path):
    """What torch.load refuses, whatever it raises (KeyError, IndexError, UnicodeDecodeError, ...),
    is one line naming the file and what it is."""
    model = build_model(tiny_config())
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    (tmp_path / "model.json").write_text('{"variant": null, "model": {"backbone_type": "vit_tiny"}}')
    (tmp_path / "finetuned.pth").symlink_to(tmp_path / "passwd")
    (tmp_path / "noise.pth").write_bytes(bytes(torch.randint(0, 256, (3000,), generator=torch.Generator().manual_seed(0)).tolist()))
    expected = {"passwd": "this is a text file, not a PyTorch checkpoint (.pth)",
                "model.json": "this is a text file, not a PyTorch checkpoint (.pth) (a sidecar of model flags? give the .pth file beside it)",
                "finetuned.pth": f"this is a text file, not a PyTorch checkpoint (.pth) (it links to {tmp_path / 'passwd'})",
                "noise.pth": "not a PyTorch checkpoint (.pth), or a truncated one (an interrupted download or copy?)"}
    for name, reason in expected.items():
        with pytest.raises(CheckpointError) as info:
            load_weights(model, str(tmp_path / name))
        assert str(info.value) == f"{tmp_path / name}: {reason}"
    (tmp_path / "run").mkdir()
    torch.save(model.state_dict(), tmp_path / "run" / "finetuned.pth")
    with pytest.raises(CheckpointError, match=r"run: a folder, not a checkpoint file; give the checkpoint in it \(finetuned.pth\)$"):
        load_weights(model, str(tmp_path / "run"))


def test_what_a_state_dicts_weights_suggest():
    from model.variants import likely_flags

    def state(dim, depth, token_learner):
        keys = {"patch_embed.proj.weight": torch.zeros(dim, 3, 1, 1), f"blocks.{depth - 1}.norm1.weight": torch.zeros(1)}
        return {**keys, **({"tlearner.patch_to_cluster_linear.weight": torch.zeros(1)} if token_learner else {})}
    assert likely_flags(state(768, 12, True)) == "--variant simvos_bs"
    assert likely_flags(state(768, 12, False)) == "--variant simvos_b"
    assert likely_flags(state(1024, 24, False)) == "--variant simvos_l"
    assert likely_flags(state(192, 12, True)) == "--backbone_type vit_tiny --use_token_learner --layer_index N (N > 0)"
    assert likely_flags(state(100, 3, False)) is None


def _tiny_published(path, **flags):
    """A vit_tiny checkpoint (12 blocks) in the published bare format; -> its config."""
    from model import config_from_flags
    config = config_from_flags("vit_tiny", train_img_size=64, **flags)
    torch.manual_seed(0)
    torch.save(build_model(config).state_dict(), path)
    return config


@pytest.mark.parametrize("field,value,expected", [
    ("layer_index", "x", '"layer_index" must be an integer, got \'x\''),
    ("use_token_learner", 1, '"use_token_learner" must be true or false, got 1'),
    ("backbone_type", 7, '"backbone_type" must be a string, got 7'),
    ("layer_index", 99, "the recorded model flags describe no network: --layer_index must be in"),
    ("variant", "simvos_xl", '"variant" must be one of simvos_b, simvos_bs, simvos_l or null'),
])
def test_a_damaged_sidecar_is_one_line_naming_it_and_the_field(tmp_path, field, value, expected):
    import json
    from inference_core import SimVOSPredictor
    from model.variants import recorded_flags, sidecar_path
    config = _tiny_published(tmp_path / "finetuned.pth")
    record = recorded_flags(config)
    (record if field == "variant" else record["model"])[field] = value
    with open(sidecar_path(str(tmp_path / "finetuned.pth")), "w") as f:
        json.dump(record, f)
    with pytest.raises(CheckpointError) as info:
        SimVOSPredictor.from_checkpoint(str(tmp_path / "finetuned.pth"), device="cpu")
    assert str(info.value).startswith(f"{tmp_path / 'finetuned.json'}: {expected}") and "\n" not in str(info.value)


def test_a_checkpoint_without_sidecar_that_does_not_fit_names_the_missing_sidecar(tmp_path):
    from inference_core.predictor import build_predictor
    from model import config_from_flags
    from model.variants import write_sidecar
    _tiny_published(tmp_path / "finetuned.pth", layer_index=0)
    default = config_from_flags("vit_tiny", train_img_size=64, layer_index=2, use_token_learner=True)
    with pytest.raises(CheckpointMismatchError) as info:
        build_predictor(str(tmp_path / "finetuned.pth"), default, "cpu")
    first, hint = str(info.value).split("\n")[:2]
    assert first.startswith(f"{tmp_path / 'finetuned.pth'}: simvos checkpoint does not fit the model")
    assert hint == (f"  hint: no sidecar {tmp_path / 'finetuned.json'} records the model flags this checkpoint was "
                    "trained with, so the network was built from the flags given (or the defaults): pass its flags, "
                    "likely --backbone_type vit_tiny --layer_index N")
    write_sidecar(str(tmp_path / "finetuned.pth"), config_from_flags("vit_tiny", layer_index=0))
    with pytest.raises(CheckpointMismatchError) as info:  # with its sidecar, the sidecar's own message
        build_predictor(str(tmp_path / "finetuned.pth"), default, "cpu")
    assert "trained with other model flags (recorded in" in str(info.value) and "no sidecar" not in str(info.value)
