"""File transcription with the real Whisper base model on the shared speech (cpu engine, defaults)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from npustream.asr.recognizer import Recognizer, RecognizerConfig
from npustream.transcribe.transcriber import transcribe_file
from tools.wer import wer

AUDIO_FILES = ("jfk.flac", "libri_1.flac", "osr_0034_8k.wav")


@pytest.fixture(scope="module")
def recognizer():
    rec = Recognizer(RecognizerConfig(word_timestamps=True))
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def transcripts_by_file(recognizer, audio_dir):
    return {name: transcribe_file(recognizer, audio_dir / name) for name in AUDIO_FILES}


@pytest.mark.slow
@pytest.mark.parametrize("name", AUDIO_FILES)
def test_word_error_rate_at_most_5_percent(transcripts_by_file, transcripts, name):
    result = transcripts_by_file[name]
    error = wer(transcripts[name]["text"], result.text)
    print(f"{name}: WER {error:.3f}: {result.text}")
    assert result.language == "en"
    assert error <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("name", AUDIO_FILES)
def test_times_are_monotonic_and_inside_the_file(transcripts_by_file, audio_dir, name):
    result = transcripts_by_file[name]
    info = soundfile.info(str(audio_dir / name))
    assert result.duration == pytest.approx(info.frames / info.samplerate, abs=0.01)
    previous_end = 0.0
    for segment in result.segments:
        assert 0.0 <= segment.start <= segment.end <= result.duration + 1e-6
        assert segment.start >= previous_end - 1e-6
        previous_end = segment.end
        assert segment.words, "word timestamps were asked for"
        word_end = segment.start
        for word in segment.words:
            assert segment.start - 1e-6 <= word.start <= word.end <= segment.end + 1e-6
            assert word.start >= word_end - 1e-6
            assert 0.0 <= word.probability <= 1.0
            word_end = word.end


@pytest.mark.slow
def test_long_file_spans_two_windows(transcripts_by_file):
    # osr_0034_8k.wav is 36 s: the last sentence ("When you hear the bell...") lies past 30 s.
    result = transcripts_by_file["osr_0034_8k.wav"]
    assert result.duration > 30
    assert result.segments[-1].end > 30
    assert "bell" in result.segments[-1].text.lower()


def test_silence_gives_no_text(recognizer, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16000 * 12, dtype=np.float32), 16000)
    result = transcribe_file(recognizer, path)
    assert result.segments == ()
    assert result.text == ""
    assert result.duration == pytest.approx(12.0)


def test_noise_gives_no_text(recognizer, tmp_path):
    # White and brown noise at speech-like levels: Whisper alone hallucinates on these
    # (e.g. "ごちそうさまでした"); the VAD gate gives no text and costs no model work.
    rng = np.random.default_rng(0)
    white = 0.05 * rng.standard_normal(16000 * 8)
    brown = np.cumsum(rng.standard_normal(16000 * 8))
    brown = 0.2 * (brown - brown.mean()) / np.abs(brown - brown.mean()).max()
    path = tmp_path / "noise.wav"
    soundfile.write(path, np.concatenate([white, brown]).astype(np.float32), 16000)
    result = transcribe_file(recognizer, path)
    assert result.segments == ()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npustream", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_cli_json_output(audio_dir, transcripts):
    done = run_cli("transcribe", str(audio_dir / "libri_1.flac"), "--format", "json", "--word-timestamps")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"language", "duration", "text", "segments", "coverage"}
    assert {s["language"] for s in result["segments"]} == {"en"}
    assert result["language"] == "en"
    assert wer(transcripts["libri_1.flac"]["text"], result["text"]) <= 0.05
    words = [w for s in result["segments"] for w in s["words"]]
    assert {"start", "end", "word", "probability"} <= set(words[0])


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"this is not audio, just text\n" * 10, "cannot decode"),
        (b"fLaC\x00\x00\x00\x22" + bytes(range(256)) * 4, "cannot decode"),
    ],
)
def test_cli_rejects_bad_files_with_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.flac"
    path.write_bytes(content)
    done = run_cli("transcribe", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npustream: error:") and expected in lines[0], done.stderr


def test_cli_rejects_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    samples = np.sin(np.arange(16000, dtype=np.float32) / 10)
    samples[100:200] = np.nan
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    done = run_cli("transcribe", str(path))
    assert done.returncode == 2
    assert "NaN" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_missing_file():
    done = run_cli("transcribe", "/nonexistent/speech.wav")
    assert done.returncode == 2 and "not found" in done.stderr
