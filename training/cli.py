"""The training command line (train_simvos.py): the published flags; training/config.py resolves them with the presets."""
from __future__ import annotations

import argparse

from model.flags import add_model_flags
from training.data import YV_SUBSET
from training.stages import DEFAULT_SEED, STAGES
from util.cli import add_bool_flag

def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", default="NULL", help="experiment name: saves/<id>, runs/<id>")
    p.add_argument("--stage", type=int, default=3, choices=sorted(STAGES))
    p.add_argument("--davis_root", default="../DAVIS", help="holds 2017/trainval (or is that folder)")
    p.add_argument("--yv_root", default="../YouTube", help="holds train_480p (or train); 'none' to train on DAVIS only")
    p.add_argument("--yv_subset", default=YV_SUBSET,
                   help="a file listing the YouTube-VOS train videos to use (default: the published list of 3,464, "
                        "dataset/lists/yv_subset.txt); 'none' uses every folder")
    p.add_argument("--vos_datasets", nargs="+", default=[], metavar="NAME:DIR:WEIGHT[:MAX_JUMP]",
                   help="more VOS-layout folders (DIR/JPEGImages/<video>/, DIR/Annotations/<video>/) added to the mix, "
                        "each repeated WEIGHT times, e.g. mose:../MOSE/train:1")
    add_model_flags(p, use_token_learner=True)  # training defaults to SimVOS-BS, as published
    p.add_argument("--pretrained", default=None,
                   help="MAE checkpoint (default pretrained_models/mae_pretrain_<size>.pth); 'none' = from scratch")
    for name, value in STAGES[3].items():
        kind = type(value[0]) if isinstance(value, list) else type(value)
        p.add_argument(f"--{name}", type=kind, nargs="+" if isinstance(value, list) else None, default=None,
                       help=f"stage preset: {value}")
    p.add_argument("--warmup", type=int, default=0,
                   help="linear learning-rate warm-up over this many iterations (published: 0); helps from scratch")
    p.add_argument("--memory_frames", type=int, default=1, choices=[1, 2],
                   help="reference frames per sample: 1 = a frame pair (published); 2 = a reference, the frame just "
                        "before the query and the query (the first + previous frame memory of inference)")
    p.add_argument("--num_workers", type=int, default=4)
    add_bool_flag(p, "--no_amp", False, "fp32 (default: fp16 autocast + grad scaler on CUDA, bf16 on CPU)")
    p.add_argument("--log_every", type=int, default=None, help="iterations between log lines (default 100; fine-tuning 10)")
    p.add_argument("--image_every", type=int, default=2000)
    p.add_argument("--save_every", type=int, default=10000)
    p.add_argument("--save_dir", default="saves")
    p.add_argument("--log_dir", default="runs")
    p.add_argument("--load_model", default=None, help="a full training state to resume from")
    p.add_argument("--resume", default=None, help="'auto': resume from the newest loadable training state in "
                   "saves/<id> if there is one, else start fresh (safe in every job script); or a state file")
    p.add_argument("--keep_checkpoints", type=int, default=0,
                   help="keep only the newest N training-state files (weights files model_<it>.pth are all kept); 0: all")
    p.add_argument("--load_network", default=None, help="weights only (any supported format)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--device", default=None)
    p.add_argument("--max_nonfinite", type=int, default=20, help="stop after this many non-finite losses in a row")
    p.add_argument("--events", default=None, metavar="FILE",
                   help="append the run's progress to FILE as JSON lines (util/run_events.py: planned, progress, "
                        "validation, saved, finished, failed); rank 0 writes it")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help="set by torch.distributed.launch")
    g = p.add_argument_group("fine-tuning on your own annotated videos (training/finetune.py)")
    g.add_argument("--finetune", nargs="+", default=None, metavar="DIR",
                   help="folders of annotated videos (JPEGImages/<video>/ + Annotations/<video>/, a DAVIS root, or a "
                        "studio workspace): fine-tune --load_network on them with the finetune preset")
    g.add_argument("--sessions", nargs="+", default=None, metavar="ID",
                   help="of a studio workspace given to --finetune, only these sessions")
    g.add_argument("--minutes", type=float, default=None, help="a wall-clock budget instead of --iterations")
    g.add_argument("--val", default=None, help="a folder of annotated videos to validate on (J&F, first-frame protocol)")
    g.add_argument("--val_videos", type=int, default=0, help="hold the last N videos of --finetune out to validate on")
    g.add_argument("--val_every", type=int, default=None, help="iterations between validations (default: a quarter of the run)")
    g.add_argument("--max_jump", type=int, default=None, help="largest frame gap of a training pair (default 10)")
    return p.parse_args(argv)  # the presets are applied once, in training/config.py

