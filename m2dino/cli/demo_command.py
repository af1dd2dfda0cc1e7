"""``m2dino demo``: the Gradio browser demo for a model, served on localhost."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="a browser demo of a model (Gradio; pip install 'm2dino[demo]')",
        description="Serve a web app for an M2DINO model (folder, zoo name or Hub id): upload a scan or pick a bundled "
                    "example, choose tasks, see overlays, class probabilities and measurements, download the JSON. "
                    "Listens on 127.0.0.1 unless --host says otherwise; runs on the CPU by default.")
    parser.add_argument("--model", required=True,
                        help="model folder, zoo name (m2dino models) or Hub id (org/name)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="offer only these tasks (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps ...")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on, 1..65535 (default: 7860)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:  # checked before Gradio or the model load
        raise ValueError(f"--port {args.port}: expected a port number from 1 to 65535")
    try:
        from ..demo import launch
    except ImportError as err:
        raise ValueError(str(err)) from err
    from ..models import M2DINO
    from .device import resolve_device

    device = resolve_device(args.device)
    model = M2DINO.from_pretrained(args.model, revision=args.revision, tasks=args.tasks, device=device)
    launch(model, host=args.host, port=args.port)
    return 0
