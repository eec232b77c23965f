"""Propagation over a video: a per-video engine (state, no weights) and a user-facing predictor."""
from inference_core.engine import InferenceCore
from inference_core.predictor import FrameResult, SimVOSPredictor

__all__ = ["InferenceCore", "SimVOSPredictor", "FrameResult"]
