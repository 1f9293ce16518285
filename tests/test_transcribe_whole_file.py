"""Nothing lost in `npustream transcribe` (issue 11): every shared file, and a file of at least 10
minutes built here from the shared clips with pauses (10.2 min), is transcribed up to its last
speech, with no window-long segments over speech that pauses, a WER within bounds, every second
accounted for, and each language of a mixed file in its own segments. Real Whisper base on the
cpu engine, silero VAD as the judge of where speech is.

Before the fix (main 73560c4): lj_stream_a.flac stopped at 110.6 s with two 30 s segments (WER
36 %) and fr_en_switch.flac gave only the French sentence.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from daemon_harness import Daemon, final_text

from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.asr.recognizer import Recognizer, RecognizerConfig
from npustream.asr.vad import SpeechRegion, VoiceActivity
from npustream.transcribe.transcriber import transcribe_file
from tools.wer import wer

pytestmark = pytest.mark.slow

# Measured on this machine (cpu engine, int8): jfk 0.0, libri 0.0, osr 1.4 %, lj_stream_a 2.1-2.5 %,
# fr_en_switch 3.6 % (the reference spells "numéro un", the model writes "numéro 1").
WER_BOUND = {
    "jfk.flac": 0.03,
    "libri_1.flac": 0.03,
    "osr_0034_8k.wav": 0.03,
    "lj_stream_a.flac": 0.04,
    "fr_en_switch.flac": 0.05,
}
SHARED = tuple(WER_BOUND)
BUILT = "built_10min.wav"
REACH_SECONDS = 2.0  # the last segment ends at most this long before the last speech the VAD hears
LONG_SEGMENT_SECONDS = 20.0  # a segment this long over speech with pauses is a window, not a sentence
PAUSE_SECONDS = 0.5
DAEMON_SPEED = 4.0  # file audio released 4x real time; the daemon reads what arrived, nothing is dropped


def speech_regions(audio: np.ndarray) -> list[SpeechRegion]:
    vad = VoiceActivity(keep_seconds=len(audio) / SAMPLE_RATE + 60)
    vad.push(audio)
    return vad.regions(0.0, len(audio) / SAMPLE_RATE)


def build_ten_minutes(audio_dir, transcripts, path) -> str:
    """The English shared clips in turn, with pauses of 0.4-6 s (a -60 dBFS noise floor), until
    at least 10 minutes are filled (the long reading last, so little more); returns the reference text."""
    rng = np.random.default_rng(11)
    names = ("jfk.flac", "osr_0034_8k.wav", "libri_1.flac", "lj_stream_a.flac")
    clips = {name: load_audio(audio_dir / name) for name in names}
    pieces, texts, total, i = [], [], 0, 0
    while total < 600 * SAMPLE_RATE:
        pause = int(rng.choice([0.4, 0.8, 1.5, 3.0, 6.0]) * SAMPLE_RATE)
        pieces.append((0.001 * rng.standard_normal(pause)).astype(np.float32))
        name = names[i % len(names)]
        pieces.append(clips[name])
        texts.append(transcripts[name]["text"])
        total += pause + len(clips[name])
        i += 1
    pieces.append(np.zeros(SAMPLE_RATE, dtype=np.float32))
    soundfile.write(path, np.concatenate(pieces), SAMPLE_RATE, subtype="FLOAT")
    return " ".join(texts)


@pytest.fixture(scope="module")
def runs(audio_dir, transcripts, tmp_path_factory):
    """name -> (transcript, VAD speech regions, reference text, seconds it took)."""
    built = tmp_path_factory.mktemp("built") / BUILT
    references = {name: transcripts[name]["text"] for name in SHARED}
    references[BUILT] = build_ten_minutes(audio_dir, transcripts, built)
    paths = {name: audio_dir / name for name in SHARED} | {BUILT: built}
    recognizer = Recognizer(RecognizerConfig())
    out = {}
    for name, path in paths.items():
        started = time.monotonic()
        result = transcribe_file(recognizer, path)
        took = time.monotonic() - started
        out[name] = (result, speech_regions(load_audio(path)), references[name], took)
        cov = result.coverage
        print(
            f"{name}: WER {wer(references[name], result.text):.4f}, last segment end "
            f"{result.segments[-1].end:.2f} s, last VAD speech {out[name][1][-1].end:.2f} s, decoded "
            f"{cov.decoded:.2f} s, skipped {cov.skipped:.2f} s, untranscribed {cov.untranscribed:.2f} s, "
            f"{len(result.segments)} segments, {took:.1f} s"
        )
    recognizer.close()
    return out


NAMES = (*SHARED, BUILT)


@pytest.mark.parametrize("name", NAMES)
def test_last_segment_reaches_the_last_speech(runs, name):
    result, regions, _, _ = runs[name]
    last_speech = regions[-1].end
    assert result.segments, "no text at all"
    assert result.segments[-1].end >= last_speech - REACH_SECONDS, (result.segments[-1], last_speech)
    assert result.segments[-1].end <= result.duration + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_no_window_long_segments_over_pauses(runs, name):
    result, regions, _, _ = runs[name]
    for segment in result.segments:
        if segment.end - segment.start < LONG_SEGMENT_SECONDS:
            continue
        inside = [r for r in regions if segment.start <= r.start and r.end <= segment.end]
        pauses = [b.start - a.end for a, b in zip(inside, inside[1:]) if b.start - a.end >= PAUSE_SECONDS]
        assert not pauses, f"{segment.end - segment.start:.1f} s segment over pauses {pauses}: {segment.text}"


@pytest.mark.parametrize("name", NAMES)
def test_word_error_rate_within_bound(runs, name):
    result, _, reference, _ = runs[name]
    assert wer(reference, result.text) <= WER_BOUND.get(name, 0.05)


@pytest.mark.parametrize("name", NAMES)
def test_every_second_is_accounted_for(runs, name):
    result, regions, _, _ = runs[name]
    cov = result.coverage
    assert cov.decoded + cov.skipped + cov.untranscribed == pytest.approx(result.duration, abs=0.01)
    assert cov.untranscribed == 0.0 and result.error is None
    speech = sum(r.end - r.start for r in regions if r.end - r.start >= 0.1)
    # All speech went through the model; what was skipped is pauses (0.2 s: block-wise resampling
    # moves VAD frames a little against the whole-file VAD here).
    assert cov.decoded >= speech - 0.2
    assert cov.skipped <= result.duration - speech + 0.2


def test_french_then_english_keeps_both_languages(runs):
    result, _, _, _ = runs["fr_en_switch.flac"]
    by_language = {s.language: s.text for s in result.segments}
    assert set(by_language) == {"fr", "en"}, [(s.language, s.text) for s in result.segments]
    assert "dictée" in by_language["fr"]
    assert "Americans" in by_language["en"]


def test_offline_wer_within_a_point_of_the_daemon(runs, audio_dir, tmp_path):
    name = "lj_stream_a.flac"
    result, _, reference, _ = runs[name]
    daemon = Daemon(tmp_path, ["--source", f"file:{audio_dir / name}", "--speed", str(DAEMON_SPEED)])
    try:
        daemon.wait_ready()
        assert daemon.proc.wait(timeout=600) == 0, daemon.log_tail()
        time.sleep(0.5)  # the last messages reach the recorder
        streaming = wer(reference, final_text(daemon.recorder))
    finally:
        daemon.close()
    offline = wer(reference, result.text)
    print(f"{name}: offline WER {offline:.4f}, daemon (--speed {DAEMON_SPEED:g}) WER {streaming:.4f}")
    assert offline <= streaming + 0.01


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npustream", *args], capture_output=True, text=True, timeout=600
    )


def test_cli_reports_the_seconds_and_languages(audio_dir):
    done = run_cli("transcribe", str(audio_dir / "fr_en_switch.flac"), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    cov = document["coverage"]
    assert set(cov) == {"decoded_seconds", "skipped_non_speech_seconds", "untranscribed_seconds"}
    assert sum(cov.values()) == pytest.approx(document["duration"], abs=0.01)
    assert [s["language"] for s in document["segments"]][:1] == ["fr"]
    assert "en" in {s["language"] for s in document["segments"]}
    summary = done.stderr.strip().splitlines()[-1]
    assert summary == (
        f"npustream: {document['duration']:.1f} s of audio: {cov['decoded_seconds']:.1f} s decoded, "
        f"{cov['skipped_non_speech_seconds']:.1f} s skipped as non-speech, "
        f"{cov['untranscribed_seconds']:.1f} s could not be transcribed"
    )


def test_cli_captions_a_truncated_flac_then_reports_the_error(audio_dir, transcripts, tmp_path):
    # The first 1,000,000 bytes of lj_stream_a.flac: its header promises 127.8 s, libsndfile loses
    # sync at 62.2 s. Before: refused whole ("flac decoder lost sync"), no text.
    path = tmp_path / "cut.flac"
    path.write_bytes((audio_dir / "lj_stream_a.flac").read_bytes()[:1_000_000])
    done = run_cli("transcribe", str(path), "--format", "json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    document = json.loads(done.stdout)
    assert "lost sync" in document["error"] and "read up to 62.2 s of 127.8 s" in document["error"]
    cov = document["coverage"]
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"npustream: error: {document['error']}; {document['duration']:.1f} s of audio: "
        f"{cov['decoded_seconds']:.1f} s decoded, {cov['skipped_non_speech_seconds']:.1f} s skipped as "
        f"non-speech, {cov['untranscribed_seconds']:.1f} s could not be transcribed"
    )
    assert cov["untranscribed_seconds"] == pytest.approx(127.785 - 62.2, abs=0.2)
    assert sum(cov.values()) == pytest.approx(document["duration"], abs=0.01)
    # Everything up to the cut, as far as the reference goes: "... the Gutenberg or 42 line Bible
    # of about 1455 has never been" (the cut falls inside "surpassed").
    reference = transcripts["lj_stream_a.flac"]["text"]
    intact = reference[: reference.index("has never been") + len("has never been")]
    assert document["segments"][-1]["end"] > 60.0
    assert wer(intact, document["text"]) <= 0.05
