"""CodaLab archives: the server reads ``Annotations/<video>/<frame>.png`` (YouTube-VOS, MOSE)."""
from __future__ import annotations

import os
import zipfile

from util.publish import publishing


def zip_annotations(root: str, zip_path: str) -> None:
    """Every ``<video>/<frame>.png`` of ``root`` into ``zip_path`` as ``Annotations/<video>/<frame>.png``."""
    with publishing(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for video in sorted(os.listdir(root)):
            folder = os.path.join(root, video)
            if video.startswith(".") or not os.path.isdir(folder):
                continue
            for frame in sorted(os.listdir(folder)):
                z.write(os.path.join(folder, frame), os.path.join("Annotations", video, frame))
