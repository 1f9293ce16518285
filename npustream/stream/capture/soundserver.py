"""The sound server (PulseAudio, or PipeWire through pipewire-pulse) as pulsectl sees it: which
sources it has, which of them are monitors (what a sink plays), and the monitor of the default
sink. PortAudio (Debian's 19.6) lists the whole server as one ALSA device, `pulse`, so desktop
audio is found here and then opened through that device (mic.py, `server_source`).

Every call opens a short-lived connection and closes it: answers describe the server now (a
default sink changed in the desktop's sound settings is seen on the next call). A server that
does not answer is an AudioError with one line saying so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from npustream.errors import AudioError

CONNECT_TIMEOUT = 2.0  # seconds; a local server answers in milliseconds
PA_INVALID_INDEX = 0xFFFFFFFF  # libpulse's "none" for monitor_of_sink
SERVER_DEVICE = "pulse"  # PortAudio's ALSA device for the whole server (alsa-plugins' pulse)
SERVER_HINT = (
    "no sound server answers: desktop audio needs PulseAudio or PipeWire's pulse server "
    "(pipewire-pulse) in this session (`pactl info` must answer)"
)


@dataclass(frozen=True)
class ServerSource:
    name: str  # the server's name for it, what `system:NAME` and PULSE_SOURCE take
    description: str
    monitor_of: str | None  # the sink it monitors; None for a microphone or line input
    rate: int  # Hz, the server's native rate for it (the server resamples for clients)
    channels: int
    is_default: bool  # the default source (microphones) or the default sink's monitor


@dataclass(frozen=True)
class ServerInfo:
    name: str  # "pulseaudio", or "PulseAudio (on PipeWire 1.0.5)"
    version: str
    default_sink: str | None
    default_source: str | None


def _pulsectl():
    try:
        import pulsectl
    except (ImportError, OSError) as exc:  # pulsectl loads libpulse.so.0 with ctypes
        raise AudioError(
            f"desktop audio needs pulsectl and libpulse (pip install pulsectl; "
            f"Debian: apt install libpulse0): {exc}"
        ) from None
    return pulsectl


@contextlib.contextmanager
def _connection() -> Iterator[object]:
    pulsectl = _pulsectl()
    pulse = pulsectl.Pulse("npustream", connect=False)
    try:
        try:
            pulse.connect(timeout=CONNECT_TIMEOUT)
        except pulsectl.PulseError as exc:
            raise AudioError(f"{SERVER_HINT}: {exc}") from None
        yield pulse
    finally:
        pulse.close()


def server_info() -> ServerInfo:
    with _connection() as pulse:
        info = pulse.server_info()
        return ServerInfo(
            info.server_name,
            info.server_version,
            info.default_sink_name or None,
            info.default_source_name or None,
        )


def sources() -> list[ServerSource]:
    """Every source of the server, monitors included, in the server's order."""
    with _connection() as pulse:  # read inside: pulsectl's structures die with the connection
        info = pulse.server_info()
        sinks = {sink.index: sink.name for sink in pulse.sink_list()}
        default_monitor = next(
            (s.monitor_source_name for s in pulse.sink_list() if s.name == info.default_sink_name), None
        )
        out = []
        for src in pulse.source_list():
            monitored = sinks.get(src.monitor_of_sink) if src.monitor_of_sink != PA_INVALID_INDEX else None
            is_default = src.name == (default_monitor if monitored else info.default_source_name)
            out.append(
                ServerSource(
                    src.name,
                    src.description,
                    monitored,
                    int(src.sample_spec.rate),
                    int(src.channel_count),
                    is_default,
                )
            )
    return out


def monitor_source(sink: str | None = None) -> str:
    """The name of the source that monitors `sink` (a sink's name, or a monitor's own name), or
    the default sink's monitor when `sink` is None: what `system[:NAME]` records."""
    with _connection() as pulse:
        if sink is None:
            sink = pulse.server_info().default_sink_name
            if not sink:
                raise AudioError(
                    "the sound server has no default output (sink): nothing plays, so "
                    "there is nothing to caption; pick one with `system:SINK`"
                )
        sinks = pulse.sink_list()
        monitors = {s.name for s in pulse.source_list() if s.monitor_of_sink != PA_INVALID_INDEX}
    for s in sinks:
        if s.name == sink:
            return s.monitor_source_name
    if sink in monitors:
        return sink
    known = ", ".join(s.name for s in sinks) or "none"
    raise AudioError(
        f"the sound server has no output (sink) or monitor named {sink!r}; "
        f"outputs: {known} (see `npustream devices`)"
    )
