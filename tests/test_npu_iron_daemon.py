"""`npustream run --engine npu` on a machine without an NPU: the daemon captions on the CPU and
publishes why (status reply over the control socket), as issue 15 asks."""

from __future__ import annotations

import os
import signal

import pytest
from test_stream_daemon import Daemon

pytestmark = pytest.mark.slow


def test_daemon_with_engine_npu_falls_back_and_publishes_the_reason(tmp_path, audio_dir):
    if os.path.exists("/dev/accel/accel0"):
        pytest.skip("this machine has an NPU device node")
    daemon = Daemon(tmp_path, "--engine", "npu", "--source", f"file:{audio_dir / 'jfk.flac'}", "--speed", "2")
    try:
        status = daemon.wait_ready(timeout=240)
        assert status["requested_engine"] == "npu" and status["engine"] == "cpu"
        assert "/dev/accel/accel0" in status["fallback_reason"]
        assert "npustream npu build" in status["fallback_reason"]
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        code, _, err = daemon.finish()
    assert code == 0, err
    assert "Traceback" not in err
