"""Own-video outputs: the formats a segmented video is saved as (outputs/formats.py) and one own
video start to finish (outputs/video_job.py). Above the engine (inference_core computes and writes
no files), below the user-facing packages."""
