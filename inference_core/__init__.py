"""The propagation engine: per-video state and memory policies, both directions, the predictor.

    from inference_core import SimVOSPredictor
    predictor = SimVOSPredictor.from_checkpoint("simvos_bs.pth", variant="simvos_bs")
"""
from inference_core.engine import InferenceCore
from inference_core.memory import KeyframeMemory, PublishedMemory, make_memory
from inference_core.predictor import SimVOSPredictor, VideoSession, build_predictor
from inference_core.results import FrameResult

__all__ = ["InferenceCore", "SimVOSPredictor", "VideoSession", "FrameResult", "build_predictor",
           "PublishedMemory", "KeyframeMemory", "make_memory"]
