"""python -m studio --checkpoint CKPT [--variant simvos_bs] --workspace ~/vos-work [--videos DIR]

Serves the studio on http://127.0.0.1:7860/?token=... (loopback only unless --host is given).
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import errno
import os
import socket
import sys

from inference_core.cli import add_independent_flag, add_predictor_flags, predictor_options
from inference_core.predictor import build_predictor
from model.flags import add_model_flags, config_from_args
from model.variants import matching_variant
from inference_core.memory import DEFAULT_MAX_KEYFRAMES, check_max_keyframes
from studio import auth
from studio.jobs import JobRunner
from studio.propagation import DEFAULT_LIVE_SESSIONS
from studio.store import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, Workspace
from util.cli import run_cli
from util.errors import InputError

DEMO_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "demo_output", "checkpoints", "demo.pth")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


WEIGHTS_HELP = ("published SimVOS weights are not downloaded by this code: get SimVOS-BS from the SimVOS "
                "repository's model zoo (jimmy-dq/SimVOS, README \"Model zoo\") into test_checkpoints/simvos_bs.pth, "
                "then check it with: python -c \"from inference_core import SimVOSPredictor as P; "
                "P.from_checkpoint('test_checkpoints/simvos_bs.pth', variant='simvos_bs')\" (a file that does not fit "
                "says which keys are missing); docs/models.md")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=DEMO_CHECKPOINT, help="any SimVOS checkpoint (default: make demo's model)")
    p.add_argument("--workspace", default=os.path.join("~", "vos-work"), help="where sessions are kept")
    p.add_argument("--videos", default=None, help="a folder whose videos (files or frame folders) the page may open")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", default=None, help=f"the access token, at least {auth.MIN_LENGTH} characters (default: "
                   f"${auth.ENVIRONMENT}, else the workspace's own, kept across restarts; the environment keeps it out of "
                   "the process list)")
    p.add_argument("--max_upload_mb", type=int, default=2048)
    p.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS, help="pixels per frame a video may have "
                   f"(default {DEFAULT_MAX_PIXELS}: 3840x2160)")
    p.add_argument("--max_frames", type=int, default=DEFAULT_MAX_FRAMES, help=f"frames a video may have (default {DEFAULT_MAX_FRAMES})")
    p.add_argument("--size", type=int, default=480, help="shorter side the network sees (-1: as given)")
    p.add_argument("--max_keyframes", type=int, default=DEFAULT_MAX_KEYFRAMES,
                   help=f"annotated frames kept as references per object (default {DEFAULT_MAX_KEYFRAMES})")
    p.add_argument("--live_sessions", type=int, default=DEFAULT_LIVE_SESSIONS,
                   help="studio sessions whose engine state stays live between jobs (the others are rebuilt from the "
                        "workspace when used: their annotations encoded again, nothing segmented)")
    add_model_flags(p)
    add_predictor_flags(p)
    add_independent_flag(p)
    return p.parse_args(argv)


def build(args):
    """(app, url) of the flags: the predictor loaded, the workspace opened."""
    from studio.app import create_app
    if not os.path.isfile(args.checkpoint):
        hint = " (run make demo first, or pass --checkpoint)" if args.checkpoint == DEMO_CHECKPOINT else f"; {WEIGHTS_HELP}"
        raise InputError(f"{args.checkpoint}: checkpoint not found{hint}")
    if args.videos and not os.path.isdir(args.videos):
        raise InputError(f"{args.videos}: --videos folder not found")
    check_max_keyframes(args.max_keyframes, "--max_keyframes")
    for flag in ("live_sessions", "max_upload_mb", "max_pixels", "max_frames"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    workspace = Workspace(args.workspace, args.videos, args.max_upload_mb, args.max_pixels, args.max_frames)
    token = auth.resolve_token(args.token, workspace.root)   # before the model loads: a bad token is refused at once
    if token.warning:
        print(token.warning, file=sys.stderr)
    config = config_from_args(args, args.checkpoint)
    predictor = build_predictor(args.checkpoint, config, args.device, args.amp, args.max_objects_per_batch, size=args.size,
                                independent_objects=args.independent_objects, **predictor_options(args))
    demo = os.path.realpath(args.checkpoint) == os.path.realpath(DEMO_CHECKPOINT)
    info = {"checkpoint": os.path.basename(args.checkpoint), "variant": matching_variant(config),
            "backbone": config.backbone_type, "demo_model": demo, "device": str(predictor.device),
            "published": matching_variant(config) is not None, "weights_help": WEIGHTS_HELP}
    app = create_app(workspace, JobRunner(predictor, args.max_keyframes, args.live_sessions, os.path.abspath(args.checkpoint)),
                     token.value, info)
    host = f"[{args.host}]" if ":" in args.host else args.host
    return app, f"http://{host}:{args.port}/?token={token.value}"


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, before anything is printed: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is in use (another studio?): pass --port with a free one") from None
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    return sock


def main(argv=None) -> None:
    args = parse_args(argv)
    sock = bind(args.host, args.port)
    app, url = build(args)
    if args.host not in LOOPBACK:
        print(f"warning: --host {args.host}: anyone who can reach port {args.port} and has the token can use this "
              "machine's GPU and read the workspace", file=sys.stderr)
    import uvicorn
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    print(f"SimVOS studio: open {url}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    run_cli(main, "studio stopped (the workspace keeps every session)")
