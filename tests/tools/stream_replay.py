"""The daemon's processing loop on a virtual clock: audio arrives in fixed blocks at real-time
pace and each decode takes either no time (the peer-style lower bound, "a decode that cost
nothing": what is left of the latency is the schedule's and the commit policy's own) or the
CPU seconds it measurably used (a load-robust stand-in for an idle machine, exact when the
decoder runs one thread and nothing else competes for that core). Used by the captioner tests
(on recorded hypotheses) and by bench/bench_stream.py (on the real model)."""

from __future__ import annotations

import resource

import numpy as np

BLOCK_SECONDS = 0.02  # audio per read, as a microphone's callback delivers it


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuClock:
    """Wraps a recognizer: each decode advances the virtual clock by the CPU seconds it used."""

    def __init__(self, recognizer):
        self.recognizer, self.spent = recognizer, 0.0

    def __getattr__(self, name):
        return getattr(self.recognizer, name)

    def decode_window(self, *args, **kwargs):
        before = cpu_seconds()
        try:
            return self.recognizer.decode_window(*args, **kwargs)
        finally:
            self.spent += cpu_seconds() - before


class FixedCost:
    """Wraps a recognizer: each decode advances the virtual clock by the same `seconds` (about
    what one costs on one core of this machine): a schedule that is the same on every run, so
    recorded hypotheses replay the windows a real-time daemon asks for."""

    def __init__(self, recognizer, seconds: float):
        self.recognizer, self.seconds, self.spent = recognizer, seconds, 0.0

    def __getattr__(self, name):
        return getattr(self.recognizer, name)

    def decode_window(self, *args, **kwargs):
        self.spent += self.seconds
        return self.recognizer.decode_window(*args, **kwargs)


def replay(audio: np.ndarray, captioner, block: float = BLOCK_SECONDS, clock=None):
    """Feed 16 kHz audio to a Captioner as the daemon would; returns every caption event with
    the stream time it was published at. clock: the captioner's recognizer wrapped in CpuClock
    (decodes cost their CPU seconds) or FixedCost, or None (decodes cost nothing). Like the
    daemon, it pushes no more than the window has room for: the rest waits (a pipe is held)."""
    t, fed, events = 0.0, 0, []
    while True:
        target = min(len(audio), int(t * 16000), fed + captioner.room())  # as the daemon reads
        if target > fed:
            captioner.push(audio[fed:target])
            fed = target
        if captioner.due():
            spent = clock.spent if clock else 0.0
            update = captioner.update()
            t += (clock.spent - spent) if clock else 0.0
            events += [(t, e) for e in update]
        elif fed >= len(audio):
            break
        else:
            t += block
    return events + [(t, e) for e in captioner.finish()]
