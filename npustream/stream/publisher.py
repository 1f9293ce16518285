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

Control traffic never holds up captions and heartbeats: each loop turn answers at most
CONTROL_PER_TURN requests (libzmq's ROUTER takes them from its clients in turn, so one client
that floods gets its share, not the turn), then publishes what is queued. A reply that cannot
be delivered at once (a client that does not read, or has left) is dropped and counted. A frame
over MAX_WIRE_BYTES is refused by libzmq before it is read whole: the connection is closed; the
control socket's monitor counts connections that close before a whole request came
(`control_hangups`).

Socket files: an ipc endpoint's file is removed on exit only when it is still the one this
process bound (same inode): a second daemon that replaced it, or a file this process never
bound, is left alone.
"""

from __future__ import annotations

import os
import queue
import socket
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
CONTROL_PER_TURN = 32  # control requests answered per loop turn before publishing gets its turn
REJECTION_LOG_EVERY = 1.0  # s: at most one log line about malformed control requests per this


def prepare_endpoint(endpoint: str) -> None:
    """ipc endpoints: create the socket's directory, private to this user."""
    if endpoint.startswith("ipc://"):
        path = Path(endpoint[6:])
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def serving(endpoint: str) -> bool:
    """Whether a live process listens on this ipc endpoint (a stale socket file refuses the
    connection). Other transports: False (binding a tcp port in use fails by itself)."""
    if not endpoint.startswith("ipc://"):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.settimeout(1.0)
        probe.connect(endpoint[6:])
    except OSError:
        return False
    finally:
        probe.close()
    return True


class SocketFile:
    """The file an ipc bind created, remembered by inode, so that exit removes only that."""

    def __init__(self, endpoint: str):
        self.path = Path(endpoint[6:]) if endpoint.startswith("ipc://") else None
        self._id = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat() if self.path else None
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if st else None

    def remove(self) -> None:
        if self._id is not None and self._identity() == self._id:
            self.path.unlink(missing_ok=True)
        elif self.path is not None:
            logger.warning("socket_file_kept", path=str(self.path), reason="not the file this process bound")


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
        self.control_replies_dropped = 0  # replies not deliverable at once (client not reading, or gone)
        self.control_hangups = 0  # connections closed before a whole request (oversized frames among them)
        self._ctl_spoke: dict[int, bool] = {}  # open control connection fd -> a request came from it
        self._ctl_closing: dict[int, bool] = {}  # the same for connections closed since the last count
        self._snapshot: tuple[int, bytes] | None = None  # (seq, reply): unchanged until the next message
        self._files: list[SocketFile] = []
        self._rejection_logged = -REJECTION_LOG_EVERY  # monotonic s of the last such log line
        self._rejections_at_log = 0
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
            pub, ctl, monitor, ctl_monitor = self._bind(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the calling thread
            ctx.destroy(linger=0)  # closes whatever was opened: term() would wait for it forever
            self._remove_files()
            self._error = exc
            self._bound.set()
            return
        self._bound.set()
        poller = zmq.Poller()
        for sock in (ctl, monitor, ctl_monitor, self._wake_r):
            poller.register(sock, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(max(0, int((next_beat - time.monotonic()) * 1000)) + 1))
                if self._wake_r in ready:
                    self._drain_wake()
                self._publish_queued(pub)
                if monitor in ready:
                    self._count_subscribers(monitor)
                if ctl_monitor in ready:
                    self._track_control_connections(ctl_monitor)
                if ctl in ready:
                    self._serve(ctl, ctl_monitor)
                if self._ctl_closing and not ctl.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    self._count_hangups()  # every request that came before the close has been read
                if time.monotonic() >= next_beat:
                    self._send(pub, HEARTBEAT, self._heartbeat_body())
                    next_beat = max(next_beat + self.heartbeat, time.monotonic())
            self._publish_queued(pub)
        except Exception:  # noqa: BLE001 - logged; the daemon notices the dead thread
            logger.exception("publisher_failed")
        finally:
            pub.disable_monitor()
            ctl.disable_monitor()
            for sock in (monitor, ctl_monitor, ctl, pub):
                sock.close(linger=LINGER_MS if sock is pub else 0)
            ctx.term()
            self._remove_files()

    def _remove_files(self) -> None:
        for file in self._files:
            file.remove()

    def _bind(self, ctx: zmq.Context):
        """Both sockets configured and bound, with their monitors. Any failure (an option
        libzmq refuses, an endpoint in use) is one NpustreamError; the caller closes the rest."""
        what, endpoint = "publish", self.pub_endpoint
        try:
            pub = ctx.socket(zmq.PUB)
            pub.setsockopt(zmq.SNDHWM, self.sndhwm)
            ctl = ctx.socket(zmq.ROUTER)
            ctl.setsockopt(zmq.MAXMSGSIZE, control.MAX_WIRE_BYTES)
            # Unroutable or undeliverable replies raise (and are counted) instead of vanishing.
            ctl.setsockopt(zmq.ROUTER_MANDATORY, 1)
            for sock, name, address in (
                (pub, "publish", self.pub_endpoint),
                (ctl, "control", self.ctl_endpoint),
            ):
                what, endpoint = name, address
                prepare_endpoint(endpoint)
                sock.bind(endpoint)
                self._files.append(SocketFile(endpoint))
            monitor = pub.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
            ctl_monitor = ctl.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        except (zmq.ZMQError, OverflowError, ValueError, TypeError, OSError) as exc:
            raise NpustreamError(f"cannot set up the {what} socket on {endpoint}: {exc}") from None
        logger.info("sockets_bound", pub=self.pub_endpoint, ctl=self.ctl_endpoint)
        return pub, ctl, monitor, ctl_monitor

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

    def _track_control_connections(self, ctl_monitor) -> None:
        """Control connections by file descriptor (the monitor's event value, and each
        request's SRCFD): open ones, and closed ones whose requests may still be queued."""
        while ctl_monitor.poll(0):
            event = recv_monitor_message(ctl_monitor)
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._ctl_spoke[fd] = False
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._ctl_closing[fd] = self._ctl_spoke.pop(fd, True)

    def _count_hangups(self) -> None:
        """Connections that closed before a whole request came from them: libzmq's answer to
        a frame over MAX_WIRE_BYTES (and a client that left without asking)."""
        hangups = sum(not spoke for spoke in self._ctl_closing.values())
        self._ctl_closing.clear()
        if hangups:
            self.control_hangups += hangups
            logger.warning(
                "control_connections_dropped",
                count=hangups,
                limit_bytes=control.MAX_WIRE_BYTES,
                reason="closed before a whole request arrived",
            )

    def _mark_spoken(self, fd: int, ctl_monitor) -> None:
        if fd not in self._ctl_spoke and fd not in self._ctl_closing:
            self._track_control_connections(ctl_monitor)  # its ACCEPTED came after this turn's look
        if fd in self._ctl_spoke:
            self._ctl_spoke[fd] = True
        elif fd in self._ctl_closing:
            self._ctl_closing[fd] = True

    def _serve(self, ctl, ctl_monitor) -> None:
        for _ in range(CONTROL_PER_TURN):
            try:
                parts = ctl.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._mark_spoken(parts[0].get(zmq.SRCFD), ctl_monitor)
            envelope, body = control.split_envelope([p.bytes for p in parts])
            cmd, error = (
                control.parse_request(body) if body is not None else (None, "malformed request frames")
            )
            if error:
                self._log_rejection(error)
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
                answer = self._snapshot_reply()
            try:
                ctl.send_multipart(envelope + [answer], zmq.NOBLOCK)
            except zmq.ZMQError:  # EAGAIN: its queue is full (it does not read); EHOSTUNREACH: gone
                self.control_replies_dropped += 1

    def _log_rejection(self, error: str) -> None:
        """Count every malformed request; log at most one line per REJECTION_LOG_EVERY (a flood
        of them must not flood the journal too)."""
        self.control_errors += 1
        now = time.monotonic()
        if now - self._rejection_logged >= REJECTION_LOG_EVERY:
            logger.warning(
                "control_request_rejected",
                error=error,
                since_last_line=self.control_errors - self._rejections_at_log,
            )
            self._rejection_logged, self._rejections_at_log = now, self.control_errors

    def _snapshot_reply(self) -> bytes:
        """The snapshot as of the last message sent; built once per seq (a flood of snapshot
        requests costs a send each, not an encoding each)."""
        if self._snapshot is None or self._snapshot[0] != self.seq:
            reply = control.reply(
                "snapshot",
                seq=self.seq,
                stream_id=self.stream_id,
                finals=list(self.recent_finals),
                partial=self.partial,
            )
            self._snapshot = (self.seq, reply)
        return self._snapshot[1]
