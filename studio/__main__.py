"""python -m studio --checkpoint CKPT [--variant simvos_bs] --workspace ~/vos-work [--videos DIR]

Serves the studio on http://127.0.0.1:7860/?token=... (loopback only unless --host is given).
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys

from inference_core.cli import add_predictor_flags, predictor_options
from inference_core.predictor import build_predictor
from model.flags import add_model_flags, config_from_args
from model.variants import matching_variant
from inference_core.memory import check_max_keyframes
from studio.jobs import DEFAULT_LIVE_SESSIONS, JobRunner
from studio.store import Workspace
from util.cli import run_cli
from util.errors import InputError

DEMO_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "demo_output", "checkpoints", "demo.pth")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=DEMO_CHECKPOINT, help="any SimVOS checkpoint (default: make demo's model)")
    p.add_argument("--workspace", default=os.path.join("~", "vos-work"), help="where sessions are kept")
    p.add_argument("--videos", default=None, help="a folder whose videos (files or frame folders) the page may open")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", default=None, help="the access token (default: a random one)")
    p.add_argument("--max_upload_mb", type=int, default=2048)
    p.add_argument("--size", type=int, default=480, help="shorter side the network sees (-1: as given)")
    p.add_argument("--max_keyframes", type=int, default=8, help="annotated frames kept as references per object")
    p.add_argument("--live_sessions", type=int, default=DEFAULT_LIVE_SESSIONS,
                   help="studio sessions whose engine state stays live between jobs (the others are rebuilt from the "
                        "workspace when used: their annotations encoded again, nothing segmented)")
    add_model_flags(p)
    add_predictor_flags(p)
    return p.parse_args(argv)


def build(args):
    """(app, url) of the flags: the predictor loaded, the workspace opened."""
    from studio.app import create_app
    if not os.path.isfile(args.checkpoint):
        hint = " (run make demo first, or pass --checkpoint)" if args.checkpoint == DEMO_CHECKPOINT else ""
        raise InputError(f"{args.checkpoint}: checkpoint not found{hint}")
    if args.videos and not os.path.isdir(args.videos):
        raise InputError(f"{args.videos}: --videos folder not found")
    check_max_keyframes(args.max_keyframes, "--max_keyframes")
    if args.live_sessions < 1:
        raise InputError(f"--live_sessions must be at least 1, got {args.live_sessions}")
    config = config_from_args(args, args.checkpoint)
    predictor = build_predictor(args.checkpoint, config, args.device, args.amp, args.max_objects_per_batch, size=args.size,
                                **predictor_options(args))
    workspace = Workspace(args.workspace, args.videos, args.max_upload_mb)
    demo = os.path.realpath(args.checkpoint) == os.path.realpath(DEMO_CHECKPOINT)
    info = {"checkpoint": os.path.basename(args.checkpoint), "variant": matching_variant(config),
            "backbone": config.backbone_type, "demo_model": demo, "device": str(predictor.device),
            "published": matching_variant(config) is not None}
    token = args.token or secrets.token_urlsafe(18)
    app = create_app(workspace, JobRunner(predictor, args.max_keyframes, args.live_sessions), token, info)
    host = f"[{args.host}]" if ":" in args.host else args.host
    return app, f"http://{host}:{args.port}/?token={token}"


def main(argv=None) -> None:
    args = parse_args(argv)
    app, url = build(args)
    if args.host not in LOOPBACK:
        print(f"warning: --host {args.host}: anyone who can reach port {args.port} and has the token can use this "
              "machine's GPU and read the workspace", file=sys.stderr)
    print(f"SimVOS studio: open {url}", flush=True)
    import uvicorn
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    run_cli(main, "studio stopped (the workspace keeps every session)")
