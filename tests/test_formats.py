"""Transcript rendering: exact txt, srt, vtt and json output for a hand-built transcript."""

from __future__ import annotations

import json

import pytest

from npustream.errors import ConfigError
from npustream.subtitles import format_timestamp
from npustream.transcribe.formats import FORMATS, render
from npustream.types import Segment, Transcript, Word


def segment(start, end, text, words=None, no_speech_prob=0.01):
    return Segment(
        start=start, end=end, text=text, tokens=(1, 2), no_speech_prob=no_speech_prob,
        avg_logprob=-0.2, compression_ratio=1.1, temperature=0.0, words=words,
    )  # fmt: skip


TRANSCRIPT = Transcript(
    language="en",
    duration=3725.5,
    segments=(
        segment(0.0, 2.5, " And so, my fellow Americans,"),
        segment(2.5, 4.0, " ", no_speech_prob=0.9),  # nothing said: no cue, no line
        segment(
            3723.0004,
            3725.4996,
            " Q&A: x --> y <b>",
            words=(Word(3723.0004, 3724.0, " Q&A:", 0.75), Word(3724.0, 3725.4996, " x", 0.5)),
        ),
    ),
)


@pytest.mark.parametrize(
    "seconds, srt, vtt",
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.2346, "00:00:01,235", "00:00:01.235"),  # rounded, not truncated
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (3723.0004, "01:02:03,000", "01:02:03.000"),
        (36000.25, "10:00:00,250", "10:00:00.250"),
    ],
)
def test_format_timestamp(seconds, srt, vtt):
    assert format_timestamp(seconds, ",") == srt
    assert format_timestamp(seconds, ".") == vtt


def test_format_timestamp_rejects_negative_and_nan():
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError):
            format_timestamp(bad, ",")


def test_txt():
    assert render(TRANSCRIPT, "txt") == "And so, my fellow Americans,\nQ&A: x -> y <b>\n"


def test_srt():
    assert render(TRANSCRIPT, "srt") == (
        "1\n00:00:00,000 --> 00:00:02,500\nAnd so, my fellow Americans,\n"
        "\n"
        "2\n01:02:03,000 --> 01:02:05,500\nQ&A: x -> y <b>\n"
    )


def test_vtt():
    assert render(TRANSCRIPT, "vtt") == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\nAnd so, my fellow Americans,\n"
        "\n"
        "01:02:03.000 --> 01:02:05.500\nQ&amp;A: x -&gt; y &lt;b&gt;\n"
    )


def test_json():
    document = json.loads(render(TRANSCRIPT, "json"))
    assert document == {
        "language": "en",
        "duration": 3725.5,
        "text": "And so, my fellow Americans,  Q&A: x --> y <b>",
        "segments": [
            {"start": 0.0, "end": 2.5, "text": " And so, my fellow Americans,", "no_speech_prob": 0.01},
            {"start": 2.5, "end": 4.0, "text": " ", "no_speech_prob": 0.9},
            {
                "start": 3723.0004, "end": 3725.4996, "text": " Q&A: x --> y <b>", "no_speech_prob": 0.01,
                "words": [
                    {"start": 3723.0004, "end": 3724.0, "word": " Q&A:", "probability": 0.75},
                    {"start": 3724.0, "end": 3725.4996, "word": " x", "probability": 0.5},
                ],
            },
        ],
    }  # fmt: skip


def test_json_refuses_nan():
    broken = Transcript("en", 1.0, (segment(0.0, 1.0, " hi", no_speech_prob=float("nan")),))
    with pytest.raises(ValueError):
        render(broken, "json")


def test_empty_transcript():
    empty = Transcript("en", 0.0)
    assert render(empty, "txt") == ""
    assert render(empty, "srt") == ""
    assert render(empty, "vtt") == "WEBVTT\n"
    assert json.loads(render(empty, "json"))["segments"] == []


def test_unknown_format():
    assert FORMATS == ("txt", "srt", "vtt", "json")
    with pytest.raises(ConfigError, match="unknown output format 'docx'; choose one of txt, srt"):
        render(TRANSCRIPT, "docx")
