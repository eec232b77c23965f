"""The propagation engine: sessions over a video, memory policies, whole-video plans, the predictor.

    from inference_core import SimVOSPredictor
    predictor = SimVOSPredictor.from_checkpoint("simvos_bs.pth", variant="simvos_bs")
    video = predictor.open("clip.mp4")
"""
from inference_core.engine import InferenceCore
from inference_core.memory import KeyframeMemory, Memory, PublishedMemory, make_memory
from inference_core.predictor import SimVOSPredictor, build_predictor
from inference_core.results import FrameResult
from inference_core.session import VideoSession

__all__ = ["InferenceCore", "SimVOSPredictor", "VideoSession", "FrameResult", "build_predictor",
           "Memory", "PublishedMemory", "KeyframeMemory", "make_memory"]
