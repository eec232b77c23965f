"""Training presets: the published stage (docs/method.md, section 7) and fine-tuning on one's own
videos (training/finetune.py); every value can be overridden by its flag."""
from __future__ import annotations

import os

from model.presets import TRAIN_IMG_SIZE

STAGES = {
    3: dict(lr=2e-5, weight_decay=1e-7, iterations=210000, steps=[125000], gamma=0.1, batch_size=4,
            img_size=TRAIN_IMG_SIZE, start_warm=20000, end_warm=70000, top_p=0.15, dice_weight=0.0, drop_path=0.1, davis_repeat=5,
            davis_max_jump=10, yv_max_jump=2),
}
DEFAULT_SEED = 14159265
DEFAULT_LOG_EVERY = 100

# Fine-tuning: a learning rate by backbone (lower for larger networks), constant then x0.1 for the
# last fifth (FINETUNE_STEP_AT), plain cross-entropy (no bootstrapping: at 15% from the start, as
# the published stage ends, the demo model collapsed to background within 30 iterations on real
# videos) plus a soft Dice term, which weighs each object by its area so that small objects are
# not given up for background.
LEARNING_RATES = {"vit_tiny": 1e-4, "vit_small": 2e-5, "vit_base": 1e-5, "vit_large": 5e-6}
FINETUNE_PRESET = dict(weight_decay=1e-7, gamma=0.1, top_p=0.15, dice_weight=1.0, max_jump=10, log_every=10)
FINETUNE_STEP_AT = 0.8
DEFAULT_FINETUNE_ITERATIONS = 1000  # without --minutes or --iterations
# Shipped-file locations resolve against the repository, wherever the command runs (as the YouTube-VOS list).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAE_DEFAULTS = {size: os.path.join(_REPO, "pretrained_models", f"mae_pretrain_{size}.pth") for size in ("vit_base", "vit_large")}
