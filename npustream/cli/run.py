"""`npustream run`: the streaming daemon (captions over ZeroMQ)."""

from __future__ import annotations

import argparse
from dataclasses import fields

HELP = {
    "source": "mic, mic:DEVICE (name or index), system (what the default output plays), system:SINK, "
    "mic+system (both, mixed), file:PATH, stdin (raw s16le mono) or sample (default mic)",
    "engine": "encoder engine: cpu, npu or npu-emu (default cpu)",
    "npu_design": "npu/npu-emu design: iron (amd/IRON operators; `npustream npu build`) or custom "
    "(default iron)",
    "model_dir": "CTranslate2 Whisper model directory (default: the packaged base model)",
    "language": "language code, e.g. en (default: detect)",
    "task": "transcribe or translate",
    "beam_size": "decoder beam size (default 1: greedy)",
    "threads": "CPU threads for ctranslate2 (default 0: all cores but one)",
    "compute_type": "ctranslate2 compute type (default int8)",
    "context": "encoder context: fit (the window's audio + 3 s, at least 15 s; faster, cpu engine) "
    "or full (Whisper's 30 s); default fit",
    "hop": "seconds of new audio that make an update due; it starts once the engine is free (default 0.2)",
    "endpoint_ms": "a pause this long (ms) makes the words before it final (default 500)",
    "utterance_end_ms": "silence this long (ms) ends an utterance even after a full stop (default 1500)",
    "max_window": "seconds of audio one decode sees at most (default 30)",
    "trim_seconds": "past this many seconds the window may be cut at a final word "
    "(default 8, at most max_window/2)",
    "vad_threshold": "silero VAD speech probability threshold (default 0.5)",
    "min_speech_ms": "less new speech than this: no engine work (default 250)",
    "speed": "file sources: feed N times faster than real time (default 1)",
    "rate": "stdin: sample rate of the raw input in Hz (default 16000)",
    "capture_seconds": "capture ring buffer length in seconds (default 30)",
    "pub": "PUB endpoint (default ipc://$XDG_RUNTIME_DIR/npustream/captions.sock); e.g. tcp://127.0.0.1:5555",
    "ctl": "control endpoint (default ipc://$XDG_RUNTIME_DIR/npustream/control.sock)",
    "sndhwm": "messages queued per subscriber before that subscriber loses some (default 1000)",
    "heartbeat": "seconds between heartbeat messages (default 1)",
    "snapshot_finals": "recent final captions kept for late joiners (default 50)",
    "words": "include word timings in captions (default on)",
    "echo": "also print captions on stdout",
    "prompt": "text the first decodes are conditioned on (as OpenAI's initial_prompt): topic, names, "
    "spelling",
    "hotwords": 'terms to prefer in every decode (as faster-whisper\'s hotwords), e.g. "Kubernetes, Grafana"',
}


def register(subparsers) -> None:
    from npustream.stream.config import StreamConfig

    p = subparsers.add_parser("run", help="run the captioning daemon", description=__doc__)
    p.add_argument(
        "--config", metavar="FILE", help="TOML file setting any of the options below; flags override it"
    )
    for f in fields(StreamConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type.startswith("bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=HELP[f.name])
        else:
            kind = {"int": int, "float": float}.get(f.type.split(" ")[0], str)
            p.add_argument(flag, type=kind, default=None, help=HELP[f.name])
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from npustream.errors import NpustreamError
    from npustream.stream import config
    from npustream.stream.daemon import Daemon
    from npustream.stream.sdnotify import Notifier

    try:
        overrides = {f.name: getattr(args, f.name) for f in fields(config.StreamConfig)}
        cfg = config.build(args.config, overrides)
        return Daemon(cfg).run()
    except NpustreamError as exc:
        # Under systemd the error line also goes to the unit's status (`systemctl status`
        # shows it after the unit failed, with or without a journal).
        Notifier.from_env().status(f"error: {exc}")
        raise
