"""The real daemon under a stand-in for systemd: NOTIFY_SOCKET is a datagram socket this test
owns. READY=1 must come after the sockets answer, WATCHDOG=1 from the processing loop only,
STOPPING=1 on SIGTERM.

The stall is real and targeted: the daemon's main thread (the processing loop) is frozen with
ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT stop that one thread, not the process), while its
publishing thread goes on sending heartbeats. That is what a hung engine looks like to systemd:
the process is alive and its sockets work, but the loop no longer turns."""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import subprocess
import sys
import time

import pytest
import zmq
from daemon_harness import Daemon

from npustream.protocol.control import request

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
WALL = 0x40000000  # waitpid __WALL: wait for a thread, not just the process


class ThreadFreezer:
    """Stop and resume one thread of another process (a thread id, not a process id)."""

    def __init__(self, tid: int):
        self.tid = tid
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

    def _ptrace(self, op: int) -> None:
        if self.libc.ptrace(op, self.tid, None, None) != 0:
            err = ctypes.get_errno()
            pytest.fail(
                f"ptrace({op:#x}, {self.tid}) failed: {os.strerror(err)}; the test "
                "traces its own child, which needs kernel.yama.ptrace_scope <= 1"
            )

    def freeze(self) -> None:
        self._ptrace(PTRACE_SEIZE)
        self._ptrace(PTRACE_INTERRUPT)
        os.waitpid(self.tid, WALL)  # returns once the thread is in its ptrace stop

    def thaw(self) -> None:
        self._ptrace(PTRACE_DETACH)


@pytest.fixture
def daemon(tmp_path):
    # stdin that stays open and silent: the loop idles, as with a quiet microphone.
    d = Daemon(tmp_path, ["--source", "stdin", "--heartbeat", "0.2"], watchdog_usec=WATCHDOG_USEC)
    yield d
    d.close()


def count_heartbeats(pub: str, seconds: float) -> int:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat")
    sub.connect(pub)
    end, count = time.monotonic() + seconds, 0
    try:
        while (left := end - time.monotonic()) > 0:
            if sub.poll(int(left * 1000) + 1):
                sub.recv_multipart()
                count += 1
    finally:
        sub.close()
    return count


def test_ready_comes_after_the_sockets_answer_then_watchdog_then_stopping(daemon):
    messages = daemon.wait_ready()
    # At READY the control socket answers at once and the PUB socket is there.
    status = request(daemon.ctl, "status", timeout=2.0)
    assert status["ok"] and status["pid"] == daemon.proc.pid
    assert os.path.exists(daemon.pub[len("ipc://") :])
    assert messages[0] == {"STATUS": "loading model"} and messages[-1]["READY"] == "1"
    assert "engine" in messages[-1]["STATUS"]  # READY says what is running

    pings = [t for t, m in daemon.notify.collect(3.0) if m.get("WATCHDOG") == "1"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 4 and max(gaps) < WATCHDOG_USEC / 1e6, gaps  # well inside the timeout

    assert daemon.stop() == 0
    rest = [m for _, m in daemon.notify.collect(0.5)]
    assert {"STOPPING": "1", "STATUS": "stopping"} in rest


def test_watchdog_stops_while_the_processing_loop_is_stalled(daemon):
    daemon.wait_ready()
    assert any(m.get("WATCHDOG") for _, m in daemon.notify.collect(1.5))
    freezer = ThreadFreezer(daemon.proc.pid)  # the main thread's id is the process id
    for _attempt in range(3):
        freezer.freeze()
        daemon.notify.drain()  # pings sent before the freeze
        try:
            beats = count_heartbeats(daemon.pub, 1.0)  # the publishing thread still runs ...
            if beats == 0:  # ... unless the loop was frozen holding the GIL: try again
                continue
            stalled = daemon.notify.collect(2.5)
        finally:
            freezer.thaw()
        break
    else:
        pytest.fail("the main thread was frozen holding the GIL three times out of three")
    assert beats >= 3
    # 3.5 s frozen, pings due every 0.5 s: none came, so systemd (WatchdogSec) would restart it.
    assert not [m for _, m in stalled if m.get("WATCHDOG")], stalled
    resumed = [m for _, m in daemon.notify.collect(1.5) if m.get("WATCHDOG")]
    assert resumed, "the watchdog did not resume when the loop did"
    assert request(daemon.ctl, "status", timeout=2.0)["ok"]
    assert daemon.stop() == 0


def test_without_notify_socket_the_daemon_runs_the_same(tmp_path):
    """sd_notify is a no-op outside systemd: no error, the daemon serves and stops cleanly."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    ctl = f"ipc://{tmp_path}/control.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "npustream",
            "run",
            "--source",
            "stdin",
            "--pub",
            f"ipc://{tmp_path}/captions.sock",
            "--ctl",
            ctl,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while not os.path.exists(ctl[len("ipc://") :]):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert request(ctl, "status", timeout=5.0)["ok"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "sd_notify" not in proc.stderr.read().decode()  # nothing was attempted
    finally:
        proc.kill()
        proc.wait()
