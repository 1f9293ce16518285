"""SubRip (srt) and WebVTT (vtt) cues, one at a time.

The rules every subtitle npustream writes follows, for whole transcripts
(transcribe/formats.py) and for live captions written as they become final (render.py):
timestamps HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT) rounded to the millisecond; cue
text on one line, with no "-->" (it would read as a timing line); WebVTT text escaped (it is
markup there: "<b>" would be a tag). A cue is complete text that ends with a newline; cues
are separated by one blank line.
"""

from __future__ import annotations

import math

VTT_HEADER = "WEBVTT\n"


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """HH:MM:SS<marker>mmm, rounded to the millisecond ('.' for WebVTT, ',' for SubRip)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp must be a non-negative number of seconds, got {seconds}")
    total_ms = round(seconds * 1000.0)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def cue_text(text: str) -> str:
    """One line of plain text: a cue ends at a blank line and its timing line is found by "-->",
    so neither may leak in."""
    return " ".join(text.split()).replace("-->", "->")


def srt_cue(index: int, start: float, end: float, text: str) -> str:
    return f"{index}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{cue_text(text)}\n"


def vtt_cue(start: float, end: float, text: str) -> str:
    escaped = cue_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n{escaped}\n"
