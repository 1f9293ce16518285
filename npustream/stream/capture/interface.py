"""What every source offers the daemon: 16 kHz mono float32 through the same non-blocking calls,
so the daemon treats a microphone, desktop audio, a mix of both, a file and a pipe alike:

    start()                            open the device, start the reader (AudioError: cannot)
    read(max_samples) -> np.ndarray    whatever has arrived (never waits)
    take_gap() -> float                seconds of audio lost since the last call
    ended -> bool                      no more audio will come and all of it was read
    close()                            stop capturing

A live source also reports `source_lost` and `source_restored` through the StatusCallback it
was given, from its own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

StatusCallback = Callable[[str, str], None]  # (state, message) for source_lost / source_restored
LIVE_INPUTS = ("mic", "system")  # the kinds a mix (`A+B`) can join


def mix_inputs(spec: str) -> list[str] | None:
    """The inputs a mix `A+B[+...]` joins, or None when spec does not join different live inputs."""
    parts = spec.split("+")
    if len(parts) < 2 or len(set(parts)) != len(parts):
        return None
    return parts if all(p.partition(":")[0] in LIVE_INPUTS for p in parts) else None


class Source(Protocol):
    name: str

    def start(self) -> None: ...
    def read(self, max_samples: int) -> np.ndarray: ...
    def take_gap(self) -> float: ...
    @property
    def ended(self) -> bool: ...
    def close(self) -> None: ...
