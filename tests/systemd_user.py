"""A real systemd user manager for tests: `/lib/systemd/systemd --user` in its own mount
namespace (`unshare -m`), where a tmpfs on /run/systemd with /run/systemd/system in it makes
it, and the commands run beside it (`run()`, through `nsenter`), see a booted systemd. It has
its own XDG_RUNTIME_DIR and XDG_CONFIG_HOME under the test's tmp_path; everything it starts
is stopped with `systemctl --user exit`, and the manager itself by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

SYSTEMD = "/lib/systemd/systemd"
START = "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec {systemd} --user"


class UserManager:
    def __init__(self, tmp_path: Path):
        missing = [tool for tool in (SYSTEMD, "unshare", "nsenter", "systemctl") if not shutil.which(tool)]
        if missing:
            pytest.fail(f"{', '.join(missing)} missing: apt-get install systemd util-linux", pytrace=False)
        if os.geteuid() != 0:
            pytest.fail("a private user manager needs root (unshare -m, mount)", pytrace=False)
        self.runtime = tmp_path / "xdg-runtime"
        self.runtime.mkdir(mode=0o700)
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

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "--user", "show", "-p", prop, "--value", unit).stdout.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.run("systemctl", "--user", "exit", timeout=60)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.log.close()
