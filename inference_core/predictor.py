"""User-facing video predictor: RGB frames and label maps in, probabilities out.

    predictor = SimVOSPredictor.from_checkpoint("simvos_bs.pth", variant="simvos_bs")
    for result in predictor.segment_video(frames, masks={0: first_mask}):   # a whole-video plan
        labels = result.labels()          # [H, W] uint8 object ids, at the frame's size
    video = predictor.open(frames)        # an interactive session (inference_core/session.py)
    for result in video.propagate(start=0, direction="forward"):            # one walk
        ...

Frames are processed with their shorter side at most ``size`` pixels (480 by default, as the
published evaluation; -1: as given) and the probabilities come back bilinearly at the frames' size.
:func:`build_predictor` (build the network, load a checkpoint strictly, pick the device) is the one
way every script and the Python API make a predictor.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import torch

from inference_core.compiled import COMPILE_MODES, compiled_network
from inference_core.directions import check_plan, run_plan
from inference_core.memory import DEFAULT_MAX_KEYFRAMES, check_max_keyframes, check_policy
from inference_core.results import FrameResult
from inference_core.session import VideoSession, check_size
from model import ModelConfig, build_model
from model.checkpoint import CheckpointMismatchError, load_weights, read_checkpoint, training_img_size, unwrap
from model.variants import check_recorded_variant, missing_sidecar_hint, recorded_model_flags, resolve_config
from util.device import pick_device, warn_if_amp_unsupported
from util.errors import InputError

DEFAULT_SIZE = 480


class SimVOSPredictor:
    """A network on its device (picked here: ``device`` or CUDA when available, else CPU) with the
    precision policy (``amp``), the object chunking (``max_objects_per_batch``), the processing size,
    the memory policy of its videos, whether frame decoding and output writing run on threads
    beside the network (``overlap_io``; the results are the same either way) and whether the
    per-frame stages run through ``torch.compile`` (``compile``: a mode of
    inference_core/compiled.py, or ``off``), and whether its videos segment each object against the
    background only (``independent_objects``; default: the published soft aggregation between
    objects). ``model`` is the network as built; ``network`` what the sessions run (the model, or
    its compiled stages)."""

    def __init__(self, model, device: torch.device | str | None = None, amp: bool = False,
                 max_objects_per_batch: int | None = None, size: int = DEFAULT_SIZE, memory: str = "published",
                 max_keyframes: int = DEFAULT_MAX_KEYFRAMES, overlap_io: bool = True, compile: str = "off",
                 independent_objects: bool = False):
        self.device = pick_device(str(device) if device is not None else None)
        warn_if_amp_unsupported(self.device, amp)
        self.model = model.to(self.device).eval()
        self.amp = amp
        if max_objects_per_batch is not None and (not isinstance(max_objects_per_batch, int) or max_objects_per_batch < 1):
            raise InputError(f"max_objects_per_batch must be a positive integer, got {max_objects_per_batch!r}")
        self.max_objects_per_batch = max_objects_per_batch
        self.size = check_size(size)
        self.memory, self.max_keyframes = check_policy(memory), check_max_keyframes(max_keyframes)
        self.overlap_io = overlap_io  # decode frames / write outputs on threads beside the network
        self.independent_objects = bool(independent_objects)  # each object against the background only
        if compile not in COMPILE_MODES:
            raise InputError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
        self.compile = compile
        self.network = compiled_network(self.model, compile)

    @classmethod
    def from_checkpoint(cls, path: str, variant: str | None = None, device=None, amp: bool = False,
                        max_objects_per_batch=None, size: int = DEFAULT_SIZE, memory: str = "published",
                        max_keyframes: int = DEFAULT_MAX_KEYFRAMES, compile: str = "off", overlap_io: bool = True,
                        **model_flags) -> "SimVOSPredictor":
        """variant: ``simvos_b``, ``simvos_bs`` or ``simvos_l`` (model/variants.py); model_flags: the
        published flags (backbone_type, layer_index, use_token_learner, ...), which win over it.
        Neither given: the flags the checkpoint records (our training's sidecar), if it does."""
        if variant is None and not model_flags:
            model_flags = recorded_model_flags(path) or {}
        config = resolve_config(variant, model_flags)
        return build_predictor(path, config, device, amp, max_objects_per_batch, size=size, memory=memory,
                               max_keyframes=max_keyframes, compile=compile, overlap_io=overlap_io)

    def open(self, frames, **options) -> VideoSession:
        """An interactive session over one video (inference_core/session.py). frames: RGB frames (a
        list or array), a dataset.frames.FrameSource, a video file or frame folder path, or a
        one-pass iterator (forward only); options: size, memory, max_keyframes, independent_objects
        (each object segmented against the background only; default: the predictor's)."""
        return VideoSession(self, frames, **options)

    def segment_video(self, frames, masks: dict, plan: str = "forward", objects: dict | None = None,
                      partial: bool = False, **options) -> Iterator[FrameResult]:
        """Every frame of ``frames`` segmented by a whole-video plan (inference_core/directions.py)
        over a session of them (one walk from a frame: ``open(frames).propagate(...)``).

        masks: {frame index: label map}; objects: {frame index: ids to take from its map};
        partial: each map names only the objects it adds or corrects (YouTube-VOS's meaning; by
        default a map is complete for its frame). plan (``VIDEO_PLANS``): ``forward`` (from the
        first annotation on), ``backward`` (from the last one back), or ``nearest`` (each object on
        each frame from its nearest annotation). Yields one FrameResult per frame, in processing
        order (``result.index`` names the frame)."""
        check_plan(plan)  # before the annotations are encoded
        video = self.open(frames, **options)
        for index in sorted(masks):
            video.add_mask(index, masks[index], (objects or {}).get(index), complete=not partial)
        yield from run_plan(video, plan)


def build_predictor(checkpoint: str, config: ModelConfig, device: torch.device | str | None = None,
                    amp: bool = False, max_objects_per_batch: int | None = None, **options) -> SimVOSPredictor:
    """Builds the network of ``config`` (at the checkpoint's own training grid), loads ``checkpoint``
    strictly (any supported format) and wraps it; prints the loader's notes. options: size, memory,
    max_keyframes, overlap_io, compile, independent_objects (see :class:`SimVOSPredictor`)."""
    loaded = read_checkpoint(checkpoint)
    check_recorded_variant(checkpoint, config, loaded)
    _, state = unwrap(loaded)
    trained = training_img_size(state, config)
    if trained is not None and trained != config.train_img_size:
        config = dataclasses.replace(config, train_img_size=trained)
        print(f"note: {checkpoint}: trained at {trained}x{trained}: its position grid is used")
    model = build_model(config)
    try:
        report = load_weights(model, loaded, name=checkpoint)
    except CheckpointMismatchError as exc:
        hint = missing_sidecar_hint(checkpoint, loaded, state)
        if hint is None:
            raise
        first, _, rest = str(exc).partition("\n")
        raise CheckpointMismatchError("\n".join([first, f"  hint: {hint}"] + ([rest] if rest else []))) from None
    for note in report.notes:
        print(f"note: {checkpoint}: {note}")
    return SimVOSPredictor(model, device, amp, max_objects_per_batch, **options)
