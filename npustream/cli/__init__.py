"""`npustream` command line. Each subcommand lives in its own module here and exposes
`register(subparsers)`, which adds its parser and sets `handler(args) -> int`.
Modules import their heavy dependencies inside the handler so `--help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

import npustream
from npustream import __version__, log
from npustream.errors import NpustreamError

# Subcommand modules, in the order `--help` lists them.
COMMANDS = (
    "transcribe",  # file -> text
    "run",  # the streaming daemon
    "subscribe",  # live captions in a terminal
    "status",  # query a running daemon's control socket
    "plan",  # NPU plan, resource check, predicted timing
    "service",  # systemd unit install/uninstall
    "doctor",  # what will run and why
    "devices",  # audio input devices
    "web",  # captions for browsers and OBS
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npustream", description=npustream.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"npustream {__version__}")
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"npustream.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # One-shot commands default to quiet logs (their output is the point); the daemon to info.
    log.configure(args.log_level or getattr(args, "default_log_level", None))
    try:
        return int(args.handler(args) or 0)
    except NpustreamError as exc:
        print(f"npustream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
