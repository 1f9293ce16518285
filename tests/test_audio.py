"""Audio loading against Whisper's ffmpeg-decoded reference, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from npustream.asr.audio import (
    N_SAMPLES,
    SAMPLE_RATE,
    StreamResampler,
    load_audio,
    pad_or_trim,
    pcm16_to_float32,
    resample,
    validate_pcm,
)
from npustream.asr.features import log_mel_spectrogram, mel_filters
from npustream.errors import AudioError


@pytest.fixture
def reference_audio(reference_npz):
    with np.load(reference_npz) as arrays:
        return arrays["audio_16k"], arrays["mel"]


def test_load_audio_matches_whisper_ffmpeg(reference_audio, reference_audio_path):
    expected, _ = reference_audio
    audio = load_audio(reference_audio_path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - expected.size) <= 4
    n = min(audio.size, expected.size)
    if soundfile.info(reference_audio_path).samplerate == SAMPLE_RATE:
        # No resampling on either side: same 16-bit samples over the same 32768 scale.
        np.testing.assert_array_equal(audio[:n], expected[:n])
    # soxr and ffmpeg's resampler differ in their filters, not in timing: no lag, same waveform.
    assert np.corrcoef(audio[:n], expected[:n])[0, 1] > 0.99


def test_load_audio_log_mel_matches_whisper_below_old_nyquist(reference_audio, reference_audio_path):
    # The resamplers' filters differ only near a source's Nyquist (4 kHz for the 8 kHz file,
    # 8 kHz for the 44.1 kHz one; ffmpeg's transition band starts about 3% below it), so the
    # 59 bands wholly below 3.6 kHz must agree closely (measured max 0.023).
    _, expected_mel = reference_audio
    mel = log_mel_spectrogram(load_audio(reference_audio_path))
    n = min(mel.shape[1], expected_mel.shape[1])
    low_bands = mel_filters(80)[:, np.arange(201) * SAMPLE_RATE / 400 >= 3600].max(axis=1) == 0
    assert low_bands.sum() == 59
    assert np.abs(mel[low_bands, :n] - expected_mel[low_bands, :n]).max() < 0.05


@pytest.mark.parametrize(
    "fmt, subtype", [("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III"), ("WAV", "FLOAT")]
)
def test_load_audio_decodes_other_containers(tmp_path, audio_dir, fmt, subtype):
    original = load_audio(audio_dir / "libri_1.flac")
    path = tmp_path / f"libri.{fmt.lower()}"
    soundfile.write(path, original, SAMPLE_RATE, format=fmt, subtype=subtype)
    decoded = load_audio(path)
    assert decoded.size == original.size
    # Lossy codecs: same speech, time-aligned (measured 0.979 opus, 0.985 mp3, 0.994 vorbis).
    assert np.corrcoef(decoded, original)[0, 1] > 0.95


def test_stereo_44k_is_mixed_and_resampled(tmp_path):
    t = np.arange(44100 * 2) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.25 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.size == 2 * SAMPLE_RATE
    t16 = np.arange(audio.size) / SAMPLE_RATE
    expected = 0.375 * np.sin(2 * np.pi * 440 * t16)  # the mean of the two channels
    np.testing.assert_allclose(audio[1000:-1000], expected[1000:-1000], atol=1e-3)


@pytest.mark.parametrize("from_sr", [8000, 22050, 44100, 48000])
def test_resample_keeps_a_tone_and_the_duration(from_sr):
    t = np.arange(from_sr) / from_sr
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, from_sr, SAMPLE_RATE)
    assert out.dtype == np.float32 and out.size == SAMPLE_RATE
    expected = np.sin(2 * np.pi * 1000 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    np.testing.assert_allclose(out[500:-500], expected[500:-500], atol=2e-3)


@pytest.mark.parametrize("from_sr, block", [(48000, 4800), (44100, 1000), (16000, 512)])
def test_stream_resampler_has_no_seams(from_sr, block):
    signal = np.random.default_rng(0).standard_normal(from_sr * 3).astype(np.float32)
    whole = resample(signal, from_sr, SAMPLE_RATE)
    resampler = StreamResampler(from_sr, SAMPLE_RATE)
    pieces = [resampler.process(signal[i : i + block]) for i in range(0, signal.size, block)]
    pieces.append(resampler.process(np.zeros(0, np.float32), last=True))
    streamed = np.concatenate(pieces)
    assert streamed.size == whole.size == 3 * SAMPLE_RATE
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_pcm16_to_float32():
    samples = np.array([0, 16384, -32768, 32767], dtype="<i2")
    np.testing.assert_array_equal(pcm16_to_float32(samples.tobytes()), [0.0, 0.5, -1.0, 32767 / 32768])
    stereo = np.array([16384, -16384, 8192, 8192], dtype="<i2").tobytes()
    np.testing.assert_array_equal(pcm16_to_float32(stereo, channels=2), [0.0, 0.25])
    with pytest.raises(AudioError, match="not a whole number"):
        pcm16_to_float32(b"\x00\x01\x02")


def test_pad_or_trim():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_trim(x, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(pad_or_trim(x, 12), [*range(10), 0, 0])
    assert pad_or_trim(np.ones((2, 5)), 3).shape == (2, 3)
    assert pad_or_trim(np.ones(100, np.float32)).shape == (N_SAMPLES,)


def test_validate_pcm_counts_bad_samples():
    with pytest.raises(AudioError, match=r"2 NaN and 1 infinite of 5"):
        validate_pcm(np.array([0.0, np.nan, np.inf, np.nan, 1.0]), source="mic")


# --- bad input: one clear line, never a traceback from libsndfile ---


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found") as error:
        load_audio(tmp_path / "nope.flac")
    assert_one_line(error)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty") as error:
        load_audio(path)
    assert_one_line(error)


def test_text_file(tmp_path):
    path = tmp_path / "notes.flac"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="cannot decode") as error:
        load_audio(path)
    assert_one_line(error)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_corrupt_flac(tmp_path, audio_dir, damage):
    data = (audio_dir / "libri_1.flac").read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        noise = np.random.default_rng(0).integers(0, 256, len(data) - 2000, dtype=np.uint8)
        data = data[:2000] + noise.tobytes()
    path = tmp_path / f"{damage}.flac"
    path.write_bytes(data)
    with pytest.raises(AudioError, match="cannot decode") as error:
        load_audio(path)
    assert str(path) in assert_one_line(error)


def test_silence_loads_as_zeros(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros((48000, 2), dtype=np.float32), 48000)
    audio = load_audio(path)
    assert audio.size == SAMPLE_RATE and not audio.any()


def test_header_only_file_has_no_samples(tmp_path):
    path = tmp_path / "nothing.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    assert path.stat().st_size > 0
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path)


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_samples(tmp_path, bad, word):
    samples = np.zeros(16000, dtype=np.float32)
    samples[[10, 500]] = bad
    path = tmp_path / "bad.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=word) as error:
        load_audio(path)
    assert str(path) in assert_one_line(error)
