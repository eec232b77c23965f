"""The documented import path of the propagation engine and predictor (they live in evaluation/).

    from inference_core import SimVOSPredictor
"""
from evaluation.engine import InferenceCore
from evaluation.predictor import FrameResult, SimVOSPredictor, build_predictor

__all__ = ["InferenceCore", "SimVOSPredictor", "FrameResult", "build_predictor"]
