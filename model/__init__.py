"""SimVOS network: presets, parts, checkpoint loading.

Variable suffixes follow the STCN convention: ``f16`` / ``m16`` are stride-16 features,
``m8`` stride 8, ``m4`` stride 4.
"""
from model.presets import ModelConfig, PRESETS, config_from_flags
from model.simvos import SimVOS, build_model

__all__ = ["ModelConfig", "PRESETS", "config_from_flags", "SimVOS", "build_model"]
