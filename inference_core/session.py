"""An interactive session over one video: annotations in, propagations out (as SAM 2's video
predictor and Cutie's controller keep one state for a video).

    video = predictor.open(frames)            # RGB frames, a FrameSource, or a video file / frame folder path
    video.add_mask(0, labels)                 # encodes the frame's references; segments nothing
    video.remove_object(2)                    # gone: no channel, no memory, no output
    for result in video.propagate(start=0, direction="forward", stop=None):
        ...                                   # a FrameResult per frame, start included, in walking order

A label map given to ``add_mask`` is complete for its frame by default: a tracked object it does
not name is absent there. ``complete=False`` is YouTube-VOS's meaning: the mask only adds or corrects
the objects it names. Each propagation starts afresh from the session's annotations: an object is
tracked from the first of its annotated frames that the walk meets (at or behind its start), with
the references the memory policy keeps (inference_core/memory.py). Frames are decoded on demand:
a video file is not held in memory, and a backward walk reads it again. Frames are processed with
their shorter side at most ``size`` pixels and the probabilities come back at the frames' size.

``independent_objects=True`` segments each object against the background only (no competition
between objects: the same masks as a session holding that object alone), so overlapping objects
are all kept: ``result.object_masks()`` gives each object's own mask, ``result.labels()`` gives a
pixel claimed by several objects to the most confident one. Overlapping annotations are given as
``add_mask(index, {id: boolean mask [H, W], ...})``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from dataset.frames import FrameSource, open_input
from inference_core.directions import WALK_DIRECTIONS
from inference_core.engine import FrameAnnotation, InferenceCore
from inference_core.memory import check_max_keyframes, check_policy, make_memory
from inference_core.results import FrameResult
from model.aggregate import aggregate
from model.inputs import centre_pad, image_to_tensor, pad, unpad
from util.errors import InputError
from util.labels import object_ids
from util.threads import prefetched


def as_rgb(frame, what: str = "frame") -> np.ndarray:
    """An RGB uint8 array [H, W, 3] from what people pass: uint8 arrays [H, W, 3] or [H, W]
    (greyscale), [H, W, 4] (alpha dropped), or PIL images. Anything else is an InputError."""
    if hasattr(frame, "convert") and hasattr(frame, "mode"):  # a PIL image
        frame = np.asarray(frame.convert("RGB"))
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{what}: expected an RGB uint8 numpy array [H, W, 3] or a PIL image, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"{what}: expected uint8 pixels (0-255), got {frame.dtype} "
                         "(for floats in [0, 1]: (frame * 255).round().astype(np.uint8))")
    if frame.ndim == 2:
        return np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        return frame[..., :3]
    raise InputError(f"{what}: expected shape [H, W, 3] (RGB) or [H, W] (greyscale), got {list(frame.shape)}")


def as_labels(mask, what: str = "mask") -> np.ndarray:
    """A label map [H, W] uint8 from an integer or boolean array or a PIL image ('P', 'L', '1')."""
    if hasattr(mask, "mode") and hasattr(mask, "convert"):
        mask = np.asarray(mask, dtype=np.uint8) if mask.mode in ("P", "L", "1") else mask
    if not isinstance(mask, np.ndarray):
        raise InputError(f"{what}: expected a label map (numpy array [H, W] of object ids), got {type(mask).__name__}")
    if mask.ndim != 2:
        raise InputError(f"{what}: expected a label map of shape [H, W], got {list(mask.shape)}")
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise InputError(f"{what}: expected integer object ids, got {mask.dtype} (a probability map? threshold it)")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise InputError(f"{what}: object ids must be in 0-255, found {int(mask.min())}..{int(mask.max())}")
    return mask.astype(np.uint8, copy=False)


def check_size(size, what: str = "size") -> int:
    """A processing size: a positive number of pixels (the shorter side), or -1 (as given); else an
    InputError naming ``what`` (a flag, a field)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or (size < 1 and size != -1):
        raise InputError(f"{what} must be a positive number of pixels (the shorter side the network sees) or -1 "
                         f"(frames as given), got {size!r}")
    return int(size)


def processing_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) the network sees: the shorter side at most ``size`` (never enlarged; -1: as given)."""
    short = min(height, width)
    if size is None or size < 0 or short <= size:
        return height, width
    scale = size / short
    return max(1, round(height * scale)), max(1, round(width * scale))


class _Frames:
    """Frames as the session reads them: ``length`` (None for a one-pass iterator), ``read(range)``
    -> (index, frame) and ``one(index)``. A one-pass iterator can be read forward once."""

    def __init__(self, frames):
        if isinstance(frames, (str, os.PathLike)):
            frames = open_input(os.fspath(frames))
        self.source = frames if isinstance(frames, FrameSource) else None
        self.position = 0
        if self.source is not None:
            self.length, self._read = len(frames), frames.read
        elif hasattr(frames, "__len__") and hasattr(frames, "__getitem__"):
            self.length, self._read = len(frames), lambda indices: ((i, frames[i]) for i in indices)
        else:
            self.length, self._iterator = None, iter(frames)
            self._read = self._one_pass

    def _one_pass(self, indices: range) -> Iterator[tuple[int, object]]:
        if indices.step != 1 or indices.start < self.position:
            raise InputError("the frames were given as a one-pass iterator, which is read forward once: pass a list or "
                             "array of frames, a dataset.frames.FrameSource or a path to walk backward or read again")
        for index in indices:
            while self.position <= index:
                frame = next(self._iterator, None)
                if frame is None:
                    return
                self.position += 1
            yield index, frame

    def read(self, indices: range):
        return self._read(indices)

    def one(self, index: int):
        reader = self.read(range(index, index + 1))
        try:
            return next(reader)[1]
        except StopIteration:
            raise InputError(f"frame {index} is past the end of the video") from None
        finally:
            reader.close()


@dataclass
class _Annotation:
    labels: np.ndarray                          # [H, W] the label map as given (per-object masks: a later id wins)
    objects: list[int]                          # the ids taken from it
    complete: bool
    object_masks: dict[int, np.ndarray] | None = None  # {id: bool [H, W]} when given per object (may overlap)
    masks: dict[int, torch.Tensor] | None = None       # {id: one-hot [H', W']} at the network's padded size
    references: dict[int, torch.Tensor] | None = None  # {id: [M, C]}, encoded from the frame
    absent_reference: torch.Tensor | None = None       # [M, C]: the frame with an empty mask, when needed


class VideoSession:
    """One video's annotations and the state to propagate them (see the module docstring).

    predictor: a :class:`inference_core.predictor.SimVOSPredictor`; frames: RGB frames (a list or
    array, uint8 [H, W, 3] each, or PIL images), a FrameSource, a path, or a one-pass iterator
    (forward walks only); size, memory, max_keyframes, independent_objects: this video's (default:
    the predictor's)."""

    def __init__(self, predictor, frames, size: int | None = None, memory: str | None = None,
                 max_keyframes: int | None = None, independent_objects: bool | None = None):
        self.predictor = predictor
        self.frames = _Frames(frames)
        self.size = predictor.size if size is None else check_size(size)
        self.policy = check_policy(predictor.memory if memory is None else memory)
        self.max_keyframes = check_max_keyframes(predictor.max_keyframes if max_keyframes is None else max_keyframes)
        self.independent = bool(predictor.independent_objects if independent_objects is None else independent_objects)
        self.core = InferenceCore(predictor.network, predictor.amp, predictor.max_objects_per_batch, self.independent)
        self.annotations: dict[int, _Annotation] = {}
        self.frame_shape: tuple[int, int] | None = None
        self._changes = 0   # a walk in progress stops if the annotations change under it
        self._step_sign = 1  # the direction of the last walk

    def __len__(self) -> int:
        if self.frames.length is None:
            raise InputError("the number of frames of a one-pass iterator is not known")
        return self.frames.length

    @property
    def objects(self) -> list[int]:
        """Every object id annotated somewhere in the session, ascending."""
        return sorted({i for a in self.annotations.values() for i in a.objects})

    @property
    def annotated_frames(self) -> list[int]:
        return sorted(self.annotations)

    # ------------------------------------------------------------------ annotations
    def add_mask(self, index: int, labels, objects: Iterable[int] | None = None, complete: bool = True) -> list[int]:
        """An annotation of frame ``index``: labels [H, W] (0 = background, each other value an
        object unless ``objects`` says which ids to take), or {id: boolean mask [H, W]} (one mask
        per object, which may overlap). Replaces an earlier annotation of the frame.
        Encodes the frame's references (the frame is read now when it can be read at random) and
        segments nothing. -> the object ids taken."""
        index = self._frame_index(index)
        per_object = None
        if isinstance(labels, dict):
            per_object = {int(i): as_labels(m, f"frame {index}: mask of object {i}") > 0 for i, m in sorted(labels.items())}
            labels = _label_map(per_object, f"frame {index}")
            taken = [i for i, m in per_object.items() if m.any()]
        else:
            labels = as_labels(labels, f"frame {index}: mask")
            taken = object_ids(labels)
        if objects is not None:
            wanted = {int(o) for o in objects}
            taken = [i for i in taken if i in wanted]
        if per_object is not None:
            per_object = {i: per_object[i] for i in taken}
        annotation = _Annotation(labels, taken, complete, per_object)
        if self.frames.length is not None:
            self._encode(annotation, index, *self._prepare(self.frames.one(index), index))
        if taken or complete:
            self.annotations[index] = annotation
        else:
            self.annotations.pop(index, None)  # a partial annotation of nothing adds nothing
        self._changes += 1
        return taken

    def remove_mask(self, index: int) -> None:
        """Frame ``index`` is no longer annotated."""
        if self.annotations.pop(index, None) is None:
            raise InputError(f"frame {index} has no annotation (annotated: {self.annotated_frames})")
        self._changes += 1

    def remove_object(self, obj: int) -> None:
        """Object ``obj`` is gone from the session: from every annotation (its pixels become
        background), every memory and every result. The other objects of its annotated frames are
        encoded again without it (their prototypes were computed together). A complete annotation
        left without objects stays, as "nothing here" (as ``add_mask`` keeps an empty complete map);
        a partial one left without objects adds nothing and goes."""
        if obj not in self.objects:
            raise InputError(f"no object {obj} in this session (objects: {self.objects})")
        for index in [i for i, a in self.annotations.items() if obj in a.objects]:
            old = self.annotations[index]
            kept = [i for i in old.objects if i != obj]
            per_object = {i: old.object_masks[i] for i in kept} if old.object_masks is not None else None
            labels = _label_map(per_object, f"frame {index}") if per_object else \
                np.where(old.labels == obj, 0, old.labels).astype(np.uint8)
            annotation = _Annotation(labels, kept, old.complete, per_object)
            if not annotation.objects and not annotation.complete:
                del self.annotations[index]
                continue
            self.annotations[index] = annotation
            if self.frames.length is not None:
                self._encode(annotation, index, *self._prepare(self.frames.one(index), index))
        self._changes += 1

    # ------------------------------------------------------------------ propagation
    def propagate(self, start: int | None = None, direction: str = "forward",
                  stop: int | None = None, resume: dict | None = None) -> Iterator[FrameResult]:
        """FrameResults of the frames from ``start`` to ``stop`` (both included) in walking order.
        start: default the first annotated frame (forward) or the last (backward); stop: default
        the last frame (forward) or frame 0 (backward). An annotated frame answers with its
        annotation; the others are segmented from the memory. resume: a :meth:`walk_state` of an
        earlier walk of these annotations: that walk continues from the frame after it (``start``
        ignored), exactly as it would have gone on."""
        if direction not in WALK_DIRECTIONS:
            raise InputError(f"direction must be one of {', '.join(WALK_DIRECTIONS)}, got {direction!r}")
        step = 1 if direction == "forward" else -1
        if resume is not None:
            if resume["step"] != step:
                raise InputError(f"the saved walk went {WALK_DIRECTIONS[resume['step'] == -1]}, not {direction}")
            start = resume["index"] + step
        if start is None:
            if not self.annotations:
                raise InputError("no annotated frame: add a mask first (or give start)")
            start = min(self.annotations) if step == 1 else max(self.annotations)
        start = self._frame_index(start, "start")
        if stop is None:
            stop = (None if self.frames.length is None else self.frames.length - 1) if step == 1 else 0
        else:
            stop = self._frame_index(stop, "stop")
            if (stop - start) * step < 0:
                raise InputError(f"stop {stop} is {'before' if step == 1 else 'after'} start {start} "
                                 f"for a {direction} propagation")
        return self._walk(start, step, stop, resume)

    def walk_state(self) -> dict:
        """After a FrameResult of a propagation: what continues that walk exactly from the next frame
        (``propagate(resume=state)``, in this session or a new one with the same annotations): the
        frame reached, the direction and the engine's state, tensors on the CPU (torch.save-able)."""
        if self.core.pending is None:
            raise InputError("no frame propagated yet: nothing to continue")
        return {"index": self.core.pending.index, "step": self._step_sign, "core": self.core.snapshot()}

    def _walk(self, start: int, step: int, stop: int | None, resume: dict | None = None) -> Iterator[FrameResult]:
        changes = self._changes
        self._step_sign = step
        if resume is None:
            self._begin(start, step)
        else:
            self.core.restore(make_memory(self.policy, self.max_keyframes), resume["core"])
        indices = range(start, stop + step if stop is not None else 2**62, step)
        frames = self.frames.read(indices)
        if self.predictor.overlap_io:
            frames = prefetched(frames)  # decode ahead while the network runs
        try:
            for index, rgb in frames:
                if self._changes != changes:
                    raise RuntimeError("the session's annotations changed during a propagation: start a new one")
                yield self._step(index, rgb)
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()

    def _begin(self, start: int, step: int) -> None:
        """A fresh memory: the annotations behind the start (all of them, for a policy that keeps
        every annotation), farthest first; the objects annotated behind the start are tracked (a
        complete annotation behind it gives the tracked objects it does not name their absent reference)."""
        memory = make_memory(self.policy, self.max_keyframes)
        behind = {a for a in self.annotations if (a - start) * step < 0}
        kept = [a for a in self.annotations if a != start] if memory.every_annotation else behind
        tracked: set[int] = set()
        for a in sorted(kept, key=lambda a: (-abs(a - start), a)):  # the ones behind in walking order
            annotation = self.annotations[a]
            for obj, ref in self._references(a).items():
                memory.add_reference(obj, a, ref)
            if a in behind:
                missing = tracked - set(annotation.objects) if annotation.complete else set()
                for obj in sorted(missing):
                    memory.add_reference(obj, a, self._absent_reference(a))
                tracked |= set(annotation.objects)
        self.core.start(memory, sorted(tracked))

    def _step(self, index: int, rgb) -> FrameResult:
        frame, geometry = self._prepare(rgb, index)
        annotation = self.annotations.get(index)
        engine_annotation = None
        if annotation is not None:
            if annotation.references is None:
                self._encode(annotation, index, frame, geometry)
            if annotation.complete and set(self.core.object_ids) - set(annotation.objects):
                self._absent_reference(index, frame)
            engine_annotation = FrameAnnotation(annotation.masks, annotation.references, annotation.complete,
                                                annotation.absent_reference)
        ids, probs = self.core.step(frame, index, engine_annotation)
        (height, width), net_hw, padding = geometry
        probs = unpad(probs, padding)
        if net_hw != (height, width):
            probs = F.interpolate(probs[None], size=(height, width), mode="bilinear", align_corners=False)[0]
            if annotation is not None and annotation.objects:
                probs = self._annotation_at_full_size(probs, ids, annotation)
        return FrameResult(index, ids, probs, self.independent)

    # ------------------------------------------------------------------ frames and masks
    def _frame_index(self, index, what: str = "frame") -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise InputError(f"{what} must be a frame number, got {index!r}")
        index = int(index)
        if index < 0 or (self.frames.length is not None and index >= self.frames.length):
            last = "" if self.frames.length is None else f" (0-{self.frames.length - 1})"
            raise InputError(f"{what} {index} is outside the video{last}")
        return index

    def _prepare(self, rgb, index: int):
        """-> (padded frame [1, 3, H', W'] on the device, ((H, W), (h, w) for the network, padding))."""
        rgb = as_rgb(rgb, f"frame {index}")
        height, width = rgb.shape[:2]
        if self.frame_shape is None:
            self.frame_shape = (height, width)
        elif self.frame_shape != (height, width):
            raise InputError(f"frame {index} is {width}x{height} but the video's frames are "
                             f"{self.frame_shape[1]}x{self.frame_shape[0]}: every frame of a video must have one size")
        net_hw = processing_size(height, width, self.size)
        padding = centre_pad(*net_hw)
        frame = image_to_tensor(rgb, self.predictor.device)
        if net_hw != (height, width):
            frame = F.interpolate(frame, size=net_hw, mode="bilinear", align_corners=False, antialias=True)
        return pad(frame, padding), ((height, width), net_hw, padding)

    def _references(self, index: int) -> dict[int, torch.Tensor]:
        annotation = self.annotations[index]
        if annotation.references is None:
            self._encode(annotation, index, *self._prepare(self.frames.one(index), index))
        return annotation.references

    def _absent_reference(self, index: int, frame: torch.Tensor | None = None) -> torch.Tensor:
        """[M, C]: frame ``index`` encoded with an empty mask (the reference of an absent object)."""
        annotation = self.annotations[index]
        if annotation.absent_reference is None:
            if frame is None:
                frame = self._prepare(self.frames.one(index), index)[0]
            empty = frame.new_zeros(frame.shape[-2:])
            annotation.absent_reference = self.core.encode_references(frame, {0: empty})[0]
        return annotation.absent_reference

    def _encode(self, annotation: _Annotation, index: int, frame: torch.Tensor, geometry) -> None:
        """The annotation's masks at the network's size and its references, from its frame
        (padded [1, 3, H', W'] and its geometry, as :meth:`_prepare` gives them)."""
        (height, width), net_hw, padding = geometry
        if annotation.labels.shape != (height, width):
            raise InputError(f"frame {index}: mask is {annotation.labels.shape[1]}x{annotation.labels.shape[0]} "
                             f"but the frame is {width}x{height}")
        annotation.masks = self._object_masks(annotation, net_hw, padding)
        annotation.references = self.core.encode_references(frame, annotation.masks)

    def _object_masks(self, annotation: _Annotation, net_hw, padding) -> dict[int, torch.Tensor]:
        """{id: one-hot [H', W'] at the network's padded size}; resized by area, then each pixel to
        the label (or background) that covers most of it. Independent objects and per-object masks:
        each object's mask on its own (the object against the background)."""
        ids = annotation.objects
        if not ids:
            return {}
        if len(ids) > 1 and (self.independent or annotation.object_masks is not None):
            return {i: self._object_masks(_Annotation(self._own_labels(annotation, i), [i], annotation.complete),
                                          net_hw, padding)[i] for i in ids}
        device = self.predictor.device
        lab = torch.tensor(self._own_labels(annotation, ids[0]) if annotation.object_masks is not None
                           else annotation.labels, device=device)
        if net_hw == annotation.labels.shape:
            return {i: pad((lab == i).float(), padding) for i in ids}
        # channel 0: background and the labels not taken
        onehot = torch.stack([~torch.isin(lab, torch.tensor(ids, device=device))] + [lab == i for i in ids]).float()
        area = F.interpolate(onehot[None], size=net_hw, mode="area")[0]
        winner = area.argmax(0)
        return {i: pad((winner == c + 1).float(), padding) for c, i in enumerate(ids)}

    def _annotation_at_full_size(self, probs: torch.Tensor, ids: list[int], annotation: _Annotation) -> torch.Tensor:
        """An annotated frame answers with the annotation itself at the frame's size (not its
        downsampled copy brought back up): probs [K+1, H, W] -> [K+1, H, W]."""
        objects = probs[1:].clone()
        own = {i: torch.tensor(self._own_labels(annotation, i) == i, device=probs.device) for i in annotation.objects}
        if self.independent:
            for obj, mask in own.items():
                objects[ids.index(obj)] = mask.float()
            return torch.cat([1 - objects.amax(0, keepdim=True), objects])
        objects[:, torch.stack(list(own.values())).any(0)] = 0
        for obj, mask in own.items():
            objects[ids.index(obj)] = mask.float()
        return aggregate(objects, dim=0)

    @staticmethod
    def _own_labels(annotation: _Annotation, obj: int) -> np.ndarray:
        """[H, W] uint8: ``obj`` where its own mask is (per-object masks), else the label map."""
        if annotation.object_masks is None:
            return annotation.labels
        return annotation.object_masks[obj].astype(np.uint8) * np.uint8(obj)


def _label_map(masks: dict[int, np.ndarray], what: str) -> np.ndarray:
    """Boolean masks {id: [H, W]} -> a label map [H, W] uint8 (where masks overlap, the higher id)."""
    shapes = {m.shape for m in masks.values()}
    if len(shapes) > 1:
        raise InputError(f"{what}: the objects' masks differ in size ({', '.join(f'{w}x{h}' for h, w in sorted(shapes))})")
    if not masks:
        raise InputError(f"{what}: no object mask given")
    labels = np.zeros(next(iter(shapes)), np.uint8)
    for obj, mask in sorted(masks.items()):
        if not 0 < obj < 256:
            raise InputError(f"{what}: object ids must be in 1-255, got {obj}")
        labels[mask] = obj
    return labels
