"""The daemon against a hostile or careless user (issue 11, part 4): each test here failed
before its fix.

  - a second daemon that shares only the caption endpoint is refused, and the first one's
    socket file survives; a process never removes a socket file it did not bind;
  - an option libzmq refuses (sndhwm > 2**31-1) is a config error, and a socket set-up that
    fails anyway closes everything and stops with one clear error instead of hanging;
  - a control frame over the wire limit is refused unread and counted;
  - SIGTERM decodes the audio not yet final once more (as at the end of a file);
  - a frozen process (SIGSTOP) is reported as `capture_stalled`.
"""

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

import numpy as np
import pytest
import zmq
from daemon_harness import Daemon, final_text

from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.errors import NpustreamError
from npustream.protocol.control import request
from npustream.stream.publisher import Publisher
from tools.wer import wer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def idle_daemon(tmp_path_factory):
    """A daemon on a silent, open stdin (as with a quiet microphone): no engine work."""
    d = Daemon(tmp_path_factory.mktemp("idle"), ["--source", "stdin", "--heartbeat", "0.2"])
    d.wait_ready()
    yield d
    d.close()


def npustream_run(*args: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "npustream", "run", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def heartbeats(pub: str, seconds: float) -> int:
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


# -- 4.1 a second daemon on the caption endpoint only -------------------------------------------
def test_second_daemon_sharing_only_the_caption_endpoint_is_refused(idle_daemon, tmp_path):
    captions = Path(idle_daemon.pub[len("ipc://") :])
    inode = captions.stat().st_ino
    second = npustream_run(
        "--source",
        "stdin",
        "--pub",
        idle_daemon.pub,
        "--ctl",
        f"ipc://{tmp_path}/other.sock",
        tmp_path=tmp_path,
    )
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"another process is already serving {idle_daemon.pub}" in second.stderr
    assert "Traceback" not in second.stderr
    assert captions.stat().st_ino == inode  # the first daemon's socket file, untouched
    assert heartbeats(idle_daemon.pub, 1.0) >= 3  # and it still reaches new subscribers


def test_a_socket_file_this_process_did_not_bind_is_not_removed(tmp_path):
    """The caption socket file is replaced behind the publisher's back (as a second daemon's
    bind does); stopping the publisher leaves the other file alone."""
    pub, ctl = f"ipc://{tmp_path}/captions.sock", f"ipc://{tmp_path}/control.sock"
    publisher = Publisher(
        pub, ctl, stream_id="t", sndhwm=10, heartbeat=1.0, snapshot_finals=1, status=dict, heartbeat_body=dict
    )
    publisher.start()
    path = tmp_path / "captions.sock"
    path.unlink()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    other.listen()
    try:
        publisher.stop()
        assert path.exists(), "the publisher removed a socket file another process had bound"
        assert not (tmp_path / "control.sock").exists()  # its own file is removed
    finally:
        other.close()


# -- 4.2 option ranges, and a failing set-up that must not hang ----------------------------------
def test_out_of_range_sndhwm_and_threads_are_config_errors(tmp_path):
    for args, error in (
        (["--sndhwm", "3000000000"], "key 'sndhwm' must be a number of messages from 1 to 2147483647"),
        (["--threads", "100000"], "key 'threads' must be an integer from 0 to 256"),
    ):
        result = npustream_run("--source", "stdin", *args, tmp_path=tmp_path, timeout=30)
        assert result.returncode == 2 and error in result.stderr, result.stderr[-2000:]
    config = tmp_path / "npustream.toml"
    config.write_text("sndhwm = 3000000000\n")
    result = npustream_run("--config", str(config), tmp_path=tmp_path, timeout=30)
    assert result.returncode == 2 and f"config {config}: key 'sndhwm'" in result.stderr


def test_a_socket_option_libzmq_refuses_stops_with_a_clear_error(tmp_path):
    """Past the config check (a library whose limits change): start() raises one
    NpustreamError promptly, with both sockets closed and no socket file left."""
    pub, ctl = f"ipc://{tmp_path}/captions.sock", f"ipc://{tmp_path}/control.sock"
    publisher = Publisher(
        pub,
        ctl,
        stream_id="t",
        sndhwm=2**31,
        heartbeat=1.0,
        snapshot_finals=1,
        status=dict,
        heartbeat_body=dict,
    )
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            publisher.start()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - examined below
            outcome.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(10)
    assert outcome, "Publisher.start() hung on a socket option libzmq refused"
    assert isinstance(outcome[0], NpustreamError), outcome
    assert "cannot set up the publish socket" in str(outcome[0]) and "too large" in str(outcome[0])
    publisher.stop()
    assert list(tmp_path.iterdir()) == []


# -- 4.4 an oversized control frame ------------------------------------------------------------
def test_an_oversized_control_frame_is_refused_unread_and_counted(idle_daemon):
    before = request(idle_daemon.ctl, "status", timeout=5.0)
    assert before["control_hangups"] == 0
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(idle_daemon.ctl)
    sock.send(b"x" * (10 << 20))  # 10 MB
    assert not sock.poll(1000)  # no reply: libzmq closed the connection at the frame's header
    sock.close()
    deadline = time.monotonic() + 10
    while (after := request(idle_daemon.ctl, "status", timeout=5.0))["control_hangups"] < 1:
        assert time.monotonic() < deadline, after
        time.sleep(0.2)
    assert after["ok"] and after["control_errors"] == before["control_errors"]


# -- 4.7 a frozen process ----------------------------------------------------------------------
def test_a_frozen_process_is_reported_as_capture_stalled(idle_daemon):
    before = request(idle_daemon.ctl, "status", timeout=5.0)["capture_stalled"]  # 0 unless starved
    os.kill(idle_daemon.proc.pid, signal.SIGSTOP)
    time.sleep(2.0)
    os.kill(idle_daemon.proc.pid, signal.SIGCONT)
    time.sleep(0.5)
    status = request(idle_daemon.ctl, "status", timeout=5.0)
    assert 1.7 <= status["capture_stalled"] - before <= 3.5, (before, status["capture_stalled"])
    events = [e for e in idle_daemon.log_events() if e.get("event") == "capture_stalled"]
    assert any(e["seconds"] >= 1.7 for e in events), events


# -- 4.5 SIGTERM with audio not yet decoded ------------------------------------------------------
def test_sigterm_decodes_the_pending_audio_as_at_the_end_of_a_file(tmp_path, audio_dir, transcripts):
    """Hop 10 s: the 4 s of speech are pending, not even a partial exists yet when SIGTERM
    comes. Before the fix only the last partial became final: here, nothing."""
    speech = load_audio(audio_dir / "libri_1.flac")[: 4 * SAMPLE_RATE]
    d = Daemon(tmp_path, ["--source", "stdin", "--language", "en", "--hop", "10"])
    try:
        d.wait_ready()
        d.proc.stdin.write((np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes())
        d.proc.stdin.flush()
        deadline = time.monotonic() + 30
        while request(d.ctl, "status", timeout=5.0)["stream_time"] < 3.99:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert d.recorder.of("caption.final", "caption.partial") == []
        assert d.stop() == 0
        time.sleep(0.5)  # the recorder takes the last messages
        text = final_text(d.recorder)
        reference = " ".join(transcripts["libri_1.flac"]["text"].split()[:9])  # 4 s: "... than his ma-"
        assert wer(reference, text) <= 0.15, text
        assert d.recorder.of("caption.final")[-1]["segment_end"]
        assert d.recorder.of("status")[-1]["state"] == "stopping"
    finally:
        d.close()


# -- 4.3 control flooding ---------------------------------------------------------------------
def test_a_control_flood_does_not_hold_up_heartbeats(idle_daemon):
    """100,000 snapshot requests from a client that never reads a reply: heartbeats (every
    0.2 s) keep coming, the replies that cannot be delivered are dropped and counted."""
    flooder = zmq.Context.instance().socket(zmq.DEALER)
    flooder.setsockopt(zmq.LINGER, 0)
    flooder.setsockopt(zmq.SNDHWM, 0)  # no limit on this side: everything goes to the daemon
    flooder.connect(idle_daemon.ctl)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat")
    sub.connect(idle_daemon.pub)
    try:
        assert sub.poll(5000)  # subscribed
        request_body = b'{"cmd": "snapshot"}'
        for _ in range(100_000):
            flooder.send_multipart([b"", request_body])
        published, end = [], time.monotonic() + 6.0
        while (left := end - time.monotonic()) > 0:
            if sub.poll(int(left * 1000) + 1):
                published.append(json.loads(sub.recv_multipart()[1])["time"])  # the daemon's clock
        status = request(idle_daemon.ctl, "status", timeout=10.0)
    finally:
        flooder.close()
        sub.close()
    assert len(published) >= 10, f"{len(published)} heartbeats in 6 s of flooding (one every 0.2 s is due)"
    worst = max(b - a for a, b in zip(published, published[1:]))
    assert worst < 1.0, f"a heartbeat was published {worst:.2f} s after the one before (every 0.2 s)"
    assert status["control_replies_dropped"] > 0
