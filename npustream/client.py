"""Receive live captions from a running `npustream run` daemon.

    from npustream.client import Subscriber
    for caption in Subscriber():
        print(caption.kind, caption.text)

A Subscriber connects to the daemon's PUB socket, waits until messages flow, asks the control
socket for a snapshot (recent finals and the current partial), yields those first and then
every caption in order. Every message carries a seq one higher than the previous: when
messages were lost (a subscriber too slow for its queue), a Gap event says how many.
Iteration ends when the daemon's stream ends (it publishes a last status message); pass
follow=True to wait for the next stream instead (a restarted daemon: a NewStream event).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import zmq

from npustream.errors import NpustreamError
from npustream.protocol import control, messages
from npustream.protocol.endpoints import default_ctl, default_pub

END_STATES = ("stopping", "source_ended")
# A wait for messages wakes this often: a signal (Ctrl-C) that woke no system call in the main
# thread is handled within this time instead of when the next message comes (maybe never).
POLL_SLICE_S = 0.5


@dataclass(frozen=True)
class WordTiming:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Caption:
    kind: str  # "partial" or "final"
    text: str
    start: float | None  # seconds from the stream start (None: an empty caption)
    end: float | None
    segment_id: int
    revision: int | None  # partials
    segment_end: bool  # finals: the utterance is complete
    words: tuple[WordTiming, ...]
    seq: int
    stream_id: str
    stream_start: float  # wall-clock time of stream time 0
    time: float  # wall-clock time the daemon published it
    from_snapshot: bool = False
    language: str | None = None  # schema 1.1; None from a daemon that does not send it
    language_probability: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the wire message

    @property
    def final(self) -> bool:
        return self.kind == "final"


class _NotACaption:
    """Every event has `kind` and `text`, so a loop that prints captions needs no type checks."""

    kind: ClassVar[str]
    text: ClassVar[str] = ""
    final: ClassVar[bool] = False


@dataclass(frozen=True)
class Gap(_NotACaption):
    kind: ClassVar[str] = "gap"
    missed: int  # messages lost between the two seqs
    last_seq: int
    next_seq: int


@dataclass(frozen=True)
class Status(_NotACaption):
    kind: ClassVar[str] = "status"
    state: str  # running, source_lost, source_restored, source_ended, stopping
    message: str
    seq: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class Heartbeat(_NotACaption):
    kind: ClassVar[str] = "heartbeat"
    seq: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class NewStream(_NotACaption):
    kind: ClassVar[str] = "new_stream"
    stream_id: str  # the daemon restarted: seq starts over


Event = Caption | Gap | Status | Heartbeat | NewStream


def caption_from(message: dict[str, Any], from_snapshot: bool = False) -> Caption:
    words = tuple(
        WordTiming(w["word"], w["start"], w["end"], w["probability"]) for w in message.get("words", ())
    )
    return Caption(
        kind="final" if message["type"] == messages.FINAL else "partial",
        text=message["text"],
        start=message["start"],
        end=message["end"],
        segment_id=message["segment_id"],
        revision=message.get("revision"),
        segment_end=bool(message.get("segment_end")),
        words=words,
        seq=message["seq"],
        stream_id=message["stream_id"],
        stream_start=message["stream_start"],
        time=message["time"],
        from_snapshot=from_snapshot,
        language=message.get("language"),
        language_probability=message.get("language_probability"),
        raw=message,
    )


class Subscriber:
    def __init__(
        self,
        endpoint: str | None = None,
        control_endpoint: str | None = None,
        *,
        snapshot: bool = True,
        status: bool = False,
        heartbeats: bool = False,
        follow: bool = False,
        connect_timeout: float = 5.0,
        rcvhwm: int = 10000,
    ):
        self.endpoint = endpoint or default_pub()
        self.control_endpoint = control_endpoint or default_ctl()
        self.snapshot, self.want_status, self.want_heartbeats = snapshot, status, heartbeats
        self.follow, self.connect_timeout, self.rcvhwm = follow, connect_timeout, rcvhwm
        self.stream_id: str | None = None
        self.last_seq = 0
        self.gaps = 0  # messages reported missing so far
        self.ended = False
        self._sock: zmq.Socket | None = None
        self._ready: list[Event] = []

    # -- connection ---------------------------------------------------------------------------
    def connect(self) -> Subscriber:
        if self._sock is not None:
            return self
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")  # every topic: seq is counted across all of them
        self._sock.connect(self.endpoint)
        # The first message proves the subscription is live (heartbeats come every second);
        # only then is a snapshot sure to be followed by every later message.
        first = self._recv(self.connect_timeout)
        if first is None:
            self.close()
            raise control.DaemonUnreachable(
                f"no npustream daemon is publishing on {self.endpoint} "
                f"(nothing received in {self.connect_timeout:g} s)"
            )
        self._start_stream(first)
        return self

    def _start_stream(self, first: dict[str, Any]) -> None:
        self.stream_id = first["stream_id"]
        self.last_seq = first["seq"] - 1
        pending = [first]
        if self.snapshot:
            snap = control.request(self.control_endpoint, "snapshot", timeout=self.connect_timeout)
            if not snap.get("ok"):
                raise NpustreamError(f"snapshot refused by the daemon: {snap.get('error')}")
            if snap["stream_id"] != self.stream_id:
                raise NpustreamError(
                    f"{self.control_endpoint} belongs to another daemon than {self.endpoint}"
                )
            for m in snap["finals"] + ([snap["partial"]] if snap["partial"] else []):
                self._ready.append(caption_from(m, from_snapshot=True))
            self.last_seq = max(self.last_seq, snap["seq"])
        for message in pending:
            self._accept(message)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Subscriber:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- receiving ----------------------------------------------------------------------------
    def _recv(self, timeout: float | None) -> dict[str, Any] | None:
        """The next well-formed message, or None after `timeout` seconds (None: wait forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = (
                POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, max(0.0, deadline - time.monotonic()))
            )
            if not self._sock.poll(int(left * 1000)):
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            try:
                return messages.decode(self._sock.recv_multipart())
            except ValueError:
                continue  # not ours (a foreign publisher on the endpoint): ignore it

    def _accept(self, message: dict[str, Any]) -> None:
        """Turn one received message into events, checking stream and seq."""
        if message["stream_id"] != self.stream_id:
            self._ready.append(NewStream(message["stream_id"]))
            self._start_stream(message)
            return
        seq = message["seq"]
        if seq <= self.last_seq:
            return  # already covered by the snapshot
        if seq > self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
            self._ready.append(Gap(seq - self.last_seq - 1, self.last_seq, seq))
        self.last_seq = seq
        kind = message["type"]
        if kind in (messages.FINAL, messages.PARTIAL):
            self._ready.append(caption_from(message))
        elif kind == messages.STATUS:
            if self.want_status:
                self._ready.append(Status(message["state"], message.get("message", ""), seq, message))
            if message["state"] in END_STATES and not self.follow:
                self.ended = True
        elif self.want_heartbeats:
            self._ready.append(Heartbeat(seq, message))

    def receive(self, timeout: float | None = None) -> Event | None:
        """The next event; None when `timeout` passes first or the stream has ended."""
        self.connect()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self.ended:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            message = self._recv(left)
            if message is None:
                return None
            self._accept(message)
        return self._ready.pop(0)

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.receive()
            if event is None:
                return
            yield event
