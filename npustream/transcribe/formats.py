"""Render a Transcript as plain text, SubRip (srt), WebVTT (vtt) or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from npustream.errors import ConfigError
from npustream.subtitles import VTT_HEADER, cue_text, srt_cue, vtt_cue
from npustream.types import Segment, Transcript


def _subtitle_segments(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.text.strip()]


def to_txt(transcript: Transcript) -> str:
    return "".join(f"{cue_text(s.text)}\n" for s in _subtitle_segments(transcript))


def to_srt(transcript: Transcript) -> str:
    segments = _subtitle_segments(transcript)
    return "\n".join(srt_cue(i, s.start, s.end, s.text) for i, s in enumerate(segments, start=1))


def to_vtt(transcript: Transcript) -> str:
    return "\n".join([VTT_HEADER] + [vtt_cue(s.start, s.end, s.text) for s in _subtitle_segments(transcript)])


def transcript_to_dict(transcript: Transcript) -> dict[str, Any]:
    """The JSON document as a plain dict (the segment and word text exactly as decoded)."""
    segments = []
    for s in transcript.segments:
        entry: dict[str, Any] = {
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "no_speech_prob": s.no_speech_prob,
        }
        if s.words is not None:
            entry["words"] = [
                {"start": w.start, "end": w.end, "word": w.word, "probability": w.probability}
                for w in s.words
            ]
        segments.append(entry)
    return {
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": segments,
    }


def to_json(transcript: Transcript) -> str:
    # allow_nan=False: a NaN would make the output invalid JSON, so fail loudly instead.
    document = transcript_to_dict(transcript)
    return json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2) + "\n"


RENDERERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
}
FORMATS = tuple(RENDERERS)


def render(transcript: Transcript, fmt: str) -> str:
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        choices = ", ".join(FORMATS)
        raise ConfigError(f"unknown output format {fmt!r}; choose one of {choices}") from None
    return renderer(transcript)
