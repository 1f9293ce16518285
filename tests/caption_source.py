"""A daemon without a model, for tests of caption consumers: the real Publisher (the daemon's
own sockets, seq, heartbeats and snapshots) publishing captions the test chooses."""

from __future__ import annotations

import time
import uuid
from typing import Any

from npustream.protocol.messages import FINAL, PARTIAL, STATUS
from npustream.stream.publisher import Publisher


class CaptionSource:
    def __init__(self, pub: str, ctl: str, heartbeat: float = 0.5, stream_start: float | None = None):
        self.stream_start = time.time() if stream_start is None else stream_start
        self.stream_id = uuid.uuid4().hex[:16]
        self.publisher = Publisher(
            pub,
            ctl,
            stream_id=self.stream_id,
            sndhwm=1000,
            heartbeat=heartbeat,
            snapshot_finals=50,
            status=lambda: {"pid": 0},
            heartbeat_body=self._heartbeat,
        )
        self.segment_id = 0

    def _heartbeat(self) -> dict[str, Any]:
        return {
            "uptime": 0.0,
            "lag": 0.0,
            "stream_time": round(time.time() - self.stream_start, 3),
            "source_state": "running",
            "finals": 0,
            "partials": 0,
            "stream_start": self.stream_start,
        }

    def start(self) -> CaptionSource:
        self.publisher.start()
        self.status("running", "test captions")
        return self

    def status(self, state: str, message: str) -> None:
        self.publisher.submit(
            [
                (
                    STATUS,
                    {
                        "state": state,
                        "message": message,
                        "source": "test",
                        "engine": None,
                        "stream_start": self.stream_start,
                    },
                )
            ]
        )

    def _body(self, text: str, start: float, end: float, **extra) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "text": text,
            "start": start,
            "end": end,
            "stream_start": self.stream_start,
            "language": "en",
            "language_probability": None,
            **extra,
        }

    def partial(self, text: str, start: float, end: float, revision: int = 1) -> None:
        self.publisher.submit([(PARTIAL, self._body(text, start, end, revision=revision))])

    def final(self, text: str, start: float, end: float, segment_end: bool = True) -> None:
        self.publisher.submit([(FINAL, self._body(text, start, end, segment_end=segment_end))])
        if segment_end:
            self.segment_id += 1

    def stop(self) -> None:
        self.status("stopping", "stopped by the test")
        self.publisher.stop()
