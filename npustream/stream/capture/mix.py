"""Several sources heard as one (`mic+system`): each input is already 16 kHz mono (its source
resamples), is brought to a common speech level, and the inputs are added.

Neither input waits for the other. The mix advances as far as every live input has audio; an
input that falls more than MAX_SKEW_SECONDS behind the one furthest ahead (stalled, lost, ended,
or with a slower clock) is filled with silence for the difference and counted in
`silence_filled`, and what it delivers later is mixed in from then on. So one input that vanishes
costs the mix nothing but that input: the other goes on, `input_states()` says which is lost, and
the daemon's `status` shows it. Only when every input is lost does the mix stop; that time is
reported as a gap, as a single lost microphone's is.

Level matching: speech from a quiet microphone and a loud video would otherwise reach Whisper as
one clear voice and a murmur it may take for background. Each input has a slow automatic gain
(LevelMatcher) that brings its speech to LEVEL_TARGET_RMS; silence and pauses do not move it,
so they are not amplified into noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from npustream import log
from npustream.asr.audio import SAMPLE_RATE
from npustream.stream.capture.interface import Source, StatusCallback

logger = log.get(__name__)

MAX_SKEW_SECONDS = 0.5  # an input this far behind another is filled with silence, not waited for
LEVEL_BLOCK = SAMPLE_RATE // 10  # samples (100 ms) per level measurement
LEVEL_TARGET_RMS = 0.05  # about -26 dBFS: a comfortable speech level with headroom for two inputs
LEVEL_FLOOR_RMS = 0.001  # -60 dBFS: quieter blocks are silence or hiss, never speech
PAUSE_BELOW = 0.1  # blocks 20 dB under the speech level are pauses: they do not lower it
LEVEL_WARMUP_BLOCKS = 5  # speech blocks (0.5 s) measured before the first gain is set
LEVEL_ATTACK = 0.3  # seconds over which the level estimate rises to louder speech
LEVEL_RELEASE = 3.0  # seconds over which it falls to quieter speech (no pumping within a sentence)
GAIN_LIMITS = (0.1, 20.0)  # -20 dB to +26 dB: no input is silenced or blown up to noise
PEAK_LIMIT = 0.9  # full scale fraction: a gain that would push a block past it is lowered for it


class LevelMatcher:
    """A slow automatic gain that brings an input's speech towards LEVEL_TARGET_RMS.

    The level is the RMS of 100 ms speech blocks, followed quickly upwards and slowly downwards;
    silence and pauses do not move it. Until LEVEL_WARMUP_BLOCKS of speech were heard the gain is
    1. A block is scaled by the gain its predecessors set, lowered if needed so it stays under
    PEAK_LIMIT (a limiter: the first loud word after quiet ones is not clipped)."""

    def __init__(self) -> None:
        self.level: float | None = None  # RMS of recent speech blocks, before the gain
        self._warmup: list[float] = []  # mean squares of the first speech blocks
        self._partial = np.zeros(0, np.float32)  # samples of an unfinished level block

    @property
    def gain(self) -> float:
        if self.level is None:
            return 1.0
        return float(np.clip(LEVEL_TARGET_RMS / self.level, *GAIN_LIMITS))

    def process(self, samples: np.ndarray) -> np.ndarray:
        out = np.empty_like(samples)
        pos = 0
        while pos < len(samples):
            piece = samples[pos : pos + LEVEL_BLOCK - len(self._partial)]
            peak = float(np.abs(piece).max()) if len(piece) else 0.0
            gain = min(self.gain, PEAK_LIMIT / peak) if peak > 0 else self.gain
            out[pos : pos + len(piece)] = piece * gain
            self._partial = np.concatenate([self._partial, piece])
            pos += len(piece)
            if len(self._partial) == LEVEL_BLOCK:
                self._measure(self._partial)
                self._partial = np.zeros(0, np.float32)
        return out

    def _measure(self, block: np.ndarray) -> None:
        power = float(np.mean(np.square(block, dtype=np.float64)))
        rms = power**0.5
        if rms < LEVEL_FLOOR_RMS or (self.level is not None and rms < PAUSE_BELOW * self.level):
            return
        if self.level is None:
            self._warmup.append(power)
            if len(self._warmup) == LEVEL_WARMUP_BLOCKS:
                self.level = float(np.mean(self._warmup)) ** 0.5
            return
        block_seconds = LEVEL_BLOCK / SAMPLE_RATE
        rate = block_seconds / (LEVEL_ATTACK if rms > self.level else LEVEL_RELEASE)
        self.level += min(rate, 1.0) * (rms - self.level)


InputOpener = Callable[[str, StatusCallback], Source]


class MixSource:
    """Inputs opened from their specs (`mic`, `system:NAME`, ...) and mixed; a Source itself."""

    def __init__(
        self, specs: Sequence[str], open_input: InputOpener, on_status: StatusCallback | None = None
    ):
        self.name = "+".join(specs)
        self.on_status = on_status or (lambda state, message: None)
        self.states = {spec: "running" for spec in specs}  # written by the inputs' supervisors
        self.inputs = [open_input(spec, self._status_of(spec)) for spec in specs]
        self.levels = [LevelMatcher() for _ in specs]
        self._pending = [np.zeros(0, np.float32) for _ in specs]
        self.silence_filled = {spec: 0.0 for spec in specs}  # seconds each input was filled in
        self._all_lost_since: float | None = None
        self._gap = 0.0

    def _status_of(self, spec: str) -> StatusCallback:
        def report(state: str, message: str) -> None:
            self.states[spec] = "lost" if state == "source_lost" else "running"
            others = [s for s in self.states if s != spec]
            alive = [s for s in others if self.states[s] == "running"]
            if state == "source_lost":
                consequence = (
                    f"captioning {' and '.join(alive)} alone"
                    if alive
                    else "no input is left: waiting for one to come back"
                )
            else:
                consequence = "mixed in again"
            logger.warning("input_" + state.removeprefix("source_"), input=spec, source=self.name)
            self.on_status(state, f"{spec}: {message}; {consequence}")

        return report

    # -- the Source interface ---------------------------------------------------------------------
    def start(self) -> None:
        for spec, source in zip(self.states, self.inputs):
            try:
                source.start()
            except Exception:
                for started in self.inputs[: self.inputs.index(source)]:
                    started.close()
                logger.error("input_failed", input=spec, source=self.name)
                raise

    @property
    def state(self) -> str:
        """running (at least one input delivers), lost (none does) or ended."""
        if self.ended:
            return "ended"
        return "running" if any(s == "running" for s in self.states.values()) else "lost"

    def input_states(self) -> dict[str, str]:
        return dict(self.states)

    def read(self, max_samples: int) -> np.ndarray:
        """Mixed audio up to max_samples: as far as every live input reaches, or further by
        filling an input that is more than MAX_SKEW_SECONDS behind with silence."""
        self._track_all_lost()
        for i, source in enumerate(self.inputs):
            room = max_samples + int(MAX_SKEW_SECONDS * SAMPLE_RATE) - len(self._pending[i])
            if room > 0:
                fresh = source.read(room)
                if len(fresh):
                    self._pending[i] = np.concatenate([self._pending[i], self.levels[i].process(fresh)])
        lengths = [len(p) for p in self._pending]
        waiting_for = [
            n
            for n, source, spec in zip(lengths, self.inputs, self.states)
            if self.states[spec] == "running" and not source.ended
        ]
        ahead = max(lengths)
        n = max(min(waiting_for, default=ahead), ahead - int(MAX_SKEW_SECONDS * SAMPLE_RATE))
        n = min(n, max_samples)
        if n <= 0:
            return np.zeros(0, np.float32)
        out = np.zeros(n, np.float32)
        for i, spec in enumerate(self.states):
            take = self._pending[i][:n]
            out[: len(take)] += take
            self._pending[i] = self._pending[i][len(take) :]
            if len(take) < n:
                self.silence_filled[spec] += (n - len(take)) / SAMPLE_RATE
        return np.clip(out, -1.0, 1.0, out=out)

    def _track_all_lost(self) -> None:
        all_lost = all(s == "lost" for s in self.states.values())
        now = time.monotonic()
        if all_lost and self._all_lost_since is None:
            self._all_lost_since = now
        elif not all_lost and self._all_lost_since is not None:
            self._gap += now - self._all_lost_since
            self._all_lost_since = None

    def take_gap(self) -> float:
        """Time when no input delivered (all lost). An input's own gaps (its lost time, its ring
        overflowing) are not gaps of the mix: the mix went on and filled that input in."""
        for source in self.inputs:
            source.take_gap()
        gap, self._gap = self._gap, 0.0
        return gap

    def dropped_seconds(self) -> float:
        return sum(getattr(source, "dropped_seconds", lambda: 0.0)() for source in self.inputs)

    @property
    def ended(self) -> bool:
        return all(s.ended for s in self.inputs) and not any(len(p) for p in self._pending)

    def close(self) -> None:
        for source in self.inputs:
            source.close()
