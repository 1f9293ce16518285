"""Final-word latency as the daemon itself knows it: from the arrival of the last audio sample
of a word to the publication of the final caption that carries the word (a mark published on its
own is no word). `status` reports the rolling median and 90th percentile over the newest
KEEP_WORDS final words.

Contract: `arrived(stream_time, at)` once per block of audio read (stream time of the block's
end, monotonic seconds of the read); `published(words, at)` once per final caption. A block read
after the engine was busy holds audio that came in over that time: a source delivers `speed`
seconds of audio per second (1 for a microphone), so a sample (end - t) seconds of audio before
the block's end arrived (end - t) / speed seconds before it was read. Written by the processing
loop, read by the publishing thread (a lock guards the word list)."""

from __future__ import annotations

import bisect
import statistics
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from npustream.types import Word, is_spoken

KEEP_WORDS = 500  # final words the rolling figures cover
KEEP_ARRIVALS = 4000  # audio blocks remembered (minutes of audio at the capture's block sizes)


class FinalLatency:
    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._ends: deque[float] = deque(maxlen=KEEP_ARRIVALS)  # stream time each block ended at
        self._times: deque[float] = deque(maxlen=KEEP_ARRIVALS)  # when it arrived (monotonic s)
        self._latencies: deque[float] = deque(maxlen=KEEP_WORDS)
        self._lock = threading.Lock()

    def arrived(self, stream_time: float, at: float) -> None:
        if self._ends and stream_time < self._ends[-1]:
            return  # never happens in one stream; a gap moves stream time forward only
        self._ends.append(stream_time)
        self._times.append(at)

    def arrival_of(self, stream_time: float) -> float | None:
        """When the audio at stream_time arrived (None: not yet, or forgotten)."""
        i = bisect.bisect_left(self._ends, stream_time - 1e-6)
        if i >= len(self._times) or (i == 0 and len(self._ends) == KEEP_ARRIVALS):
            return None
        return self._times[i] - max(0.0, self._ends[i] - stream_time) / self.speed

    def published(self, words: Iterable[Word], at: float) -> None:
        arrivals = (self.arrival_of(w.end) for w in words if is_spoken(w.word))
        latencies = [at - t for t in arrivals if t is not None]
        with self._lock:
            self._latencies.extend(latencies)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            values = sorted(self._latencies)
        if not values:
            return {"final_latency_median": None, "final_latency_p90": None, "final_latency_words": 0}
        p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
        return {
            "final_latency_median": round(statistics.median(values), 3),
            "final_latency_p90": round(p90, 3),
            "final_latency_words": len(values),
        }
