"""Captions as a person reads them, for `npustream subscribe` and `npustream run --echo`.

text, on a terminal: the open utterance is one line rewritten in place (final words, then the
partial tail dimmed); when the utterance ends the line stays and the next one starts below.
text, not a terminal: one line per finished utterance. json: one message per line.

TranscriptWriter: final captions as a file (`subscribe --format srt|vtt|txt|json --output`, the
web page's downloads): each caption is written whole and flushed as soon as it is complete (a
SubRip/WebVTT cue when the next final arrives or its utterance ends: a sentence's mark may still
join it), so the file is valid between any two captions (a crash loses at most the newest
caption). Partials are never written: a file keeps only what will not change.
"""

from __future__ import annotations

import json
import shutil
from typing import Any, TextIO

from npustream.protocol.messages import FINAL, HEARTBEAT, PARTIAL, STATUS
from npustream.subtitles import VTT_HEADER, cue_text, srt_cue, vtt_cue
from npustream.types import MARKS, join_text, space_before

DIM, RESET, CLEAR_LINE = "\x1b[2m", "\x1b[0m", "\r\x1b[K"


class CaptionPrinter:
    def __init__(self, out: TextIO, fmt: str = "text", finals_only: bool = False, live: bool | None = None):
        if fmt not in ("text", "json"):
            raise ValueError(f"format must be text or json, got {fmt!r}")
        self.out, self.fmt, self.finals_only = out, fmt, finals_only
        self.live = out.isatty() if live is None else live
        self._finals = ""  # final text of the open utterance
        self._partial = ""

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.fmt == "json":
            if kind != HEARTBEAT and not (self.finals_only and kind == PARTIAL):
                self.out.write(json.dumps(message, ensure_ascii=False) + "\n")
                self.out.flush()
            return
        if kind == FINAL:
            self._finals = join_text(self._finals, message["text"])
            if message.get("segment_end"):
                self._partial = ""
                self._end_line()
                return
        elif kind == PARTIAL and not self.finals_only:
            self._partial = message["text"]
        else:
            return
        if self.live:
            self._redraw()

    def _redraw(self) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)
        finals, partial, prefix = self._finals, self._partial, ""
        overflow = len(finals) + 1 + len(partial) - width
        if overflow > 0:  # keep to one row so \r can rewrite it: show the newest text
            prefix = "…"
            drop_finals = min(len(finals), overflow + 1)
            finals = finals[drop_finals:]
            partial = partial[max(0, overflow + 1 - drop_finals) :]
        tail = f" {DIM}{partial}{RESET}" if partial else ""
        self.out.write(f"{CLEAR_LINE}{prefix}{finals}{tail}")
        self.out.flush()

    def _end_line(self) -> None:
        if self.live:
            self.out.write(f"{CLEAR_LINE}{self._finals}\n")
        elif self._finals:
            self.out.write(self._finals + "\n")
        self.out.flush()
        self._finals = ""

    def close(self) -> None:
        """Show what is still open (a stream cut mid-utterance)."""
        if self.fmt == "text" and (self._finals or self._partial):
            self._finals = join_text(self._finals, self._partial)
            self._partial = ""
            self._end_line()


TRANSCRIPT_FORMATS = ("srt", "vtt", "txt", "json")


class TranscriptWriter:
    """Final captions as srt, vtt, txt (one line per utterance) or json (one final or status
    message per line). Cue times are seconds from the first caption's stream start, so a
    restarted daemon's captions continue the same timeline (by wall clock) instead of
    starting over at zero; they never go backwards (WebVTT requires that)."""

    def __init__(self, out: TextIO, fmt: str):
        if fmt not in TRANSCRIPT_FORMATS:
            raise ValueError(f"transcript format must be one of {', '.join(TRANSCRIPT_FORMATS)}, got {fmt!r}")
        self.out, self.fmt = out, fmt
        self.cues = 0
        self._origin: float | None = None  # wall-clock time of the file's 00:00:00
        self._last_start = 0.0
        self._open_line = None  # txt: (stream_id, segment_id) of the utterance on the current line
        self._cue: tuple[float, float, str] | None = None  # srt/vtt: the newest cue, not yet written
        if fmt == "vtt":
            self._write(VTT_HEADER + "\n")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.fmt == "json":
            if kind in (FINAL, STATUS):
                self._write(json.dumps(message, ensure_ascii=False) + "\n")
            return
        if kind != FINAL:
            return
        if self.fmt == "txt":
            self._txt(message)
            return
        text = cue_text(message["text"])
        marks = len(text) - len(text.lstrip(MARKS))
        if marks and self._cue is not None:  # a held mark ends the newest cue's text
            start, end, held = self._cue
            self._cue = (start, end, held + text[:marks])
            text = text[marks:].strip()
        if text and message["start"] is not None:
            self._write_cue()
            if self._origin is None:
                self._origin = message["stream_start"]
            start = max(self._last_start, message["stream_start"] + message["start"] - self._origin)
            self._cue = (start, start + max(0.0, message["end"] - message["start"]), text)
            self._last_start = start
        if message.get("segment_end"):
            self._write_cue()

    def _write_cue(self) -> None:
        if self._cue is None:
            return
        start, end, text = self._cue
        self._cue = None
        self.cues += 1
        if self.fmt == "srt":
            self._write(srt_cue(self.cues, start, end, text) + "\n")
        else:
            self._write(vtt_cue(start, end, text) + "\n")

    def _txt(self, message: dict[str, Any]) -> None:
        utterance = (message["stream_id"], message["segment_id"])
        text = cue_text(message["text"])
        if self._open_line is not None and self._open_line != utterance:
            self._write("\n")  # the previous utterance was cut off (a restarted daemon)
            self._open_line = None
        if text:
            self._write(text if self._open_line is None else space_before(text) + text)
            self._open_line = utterance
            self.cues += 1
        if message.get("segment_end") and self._open_line is not None:
            self._write("\n")
            self._open_line = None

    def close(self) -> None:
        self._write_cue()
        if self._open_line is not None:
            self._write("\n")
            self._open_line = None
