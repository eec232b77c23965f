"""User-facing video predictor: RGB frames and label maps in, probabilities out.

    predictor = SimVOSPredictor.from_checkpoint("simvos_bs.pth", variant="simvos_bs")
    for result in predictor.propagate(frames, masks={0: first_mask}):
        labels = result.labels()          # [H, W] uint8 object ids, at the frame's size

Frames are processed with their shorter side at most ``size`` pixels (480 by default, as the
published evaluation; -1: as given) and the probabilities come back bilinearly at the frames' size.
:func:`build_predictor` (build the network, load a checkpoint strictly, pick the device) is the one
way every script and the Python API make a predictor.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from inference_core.compiled import COMPILE_MODES, compiled_network
from inference_core.directions import DIRECTIONS, propagate_in_order
from inference_core.engine import InferenceCore
from inference_core.memory import DEFAULT_MAX_KEYFRAMES, make_memory
from inference_core.results import FrameResult
from model import ModelConfig, build_model
from model.aggregate import aggregate
from model.checkpoint import load_weights, read_checkpoint, unwrap, training_img_size
from model.inputs import centre_pad, image_to_tensor, pad, unpad
from model.variants import check_recorded_variant, resolve_config
from util.device import pick_device, warn_if_amp_unsupported
from util.errors import InputError

DEFAULT_SIZE = 480


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


def processing_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) the network sees: the shorter side at most ``size`` (never enlarged; -1: as given)."""
    short = min(height, width)
    if size is None or size < 0 or short <= size:
        return height, width
    scale = size / short
    return max(1, round(height * scale)), max(1, round(width * scale))


class VideoSession:
    """One video: ``step(rgb, mask=None, objects=None, index=None)`` per frame, in processing order.

    size: shorter side for the network (see :func:`processing_size`); memory: a memory policy name
    (``published`` or ``keyframes``, inference_core/memory.py)."""

    def __init__(self, predictor: "SimVOSPredictor", size: int | None = None, memory: str | None = None,
                 max_keyframes: int | None = None):
        self.predictor = predictor
        self.size = predictor.size if size is None else size
        policy = make_memory(memory or predictor.memory, max_keyframes or predictor.max_keyframes)
        self.core = InferenceCore(predictor.network, predictor.amp, predictor.max_objects_per_batch, policy)
        self.steps = 0
        self.frame_shape: tuple[int, int] | None = None

    def step(self, rgb, mask=None, objects: Iterable[int] | None = None, index: int | None = None) -> FrameResult:
        """rgb: [H, W, 3] uint8 (see :func:`as_rgb`); mask: [H, W] label map of objects annotated on
        this frame (new, or corrections of tracked ones; 0 = background, every other value an object
        unless ``objects`` says which to take); index: the frame's number (default: steps so far)."""
        index = self.steps if index is None else index
        rgb = as_rgb(rgb, f"frame {index}")
        height, width = rgb.shape[:2]
        if self.frame_shape is None:
            self.frame_shape = (height, width)
        elif self.frame_shape != (height, width):
            raise InputError(f"frame {index} is {width}x{height} but the video's frames are "
                             f"{self.frame_shape[1]}x{self.frame_shape[0]}: every frame of a video must have one size")
        device = self.predictor.device
        net_hw = processing_size(height, width, self.size)
        padding = centre_pad(*net_hw)
        frame = image_to_tensor(rgb, device)
        if net_hw != (height, width):
            frame = F.interpolate(frame, size=net_hw, mode="bilinear", align_corners=False, antialias=True)
        frame = pad(frame, padding)
        new_masks = None
        if mask is not None:
            labels = as_labels(mask, f"frame {index}: mask")
            if labels.shape != (height, width):
                raise InputError(f"frame {index}: mask is {labels.shape[1]}x{labels.shape[0]} but the frame is {width}x{height}")
            new_masks = self._object_masks(labels, objects, net_hw, padding)
        ids, probs = self.core.step(frame, new_masks, index)
        probs = unpad(probs, padding)
        if net_hw != (height, width):
            probs = F.interpolate(probs[None], size=(height, width), mode="bilinear", align_corners=False)[0]
            if new_masks:
                probs = self._annotation_at_full_size(probs, ids, labels, new_masks)
        self.steps += 1
        return FrameResult(index, ids, probs)

    def _annotation_at_full_size(self, probs: torch.Tensor, ids: list[int], labels: np.ndarray, annotated) -> torch.Tensor:
        """An annotated frame answers with the annotation itself at the frame's size (not its
        downsampled copy brought back up): probs [K+1, H, W] -> [K+1, H, W]."""
        lab = torch.tensor(labels, device=probs.device)
        objects = probs[1:].clone()
        region = torch.isin(lab, torch.tensor(sorted(annotated), device=probs.device))
        objects[:, region] = 0
        for obj in annotated:
            objects[ids.index(obj)] = (lab == obj).float()
        return aggregate(objects, dim=0)

    def _object_masks(self, labels: np.ndarray, objects, net_hw, padding) -> dict[int, torch.Tensor]:
        """{id: one-hot [H', W'] at the network's padded size}; resized by area, then each pixel to
        the label (or background) that covers most of it."""
        ids = [int(i) for i in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)[1:]) + 1]
        if objects is not None:
            wanted = set(objects)
            ids = [i for i in ids if i in wanted]
        if not ids:
            return {}
        device = self.predictor.device
        lab = torch.tensor(labels, device=device)
        if net_hw == labels.shape:
            return {i: pad((lab == i).float(), padding) for i in ids}
        # channel 0: background and the labels not taken
        onehot = torch.stack([~torch.isin(lab, torch.tensor(ids, device=device))] + [lab == i for i in ids]).float()
        area = F.interpolate(onehot[None], size=net_hw, mode="area")[0]
        winner = area.argmax(0)
        return {i: pad((winner == c + 1).float(), padding) for c, i in enumerate(ids)}


class SimVOSPredictor:
    """A network on its device (picked here: ``device`` or CUDA when available, else CPU) with the
    precision policy (``amp``), the object chunking (``max_objects_per_batch``), the processing size
    the memory policy of its videos, whether frame decoding and output writing run on threads
    beside the network (``overlap_io``; the results are the same either way) and whether the
    per-frame stages run through ``torch.compile`` (``compile``: a mode of
    inference_core/compiled.py, or ``off``)."""

    def __init__(self, model, device: torch.device | str | None = None, amp: bool = False,
                 max_objects_per_batch: int | None = None, size: int = DEFAULT_SIZE, memory: str = "published",
                 max_keyframes: int = DEFAULT_MAX_KEYFRAMES, overlap_io: bool = True, compile: str = "off"):
        self.device = pick_device(str(device) if device is not None else None)
        warn_if_amp_unsupported(self.device, amp)
        self.model = model.to(self.device).eval()
        self.amp = amp
        self.max_objects_per_batch = max_objects_per_batch
        self.size = size
        make_memory(memory, max_keyframes)  # validates the names
        self.memory, self.max_keyframes = memory, max_keyframes
        self.overlap_io = overlap_io  # decode frames / write outputs on threads beside the network
        if compile not in COMPILE_MODES:
            raise InputError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
        self.compile = compile
        self.network = compiled_network(self.model, compile)  # what the sessions run: the model, or compiled

    @classmethod
    def from_checkpoint(cls, path: str, variant: str | None = None, device=None, amp: bool = False,
                        max_objects_per_batch=None, size: int = DEFAULT_SIZE, memory: str = "published",
                        max_keyframes: int = DEFAULT_MAX_KEYFRAMES, compile: str = "off", overlap_io: bool = True,
                        **model_flags) -> "SimVOSPredictor":
        """variant: ``simvos_b``, ``simvos_bs`` or ``simvos_l`` (model/variants.py); model_flags: the
        published flags (backbone_type, layer_index, use_token_learner, ...), which win over it."""
        config = resolve_config(variant, model_flags)
        return build_predictor(path, config, device, amp, max_objects_per_batch, size=size, memory=memory,
                               max_keyframes=max_keyframes, compile=compile, overlap_io=overlap_io)

    def session(self, **options) -> VideoSession:
        """options: size, memory, max_keyframes for this video (default: the predictor's)."""
        return VideoSession(self, **options)

    def propagate(self, frames, masks: dict, direction: str = "forward", objects: dict | None = None,
                  **options) -> Iterator[FrameResult]:
        """frames: RGB frames (a list or array, a dataset.frames.FrameSource, or any iterable for
        ``forward``); masks: {frame index: label map}; objects: {frame index: ids to take}.
        direction: ``forward`` (from the first annotation on), ``backward`` (from the last one
        back), or ``both`` (each frame from the nearest annotation: inference_core/directions.py).
        Yields one FrameResult per frame, in processing order (``result.index`` names the frame)."""
        if direction not in DIRECTIONS:
            raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        yield from propagate_in_order(lambda: self.session(**options), self.device, frames, masks, objects or {}, direction,
                                      self.overlap_io)


def build_predictor(checkpoint: str, config: ModelConfig, device: torch.device | str | None = None,
                    amp: bool = False, max_objects_per_batch: int | None = None, **options) -> SimVOSPredictor:
    """Builds the network of ``config`` (at the checkpoint's own training grid), loads ``checkpoint``
    strictly (any supported format) and wraps it; prints the loader's notes. options: size, memory,
    max_keyframes, overlap_io, compile (see :class:`SimVOSPredictor`)."""
    loaded = read_checkpoint(checkpoint)
    check_recorded_variant(checkpoint, config, loaded)
    _, state = unwrap(loaded)
    trained = training_img_size(state, config)
    if trained is not None and trained != config.train_img_size:
        config = dataclasses.replace(config, train_img_size=trained)
        print(f"note: {checkpoint}: trained at {trained}x{trained}: its position grid is used")
    model = build_model(config)
    report = load_weights(model, loaded, name=checkpoint)
    for note in report.notes:
        print(f"note: {checkpoint}: {note}")
    return SimVOSPredictor(model, device, amp, max_objects_per_batch, **options)
