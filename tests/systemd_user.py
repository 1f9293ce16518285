"""A real systemd user manager for tests: `systemd --user` in a private mount namespace.

systemctl and `npustream service` believe systemd runs only where /run/systemd/system exists
(sd_booted(3)); on a test machine PID 1 is often not systemd. So the manager runs inside
`unshare -m` with a tmpfs on /run/systemd (private to that namespace) and its own
XDG_RUNTIME_DIR and XDG_CONFIG_HOME, and every command that must see it runs in the same mount
namespace through `nsenter`. Units inherit the manager's environment (PYTHONPATH included), so
they run the code under test. Needs root (CAP_SYS_ADMIN for the mount namespace); where
`unshare -m` is refused the tests that use it are skipped, saying so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

SYSTEMD = "/lib/systemd/systemd"
START_TIMEOUT = 15.0  # s for the manager's private socket to appear


def unshare_refused() -> str | None:
    """Why a private mount namespace cannot be made here, or None when it can."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "unshare/nsenter missing (util-linux)"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"unshare -m refused here ({probe.stderr.strip()}): a real systemd needs a mount namespace"
    return None


class UserManager:
    def __init__(self, root: Path):
        self.runtime = root / "runtime"
        self.config = root / "config"
        self.runtime.mkdir(mode=0o700, parents=True)
        self.config.mkdir(parents=True)
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "XDG_CONFIG_HOME": str(self.config)}
        self.log = root / "systemd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not Path(SYSTEMD).exists():
            pytest.fail(f"{SYSTEMD} missing: apt-get install systemd (scripts/setup does)")
        script = f"mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec {SYSTEMD} --user"
        with open(self.log, "wb") as log:
            # Its own session: a signal meant for the test's process group never reaches it.
            self.proc = subprocess.Popen(
                ["unshare", "-m", "sh", "-c", script],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        private = self.runtime / "systemd/private"
        deadline = time.monotonic() + START_TIMEOUT
        while not private.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"systemd --user did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command in the manager's mount namespace (where /run/systemd/system exists)."""
        return subprocess.run(
            ["nsenter", "--mount", f"--target={self.proc.pid}", *cmd],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def systemctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run("systemctl", "--user", "--no-pager", *args, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, unit: str, predicate, timeout: float, what: str, every: float = 0.1) -> dict[str, str]:
        """Poll `systemctl show` until predicate(properties) holds; every state seen is kept."""
        props = ("ActiveState", "SubState", "Result", "NRestarts", "MainPID", "StatusText")
        deadline, self.seen = time.monotonic() + timeout, []
        while True:
            state = self.show(unit, *props)
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{unit}: no {what} within {timeout:g} s; states seen: {self.seen[-6:]}")
            time.sleep(every)

    def drop_in(self, unit: str, name: str, text: str) -> None:
        """An override file, as `systemctl --user edit` writes, then daemon-reload."""
        path = self.config / "systemd/user" / f"{unit}.d" / f"{name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        assert self.systemctl("daemon-reload").returncode == 0

    def stop(self) -> None:
        """SIGTERM to the manager (its PID, not a name): it stops its units and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
