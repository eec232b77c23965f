"""Our training step (objects batched, absent targets skipped, the last block's query rows only, SDPA)
against the restated published one (training/published_step.py: each target on its own, every row,
explicit attention): the same loss, the same gradients, and, after one Adam step, the same weights."""
import copy

import pytest
import torch

from training.cli import parse_args
from training.config import resolve_config
from training.published_step import published_forward, published_optimizer, published_step
from training.trainer import Trainer
from util.distributed import DistInfo
from model.losses import pair_loss

SIZE = 48


def _trainer(tmp_path, bs: bool, device: str = "cpu") -> Trainer:
    model_flags = (["--layer_index", "2", "--use_token_learner", "True", "--num_bases_foreground", "6",
                    "--num_bases_background", "5"] if bs else ["--layer_index", "0", "--use_token_learner", "False"])
    args = parse_args(["--backbone_type", "vit_tiny", *model_flags, "--pretrained", "none", "--img_size", str(SIZE),
                       "--batch_size", "3", "--drop_path", "0", "--no_amp", "--save_dir", str(tmp_path)])
    return Trainer(resolve_config(args, device), DistInfo(0, 1, 0, torch.device(device)), batches_per_epoch=1)


def _batch(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(3, 2, 2, SIZE, SIZE)
    masks[:, :, 0, 8:30, 6:26] = 1
    masks[:, :, 1, 20:44, 24:40] = 1
    masks[:, :, 1] *= 1 - masks[:, :, 0]
    masks[2, :, 1] = 0                                   # the third sample has one target only
    selector = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    class_map = (masks[:, 1, 0] + 2 * masks[:, 1, 1]).long()
    return {"frames": torch.randn(3, 2, 3, SIZE, SIZE, generator=g), "masks": masks, "class_map": class_map,
            "selector": selector}


@pytest.mark.parametrize("bs", [False, True], ids=["B", "BS"])
def test_our_step_matches_the_published_step(tmp_path, bs):
    trainer = _trainer(tmp_path, bs)
    reference = copy.deepcopy(trainer.net)
    batch = _batch(1)
    with torch.no_grad():                       # probabilities away from 0.5 so that the loss is not flat
        for net in (trainer.net, reference):
            net.stcn_decoder.pred.weight.mul_(5)
    trainer.net.train(), reference.train()

    ours = trainer.step(batch, 0.5)["loss"]
    ours.backward()
    theirs = pair_loss(published_forward(reference, batch["frames"], batch["masks"], batch["selector"]),
                       batch["class_map"], batch["selector"], 0.5)
    theirs.backward()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    grads = {n: q.grad for n, q in reference.named_parameters() if q.grad is not None}
    ours_grads = {n: q.grad for n, q in trainer.net.named_parameters() if q.grad is not None}
    assert set(grads) == set(ours_grads) and len(grads) > 50
    for name, grad in grads.items():
        torch.testing.assert_close(ours_grads[name], grad, atol=1e-5, rtol=1e-3, msg=name)


def test_one_published_step_and_one_of_ours_give_the_same_weights(tmp_path):
    trainer = _trainer(tmp_path, bs=False)
    reference = copy.deepcopy(trainer.net)
    batch = _batch(2)
    trainer.net.train(), reference.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.optimise(trainer.step(batch, 1.0)["loss"])
    optimizer = published_optimizer(reference)
    published_step(reference, optimizer, torch.amp.GradScaler("cuda", enabled=False), batch, 1.0,
                   torch.device("cpu"), amp=False)
    before = dict(_trainer(tmp_path, bs=False).net.named_parameters())
    moved = 0
    for (name, ours), theirs in zip(trainer.net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5, msg=name)
        moved += int(not torch.equal(ours, before[name]))
    assert moved > 50                              # the step changed the weights (Adam moves every trained one)
