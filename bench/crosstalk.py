"""A meeting-like build of the shared clips, for bench_stream: turns of different speakers that
follow each other without a pause or talk over each other's last words, each at its own level
and place in a stereo recording at 48 kHz.

No shared file is a meeting (acceptance plays a spontaneous multi-speaker one). This build has
what the shared files lack of one: a new voice straight after another, the first words of a turn
over the last words of the one before, speakers 3-9 dB apart, stereo and 48 kHz through the
daemon's file source. It is read speech all the same (no hesitations, no laughter, no
backchannels), so its figures are a floor for a real meeting's, not a stand-in for them.

    build(audio_dir, out_path) -> the reference transcript (the turns' texts in turn order)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from npustream.asr.audio import SAMPLE_RATE, load_audio, resample

NAME = "crosstalk_build.flac"
RATE = 48000  # Hz: a meeting recorder's rate, not Whisper's
EDGE_LEVEL = 0.02  # peak below which a clip's leading and trailing samples are cut (its silence)
EDGE_KEEP = 0.1  # s kept around that speech


@dataclass(frozen=True)
class Turn:
    clip: str  # a shared file
    gain_db: float
    pan: float  # 0 left ... 1 right
    next_after: float  # s from this turn's end to the next turn's start; negative: they overlap


TURNS = (
    Turn("libri_1.flac", 0.0, 0.3, -0.4),
    Turn("jfk.flac", -6.0, 0.8, -0.5),
    Turn("osr_0034_8k.wav", -3.0, 0.5, 0.1),
    Turn("libri_1.flac", 0.0, 0.3, -0.3),
    Turn("jfk.flac", -9.0, 0.8, 0.0),
)


def speech(path: Path) -> np.ndarray:
    """The clip at 16 kHz without its leading and trailing silence."""
    audio = load_audio(path)
    loud = np.flatnonzero(np.abs(audio) > EDGE_LEVEL)
    keep = int(EDGE_KEEP * SAMPLE_RATE)
    return audio[max(0, loud[0] - keep) : loud[-1] + keep]


def build(audio_dir: Path, out: Path) -> str:
    """Write the build to `out` (FLAC, 48 kHz, stereo, 16 bit); return its reference text."""
    transcripts = json.loads((audio_dir / "transcripts.json").read_text())
    placed, at = [], 0
    for turn in TURNS:
        clip = speech(audio_dir / turn.clip) * 10 ** (turn.gain_db / 20)
        placed.append((at, clip, turn.pan))
        at += len(clip) + int(turn.next_after * SAMPLE_RATE)
    mix = np.zeros((max(start + len(clip) for start, clip, _ in placed), 2), np.float32)
    for start, clip, pan in placed:
        # constant-power panning: the speaker is as loud wherever they sit
        mix[start : start + len(clip)] += np.outer(clip, [np.cos(pan * np.pi / 2), np.sin(pan * np.pi / 2)])
    stereo = np.stack([resample(mix[:, ch], SAMPLE_RATE, RATE) for ch in range(2)], axis=1)
    sf.write(out, np.clip(stereo, -1.0, 1.0), RATE, subtype="PCM_16")
    return " ".join(transcripts[turn.clip]["text"] for turn in TURNS)
