"""Atomic publishing: a file or folder is written under a temporary name beside its place, then
renamed into place, so a reader sees the old version or the complete new one, never a part.

    with publishing("out/clip_coco.json") as tmp:    # tmp: out/.clip_coco.<pid>-<random>.tmp.json
        write(tmp)                                   # published on success, removed on any error
    with staging("out/clip") as stage:               # several outputs made together, each moved
        ...                                          # into place with replace(); the rest removed
    remove_leftovers("out")                          # at the next start: what a killed writer left
    with output_folder("out"):                       # made if missing; removed again if a failure
        ...                                          # left it empty (finished work is never removed)

Temporary names are unique per call (process id + random), so two writers of one output never
share one, and keep the extension (writers that pick the format by it still work). A leftover is
a temporary name whose process is no longer alive.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from contextlib import ExitStack, contextmanager
from typing import Iterator

from util.errors import InputError

_TEMPORARY = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def temporary_path(path: str) -> str:
    """A fresh hidden name beside ``path``: ``.<stem>.<pid>-<random>.tmp<ext>``."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def replace(tmp: str, path: str) -> None:
    """Moves ``tmp`` (a file or folder) to ``path``, replacing what is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        old = temporary_path(path)
        os.replace(path, old)        # a folder cannot be renamed over a non-empty one
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextmanager
def publishing(path: str, folder: bool = False) -> Iterator[str]:
    """Yields a temporary path (an empty folder when ``folder``) published at ``path`` on success."""
    tmp = temporary_path(path)
    if folder:
        os.makedirs(tmp)
    try:
        yield tmp
        replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def staging(path: str) -> Iterator[str]:
    """A temporary folder beside ``path`` for work whose pieces the caller moves into place
    (with :func:`replace`); removed at the end, whatever happens."""
    tmp = temporary_path(path)
    os.makedirs(tmp)
    try:
        yield tmp
    finally:
        _remove(tmp)


@contextmanager
def output_folder(path: str, what: str = "the output folder") -> Iterator[str]:
    """The folder ``path``, made (with its parents) if missing; an error inside removes it again
    when this call made it and nothing was written into it. A file in its place, or a folder that
    cannot be made, is an InputError naming ``what`` (a flag)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{path}: {what} is a file, not a folder")
    made, folder = [], os.path.abspath(path)   # the folders this call makes, deepest first
    while not os.path.exists(folder):
        made.append(folder)
        folder = os.path.dirname(folder)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: {what} cannot be made ({exc.strerror or exc})") from None
    try:
        yield path
    except BaseException:
        for folder in made:
            try:
                os.rmdir(folder)   # only an empty folder: another writer's work stays
            except OSError:
                break
        raise


@contextmanager
def staged_folders(paths: list[str]) -> Iterator[list[str]]:
    """Temporary folders for each of ``paths``, all published together on success."""
    with ExitStack() as stack:
        yield [stack.enter_context(publishing(p, folder=True)) for p in paths]


def write_bytes(path: str, data: bytes) -> None:
    with publishing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_json(path: str, value, **dump) -> None:
    with publishing(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, **dump)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: str) -> list[str]:
    """Removes the temporary files and folders in ``folder`` whose writer is gone; -> their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if match and not _alive(int(match.group(1))):
            _remove(os.path.join(folder, name))
            removed.append(name)
    return removed
