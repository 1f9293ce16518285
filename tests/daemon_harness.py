"""Run the real `npustream run` as systemd would: a NOTIFY_SOCKET this test owns (so READY=1 says
when it is serving), plus a ZeroMQ subscriber that records every message it publishes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

from npustream.protocol.messages import decode
from npustream.types import join_texts

READY_TIMEOUT = 180.0  # model load on a busy 2-core machine, first run assembles the model


def parse_notify(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket that receives KEY=VALUE messages."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = str(path)

    def next(self, timeout: float) -> tuple[float, dict[str, str]] | None:
        self.sock.settimeout(timeout)
        try:
            return time.monotonic(), parse_notify(self.sock.recv(4096))
        except TimeoutError:
            return None

    def drain(self) -> list[dict[str, str]]:
        """Messages already waiting (sent before now)."""
        got = []
        self.sock.setblocking(False)
        try:
            while True:
                got.append(parse_notify(self.sock.recv(4096)))
        except BlockingIOError:
            return got

    def collect(self, seconds: float) -> list[tuple[float, dict[str, str]]]:
        end, got = time.monotonic() + seconds, []
        while (left := end - time.monotonic()) > 0:
            if (message := self.next(left)) is not None:
                got.append(message)
        return got

    def close(self) -> None:
        self.sock.close()


class Recorder(threading.Thread):
    """A SUB socket on every topic, connected before the daemon binds, so nothing is missed."""

    def __init__(self, endpoint: str):
        super().__init__(name="test-subscriber", daemon=True)
        self.messages: list[dict] = []
        self.endpoint = endpoint
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.endpoint)
        try:
            while not self._stop_event.is_set():
                if sub.poll(100):
                    message = decode(sub.recv_multipart())
                    message["received"] = time.monotonic()
                    with self._lock:
                        self.messages.append(message)
        finally:
            sub.close()

    def of(self, *topics: str) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if m["type"] in topics]

    def wait_for(self, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = next((m for m in self.messages if predicate(m)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"no {what} within {timeout:g} s; last messages: {json.dumps(self.messages[-5:])[:1500]}"
        )

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


class Daemon:
    def __init__(
        self,
        tmp_path: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        watchdog_usec: int | None = None,
    ):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.pub = f"ipc://{tmp_path}/captions.sock"
        self.ctl = f"ipc://{tmp_path}/control.sock"
        self.log_path = tmp_path / "daemon.log"
        self.notify = NotifyListener(tmp_path / "notify")
        self.recorder = Recorder(self.pub)
        self.recorder.start()
        full_env = {**os.environ, **(env or {}), "NOTIFY_SOCKET": self.notify.path}
        if watchdog_usec:
            full_env["WATCHDOG_USEC"] = str(watchdog_usec)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "npustream", "run", "--pub", self.pub, "--ctl", self.ctl, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=full_env,
            )

    def wait_ready(self) -> list[dict[str, str]]:
        """Notify messages up to and including READY=1."""
        before = []
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            message = self.notify.next(timeout=1.0)
            if message is not None:
                before.append(message[1])
                if message[1].get("READY") == "1":
                    return before
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}): {self.log_tail()}")
        raise AssertionError(f"no READY=1 within {READY_TIMEOUT:g} s: {self.log_tail()}")

    def log_events(self) -> list[dict]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon ignored SIGTERM for 60 s: {self.log_tail()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.proc.stdin:
            self.proc.stdin.close()
        self.recorder.stop()
        self.notify.close()


def final_text(recorder: Recorder) -> str:
    """The finals as a reader sees them (the captions' join rule: a held mark joins the word before it)."""
    return join_texts(m["text"].strip() for m in recorder.of("caption.final")).strip()
