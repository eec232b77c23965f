"""Evaluation: the propagation engine and predictor, the sequence runner, J&F, overlays."""
