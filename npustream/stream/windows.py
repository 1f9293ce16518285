"""The rolling audio window: the audio from the last trim point up to now, at most 30 s.

Samples are kept in a preallocated array one window long; trimming moves the kept tail to
the front. Stream time is counted in samples, so times stay exact however the audio
arrives (blocks of any size, gaps skipped with `jump`).
"""

from __future__ import annotations

import numpy as np

from npustream.asr.audio import N_SAMPLES, SAMPLE_RATE


class AudioWindow:
    def __init__(self, max_seconds: float = N_SAMPLES / SAMPLE_RATE):
        self.capacity = int(round(max_seconds * SAMPLE_RATE))
        if not 0 < self.capacity <= N_SAMPLES:
            raise ValueError(f"a window holds 0-30 s of audio, got {max_seconds} s")
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._length = 0
        self._start_sample = 0  # stream position (in samples) of self._data[0]

    @property
    def start(self) -> float:
        return self._start_sample / SAMPLE_RATE

    @property
    def end(self) -> float:
        return (self._start_sample + self._length) / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return self._length / SAMPLE_RATE

    def room(self) -> int:
        """Samples that still fit before the window is full."""
        return self.capacity - self._length

    def append(self, samples: np.ndarray) -> None:
        if len(samples) > self.room():
            raise ValueError(f"window overflow: {len(samples)} samples, room for {self.room()}")
        self._data[self._length : self._length + len(samples)] = samples
        self._length += len(samples)

    def audio(self) -> np.ndarray:
        """The window's samples (a view: decode it before the next append or trim)."""
        return self._data[: self._length]

    def trim_to(self, t: float) -> None:
        """Drop the audio before stream time t (clamped to the window)."""
        cut = int(round(t * SAMPLE_RATE)) - self._start_sample
        cut = max(0, min(cut, self._length))
        if cut:
            self._data[: self._length - cut] = self._data[cut : self._length]
            self._length -= cut
            self._start_sample += cut

    def jump(self, seconds: float) -> None:
        """Empty the window and move stream time forward over audio that never arrived."""
        self._start_sample += self._length + int(round(seconds * SAMPLE_RATE))
        self._length = 0
