"""Whisper's log-mel front end in numpy, numerically the same as openai/whisper's audio.py.

frames   = periodic-Hann windows of 400 samples every 160, centred (reflect padding)
power    = |rfft(frames)|^2                       201 bins, the last frame dropped
mel      = filters[n_mels, 201] @ power           Slaney mel scale, Slaney area norm
log_spec = log10(max(mel, 1e-10)), floored at (its max - 8), then (x + 4) / 4
"""

from __future__ import annotations

from functools import cache

import numpy as np

from npustream.asr.audio import HOP_LENGTH, N_FFT, N_FRAMES, SAMPLE_RATE, pad_or_trim

N_FREQS = N_FFT // 2 + 1  # 201 rfft bins


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 bins per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    log_step = np.log(6.4) / 27.0
    linear = hz / f_sp
    logarithmic = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / log_step
    return np.where(hz >= min_log_hz, logarithmic, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    log_step = np.log(6.4) / 27.0
    linear = mel * f_sp
    logarithmic = min_log_hz * np.exp(log_step * (np.maximum(mel, min_log_mel) - min_log_mel))
    return np.where(mel >= min_log_mel, logarithmic, linear)


@cache
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """float32[n_mels, 201]: triangular filters on the Slaney mel scale from 0 Hz to 8 kHz.

    The same bank as librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False, norm="slaney"),
    which Whisper ships precomputed; 80 mels for most models, 128 for large-v3.
    """
    if n_mels <= 0:
        raise ValueError(f"n_mels must be positive, got {n_mels}")
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FREQS)
    # n_mels + 2 edges: filter i rises from edge i to a peak at i+1 and falls to i+2.
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    widths = np.diff(edges_hz)
    rising = (fft_hz[None, :] - edges_hz[:-2, None]) / widths[:-1, None]
    falling = (edges_hz[2:, None] - fft_hz[None, :]) / widths[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: every filter has unit area in Hz, so wide high bands are not louder.
    area_norm = 2.0 / (edges_hz[2:] - edges_hz[:-2])
    bank = (triangles * area_norm[:, None]).astype(np.float32)
    bank.flags.writeable = False  # cached and shared by every caller
    return bank


@cache
def _hann_window() -> np.ndarray:
    """Periodic Hann (as torch.hann_window): the symmetric np.hanning would shift every bin."""
    n = np.arange(N_FFT, dtype=np.float64)
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)
    window.flags.writeable = False
    return window


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """float32[201, len(audio) // 160]: |STFT|^2 with centred frames, the last frame dropped."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D audio, got shape {audio.shape}")
    if audio.size <= N_FFT // 2:
        raise ValueError(f"audio of {audio.size} samples is too short for a centred {N_FFT}-point frame")
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    # torch.stft yields 1 + len // hop frames; Whisper drops the last, leaving len // hop.
    n_frames = audio.size // HOP_LENGTH
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    spectrum = np.fft.rfft(frames * _hann_window(), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return power.T.astype(np.float32, copy=False)


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """float32[n_mels, (len(audio) + padding) // 160], scaled like Whisper's to about [-1, 1.5]."""
    audio = np.asarray(audio, dtype=np.float32)
    if padding > 0:
        audio = np.pad(audio, (0, padding))
    mel = mel_filters(n_mels) @ power_spectrogram(audio)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    # An 80 dB dynamic range below the loudest bin: quieter detail is noise to the encoder.
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32, copy=False)


def window_features(audio: np.ndarray, n_mels: int = 80, frames: int = N_FRAMES) -> np.ndarray:
    """float32[n_mels, frames]: the log-mel one encoder window sees, zero-padded to `frames`
    (Whisper's 3000 = 30 s unless a shorter encoder context is asked for)."""
    return log_mel_spectrogram(pad_or_trim(np.asarray(audio, dtype=np.float32), frames * HOP_LENGTH), n_mels)
