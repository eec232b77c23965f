"""The studio's exports of a session: palette PNGs (zip), one PNG per object (zip), COCO JSON, an
overlay MP4. Each is made in the session's exports/ under names of its own and published whole."""
from __future__ import annotations

import os
import zipfile

import numpy as np

from dataset.workspace import frame_stem
from outputs.formats import ResultWriter
from outputs.video_job import write_overlay
from studio.store import StoredSession
from util.labels import ids_of_all
from util.publish import publishing, staging

EXPORTS = ("palette", "objects", "coco", "mp4")
MEDIA_TYPES = {"coco": "application/json", "mp4": "video/mp4", "palette": "application/zip", "objects": "application/zip"}


def chunks(handle, size: int = 2**20):
    with handle:
        while chunk := handle.read(size):
            yield chunk


def export(session: StoredSession, kind: str):
    """Writes the export of ``kind`` into the session's exports/; -> (the file, open for reading, and
    its path). Each export is made under names of its own and published whole, and the file is
    opened before it is published: concurrent exports never share or swap a file."""
    meta = session.meta
    name = meta.name
    target = os.path.join(session.folder.exports(), {"mp4": f"{name}_overlay.mp4", "coco": f"{name}_coco.json"}.get(
        kind, f"{name}_{kind}.zip"))
    source = session.source() if kind == "mp4" else None   # SourceMissing before anything is written
    with staging(target) as stage:
        blank = np.zeros((meta.height, meta.width), np.uint8)
        # Every object of the results was annotated somewhere: the annotations name them all.
        objects = ids_of_all(session.annotation(a) for a in session.annotated())
        stems = [frame_stem(i) for i in range(session.frames)]
        times = meta.times or [i / meta.fps for i in range(session.frames)]
        kinds = ["palette"] + ([kind] if kind in ("objects", "coco") else [])  # only what is asked
        writer = ResultWriter(stage, kinds, stems, times, objects,
                              {"video": name, "frames": session.frames, "fps": meta.fps,
                               "width": meta.width, "height": meta.height, "object_ids": objects})
        for i in range(session.frames):  # one frame at a time: memory stays flat in the video's length
            labels = session.label_map(i)
            writer.write_frame(i, blank if labels is None else labels, None)
        writer.finish()
        with publishing(target) as tmp:
            if kind == "mp4":
                write_overlay(source, os.path.join(stage, "palette"), tmp, stems)
            elif kind == "coco":
                os.replace(os.path.join(stage, "coco.json"), tmp)
            else:
                folder = os.path.join(stage, "palette" if kind == "palette" else "objects")
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                    for root, _, files in os.walk(folder):
                        for f in sorted(files):
                            path = os.path.join(root, f)
                            z.write(path, f"{name}/{os.path.relpath(path, folder).replace(os.sep, '/')}")
            handle = open(tmp, "rb")
    return handle, target
