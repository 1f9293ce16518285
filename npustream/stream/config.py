"""Every option of `npustream run`, from a TOML file (tomllib) and/or command-line flags.

One table of options: name, type, default, check. A config file may set any of them as a
top-level key (the names as below, e.g. `hop = 0.5`, `engine = "npu"`); a flag given on the
command line overrides the file. Unknown keys, wrong types and out-of-range values are a
ConfigError naming the key and the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from npustream.errors import ConfigError
from npustream.protocol.endpoints import default_ctl, default_pub
from npustream.stream.capture.interface import LIVE_INPUTS, mix_inputs
from npustream.tomlfile import read_toml

if TYPE_CHECKING:
    from npustream.asr.recognizer import RecognizerConfig

ENGINES = ("cpu", "npu", "npu-emu")
COMPUTE_TYPES = ("int8", "int8_float32", "float32", "float16", "int8_float16", "bfloat16", "int8_bfloat16")
MAX_HWM = 2**31 - 1  # libzmq's high-water marks are C ints: larger values are refused
MAX_THREADS = 256  # ctranslate2 starts this many threads; more is a typo, not a machine


@dataclass(frozen=True)
class StreamConfig:
    source: str = "mic"  # mic[:DEVICE] | system[:SINK] | mic+system | file:PATH | stdin | sample
    engine: str = "cpu"
    npu_design: str = "iron"  # npu / npu-emu engines: iron (amd/IRON operators) or custom
    model_dir: str | None = None  # None: the packaged Whisper base
    language: str | None = None  # None: detect
    task: str = "transcribe"
    beam_size: int = 1  # greedy: the daemon decodes back to back, and agreement already filters unstable text
    threads: int = 0  # ctranslate2 threads; 0: all cores but one (capture, VAD, publishing keep one)
    compute_type: str = "int8"
    context: str = (
        "fit"  # encoder context: audio + 3 s, >= 12 s ("fit", cpu engine) or Whisper's 30 s ("full")
    )
    hop: float = 0.2  # seconds of new audio that make an update due (it starts once the engine is free)
    endpoint_ms: int = 500  # a pause this long makes the words before it final
    utterance_end_ms: int = 1500  # silence this long ends an utterance, even one whose sentence may go on
    max_window: float = 30.0  # seconds of audio one decode sees at most
    # Past this, the window may be cut at a final word, not only at a segment end. When only
    # max_window is set, this follows it (at most TRIM_SHARE of it), so a shorter window never
    # conflicts with an unset trim.
    trim_seconds: float = 8.0
    vad_threshold: float = 0.5
    min_speech_ms: int = 250  # less speech than this in the window: no engine work
    speed: float = 1.0  # file sources: how many times faster than real time
    rate: int = 16000  # stdin sources: sample rate of the raw s16le input
    capture_seconds: float = 30.0  # capture ring buffer between the audio thread and the loop
    pub: str = ""  # "" -> default_pub()
    ctl: str = ""  # "" -> default_ctl()
    sndhwm: int = 1000  # messages queued per subscriber before that subscriber loses messages
    heartbeat: float = 1.0  # seconds between heartbeat messages
    snapshot_finals: int = 50  # recent final captions kept for late joiners
    words: bool = True  # word timings in caption messages
    echo: bool = False  # also print captions on stdout
    prompt: str | None = None  # text the first decodes are conditioned on (OpenAI's initial_prompt)
    hotwords: str | None = None  # terms to prefer in every decode, e.g. "Kubernetes, Grafana"

    @property
    def decode_threads(self) -> int:
        """Threads for ctranslate2. The engine decodes back to back while speech goes on, so by
        default it leaves a core to capture, VAD and publishing (and the daemon's CPU share
        stays below the cores it has)."""
        return self.threads or max(1, (os.cpu_count() or 2) - 1)

    def recognizer_config(self) -> RecognizerConfig:
        """The recognizer the daemon decodes with: word timings on, one decode per window (the
        captioner retries on the full context where one decode must commit alone)."""
        from npustream.asr.recognizer import RecognizerConfig  # (loads ctranslate2: not for --help)

        return RecognizerConfig(
            model_dir=self.model_dir,
            engine=self.engine,
            npu_design=self.npu_design,
            language=self.language,
            task=self.task,
            beam_size=self.beam_size,
            threads=self.decode_threads,
            word_timestamps=True,
            compute_type=self.compute_type,
            context=self.context,
            fallback=False,
            hotwords=self.hotwords,
        )

    @property
    def pub_endpoint(self) -> str:
        return self.pub or default_pub()

    @property
    def ctl_endpoint(self) -> str:
        return self.ctl or default_ctl()


TRIM_SHARE = 0.5  # an unset trim_seconds is at most this share of a max_window that was set


def _source_ok(v: str) -> bool:
    kind, _, arg = v.partition(":")
    if kind == "file" or "+" in v:
        return bool(arg) if kind == "file" else mix_inputs(v) is not None
    return kind in LIVE_INPUTS or v in ("stdin", "sample")


def _endpoint_ok(v: str) -> bool:
    return v == "" or v.startswith(("ipc://", "tcp://", "inproc://"))


# name -> (check, what a valid value is); types come from StreamConfig's annotations
CHECKS: dict[str, tuple[Any, str]] = {
    "source": (_source_ok, "mic, mic:DEVICE, system, system:SINK, mic+system, file:PATH, stdin or sample"),
    "engine": (lambda v: v in ENGINES, f"one of {', '.join(ENGINES)}"),
    "npu_design": (lambda v: v in ("iron", "custom"), "iron or custom"),
    "task": (lambda v: v in ("transcribe", "translate"), "transcribe or translate"),
    "beam_size": (lambda v: 1 <= v <= 16, "an integer from 1 to 16"),
    "threads": (lambda v: 0 <= v <= MAX_THREADS, f"an integer from 0 to {MAX_THREADS}"),
    "compute_type": (lambda v: v in COMPUTE_TYPES, f"one of {', '.join(COMPUTE_TYPES)}"),
    "context": (lambda v: v in ("fit", "full"), "fit or full"),
    "hop": (lambda v: 0.1 <= v <= 10, "seconds from 0.1 to 10"),
    "endpoint_ms": (lambda v: 100 <= v <= 10000, "milliseconds from 100 to 10000"),
    "utterance_end_ms": (lambda v: 100 <= v <= 10000, "milliseconds from 100 to 10000"),
    "max_window": (lambda v: 5 <= v <= 30, "seconds from 5 to 30"),
    "trim_seconds": (lambda v: 2 <= v <= 30, "seconds from 2 to 30"),
    "vad_threshold": (lambda v: 0 < v < 1, "a probability strictly between 0 and 1"),
    "min_speech_ms": (lambda v: 0 <= v <= 5000, "milliseconds from 0 to 5000"),
    "speed": (lambda v: 0.1 <= v <= 100, "a factor from 0.1 to 100"),
    "rate": (lambda v: 4000 <= v <= 384000, "a sample rate from 4000 to 384000 Hz"),
    "capture_seconds": (lambda v: 2 <= v <= 600, "seconds from 2 to 600"),
    "pub": (_endpoint_ok, "an ipc://, tcp:// or inproc:// endpoint"),
    "ctl": (_endpoint_ok, "an ipc://, tcp:// or inproc:// endpoint"),
    "sndhwm": (lambda v: 1 <= v <= MAX_HWM, f"a number of messages from 1 to {MAX_HWM}"),
    "heartbeat": (lambda v: 0.1 <= v <= 60, "seconds from 0.1 to 60"),
    "snapshot_finals": (lambda v: 0 <= v <= 10000, "a count from 0 to 10000"),
}

WEB_TABLE = "web"  # the [web] table is `npustream web`'s (web/options.py), not the daemon's
_TYPES = {f.name: f.type for f in fields(StreamConfig)}


def _check(name: str, value: Any, where: str) -> Any:
    if name not in _TYPES:
        known = ", ".join(sorted(_TYPES))
        raise ConfigError(f"{where}: unknown key '{name}' (known keys: {known})")
    kind = _TYPES[name]
    optional = "None" in kind
    if optional and value in (None, ""):
        return None
    if kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        wanted = kind.split(" |")[0].replace("str", "a string").replace("float", "a number")
        wanted = wanted.replace("int", "an integer").replace("bool", "true or false")
        raise ConfigError(f"{where}: key '{name}' must be {wanted}, got {value!r}")
    check = CHECKS.get(name)
    if check and not check[0](value):
        raise ConfigError(f"{where}: key '{name}' must be {check[1]}, got {value!r}")
    return value


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    data = read_toml(path)
    if not isinstance(data.pop(WEB_TABLE, {}), dict):
        raise ConfigError(
            f"config {path}: '{WEB_TABLE}' must be a table ([{WEB_TABLE}]) of `npustream web` options"
        )
    return {name: _check(name, value, f"config {path}") for name, value in data.items()}


def build(
    file_path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> StreamConfig:
    """Defaults, then the file's values, then the flags that were given (None = not given)."""
    values = load_file(file_path) if file_path else {}
    origin = dict.fromkeys(values, f"config {file_path}")  # where each value was set, for errors
    for name, value in (overrides or {}).items():
        if value is not None:
            origin[name] = f"--{name.replace('_', '-')}"
            values[name] = _check(name, value, origin[name])
    if "max_window" in values and "trim_seconds" not in values:
        values["trim_seconds"] = min(StreamConfig.trim_seconds, values["max_window"] * TRIM_SHARE)
    cfg = StreamConfig(**values)
    if cfg.trim_seconds > cfg.max_window:
        window_origin = f"set by {origin['max_window']}" if "max_window" in origin else "the default"
        raise ConfigError(
            f"{origin['trim_seconds']}: trim_seconds ({cfg.trim_seconds:g}) must not exceed max_window "
            f"({cfg.max_window:g}, {window_origin})"
        )
    if cfg.speed != 1.0 and not (cfg.source == "sample" or cfg.source.startswith("file:")):
        raise ConfigError(f"speed applies to file:PATH and sample sources only, not {cfg.source!r}")
    if cfg.pub_endpoint == cfg.ctl_endpoint:
        raise ConfigError(f"pub and ctl must be different endpoints, both are {cfg.pub_endpoint}")
    return cfg
