"""What the web pages show, kept for the life of `npustream web`: every final caption of the
session (across daemon restarts, up to MAX_FINALS), the open partial, and the connection state.

A browser that connects (or reconnects) gets `replay()`: the state, the finals, the partial;
then every new event. Finals are kept once: a snapshot after a reconnect repeats messages
already held, recognised by (stream_id, seq).
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any

from npustream.protocol.messages import FINAL, PARTIAL
from npustream.render import TranscriptWriter

MAX_FINALS = 20_000  # ~ a day of continuous speech (< 1 kB each); older ones leave the page and downloads
Event = tuple[str, dict[str, Any]]  # (SSE event name, JSON body); name "message" for wire messages


class Session:
    def __init__(self, max_finals: int = MAX_FINALS):
        self.finals: deque[dict[str, Any]] = deque(maxlen=max_finals)
        self.partial: dict[str, Any] | None = None
        self.connection: dict[str, Any] = {"state": "connecting", "message": "looking for the daemon"}
        self.missed = 0  # messages reported lost between the daemon and this server
        self._last_seq: dict[str, int] = {}  # per stream: the newest caption kept

    def accept(self, kind: str, body: dict[str, Any]) -> bool:
        """Take one event from the follower; False when it repeats one already taken."""
        if kind == "connection":
            self.connection = body
            return True
        if kind == "gap":
            self.missed += body["missed"]
            return True
        mtype = body.get("type")
        if mtype in (FINAL, PARTIAL):
            stream, seq = body["stream_id"], body["seq"]
            if seq <= self._last_seq.get(stream, 0):
                return False
            self._last_seq[stream] = seq
            if mtype == FINAL:
                self.finals.append(body)
                if body.get("segment_end") or (self.partial and self.partial["stream_id"] != stream):
                    self.partial = None
            else:
                self.partial = body if body["text"] else None
        return True

    def replay(self) -> list[Event]:
        events: list[Event] = [("connection", self.connection)]
        events += [("message", m) for m in self.finals]
        if self.partial is not None:
            events.append(("message", self.partial))
        return events

    def transcript(self, fmt: str) -> str:
        """The session's finals as srt or txt (the downloads)."""
        out = io.StringIO()
        writer = TranscriptWriter(out, fmt)
        for message in self.finals:
            writer.handle(message)
        writer.close()
        return out.getvalue()
