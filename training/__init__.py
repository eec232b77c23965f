"""Training (spec section 7): stage presets, schedules, data, checkpoint state and the trainer."""
