"""The daemon's captioner on a real telephone call (tests/data/call_two_speakers.flac: two
people, spontaneous, talking over each other's ends), on a virtual clock (each decode a fixed
cost), against offline transcription of the same file."""

from __future__ import annotations

from pathlib import Path

import pytest

from npustream.asr.audio import load_audio
from npustream.types import is_spoken
from tools.stream_replay import FixedCost, replay
from tools.wer import wer

CALL = Path(__file__).parent / "data" / "call_two_speakers.flac"


@pytest.mark.slow
def test_a_call_is_captioned_as_offline_reads_it_each_hello_included(base_model_dir):
    """Each decode costing 0.36 s (this machine's real-time pace is 0.22-0.28 s; at 0.34-0.45 s
    the second speaker's "Hello?", read right after the first speaker's, was taken for the final
    word read again and lost). Nothing published twice or lost; every word final within 3.5 s of
    its end (issue 10's bound). Offline reads the turn spoken over "... you were there" as "I
    need to design", the stream as "Neither design": the one known difference (5.4 %)."""
    from npustream.asr.recognizer import Recognizer
    from npustream.stream.captioner import Captioner
    from npustream.stream.config import StreamConfig
    from npustream.transcribe.transcriber import transcribe_file

    config = StreamConfig(source=f"file:{CALL}", model_dir=base_model_dir)
    recognizer = Recognizer(config.recognizer_config())
    try:
        offline = transcribe_file(recognizer, CALL).text
        clock = FixedCost(recognizer, 0.36)
        captioner = Captioner(clock, config)
        events = replay(load_audio(CALL), captioner, clock=clock)
    finally:
        recognizer.close()
    finals = [(t, w) for t, e in events if e.kind == "final" for w in e.words if is_spoken(w.word)]
    text = "".join(w.word for _, w in finals)
    assert [w.word.strip(" ?.,!").lower() for _, w in finals[:4]] == ["hello", "hello", "oh", "hello"], text
    assert wer(offline, text) <= 0.06, (offline, text)
    assert all(a.end <= b.start + 1e-6 for (_, a), (_, b) in zip(finals, finals[1:]))  # none twice
    assert captioner.guard.speech_unread == 0.0  # none lost
    assert max(t - w.end for t, w in finals) <= 3.5
