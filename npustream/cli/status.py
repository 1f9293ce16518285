"""`npustream status`: ask a running daemon how it is doing (its control socket)."""

from __future__ import annotations

import argparse
import json

# (field, label, unit) in the order people look for them
FIELDS = (
    ("source", "source", ""),
    ("source_state", "source state", ""),
    ("inputs", "inputs", ""),  # a mix (mic+system): each input's state
    ("silence_filled", "inputs silent", " s"),  # ... and how long each was filled with silence
    ("engine", "engine", ""),
    ("fallback_reason", "engine fallback", ""),
    ("model", "model", ""),
    ("uptime", "uptime", " s"),
    ("stream_time", "audio processed", " s"),
    ("lag", "lag", " s"),
    ("final_latency_median", "final latency, median", " s"),
    ("final_latency_p90", "final latency, p90", " s"),
    ("final_latency_words", "final latency over", " words"),
    ("rtf", "real-time factor", ""),
    ("decodes", "windows decoded", ""),
    ("windows_skipped", "windows skipped", ""),
    ("audio_dropped", "audio dropped", " s"),
    ("finals", "final captions", ""),
    ("partials", "partial captions", ""),
    ("subscribers", "subscribers", ""),
    ("seq", "last seq", ""),
    ("pid", "pid", ""),
    ("stream_id", "stream id", ""),
)


def register(subparsers) -> None:
    p = subparsers.add_parser("status", help="query a running daemon", description=__doc__)
    p.add_argument("--ctl", help="the daemon's control endpoint (default: the daemon's default ipc socket)")
    p.add_argument("--json", action="store_true", help="print the raw JSON reply")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from npustream.errors import NpustreamError
    from npustream.protocol import control
    from npustream.protocol.endpoints import default_ctl

    endpoint = args.ctl or default_ctl()
    answer = control.request(endpoint, "status", timeout=args.timeout)
    if not answer.get("ok"):
        raise NpustreamError(f"the daemon refused the status request: {answer.get('error')}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for key, label, unit in FIELDS:
        value = answer.get(key)
        if isinstance(value, dict):
            value, unit = ", ".join(f"{name} {v}{unit}" for name, v in value.items()), ""
        if value is not None:
            print(f"{label + ':':23s} {value}{unit}")
    return 0
