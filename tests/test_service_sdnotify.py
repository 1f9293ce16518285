"""sd_notify over real AF_UNIX datagram sockets: path and abstract addresses, watchdog settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from npustream.stream.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().split("\n"))


def test_messages_arrive_in_order_on_a_path_socket(listener):
    path, sock = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.status("loading model")
    assert notifier.ready("engine cpu, lag 0.0 s")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert received(sock) == {"STATUS": "loading model"}
    assert received(sock) == {"READY": "1", "STATUS": "engine cpu, lag 0.0 s"}
    assert received(sock) == {"WATCHDOG": "1"}
    assert received(sock) == {"STOPPING": "1"}


def test_abstract_namespace_address():
    name = f"npustream-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(sock) == {"READY": "1"}
    finally:
        sock.close()


def test_status_newlines_cannot_inject_assignments(listener):
    path, sock = listener
    Notifier.from_env({"NOTIFY_SOCKET": path}).status("lost\nREADY=1")
    assert received(sock) == {"STATUS": "lost READY=1"}


def test_unset_socket_is_a_no_op():
    notifier = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_watchdog_interval_is_half_the_timeout_for_this_pid_only(listener):
    path, _ = listener
    mine = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(mine).watchdog_interval() == 15.0
    assert Notifier.from_env({**mine, "WATCHDOG_PID": ""}).watchdog_interval() == 15.0
    other = {**mine, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(other).watchdog_interval() is None
    assert Notifier.from_env({**mine, "WATCHDOG_USEC": "junk"}).watchdog_interval() is None


def test_a_vanished_socket_is_reported_not_raised(listener):
    path, sock = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    sock.close()
    os.unlink(path)
    assert notifier.watchdog() is False  # ENOENT/ECONNREFUSED: logged once, the daemon goes on


def test_environment_of_a_child_process(listener):
    """The daemon reads the variables systemd sets: run a real child with them."""
    path, sock = listener
    code = (
        "from npustream.stream.sdnotify import Notifier; n = Notifier.from_env(); "
        "print(n.watchdog_interval()); n.ready()"
    )
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "2.0"
    assert received(sock) == {"READY": "1"}
