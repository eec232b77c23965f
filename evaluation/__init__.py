"""Evaluation: the DAVIS / YouTube-VOS sequence plans and runner (sessions of inference_core walked
forward, published PNGs written), sharding, J&F as the official toolkit computes it, the report."""
