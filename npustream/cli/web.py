"""`npustream web`: a caption page, an OBS overlay and an event stream over HTTP."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from npustream.web import DEFAULT_LISTEN

    p = subparsers.add_parser("web", help="serve live captions to browsers and OBS", description=__doc__)
    p.add_argument(
        "--listen",
        default=None,
        help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN}: this machine only; "
        "0.0.0.0:PORT serves the network, unauthenticated)",
    )
    p.add_argument("--endpoint", help="the daemon's PUB endpoint (default: the daemon's default ipc socket)")
    p.add_argument("--ctl", help="the daemon's control endpoint (default: the daemon's default ipc socket)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's TOML config: its pub/ctl endpoints and a [web] table (listen = ...); "
        "flags override it",
    )
    p.set_defaults(handler=run, default_log_level="info")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from npustream.web import options
    from npustream.web.server import parse_listen, serve

    opts = options.load(args.config, args.listen, args.endpoint, args.ctl)
    parse_listen(opts.listen)  # a bad value fails before anything starts
    asyncio.run(serve(opts.listen, opts.endpoint, opts.ctl))
    return 0
