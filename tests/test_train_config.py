"""The training config, resolved once (training/config.py): the published recipe from the published
command line, fine-tuning from its preset and the checkpoint's sidecar, nothing mutated, a --minutes
plan replacing the schedule from the next step on."""
import dataclasses

import pytest
import torch

from model import config_from_flags
from model.variants import write_sidecar
from training.cli import parse_args
from training.config import BootstrapSchedule, LearningRate, RunPlan, resolve_config
from training.trainer import Trainer
from util.distributed import DistInfo

TINY = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--use_token_learner", "False", "--pretrained", "none",
        "--img_size", "32"]
CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def test_the_published_command_line_is_the_published_recipe(tmp_path):
    """docs/method.md section 7: Adam 2e-5, 210k iterations, x0.1 at 125k, bootstrapping from 20k to
    70k down to 15%, batch 4, 384 crops, drop path 0.1, SimVOS-BS."""
    args = parse_args(["--id", "retrain_s03", "--stage", "3", "--pretrained", "none", "--save_dir", str(tmp_path)])
    flags = dict(vars(args))
    config = resolve_config(args, "cuda")
    assert vars(args) == flags                                   # the command line is read, not changed
    assert config.iterations == 210000 and config.lr == LearningRate(2e-5, 0, (125000,), 0.1)
    assert config.bootstrap == BootstrapSchedule(20000, 70000, 0.15) and config.dice_weight == 0
    assert (config.batch_size, config.img_size, config.drop_path, config.weight_decay) == (4, 384, 0.1, 1e-7)
    assert (config.model.backbone_type, config.model.layer_index, config.model.use_token_learner) == ("vit_base", 4, True)
    assert config.finetune is None and config.data.davis_repeat == 5 and config.data.youtube_root == "../YouTube"
    assert config.save_dir == str(tmp_path / "retrain_s03") and config.resume_from is None and not config.resume_auto
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.iterations = 5
    assert [config.bootstrap.fraction(i) for i in (0, 20000, 45000, 70000, 90000)] == pytest.approx(
        [1.0, 1.0, 0.575, 0.15, 0.15])


@pytest.fixture
def sidecar_checkpoint(tmp_path):
    config = config_from_flags("vit_tiny", layer_index=0, use_token_learner=False, train_img_size=64)
    path = str(tmp_path / "start.pth")
    torch.save({}, path)
    write_sidecar(path, config)
    return path


def test_finetuning_takes_its_preset_and_the_sidecar(tmp_path, sidecar_checkpoint):
    base = ["--id", "mine", "--finetune", str(tmp_path), "--load_network", sidecar_checkpoint, "--save_dir", str(tmp_path)]
    config = resolve_config(parse_args(base), "cpu", crop_size=192)
    assert (config.model.backbone_type, config.model.layer_index, config.model.use_token_learner) == ("vit_tiny", 0, False)
    assert config.img_size == 192 and config.pretrained is None and config.data is None
    assert config.iterations == 1000 and config.lr == LearningRate(1e-4, 0, (800,), 0.1)
    assert config.bootstrap is None and config.dice_weight == 1.0 and config.batch_size == 4
    assert config.finetune.minutes is None and config.finetune.max_jump == 10 and config.log_every == 10
    budget = resolve_config(parse_args(base + ["--minutes", "5", "--img_size", "64"]), "cpu", crop_size=192)
    assert budget.iterations is None and budget.lr.steps == () and budget.img_size == 64
    warm = resolve_config(parse_args(base + ["--start_warm", "5", "--end_warm", "10"]), "cpu", crop_size=192)
    assert warm.bootstrap == BootstrapSchedule(5, 10, 0.15)


def test_a_plan_replaces_the_schedule_from_the_next_step(tmp_path):
    """As a --minutes run does once it has measured itself: the lr of every later step is the new
    schedule's, the steps before keep the old one's."""
    args = parse_args([*TINY, "--lr", "1e-3", "--steps", "100", "--save_dir", str(tmp_path)])
    trainer = Trainer(resolve_config(args, "cpu"), CPU, batches_per_epoch=1)
    lrs = []
    for it in range(8):
        if it == 3:
            trainer.iteration = 3
            trainer.replan(RunPlan(8, LearningRate(1e-3, 0, (5,), 0.1)))
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert lrs == pytest.approx([1e-3] * 5 + [1e-4] * 3)
    assert trainer.plan.iterations == 8 and trainer.scheduler.last_epoch == 8


def test_older_training_states_without_the_whole_config_still_resume(tmp_path):
    """A state as written before the config was recorded (no train_config): the run resumes from it."""
    argv = [*TINY, "--save_dir", str(tmp_path), "--id", "old"]
    trainer = Trainer(resolve_config(parse_args(argv), "cpu"), CPU, batches_per_epoch=4)
    trainer.iteration = 6
    trainer.save()
    state = torch.load(tmp_path / "old" / "checkpoint_6.pth", weights_only=True)
    assert state["train_config"]["iterations"] == 210000 and state["config"]["backbone_type"] == "vit_tiny"
    del state["train_config"], state["epoch"], state["batches_done"]
    torch.save(state, tmp_path / "old" / "checkpoint_6.pth")
    resumed = Trainer(resolve_config(parse_args(argv + ["--resume", "auto"]), "cpu"), CPU, batches_per_epoch=4)
    assert resumed.iteration == 6 and (resumed.epoch, resumed.batches_done) == (1, 2)
    assert "resumed from" in resumed.resumed

