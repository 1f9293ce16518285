"""The publishing thread: it alone owns the ZeroMQ sockets (PUB for captions, ROUTER for
control requests, and the PUB socket's monitor), assigns `seq`, sends heartbeats, and keeps
the snapshot a late joiner asks for.

Because one thread both publishes and answers `snapshot`, a snapshot's `seq` is exactly the
last message sent before it: a subscriber that is already receiving, then asks for a snapshot,
drops messages with seq <= that and continues with no gap and no duplicate.

Other threads hand messages over with submit(): a queue plus a wake-up byte on a pipe the
poller watches, so the decoding thread never touches a socket and never waits for one.
A subscriber that does not read fills only its own queue (SNDHWM); PUB then drops messages
for that subscriber alone, and it sees the jump in seq.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from npustream import log
from npustream.errors import NpustreamError
from npustream.protocol import control
from npustream.protocol.messages import FINAL, HEARTBEAT, PARTIAL, encode

logger = log.get(__name__)

LINGER_MS = 1000  # on close, how long queued messages may still go out to live subscribers


def prepare_endpoint(endpoint: str) -> None:
    """ipc endpoints: create the socket's directory, private to this user."""
    if endpoint.startswith("ipc://"):
        path = Path(endpoint[6:])
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def remove_ipc_file(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        Path(endpoint[6:]).unlink(missing_ok=True)


class Publisher:
    def __init__(
        self,
        pub_endpoint: str,
        ctl_endpoint: str,
        *,
        stream_id: str,
        sndhwm: int,
        heartbeat: float,
        snapshot_finals: int,
        status: Callable[[], dict[str, Any]],
        heartbeat_body: Callable[[], dict[str, Any]],
    ):
        self.pub_endpoint, self.ctl_endpoint = pub_endpoint, ctl_endpoint
        self.stream_id = stream_id
        self.sndhwm, self.heartbeat = sndhwm, heartbeat
        self._status, self._heartbeat_body = status, heartbeat_body
        self.seq = 0  # seq of the last message sent (the first message has seq 1)
        self.subscribers = 0  # peers connected to the PUB socket (from its monitor)
        self.control_errors = 0  # malformed or oversized requests answered with an error
        self.recent_finals: deque[dict] = deque(maxlen=snapshot_finals)
        self.partial: dict | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="npustream-publisher", daemon=True)

    # -- called from other threads ----------------------------------------------------------
    def start(self) -> None:
        """Bind both sockets (in the publishing thread); raise here if either cannot bind."""
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def submit(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Queue messages to publish, in order and back to back (never split by a snapshot)."""
        if messages:
            self._queue.put(messages)
            self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish everything submitted so far, then close the sockets."""
        self._stop.set()
        self._wake()
        self._thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    # -- the publishing thread --------------------------------------------------------------
    def _run(self) -> None:
        ctx = zmq.Context()
        try:
            pub, ctl, monitor = self._bind(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the calling thread
            self._error = exc
            self._bound.set()
            ctx.term()
            return
        self._bound.set()
        poller = zmq.Poller()
        poller.register(ctl, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(max(0, int((next_beat - time.monotonic()) * 1000)) + 1))
                if self._wake_r in ready:
                    self._drain_wake()
                self._publish_queued(pub)
                if monitor in ready:
                    self._count_subscribers(monitor)
                if ctl in ready:
                    self._serve(ctl)
                if time.monotonic() >= next_beat:
                    self._send(pub, HEARTBEAT, self._heartbeat_body())
                    next_beat = max(next_beat + self.heartbeat, time.monotonic())
            self._publish_queued(pub)
        except Exception:  # noqa: BLE001 - logged; the daemon notices the dead thread
            logger.exception("publisher_failed")
        finally:
            pub.disable_monitor()
            for sock in (monitor, ctl, pub):
                sock.close(linger=LINGER_MS if sock is pub else 0)
            ctx.term()
            for endpoint in (self.pub_endpoint, self.ctl_endpoint):
                remove_ipc_file(endpoint)

    def _bind(self, ctx: zmq.Context):
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, self.sndhwm)
        ctl = ctx.socket(zmq.ROUTER)
        ctl.setsockopt(zmq.MAXMSGSIZE, control.MAX_WIRE_BYTES)
        ctl.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a requester gone before its reply: drop it
        for sock, endpoint, what in (
            (pub, self.pub_endpoint, "publish"),
            (ctl, self.ctl_endpoint, "control"),
        ):
            prepare_endpoint(endpoint)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                pub.close(0)
                ctl.close(0)
                raise NpustreamError(f"cannot bind the {what} socket to {endpoint}: {exc}") from None
        monitor = pub.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        logger.info("sockets_bound", pub=self.pub_endpoint, ctl=self.ctl_endpoint)
        return pub, ctl, monitor

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _publish_queued(self, pub) -> None:
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                return
            for topic, body in batch:
                self._send(pub, topic, body)

    def _send(self, pub, topic: str, body: dict[str, Any]) -> None:
        self.seq += 1
        frames, message = encode(topic, body, self.stream_id, self.seq)
        pub.send_multipart(frames)  # PUB never blocks: a full subscriber queue drops for that one
        if topic == FINAL:
            self.recent_finals.append(message)
            if message.get("segment_end"):
                self.partial = None
        elif topic == PARTIAL:
            self.partial = message if message["text"] else None

    def _count_subscribers(self, monitor) -> None:
        while monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_ACCEPTED:
                self.subscribers += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.subscribers = max(0, self.subscribers - 1)

    def _serve(self, ctl) -> None:
        while True:
            try:
                frames = ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            envelope, body = control.split_envelope(frames)
            cmd, error = (
                control.parse_request(body) if body is not None else (None, "malformed request frames")
            )
            if error:
                self.control_errors += 1
                logger.warning("control_request_rejected", error=error)
                answer = control.reply(error=error)
            elif cmd == "status":
                answer = control.reply(
                    "status",
                    seq=self.seq,
                    stream_id=self.stream_id,
                    subscribers=self.subscribers,
                    **self._status(),
                )
            else:
                answer = control.reply(
                    "snapshot",
                    seq=self.seq,
                    stream_id=self.stream_id,
                    finals=list(self.recent_finals),
                    partial=self.partial,
                )
            try:
                ctl.send_multipart(envelope + [answer], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                logger.warning("control_reply_failed", error=str(exc))
