"""Accuracy of an encoder against a reference encoder, per 20 ms frame, on speech.

A "speech frame" is an encoder frame (20 ms: 2 mel hops) inside a region silero VAD
(npustream/asr/vad.py,
threshold 0.5, as the daemon and `transcribe` use it) marks as speech. Frames of silence and of
the zero padding after the audio are reported apart: there the encoder's output is a small
residual the decoder ignores, and its direction is sensitive to any rounding.

A frame is "determined by the recording" when the reference encoder's output for it stays put
(cosine >= DETERMINED to itself) while the input moves by less than the recording's own
quantization: uniform noise of +-half a step of 16-bit PCM, the rounding every shared file
already went through. Where the reference itself moves more than that, no other arithmetic can
be held to it frame by frame (docs/npu-numerics.md: ctranslate2 float32 against itself falls to
0.967 on a frame of lj_stream_a).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npustream.asr.audio import SAMPLE_RATE

FRAME_SECONDS = 0.02  # one encoder position: 2 mel frames of 10 ms
PCM16_STEP = 1 / 32768  # one step of 16-bit PCM on the [-1, 1) sample scale
# A frame is determined by its recording when sub-step noise leaves the reference this close to
# itself: a spread of 1e-4, a tenth of the contract's tolerance (docs/npu-numerics.md).
DETERMINED = 0.9999


def speech_frames(audio: np.ndarray, n_frames: int = 1500) -> np.ndarray:
    """bool[n_frames]: encoder frames of this window's 16 kHz audio that lie in VAD speech."""
    from npustream.asr.vad import VoiceActivity

    vad = VoiceActivity()
    vad.push(np.asarray(audio, np.float32))
    mask = np.zeros(n_frames, bool)
    for region in vad.regions(0.0, len(audio) / SAMPLE_RATE):
        mask[int(region.start / FRAME_SECONDS) : int(np.ceil(region.end / FRAME_SECONDS))] = True
    return mask


def frame_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of a, b [frames, d] (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def distribution(cosines: np.ndarray) -> dict[str, float]:
    """min, 1st percentile, median and count of a set of frame cosines."""
    c = np.asarray(cosines, np.float64)
    return {
        "frames": int(c.size),
        "min": float(c.min()),
        "p1": float(np.percentile(c, 1)),
        "median": float(np.median(c)),
    }


def input_noise_floor(
    encode: Callable[[np.ndarray], np.ndarray], audio: np.ndarray, trials: int = 6, seed: int = 0
) -> np.ndarray:
    """float64[frames]: per frame, the reference's worst cosine to its own output on `audio` when
    uniform noise of +-half a 16-bit PCM step is added (`trials` draws, seeded: reproducible).
    `encode` maps 16 kHz audio to the encoder output [frames, d]."""
    rng = np.random.default_rng(seed)
    audio = np.asarray(audio, np.float32)
    clean = encode(audio)
    floor = np.ones(clean.shape[0])
    for _ in range(trials):
        noise = rng.uniform(-0.5, 0.5, audio.shape).astype(np.float32) * np.float32(PCM16_STEP)
        floor = np.minimum(floor, frame_cosines(encode(audio + noise), clean))
    return floor
