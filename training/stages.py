"""Training stage presets (docs/method.md, section 7); every value can be overridden by its flag."""
from __future__ import annotations

import os

from model.presets import TRAIN_IMG_SIZE

STAGES = {
    3: dict(lr=2e-5, weight_decay=1e-7, iterations=210000, steps=[125000], gamma=0.1, batch_size=4,
            img_size=TRAIN_IMG_SIZE, start_warm=20000, end_warm=70000, top_p=0.15, dice_weight=0.0, drop_path=0.1, davis_repeat=5,
            davis_max_jump=10, yv_max_jump=2),
}
DEFAULT_SEED = 14159265
# Shipped-file locations resolve against the repository, wherever the command runs (as the YouTube-VOS list).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAE_DEFAULTS = {size: os.path.join(_REPO, "pretrained_models", f"mae_pretrain_{size}.pth") for size in ("vit_base", "vit_large")}
