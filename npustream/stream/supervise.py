"""What the daemon tells its supervisors: systemd (watchdog pings and STATUS= lines, through
sdnotify), subscribers (heartbeat bodies) and `npustream status` (the status reply).

The processing loop writes `LoopCounters`; the publishing thread reads them to build heartbeats
and status replies (plain reads of numbers, no locks: a reply may mix two loop turns, never a
torn number). Every field a heartbeat carries is in the status reply too, built by the same
function, so the two never disagree."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npustream import __version__
from npustream.asr.audio import SAMPLE_RATE
from npustream.stream.latency import FinalLatency
from npustream.stream.sdnotify import Notifier

NOTIFY_STATUS_EVERY = 5.0  # s between systemd STATUS= lines
STALL_TICK = 0.1  # s between the stall clock's looks at the time
STALL_MIN = 0.5  # s a look may come late before it counts as a stall (scheduling jitter)


@dataclass
class LoopCounters:
    """Written by the processing loop only (capture_stalled: by the StallClock's thread)."""

    started: float = field(default_factory=time.monotonic)  # monotonic s at start-up
    stream_start: float = field(default_factory=time.time)  # wall clock of stream time 0
    samples_in: int = 0  # 16 kHz samples that reached the captioner
    lag: float = 0.0  # s from the arrival of a decode's newest audio to its result
    finals: int = 0
    partials: int = 0
    source_state: str = "starting"
    capture_stalled: float = 0.0  # s the whole process stood still (nothing captured meanwhile)
    latency: FinalLatency = field(default_factory=FinalLatency)  # final-word latency, rolling

    @property
    def stream_time(self) -> float:
        """Seconds of audio received."""
        return self.samples_in / SAMPLE_RATE


def heartbeat_body(counters: LoopCounters) -> dict[str, Any]:
    return {
        "uptime": round(time.monotonic() - counters.started, 3),
        "lag": round(counters.lag, 3),
        "stream_time": round(counters.stream_time, 3),
        "source_state": counters.source_state,
        "finals": counters.finals,
        "partials": counters.partials,
        "stream_start": counters.stream_start,
        "capture_stalled": round(counters.capture_stalled, 3),
    }


def status_body(counters: LoopCounters, cfg, recognizer, captioner, source, publisher) -> dict[str, Any]:
    """The control socket's status reply: the heartbeat's fields and everything else a user
    can read about this run (engine, fallback, drops, skips, retries, endpoints)."""
    stats = captioner.stats
    audio = counters.stream_time
    dropped = getattr(source, "dropped_seconds", lambda: 0.0)()
    mix = (
        {
            "inputs": source.input_states(),
            "silence_filled": {k: round(v, 3) for k, v in source.silence_filled.items()},
        }
        if hasattr(source, "input_states")
        else {}
    )  # a mix: each input's state, and seconds it was filled with silence
    return {
        **heartbeat_body(counters),
        "version": __version__,
        "pid": os.getpid(),
        "source": source.name,
        "engine": recognizer.engine_name,
        "requested_engine": cfg.engine,
        "fallback_reason": recognizer.fallback_reason,
        "model": str(recognizer.model_dir),
        "rtf": round(stats.decode_seconds / audio, 4) if audio else None,
        "updates": stats.updates,
        "decodes": stats.decodes,
        "decode_seconds": round(stats.decode_seconds, 3),
        "windows_skipped": stats.skipped,
        "audio_dropped": round(dropped, 3),
        "speech_unread": round(captioner.guard.speech_unread, 3),
        "hallucinated_words_dropped": captioner.guard.dropped_words,
        "retried": captioner.guard.retries,
        "reused": stats.reused,
        "control_errors": publisher.control_errors,
        "control_hangups": publisher.control_hangups,
        "control_replies_dropped": publisher.control_replies_dropped,
        "published": publisher.seq,
        "context": cfg.context,
        "context_retries": recognizer.context_retries,
        "unreliable_set_aside": stats.unreliable,
        **counters.latency.summary(),
        "hop": cfg.hop,
        "speed": cfg.speed,
        "pub": cfg.pub_endpoint,
        "ctl": cfg.ctl_endpoint,
        **mix,
    }


class Supervisor:
    """Keeps systemd informed from the processing loop itself: a frozen loop stops the watchdog
    pings, which is the point (systemd then restarts the service)."""

    def __init__(self, notifier: Notifier, status_line: Callable[[], str]):
        self.notifier = notifier
        self._status_line = status_line
        self._watchdog_every = notifier.watchdog_interval()
        self._last_watchdog = self._last_status = time.monotonic()

    def tick(self, now: float) -> None:
        """Once per loop turn: a watchdog ping and a STATUS= line when each is due."""
        if self._watchdog_every and now - self._last_watchdog >= self._watchdog_every:
            self.notifier.watchdog()
            self._last_watchdog = now
        if now - self._last_status >= NOTIFY_STATUS_EVERY:
            self.notifier.status(self._status_line())
            self._last_status = now


class StallClock:
    """Time the whole process could not run: stopped (SIGSTOP, a debugger), a suspended VM, a
    starved machine. A thread wakes every STALL_TICK and adds up how much later than that it
    woke. While the process stands still nothing is captured (a microphone's callback runs in
    it), and when it resumes the loop just reads what is there: neither `lag` nor
    `audio_dropped` can show the stall, `capture_stalled` does."""

    def __init__(self, counters: LoopCounters, on_stall: Callable[[float], None]):
        self.counters, self._on_stall = counters, on_stall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="npustream-stall-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(STALL_TICK):
            now = time.monotonic()
            late = now - last - STALL_TICK
            last = now
            if late >= STALL_MIN:
                self.counters.capture_stalled += late
                self._on_stall(late)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
