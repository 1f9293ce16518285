"""`npustream subscribe`: live captions from a running daemon in the terminal."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "subscribe", help="show live captions from a running daemon", description=__doc__
    )
    p.add_argument("--endpoint", help="the daemon's PUB endpoint (default: the daemon's default ipc socket)")
    p.add_argument(
        "--ctl", help="the daemon's control endpoint, for the catch-up snapshot (default ipc socket)"
    )
    p.add_argument("--finals-only", action="store_true", help="only final captions, no partials")
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the open line rewritten in place, finals scroll; json: one message per line",
    )
    p.add_argument("--no-snapshot", action="store_true", help="do not print recent captions on connect")
    p.add_argument(
        "--follow", action="store_true", help="keep going when the daemon's stream ends or restarts"
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the daemon on connect")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from npustream import log
    from npustream.client import Caption, Gap, NewStream, Status, Subscriber
    from npustream.render import CaptionPrinter

    logger = log.get("npustream.subscribe")
    printer = CaptionPrinter(sys.stdout, args.format, finals_only=args.finals_only)
    sub = Subscriber(
        args.endpoint,
        args.ctl,
        snapshot=not args.no_snapshot,
        status=True,
        follow=args.follow,
        connect_timeout=args.timeout,
    )
    try:
        with sub:
            for event in sub:
                if isinstance(event, Caption):
                    printer.handle(event.raw)
                elif isinstance(event, Gap):
                    logger.warning(
                        "messages_missed",
                        missed=event.missed,
                        last_seq=event.last_seq,
                        next_seq=event.next_seq,
                    )
                elif isinstance(event, Status):
                    if args.format == "json":
                        printer.handle(event.raw)
                    logger.info("daemon_status", state=event.state, message=event.message)
                elif isinstance(event, NewStream):
                    logger.info("new_stream", stream_id=event.stream_id)
    except KeyboardInterrupt:
        pass
    finally:
        printer.close()
    return 0
