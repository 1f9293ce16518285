"""Where audio comes from. Every source hands out 16 kHz mono float32 through the same
non-blocking calls, so the daemon treats a microphone, a file and a pipe alike:

    read(max_samples) -> np.ndarray   whatever has arrived (never waits)
    take_gap() -> float                seconds of audio lost since the last call
    ended -> bool                      no more audio will come and all of it was read

Sources: `mic[:DEVICE]` (mic.py), `file:PATH` at real-time pace or `speed` times faster,
`sample` (the bundled sample file), and `stdin` (raw s16le PCM at `rate`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from npustream import log
from npustream.asr.audio import SAMPLE_RATE, StreamResampler, load_audio, pcm16_to_float32
from npustream.errors import AudioError
from npustream.stream.capture.ring import RingBuffer

logger = log.get(__name__)

SAMPLE_PATH = Path(str(resources.files("npustream") / "data" / "sample.flac"))  # package data
StatusCallback = Callable[[str, str], None]  # (state, message) for source_lost / source_restored


class Source(Protocol):
    name: str

    def start(self) -> None: ...
    def read(self, max_samples: int) -> np.ndarray: ...
    def take_gap(self) -> float: ...
    @property
    def ended(self) -> bool: ...
    def close(self) -> None: ...


class FileSource:
    """A decoded file released at `speed` times real time, as if it were being recorded."""

    def __init__(self, path: str | os.PathLike, speed: float = 1.0, name: str | None = None):
        self.name = name or f"file:{path}"
        self.audio = load_audio(path)
        self.speed = speed
        self._pos = 0
        self._t0: float | None = None

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def start(self) -> None:
        self._t0 = time.monotonic()

    def read(self, max_samples: int) -> np.ndarray:
        if self._t0 is None:
            raise RuntimeError("FileSource.read before start")
        arrived = int((time.monotonic() - self._t0) * self.speed * SAMPLE_RATE)
        stop = min(len(self.audio), arrived, self._pos + max_samples)
        out = self.audio[self._pos : max(stop, self._pos)]
        self._pos += len(out)
        return out

    def take_gap(self) -> float:
        return 0.0

    @property
    def ended(self) -> bool:
        return self._pos >= len(self.audio)

    def close(self) -> None:
        pass


class StdinSource:
    """Raw signed 16-bit little-endian mono PCM on a pipe, at `rate` Hz (resampled to 16 kHz).

    A reader thread blocks on the pipe so the daemon never does. When the daemon falls behind,
    the reader stops reading and the writer waits on the full pipe: piped audio is not dropped.
    """

    CHUNK_BYTES = 3200  # 100 ms at 16 kHz

    def __init__(self, rate: int = SAMPLE_RATE, capture_seconds: float = 30.0, fd: int | None = None):
        self.name = "stdin"
        self.fd = sys.stdin.fileno() if fd is None else fd
        if os.isatty(self.fd):
            raise AudioError(
                "stdin is a terminal: pipe raw s16le PCM into it, e.g. "
                "`arecord -f S16_LE -r 16000 -c 1 -t raw | npustream run --source stdin`"
            )
        self.rate = rate
        self.ring = RingBuffer(int(capture_seconds * SAMPLE_RATE))
        self._resampler = StreamResampler(rate, SAMPLE_RATE)
        self._eof = False
        self._stop = threading.Event()
        self.samples_in = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._reader, name="npustream-stdin", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _reader(self) -> None:
        carry = b""
        try:
            while not self._stop.is_set():
                data = os.read(self.fd, self.CHUNK_BYTES)
                if not data:
                    break
                data = carry + data
                whole = len(data) - len(data) % 2
                carry = data[whole:]
                self._put(self._resampler.process(pcm16_to_float32(data[:whole])))
            if carry:
                logger.warning("stdin_odd_byte_dropped", note="input ended in the middle of a sample")
            self._put(self._resampler.process(np.zeros(0, np.float32), last=True))
        except (OSError, AudioError) as exc:
            self.error = str(exc)
            logger.error("stdin_read_failed", error=str(exc))
        finally:
            self._eof = True

    def _put(self, samples: np.ndarray) -> None:
        while self.ring.free() < len(samples) and not self._stop.is_set():
            time.sleep(0.01)  # the daemon is behind: hold the pipe instead of losing audio
        self.ring.write(samples)
        self.samples_in += len(samples)

    def read(self, max_samples: int) -> np.ndarray:
        return self.ring.read(max_samples)

    def take_gap(self) -> float:
        return 0.0  # the reader waits for room, so the ring never overwrites

    @property
    def ended(self) -> bool:
        return self._eof and self.ring.available() == 0

    def close(self) -> None:
        self._stop.set()


def open_source(
    spec: str,
    *,
    speed: float = 1.0,
    rate: int = SAMPLE_RATE,
    capture_seconds: float = 30.0,
    on_status: StatusCallback | None = None,
) -> Source:
    """A source from its command-line spelling; AudioError for one that cannot be used."""
    kind, _, arg = spec.partition(":")
    if spec == "sample":
        if not SAMPLE_PATH.exists():
            raise AudioError(f"the bundled sample is missing: {SAMPLE_PATH} (reinstall npustream)")
        return FileSource(SAMPLE_PATH, speed, name="sample")
    if kind == "file" and arg:
        return FileSource(arg, speed)
    if spec == "stdin":
        return StdinSource(rate, capture_seconds)
    if kind == "mic":
        from npustream.stream.capture.mic import MicSource

        return MicSource(arg or None, capture_seconds=capture_seconds, on_status=on_status)
    raise AudioError(f"unknown source {spec!r}: use mic, mic:DEVICE, file:PATH, stdin or sample")
