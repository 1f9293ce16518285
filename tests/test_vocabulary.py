"""Vocabulary (--prompt, --hotwords, and the TOML config's prompt/hotwords) on generated speech,
and the language fields captions carry (schema 1.1, readable by 1.0 clients).

The speech: espeak-ng saying a sentence with two product names the packaged Whisper base
misspells without help ("Cubanites and Brafada" for "Kubernetes and Grafana"). With the terms
as hotwords or as the prompt, both come out right; without them, neither does; through
`transcribe` and through the daemon. The captioner replayed at several decode times (a busy
machine's too) loses no word of the sentence to the hotwords.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from daemon_harness import Daemon, final_text

from npustream.asr.audio import load_audio
from npustream.asr.recognizer import Recognizer
from npustream.protocol.schema import caption_schema
from npustream.stream.captioner import Captioner
from npustream.stream.config import StreamConfig
from npustream.types import join_texts
from tools.stream_replay import FixedCost, replay

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SENTENCE = "Deploy the service with Kubernetes and Grafana today."
TERMS = ("Kubernetes", "Grafana")
HOTWORDS = ", ".join(TERMS)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng missing: apt-get install espeak-ng (scripts/setup installs it)", pytrace=False)
    path = tmp_path_factory.mktemp("speech") / "product-names.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), SENTENCE], check=True, timeout=60
    )
    return path


def transcribe(path: Path, *options: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "npustream", "transcribe", str(path), "--threads", "1", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def found(text: str) -> list[str]:
    return [t for t in TERMS if t in text]


def test_transcribe_spells_the_terms_only_with_hotwords_or_prompt(speech):
    without = transcribe(speech)
    hotwords = transcribe(speech, "--hotwords", HOTWORDS)
    prompt = transcribe(speech, "--prompt", HOTWORDS)
    assert found(without) == [], without
    assert found(hotwords) == list(TERMS), hotwords
    assert found(prompt) == list(TERMS), prompt


def run_daemon(tmp_path: Path, speech: Path, *args: str) -> Daemon:
    daemon = Daemon(tmp_path, ["--source", f"file:{speech}", *args])
    try:
        daemon.wait_ready()
        daemon.recorder.wait_for(
            lambda m: m["type"] == "status" and m["state"] == "source_ended", 120, "the end of the file"
        )
        assert daemon.proc.wait(timeout=60) == 0  # a file source: the daemon ends by itself
    finally:
        daemon.close()
    return daemon


def test_streaming_with_hotwords_loses_no_words_whatever_the_decode_time(speech):
    """The captioner on the sentence with the terms as hotwords, decodes costing each schedule's
    fixed time (0.45-0.8 s: a busy machine's): every schedule captions the whole sentence.
    Before the terms were closed with a full stop, Whisper went on from "Kubernetes, Grafana"
    into the audio, read " and Grafana today." and "Kubernetes and" was lost in most of them."""
    cfg = StreamConfig(source="file:x", hotwords=HOTWORDS)
    recognizer = Recognizer(cfg.recognizer_config())
    audio = load_audio(speech)
    for seconds in (0.45, 0.6, 0.8):
        captioner = Captioner(FixedCost(recognizer, seconds), cfg)
        events = replay(audio, captioner, clock=captioner.recognizer)
        text = join_texts(e.text for _, e in events if e.kind == "final")
        assert "service with Kubernetes and Grafana today." in text, (seconds, text)


def test_daemon_takes_hotwords_from_its_config_file_and_captions_carry_the_language(tmp_path, speech):
    config = tmp_path / "config.toml"
    config.write_text(f'hotwords = "{HOTWORDS}"\n', encoding="utf-8")
    with_terms = run_daemon(tmp_path / "with", speech, "--config", str(config))
    without = run_daemon(tmp_path / "without", speech)
    assert found(final_text(with_terms.recorder)) == list(TERMS), final_text(with_terms.recorder)
    assert found(final_text(without.recorder)) == [], final_text(without.recorder)

    # Language per caption (detected: no --language), valid for schema 1.1 and for a 1.0 client.
    current = jsonschema.Draft202012Validator(caption_schema())
    old = jsonschema.Draft202012Validator(
        json.loads((REPO / "tests/data/captions.schema.v1.0.json").read_text())
    )
    messages = [{k: v for k, v in m.items() if k != "received"} for m in with_terms.recorder.messages]
    captions = [m for m in messages if m["type"].startswith("caption.")]
    assert captions
    for message in messages:
        current.validate(message)
        old.validate(message)
    for caption in captions:
        assert caption["language"] == "en"
        # the detector's probability for the window the words came from (short windows are less sure)
        assert 0.0 < caption["language_probability"] <= 1.0
