"""--compile: the per-frame stages through torch.compile give the eager probabilities (to float
rounding) on CPU, a recompile for the longer memory included; the position embedding kept between frames follows
weight loads. CUDA graphs (reduce-overhead) are measured by the GPU check, not here."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dataset.synthetic import make_video
from inference_core import SimVOSPredictor
from model import build_model
from tests.conftest import tiny_config
from util.errors import InputError


@pytest.mark.slow
def test_compiled_stages_give_the_eager_probabilities():
    torch.manual_seed(0)
    model = build_model(tiny_config(depth=2)).eval()   # small: inductor's C++ builds take most of the time
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(5)
    frames, labels = make_video(np.random.default_rng(3), 4, 48, 64, 2)
    masks = {0: labels[0]}   # frame 1 compiles with one memory frame, frame 2 recompiles with two

    def run(**options):
        predictor = SimVOSPredictor(model, "cpu", **options)
        return [(r.object_ids, r.probs.clone()) for r in predictor.segment_video(frames, masks)]

    eager = run()
    compiled = run(compile="default")
    assert [ids for ids, _ in compiled] == [ids for ids, _ in eager] == [[1, 2]] * 4
    worst = max(float((a - b).abs().max()) for (_, a), (_, b) in zip(eager, compiled))
    assert worst < 1e-4
    # The network itself stays eager: a predictor without --compile on it runs the plain methods.
    assert "encode_query" not in vars(model)


def test_unknown_compile_mode_is_refused():
    with pytest.raises(InputError, match="compile must be one of"):
        SimVOSPredictor(build_model(tiny_config()), "cpu", compile="fast")


def test_position_embedding_follows_a_weight_load(tiny_b):
    grid = (3, 5)
    before = tiny_b.position_embedding(grid).clone()
    state = tiny_b.state_dict()
    state["pos_embed_new"] = torch.randn_like(state["pos_embed_new"])
    tiny_b.load_state_dict(state)
    after = tiny_b.position_embedding(grid)
    side = int((state["pos_embed_new"].shape[1] - 1) ** 0.5)
    square = state["pos_embed_new"][:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(square, size=grid, mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(after, expected)
    assert not torch.allclose(after, before)


def test_every_inference_command_takes_the_compile_flag():
    import segment_video
    import submit_eval_davis_ours_all
    import submit_eval_youtube
    from inference_core.cli import predictor_options
    own = segment_video.parse_args(["--checkpoint", "c.pth", "--input", "v.mp4", "--output", "o", "--compile", "default"])
    assert predictor_options(own) == {"overlap_io": True, "compile": "default"}
    assert predictor_options(submit_eval_davis_ours_all.parse_args(["--compile", "reduce-overhead"]))["compile"] == "reduce-overhead"
    assert predictor_options(submit_eval_youtube.parse_args([]))["compile"] == "off"
    with pytest.raises(SystemExit):
        submit_eval_davis_ours_all.parse_args(["--compile", "fast"])
