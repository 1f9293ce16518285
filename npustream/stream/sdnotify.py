"""The sd_notify protocol: one datagram of `KEY=VALUE` lines to the AF_UNIX socket named by
$NOTIFY_SOCKET (a path, or an abstract-namespace name written with a leading '@').

systemd sets NOTIFY_SOCKET for `Type=notify` units and WATCHDOG_USEC (plus WATCHDOG_PID) when
`WatchdogSec=` is set. Without NOTIFY_SOCKET every method is a no-op, so the daemon calls the
same code under systemd, in a terminal, and in tests."""

from __future__ import annotations

import os
import socket
import threading

from npustream import log

logger = log.get(__name__)


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # the processing loop and the main thread both send
        self._failed = False
        if address:
            if not address.startswith(("/", "@")):
                # systemd >= 254 also accepts vsock:CID:PORT (for VMs); npustream runs on the host.
                logger.warning("sd_notify.unsupported_address", address=address)
                self.address = None
                return
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None, _watchdog_usec_for_this_process(env))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send one message; True when it was delivered. A failure is logged once, never raised:
        losing a status line must not take the daemon down (the watchdog catches a dead socket).
        Never waits: a receiver that does not read (its queue holds 10 datagrams by default)
        must not stall the processing loop or a capture supervisor."""
        if self._sock is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        payload = "\n".join(lines).encode()
        try:
            with self._lock:
                self._sock.sendto(payload, socket.MSG_DONTWAIT, target)
        except OSError as exc:
            if not self._failed:
                logger.warning("sd_notify.send_failed", address=self.address, error=str(exc))
                self._failed = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1"]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        lines = ["STOPPING=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        return self.notify(*lines)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up (or stop) time, e.g. while an xclbin loads or a model warms up."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half the timeout, as sd_watchdog_enabled(3) advises.
        None when no watchdog applies to this process."""
        if self._sock is None or not self._watchdog_usec:
            return None
        return self._watchdog_usec / 2e6

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec_for_this_process(env) -> int | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # the watchdog is meant for another process (e.g. a wrapper that exec'd us)
    return usec


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment in the datagram.
    return " ".join(str(text).split("\n"))
