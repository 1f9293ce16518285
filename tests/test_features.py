"""The numpy log-mel front end against OpenAI Whisper's own arrays (shared/reference/*.npz)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from npustream.asr.audio import N_FRAMES, N_SAMPLES
from npustream.asr.features import log_mel_spectrogram, mel_filters, window_features

# The reference README: a faithful numpy port matches to about 4e-5; 1e-4 is safe.
ATOL = 1e-4


@pytest.fixture
def reference(reference_npz):
    with np.load(reference_npz) as arrays:
        return dict(arrays)


def test_mel_filters_match_whisper(reference):
    bank = mel_filters(80)
    assert bank.shape == (80, 201) and bank.dtype == np.float32
    np.testing.assert_allclose(bank, reference["mel_filters_80"], rtol=0, atol=1e-7)


def test_log_mel_matches_whisper(reference):
    mel = log_mel_spectrogram(reference["audio_16k"], n_mels=80)
    assert mel.shape == reference["mel"].shape == (80, reference["audio_16k"].size // 160)
    np.testing.assert_allclose(mel, reference["mel"], rtol=0, atol=ATOL)


def test_window_features_match_whisper_mel30(reference):
    features = window_features(reference["audio_16k"], n_mels=80)
    assert features.shape == (80, N_FRAMES) and features.dtype == np.float32
    np.testing.assert_allclose(features, reference["mel30"], rtol=0, atol=ATOL)


def test_padded_log_mel_matches_whisper(reference, reference_npz):
    if "mel_padded" not in reference:
        # The reference generator drops it for long files; that must be on record, not an accident.
        meta = json.loads(reference_npz.with_suffix(".json").read_text(encoding="utf-8"))
        assert "mel_padded" in meta["dropped_keys"]
        return
    mel = log_mel_spectrogram(reference["audio_16k"], n_mels=80, padding=N_SAMPLES)
    assert mel.shape == reference["mel_padded"].shape
    np.testing.assert_allclose(mel, reference["mel_padded"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_whisper_assets(n_mels):
    # Whisper's own shipped banks (tests/data/README.md): 128 mels is large-v3's front end.
    with np.load(Path(__file__).parent / "data" / "whisper_mel_filters.npz") as assets:
        expected = assets[f"mel_{n_mels}"]
    bank = mel_filters(n_mels)
    assert bank.shape == expected.shape == (n_mels, 201)
    np.testing.assert_allclose(bank, expected, rtol=0, atol=1e-7)
    assert mel_filters(n_mels) is bank and not bank.flags.writeable  # cached, shared read-only


def test_silence_is_flat_at_the_floor():
    mel = window_features(np.zeros(16000, dtype=np.float32))
    np.testing.assert_allclose(mel, (-10.0 + 4.0) / 4.0, atol=1e-6)


def test_short_audio_is_rejected_clearly():
    with pytest.raises(ValueError, match="too short"):
        log_mel_spectrogram(np.zeros(100, dtype=np.float32))
