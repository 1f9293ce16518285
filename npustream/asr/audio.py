"""Audio in: decode files, mix to mono, resample to 16 kHz, and shape windows for Whisper.

Every problem a user can cause (missing, empty, corrupt or non-finite audio) surfaces as one
AudioError line; nothing here prints or guesses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile
import soxr

from npustream.errors import AudioError

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30  # seconds of audio per encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples per window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames per window

# soxr's "HQ" is a 20-bit-accurate linear-phase filter: far cleaner than the mel front end
# can resolve, and fast enough to run on live microphone audio.
RESAMPLE_QUALITY = "HQ"


def _one_line(error: Exception) -> str:
    """libsndfile messages can span lines; a user-facing error must not."""
    return " ".join(str(error).split())


def validate_pcm(x: np.ndarray, source: str = "audio") -> np.ndarray:
    """Return x as float32, or raise AudioError if any sample is NaN or infinite."""
    x = np.asarray(x, dtype=np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        n_nan = int(np.isnan(x).sum())
        n_inf = int(x.size - finite.sum()) - n_nan
        raise AudioError(
            f"{source} contains non-finite samples: {n_nan} NaN and {n_inf} infinite of {x.size}"
        )
    return x


def resample(x: np.ndarray, from_sr: int, to_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a whole 1-D signal in one call (files, or any block with no 'before' or 'after')."""
    if from_sr <= 0 or to_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {from_sr} -> {to_sr}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample expects mono 1-D audio, got shape {x.shape}")
    if from_sr == to_sr:
        return x
    out = soxr.resample(x, from_sr, to_sr, quality=RESAMPLE_QUALITY)
    return out.astype(np.float32, copy=False)


class StreamResampler:
    """Resample a live stream block by block with no seams: the filter state carries over.

    Calling resample() on each block separately would restart the filter every block and
    leave a click at each boundary; a microphone at 44.1 or 48 kHz needs this instead.
    """

    def __init__(self, from_sr: int, to_sr: int = SAMPLE_RATE):
        if from_sr <= 0 or to_sr <= 0:
            raise AudioError(f"sample rates must be positive, got {from_sr} -> {to_sr}")
        self.from_sr, self.to_sr = from_sr, to_sr
        self._stream = (
            None
            if from_sr == to_sr
            else soxr.ResampleStream(from_sr, to_sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Feed one mono block; returns whatever output is ready (all of it when last=True)."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 1:
            raise ValueError(f"StreamResampler expects mono 1-D blocks, got shape {block.shape}")
        if self._stream is None:
            # A copy: capture callbacks reuse their buffers, and the caller may keep this block.
            return block.copy()
        return self._stream.resample_chunk(block, last=last)


def pcm16_to_float32(data: bytes, channels: int = 1) -> np.ndarray:
    """Raw little-endian signed 16-bit PCM (interleaved if channels > 1) -> mono float32, [-1, 1)."""
    frame_bytes = 2 * channels
    if len(data) % frame_bytes:
        raise AudioError(
            f"raw s16le input of {len(data)} bytes is not a whole number of "
            f"{channels}-channel frames ({frame_bytes} bytes each)"
        )
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples


def _open(path: str | os.PathLike) -> soundfile.SoundFile:
    """Open an audio file for reading, or raise one AudioError line saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioError(f"not a regular file: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    try:
        sound = soundfile.SoundFile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"cannot decode {path} (corrupt or unsupported format): {_one_line(e)}") from e
    if sound.frames == 0:
        sound.close()
        raise AudioError(f"audio file has no samples: {path}")
    return sound


def _read_mono(sound: soundfile.SoundFile, frames: int = -1) -> np.ndarray:
    try:
        data = sound.read(frames, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"cannot decode {sound.name} (corrupt data): {_one_line(e)}") from e
    # Mean over channels keeps a mono mixdown at the same loudness as each channel.
    return validate_pcm(data.mean(axis=1, dtype=np.float32), source=str(sound.name))


def _read_intact(sound: soundfile.SoundFile, start: int, piece_frames: int) -> np.ndarray:
    """Mono samples from frame `start` on, read in small pieces until the first unreadable one."""
    pieces = []
    try:
        sound.seek(start)
        while len(piece := _read_mono(sound, piece_frames)):
            pieces.append(piece)
    except (AudioError, soundfile.LibsndfileError, RuntimeError):
        pass
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file (wav, flac, ogg, mp3: whatever libsndfile reads) to mono float32 at sr."""
    with _open(path) as sound:
        mono = _read_mono(sound)
        if len(mono) == 0:
            raise AudioError(f"audio file has no samples: {path}")
        return resample(mono, sound.samplerate, sr)


def stream_audio(
    path: str | os.PathLike, sr: int = SAMPLE_RATE, block_seconds: float = 10.0
) -> tuple[Iterator[np.ndarray], float]:
    """Decode a file block by block, so files of any length take bounded memory.

    Returns (mono float32 blocks at sr, duration in seconds). Problems with the file itself are
    raised here, before any block is read; corrupt or non-finite data when its block is read.
    """
    sound = _open(path)
    duration = sound.frames / sound.samplerate

    def blocks() -> Iterator[np.ndarray]:
        with sound:
            resampler = StreamResampler(sound.samplerate, sr)
            block_frames = max(1, int(block_seconds * sound.samplerate))
            while True:
                block_start = sound.tell()
                try:
                    mono = _read_mono(sound, block_frames)
                except AudioError as error:
                    # Corrupt or cut short inside this block: hand on what is intact before the
                    # damage, then the error (which says how far the file could be read).
                    intact = _read_intact(sound, block_start, max(1, sound.samplerate // 10))
                    out = resampler.process(intact, last=True)
                    if len(out):
                        yield out
                    seconds = (block_start + len(intact)) / sound.samplerate
                    raise AudioError(f"{error} (read up to {seconds:.1f} s of {duration:.1f} s)") from error
                last = len(mono) < block_frames
                out = resampler.process(mono, last=last)
                if len(out):
                    yield out
                if last:
                    return

    return blocks(), duration


def pad_or_trim(x: np.ndarray, length: int = N_SAMPLES, axis: int = -1) -> np.ndarray:
    """Zero-pad at the end or cut to exactly `length` samples along `axis`, as Whisper does."""
    x = np.asarray(x)
    n = x.shape[axis]
    if n > length:
        return np.take(x, np.arange(length), axis=axis)
    if n < length:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, length - n)
        return np.pad(x, widths)
    return x
