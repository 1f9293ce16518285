"""Follow a daemon from a thread: connect, receive, notice silence, reconnect, forever.

`Follower.run()` hands every event to `deliver(kind, payload)` (called in the follower's
thread; the server passes it to its event loop):
    ("message", dict)      a wire message (caption, status or heartbeat; the ZeroMQ schema's JSON)
    ("connection", dict)   {"state": "connected" | "reconnecting", "message": str}
    ("gap", dict)          {"missed": n}: messages the daemon sent that never arrived

The daemon sends a heartbeat every second (by default): when nothing at all arrives for
SILENCE_S, or the daemon says it is stopping, the state is "reconnecting" until a message
comes again. A restarted daemon has a new stream_id; the client then takes a snapshot of
the new stream and its messages follow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from npustream import log
from npustream.client import END_STATES, Caption, Gap, Heartbeat, NewStream, Status, Subscriber
from npustream.errors import NpustreamError

logger = log.get(__name__)

SILENCE_S = 3.0  # no message (heartbeats included) for this long: the daemon is gone
RETRY_S = 1.0  # between attempts to reach a daemon that is not there
POLL_S = 0.25  # how often the thread looks at its stop flag while waiting

Deliver = Callable[[str, dict[str, Any]], None]


class Follower:
    def __init__(
        self,
        endpoint: str | None,
        control_endpoint: str | None,
        deliver: Deliver,
        connect_timeout: float = 2.0,
    ):
        self.endpoint, self.control_endpoint = endpoint, control_endpoint
        self.deliver = deliver
        self.connect_timeout = connect_timeout
        self.state = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="npustream-web-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _set_state(self, state: str, message: str) -> None:
        if state != self.state:
            self.state = state
            logger.info("daemon_connection", state=state, message=message)
            self.deliver("connection", {"state": state, "message": message})

    def run(self) -> None:
        while not self._stop.is_set():
            sub = Subscriber(
                self.endpoint,
                self.control_endpoint,
                status=True,
                heartbeats=True,
                follow=True,
                connect_timeout=self.connect_timeout,
            )
            try:
                sub.connect()
                self._set_state("connected", f"receiving captions from {sub.endpoint}")
                self._receive(sub)
            except NpustreamError as exc:  # no daemon yet, or it went away during a snapshot
                self._set_state("reconnecting", str(exc))
                self._stop.wait(RETRY_S)
            finally:
                sub.close()

    def _receive(self, sub: Subscriber) -> None:
        heard = time.monotonic()
        while not self._stop.is_set():
            event = sub.receive(timeout=POLL_S)
            now = time.monotonic()
            if event is None:
                if now - heard >= SILENCE_S:
                    self._set_state("reconnecting", f"nothing from the daemon for {now - heard:.0f} s")
                continue
            heard = now
            if isinstance(event, (Caption, Status, Heartbeat)):
                if isinstance(event, Status) and event.state in END_STATES:
                    self.deliver("message", event.raw)
                    self._set_state("reconnecting", f"the daemon said: {event.state} ({event.message})")
                    continue
                self._set_state("connected", f"receiving captions from {sub.endpoint}")
                self.deliver("message", event.raw)
            elif isinstance(event, Gap):
                logger.warning("messages_missed", missed=event.missed)
                self.deliver("gap", {"missed": event.missed})
            elif isinstance(event, NewStream):
                logger.info("new_stream", stream_id=event.stream_id)
