"""`npustream service install --user --web --enable` under a real systemd user manager
(tests/systemd_user.py): the daemon captions the bundled sample, npustream-web.service starts
only once the daemon is ready (After=, Type=notify), and serves the daemon's captions."""

from __future__ import annotations

import socket
import sys
import time
import urllib.request

import pytest
from systemd_user import UserManager

from tools.wer import normalize, wer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_web_unit_starts_after_the_daemon_and_serves_its_captions(tmp_path, transcripts):
    manager = UserManager(tmp_path)
    try:
        port = free_port()
        config = manager.config_home / "npustream/config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'source = "sample"\nengine = "cpu"\n\n[web]\nlisten = "127.0.0.1:{port}"\n')
        done = manager.run(
            sys.executable, "-m", "npustream", "service", "install", "--user", "--web", "--enable"
        )
        status = manager.run("systemctl", "--user", "status", "npustream.service").stdout
        assert done.returncode == 0, done.stderr + status
        assert "ran systemctl --user enable --now npustream.service npustream-web.service" in done.stdout

        transcript = ""
        deadline = time.monotonic() + 240
        while "for your country" not in normalize(transcript) and time.monotonic() < deadline:
            time.sleep(1)
            try:
                transcript = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/transcript.txt", timeout=5)
                    .read()
                    .decode()
                )
            except OSError:
                continue
        # The sample's words, in order, end to end (Whisper base hears "asked" for "ask" in some
        # windows: two such words of 22 stay under the bound).
        assert normalize(transcript).startswith("and so my fellow americans"), transcript
        assert wer(transcripts["jfk.flac"]["text"], transcript) <= 0.1, transcript

        daemon_ready = int(manager.show("npustream.service", "ActiveEnterTimestampMonotonic"))
        web_started = int(manager.show("npustream-web.service", "ExecMainStartTimestampMonotonic"))
        assert 0 < daemon_ready <= web_started  # the web page's process started after READY=1
        assert manager.show("npustream-web.service", "ActiveState") == "active"
        assert manager.show("npustream.service", "Result") == "success"  # the sample ended: exit 0
    finally:
        manager.run(sys.executable, "-m", "npustream", "service", "uninstall", "--user")
        manager.close()
