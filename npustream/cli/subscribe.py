"""`npustream subscribe`: live captions from a running daemon, in the terminal or into a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("text", "json", "srt", "vtt", "txt")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "subscribe",
        help="show live captions from a running daemon, or write them to a file",
        description=__doc__,
    )
    p.add_argument("--endpoint", help="the daemon's PUB endpoint (default: the daemon's default ipc socket)")
    p.add_argument(
        "--ctl", help="the daemon's control endpoint, for the catch-up snapshot (default ipc socket)"
    )
    p.add_argument("--finals-only", action="store_true", help="only final captions, no partials")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: the open line rewritten in place, finals scroll; json: one message per line; "
        "srt, vtt: subtitles, one cue per final caption; txt: one line per utterance",
    )
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write final captions to FILE (a new file), each flushed as it arrives; "
        "partials are never written to files",
    )
    p.add_argument("--no-snapshot", action="store_true", help="do not print recent captions on connect")
    p.add_argument(
        "--follow", action="store_true", help="keep going when the daemon's stream ends or restarts"
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the daemon on connect")
    p.set_defaults(handler=run)


def _check_output(path: str) -> None:
    from npustream.errors import ConfigError

    target = Path(path)
    if target.is_file() and target.stat().st_size > 0:
        raise ConfigError(
            f"{path} exists and is not empty: name a new file (a transcript is never overwritten)"
        )
    if not target.parent.is_dir():
        raise ConfigError(f"cannot write {path}: {target.parent} is not a directory")


def _open_output(path: str):
    from npustream.errors import ConfigError

    try:
        return open(path, "w", encoding="utf-8", newline="\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    from npustream import log
    from npustream.client import Caption, Gap, NewStream, Status, Subscriber
    from npustream.render import TRANSCRIPT_FORMATS, CaptionPrinter, TranscriptWriter

    logger = log.get("npustream.subscribe")
    if args.output:
        _check_output(args.output)
        if args.format == "text":
            args.format = "txt"  # a file gets what will not change: finals, one line per utterance
    sub = Subscriber(
        args.endpoint,
        args.ctl,
        snapshot=not args.no_snapshot,
        status=True,
        follow=args.follow,
        connect_timeout=args.timeout,
    )
    sub.connect()  # no daemon: an error, and no file created
    out = _open_output(args.output) if args.output else sys.stdout
    if args.format in TRANSCRIPT_FORMATS and (args.output or args.format != "json"):
        printer = TranscriptWriter(out, args.format)
    else:
        printer = CaptionPrinter(out, args.format, finals_only=args.finals_only)
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
        if out is not sys.stdout:
            out.close()
    return 0
