"""Captions as a person reads them, for `npustream subscribe` and `npustream run --echo`.

text, on a terminal: the open utterance is one line rewritten in place (final words, then the
partial tail dimmed); when the utterance ends the line stays and the next one starts below.
text, not a terminal: one line per finished utterance. json: one message per line.
"""

from __future__ import annotations

import json
import shutil
from typing import Any, TextIO

from npustream.protocol.messages import FINAL, HEARTBEAT, PARTIAL

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
            self._finals = f"{self._finals} {message['text']}".strip()
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
            self._finals = f"{self._finals} {self._partial}".strip()
            self._partial = ""
            self._end_line()
