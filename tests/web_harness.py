"""`npustream web` in a child process, and a headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) to look at its pages. Screenshots go to
out/test-artifacts/ (or $NPUSTREAM_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("NPUSTREAM_TEST_ARTIFACTS", REPO / "out" / "test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class WebServer:
    def __init__(self, tmp_path: Path, pub: str, ctl: str, *extra: str):
        self.log_path = tmp_path / "web.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "npustream",
                    "web",
                    "--listen",
                    "127.0.0.1:0",
                    "--endpoint",
                    pub,
                    "--ctl",
                    ctl,
                    *extra,
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "NPUSTREAM_LOG": "info"},
            )
        line = self.proc.stdout.readline()  # "npustream web: http://127.0.0.1:PORT/ (overlay: ...)"
        if not line.startswith("npustream web: http://"):
            self.stop()
            raise AssertionError(f"npustream web did not start: {line!r} {self.log_path.read_text()[-2000:]}")
        self.url = line.split()[2]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("npustream web ignored SIGTERM for 20 s") from None


def chromium():
    """A headless Chromium; fails (not skips) without Debian's chromium and chromium-driver."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
            "(scripts/setup installs them)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # Debian's: never a browser Selenium Manager would download
    for arg in (
        "--headless=new",
        "--disable-gpu",
        "--window-size=1280,720",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to sandbox as root
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def wait_until(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path
