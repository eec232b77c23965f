"""Schedules over iterations: the learning-rate factor and the bootstrapped-loss fraction.

Pure functions of numbers: training/config.py's ``LearningRate`` and ``BootstrapSchedule`` hold the
values (the presets of training/stages.py, the flags), never defaults here.
"""
from __future__ import annotations


def lr_factor(iteration: int, warmup: int, steps: list[int], gamma: float) -> float:
    """Multiplier of the base learning rate after ``iteration`` optimiser steps: linear warm-up over
    ``warmup`` steps, then x ``gamma`` at each of ``steps`` (MultiStepLR when ``warmup`` is 0)."""
    warm = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    return warm * gamma ** sum(iteration >= s for s in steps)


def bootstrap_fraction(iteration: int, start_warm: int, end_warm: int, top_p: float) -> float:
    """Fraction of hardest pixels kept: 1 before ``start_warm``, linear to ``top_p`` at ``end_warm``."""
    if iteration < start_warm:
        return 1.0
    if iteration > end_warm:
        return top_p
    return top_p + (1 - top_p) * (end_warm - iteration) / (end_warm - start_warm)
