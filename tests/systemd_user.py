"""A real systemd user manager for tests: `/lib/systemd/systemd --user` in its own mount
namespace (`unshare -m`), where a tmpfs on /run/systemd with /run/systemd/system in it makes
it, and the commands run beside it (`run()`, through `nsenter`), see a booted systemd (outside
the namespace systemctl says "offline"). It has its own XDG_RUNTIME_DIR (a short directory in
/tmp) and XDG_CONFIG_HOME (under the test's tmp_path), and its own session (a signal meant for
the test's process group never reaches it); everything it starts is stopped with `systemctl
--user exit`, and the
manager itself by its PID. Where `unshare -m` is refused (it needs root) the test is skipped,
saying so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SYSTEMD = "/lib/systemd/systemd"
START = "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec {systemd} --user"
STATE = ("ActiveState", "SubState", "Result", "NRestarts", "MainPID", "StatusText")


def unshare_refused() -> str | None:
    """Why a private mount namespace cannot be made here, or None when it can."""
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"unshare -m refused here ({probe.stderr.strip()}): a real systemd needs a mount namespace"
    return None


class UserManager:
    def __init__(self, tmp_path: Path):
        missing = [tool for tool in (SYSTEMD, "unshare", "nsenter", "systemctl") if not shutil.which(tool)]
        if missing:
            pytest.fail(f"{', '.join(missing)} missing: apt-get install systemd util-linux", pytrace=False)
        refused = unshare_refused()
        if refused:
            pytest.skip(refused)
        # Short: the daemon's sockets live under it, and a socket path has 108 bytes at most
        # (pytest's tmp_path is longer under pytest-xdist). mkdtemp makes it 0700.
        self.runtime = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))
        self.config_home = tmp_path / "xdg-config"
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.config_home),
        }
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.log = open(tmp_path / "manager.log", "wb")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", START.format(systemd=SYSTEMD)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not (self.runtime / "systemd/private").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(
                    f"the user manager did not start: {(tmp_path / 'manager.log').read_text()}"
                )
            time.sleep(0.1)
        # Units run this checkout's code (PYTHONPATH, as the tests do) and never download.
        passed = [f"{k}={self.env[k]}" for k in ("PYTHONPATH",) if self.env.get(k)] + ["HF_HUB_OFFLINE=1"]
        self.run("systemctl", "--user", "set-environment", *passed)

    def run(self, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """A command in the manager's mount namespace, with its environment."""
        return subprocess.run(
            ["nsenter", "-t", str(self.proc.pid), "-m", *cmd],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def systemctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run("systemctl", "--user", "--no-pager", *args, timeout=timeout)

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "--user", "show", "-p", prop, "--value", unit).stdout.strip()

    def state(self, unit: str, *props: str) -> dict[str, str]:
        """Several properties at once (default: the ones a start/stop/restart test looks at)."""
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props or STATE)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, unit: str, predicate, timeout: float, what: str, every: float = 0.1) -> dict[str, str]:
        """Poll the unit's state until predicate(state) holds; the states seen go in the error."""
        deadline, seen = time.monotonic() + timeout, []
        while True:
            state = self.state(unit)
            if not seen or seen[-1] != state:
                seen.append(state)
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{unit}: no {what} within {timeout:g} s; states seen: {seen[-6:]}")
            time.sleep(every)

    def drop_in(self, unit: str, name: str, text: str) -> None:
        """An override file, as `systemctl --user edit` writes one, then daemon-reload."""
        path = self.config_home / "systemd/user" / f"{unit}.d" / f"{name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        assert self.systemctl("daemon-reload").returncode == 0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.run("systemctl", "--user", "exit", timeout=60)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.runtime, ignore_errors=True)
