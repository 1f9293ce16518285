"""A preallocated single-producer, single-consumer ring buffer of float32 samples.

The producer is an audio callback (PortAudio's thread) or a reader thread; the consumer is the
daemon's processing loop. Neither waits for the other and neither takes a lock: each side owns
one counter (total samples written, total samples read) and only ever reads the other's.

When the producer laps the consumer, the oldest unread audio is overwritten. The consumer
notices on its next read (written - read > capacity), skips what was lost and counts it, so a
stalled consumer costs old audio, never the capture thread's time.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._data = np.zeros(capacity, dtype=np.float32)
        self._written = 0  # total samples ever written; only the producer assigns it
        self._read = 0  # total samples ever consumed or dropped; only the consumer assigns it
        self.dropped = 0  # samples overwritten before the consumer read them

    # -- producer side: no allocation of buffers, no locks, no waiting --------------------------
    def write(self, samples: np.ndarray) -> None:
        total = len(samples)
        skip = max(0, total - self.capacity)  # only the newest `capacity` samples can survive
        samples, n = samples[skip:], total - skip
        start = (self._written + skip) % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        if first < n:
            self._data[: n - first] = samples[first:]
        self._written += total  # published only after the samples are in place

    def free(self) -> int:
        """Room before the next write would overwrite unread audio (for producers that wait)."""
        return self.capacity - (self._written - self._read)

    # -- consumer side -----------------------------------------------------------------------
    def available(self) -> int:
        return min(self._written - self._read, self.capacity)

    def read(self, max_samples: int | None = None) -> np.ndarray:
        """Copy out up to max_samples of the oldest unread audio (all of it by default)."""
        written = self._written
        lost = written - self._read - self.capacity
        if lost > 0:
            self._skip(lost)
        n = written - self._read
        if max_samples is not None:
            n = min(n, max_samples)
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out = np.empty(n, dtype=np.float32)
        out[:first] = self._data[start : start + first]
        out[first:] = self._data[: n - first]
        # The producer may have lapped us while we copied: the first `overrun` samples we took
        # can be newer audio than their position claims. Drop them rather than return a splice.
        overrun = self._written - self.capacity - self._read
        if overrun > 0:
            overrun = min(overrun, n)
            self._skip(overrun)
            out = out[overrun:]
            n -= overrun
        self._read += n
        return out

    def _skip(self, n: int) -> None:
        self._read += n
        self.dropped += n
