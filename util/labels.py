"""Label maps: [H, W] uint8 object ids, 0 the background (DAVIS / YouTube-VOS: 255 void)."""
from __future__ import annotations

from typing import Iterable

import numpy as np

MAX_OBJECTS = 64  # more distinct values than this cannot be object ids: the image is not a label map
VOID = 255        # DAVIS / YouTube-VOS masks: not an object


def object_ids(labels: np.ndarray, exclude: Iterable[int] = ()) -> list[int]:
    """The object ids present in a uint8 label map, ascending: every non-zero value but ``exclude``."""
    present = np.flatnonzero(np.bincount(np.asarray(labels, dtype=np.uint8).ravel(), minlength=256)[1:]) + 1
    skip = set(exclude)
    return [int(v) for v in present if int(v) not in skip]


def ids_of_all(label_maps: Iterable[np.ndarray]) -> list[int]:
    """The object ids present in any of the label maps, ascending."""
    found: set[int] = set()
    for labels in label_maps:
        found.update(object_ids(labels))
    return sorted(found)
