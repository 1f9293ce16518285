"""The user service under a real systemd (a user manager in a private mount namespace,
tests/systemd_user.py): `npustream service install --user`, then systemctl as a user would.

  - `systemctl --user start` returns once READY=1 came: the unit is active and the control
    socket answers at that moment; SIGKILL of the main PID is restarted (NRestarts=1); `stop`
    ends with Result=success and the sockets removed;
  - a frozen main process (SIGSTOP) stops the watchdog pings and systemd restarts it;
  - a bad config fails the start, and `systemctl --user status` shows the error line.

The daemon captions a silent file slowly (no engine work, nothing ends while the test runs).
The web unit's ordering test is tests/test_web_service.py, on the same UserManager."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import soundfile
from systemd_user import UserManager

from npustream.protocol import control

pytestmark = pytest.mark.slow
UNIT = "npustream.service"
START_TIMEOUT = 180.0  # s: model load on a busy 2-core machine


@pytest.fixture
def manager(tmp_path):
    m = UserManager(tmp_path)  # skips, saying why, where unshare -m is refused
    yield m
    main_pid = int(m.show(UNIT, "MainPID") or 0)
    m.close()
    if main_pid > 1:  # the manager stops its units; this is in case it could not
        try:
            os.kill(main_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def installed(manager, tmp_path):
    """The unit and a config that captions 10 minutes of silence (60 s at speed 0.1)."""
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(60 * 16000, np.float32), 16000, subtype="PCM_16")
    done = manager.run(sys.executable, "-m", "npustream", "service", "install", "--user")
    assert done.returncode == 0, done.stderr
    assert "ran systemctl --user daemon-reload" in done.stdout  # it saw the running manager
    config = manager.config_home / "npustream/config.toml"
    config.write_text(f'source = "file:{silence}"\nspeed = 0.1\nengine = "cpu"\n')
    return manager


def control_endpoint(manager: UserManager) -> str:
    return f"ipc://{manager.runtime}/npustream/control.sock"


def test_start_waits_for_ready_kill_restarts_stop_succeeds(installed):
    m = installed
    started = m.systemctl("start", UNIT, timeout=START_TIMEOUT)
    assert started.returncode == 0, started.stderr
    state = m.state(UNIT)
    # start returned after READY=1: active now, and the daemon answers now.
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    assert state["StatusText"].startswith("captioning file:") and "cpu engine" in state["StatusText"]
    first_pid = int(state["MainPID"])
    status = control.request(control_endpoint(m), "status", timeout=2.0)
    assert status["ok"] and status["pid"] == first_pid

    os.kill(first_pid, signal.SIGKILL)
    state = m.wait_for(
        UNIT,
        lambda s: s["NRestarts"] == "1" and s["ActiveState"] == "active",
        START_TIMEOUT,
        "restart after SIGKILL",
    )
    assert int(state["MainPID"]) not in (0, first_pid)
    assert control.request(control_endpoint(m), "status", timeout=2.0)["pid"] == int(state["MainPID"])

    stopped = m.systemctl("stop", UNIT, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    state = m.state(UNIT, "ActiveState", "Result")
    assert state == {"ActiveState": "inactive", "Result": "success"}
    assert not (m.runtime / "npustream/control.sock").exists()
    assert not (m.runtime / "npustream/captions.sock").exists()


def test_watchdog_restarts_a_frozen_daemon(installed):
    m = installed
    m.drop_in(UNIT, "watchdog", "[Service]\nWatchdogSec=3\n")  # the unit's 30 s, shortened
    assert m.systemctl("start", UNIT, timeout=START_TIMEOUT).returncode == 0
    frozen = int(m.show(UNIT, "MainPID"))
    assert frozen > 1
    os.kill(frozen, signal.SIGSTOP)
    try:
        m.wait_for(UNIT, lambda s: s["Result"] == "watchdog", 30, "watchdog timeout", every=0.1)
        state = m.wait_for(
            UNIT,
            lambda s: s["NRestarts"] == "1" and s["ActiveState"] == "active",
            START_TIMEOUT,
            "restart after the watchdog fired",
        )
    finally:
        try:
            os.kill(frozen, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert int(state["MainPID"]) != frozen
    with pytest.raises(ProcessLookupError):
        os.kill(frozen, 0)  # systemd killed the frozen process
    assert control.request(control_endpoint(m), "status", timeout=2.0)["ok"]


def test_config_error_fails_the_start_and_status_shows_it(installed):
    m = installed
    (m.config_home / "npustream/config.toml").write_text("hop = -1\n")
    started = m.systemctl("start", UNIT, timeout=START_TIMEOUT)
    assert started.returncode != 0
    error = "key 'hop' must be seconds from 0.1 to 10, got -1.0"
    status = m.systemctl("status", UNIT)
    assert error in status.stdout, status.stdout
    assert "status=2" in status.stdout  # the daemon's exit code for a user error
