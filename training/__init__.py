"""Training (docs/method.md, section 7): stage presets, schedules, data, checkpoint state and the trainer."""
