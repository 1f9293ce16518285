"""The daemon end to end: real processes, real ZeroMQ sockets, real audio, the real model.

Two daemon runs carry most assertions (module-scoped fixtures):
  - osr_run: the 36 s Harvard-sentence file at --speed 2, with a subscriber from the start,
    one that never reads, one killed mid-stream, a late joiner, malformed control requests,
    and a second daemon that must refuse to start on the same endpoints;
  - stdin_run: raw PCM on stdin: silence and generated noise (no captions, no engine work),
    then a few words, then SIGTERM with a partial pending.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import zmq

from npustream.asr.audio import load_audio
from npustream.client import Caption, Gap, Heartbeat, Status, Subscriber
from npustream.protocol import control
from npustream.protocol.schema import caption_schema
from npustream.types import join_texts
from tools.wer import normalize, wer

pytestmark = pytest.mark.slow
VALIDATOR = jsonschema.Draft202012Validator(caption_schema())


class Daemon:
    """`npustream run` in a child process with its sockets in a private runtime dir."""

    def __init__(self, runtime: Path, *args: str, stdin=subprocess.DEVNULL, env: dict | None = None):
        self.runtime = runtime
        self.env = {**os.environ, **(env or {}), "XDG_RUNTIME_DIR": str(runtime), "NPUSTREAM_LOG": "info"}
        self.pub = f"ipc://{runtime}/npustream/captions.sock"
        self.ctl = f"ipc://{runtime}/npustream/control.sock"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "npustream", "run", *args],
            env=self.env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"daemon exited early ({self.proc.returncode}): {self.proc.stderr.read().decode()}"
                )
            try:
                return control.request(self.ctl, "status", timeout=0.5)
            except control.DaemonUnreachable:
                time.sleep(0.2)
        pytest.fail("daemon did not come up")

    def status(self) -> dict:
        return control.request(self.ctl, "status", timeout=5.0)

    def finish(self, timeout: float = 240.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()


class Collector(threading.Thread):
    """A Subscriber in its own thread, keeping every event with its arrival time."""

    def __init__(self, daemon: Daemon):
        super().__init__(daemon=True)
        self.sub = Subscriber(daemon.pub, daemon.ctl, status=True, heartbeats=True, connect_timeout=30)
        self.events: list[tuple[float, object]] = []
        self.error: BaseException | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            self.sub.connect()
            self.connected.set()
            for event in self.sub:
                self.events.append((time.time(), event))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self.error = exc
            self.connected.set()
        finally:
            self.sub.close()

    def of(self, kind):
        return [e for _, e in self.events if isinstance(e, kind)]

    def finals(self) -> list[Caption]:
        return [e for e in self.of(Caption) if e.final]

    def wait_for(self, predicate, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(predicate(e) for _, e in list(self.events)):
            assert time.monotonic() < deadline, "timed out waiting for an event"
            assert self.is_alive(), f"subscriber stopped: {self.error}"
            time.sleep(0.05)


def final_text(finals: list[Caption]) -> str:
    return join_texts(c.text for c in finals if c.text)


def raw_request(endpoint: str, frames: list[bytes], sock_type=zmq.REQ, timeout: float = 3.0) -> dict | None:
    sock = zmq.Context.instance().socket(sock_type)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(int(timeout * 1000)):
            return None
        reply = sock.recv_multipart()
        return json.loads(reply[-1])
    finally:
        sock.close()


# -- run 1: a file at twice real time ----------------------------------------------------------
@pytest.fixture(scope="module")
def osr_run(tmp_path_factory, audio_dir):
    runtime = tmp_path_factory.mktemp("runtime")
    daemon = Daemon(
        runtime,
        "--source",
        f"file:{audio_dir / 'osr_0034_8k.wav'}",
        "--speed",
        "2",
        "--language",
        "en",
        "--echo",
    )
    daemon.wait_ready()
    run: dict = {"daemon": daemon}
    main = Collector(daemon)
    main.start()
    main.connected.wait(60)
    assert main.error is None, main.error

    never_reads = zmq.Context.instance().socket(zmq.SUB)  # connected, subscribed, never read
    never_reads.setsockopt(zmq.RCVHWM, 1)
    never_reads.setsockopt(zmq.SUBSCRIBE, b"")
    never_reads.connect(daemon.pub)

    doomed = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "npustream",
            "subscribe",
            "--endpoint",
            daemon.pub,
            "--ctl",
            daemon.ctl,
            "--format",
            "json",
        ],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    main.wait_for(lambda e: isinstance(e, Caption))
    deadline = time.monotonic() + 30
    while daemon.status()["subscribers"] < 3:  # main, never_reads, doomed
        assert time.monotonic() < deadline, "subscribers did not show up in status"
        time.sleep(0.1)
    run["subscribers_before_kill"] = daemon.status()["subscribers"]
    doomed.kill()
    doomed.wait()
    run["killed_at"] = time.time()
    while daemon.status()["subscribers"] != run["subscribers_before_kill"] - 1:
        assert time.monotonic() < deadline + 10, "the killed subscriber was never counted as gone"
        time.sleep(0.1)
    run["subscribers_after_kill"] = daemon.status()["subscribers"]

    # Malformed and oversized control requests, while captions flow.
    run["bad_replies"] = [
        raw_request(daemon.ctl, [b"status please"]),
        raw_request(daemon.ctl, [b'{"cmd": "reboot"}']),
        raw_request(daemon.ctl, [json.dumps({"cmd": "status", "pad": "x" * 10_000}).encode()]),
        raw_request(daemon.ctl, [b"", b"a", b"b"], sock_type=zmq.DEALER),
    ]
    run["huge_reply"] = raw_request(daemon.ctl, [b"x" * (1 << 20)], timeout=1.0)  # dropped by libzmq
    run["status_after_bad"] = daemon.status()

    second = subprocess.run(
        [sys.executable, "-m", "npustream", "run", "--source", f"file:{audio_dir / 'osr_0034_8k.wav'}"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    run["second_daemon"] = (second.returncode, second.stderr)

    main.wait_for(lambda e: isinstance(e, Caption) and e.final and e.text)
    run["status_with_finals"] = daemon.status()  # (the first caption above may be a partial)
    late = Collector(daemon)
    late.start()
    run["main"], run["late"] = main, late
    run["rc"], run["stdout"], run["stderr"] = daemon.finish()
    main.join(30)
    late.join(30)
    never_reads.close()
    return run


def test_finals_match_the_transcript(osr_run, transcripts):
    finals = osr_run["main"].finals()
    text = final_text(finals)
    error = wer(transcripts["osr_0034_8k.wav"]["text"], text)
    assert error <= 0.05, f"WER {error:.3f}: {text}"
    assert osr_run["rc"] == 0, osr_run["stderr"][-2000:]


def test_no_gaps_and_seq_is_consecutive(osr_run):
    main = osr_run["main"]
    assert main.error is None and main.of(Gap) == [] and main.sub.gaps == 0
    live = [
        e.seq
        for e in main.of(Caption) + main.of(Status) + main.of(Heartbeat)
        if not getattr(e, "from_snapshot", False)
    ]
    live.sort()
    assert live == list(range(live[0], live[0] + len(live)))
    assert len(main.of(Heartbeat)) >= 5  # one a second while the stream ran
    assert [s.state for s in main.of(Status)][-1] == "source_ended"


def test_finals_never_repeat_or_reorder_and_times_are_monotonic(osr_run):
    main = osr_run["main"]
    finals = main.finals()
    words = [w for c in finals for w in c.words]
    assert words, "no final words"
    for a, b in zip(words, words[1:]):
        assert b.start >= a.end - 1e-6, f"final words overlap or go back: {a} then {b}"
    assert all(0 <= w.start <= w.end <= 36.0 for w in words)
    texts = normalize(final_text(finals)).split()
    for n in (1, 2, 3, 4):  # no run of words published twice in a row (the transcript has none)
        grams = [tuple(texts[i : i + n]) for i in range(len(texts) - n + 1)]
        assert all(grams[i] != grams[i + n] for i in range(len(grams) - n)), texts
    captions = sorted(main.of(Caption), key=lambda c: c.seq)
    segment_ids = [c.segment_id for c in captions]
    assert segment_ids == sorted(segment_ids)
    for seg in set(segment_ids):
        revisions = [
            c.revision for c in captions if c.segment_id == seg and not c.final and not c.from_snapshot
        ]
        assert revisions == sorted(set(revisions))
    ended = [c for c in finals if c.segment_end]
    assert len(ended) >= 8, "the pauses between the ten sentences should close utterances"


def test_every_message_matches_the_json_schema(osr_run):
    main, late = osr_run["main"], osr_run["late"]
    raws = [e.raw for e in main.of(Caption) + late.of(Caption)] + [
        e.raw for e in main.of(Status) + main.of(Heartbeat)
    ]
    assert len(raws) > 30
    for raw in raws:
        VALIDATOR.validate(raw)


def test_late_joiner_gets_the_snapshot_then_continues_without_gap(osr_run):
    main, late = osr_run["main"], osr_run["late"]
    assert late.error is None and late.of(Gap) == []
    snap = [c for c in late.finals() if c.from_snapshot]
    assert snap, "the late joiner should have received earlier finals in its snapshot"
    assert [(c.seq, c.text) for c in late.finals()] == [(c.seq, c.text) for c in main.finals()]


def test_slow_and_killed_subscribers_change_nothing_for_others(osr_run):
    main = osr_run["main"]
    assert osr_run["subscribers_after_kill"] == osr_run["subscribers_before_kill"] - 1
    after_kill = [e for t, e in main.events if t > osr_run["killed_at"] and isinstance(e, Caption)]
    assert after_kill, "captions kept coming after a subscriber was killed"
    assert main.of(Gap) == []
    # The daemon kept real time with a subscriber that never read: the 36 s file at 2x
    # ended in well under the file's own length.
    status = [e for e in main.of(Status) if e.state == "source_ended"][0]
    first = min(t for t, _ in main.events)
    assert status.raw["time"] - first < 36.0


def test_malformed_control_requests_get_errors_and_the_daemon_goes_on(osr_run):
    replies = osr_run["bad_replies"]
    assert all(r is not None and r["ok"] is False for r in replies), replies
    assert "not UTF-8 JSON" in replies[0]["error"]
    assert "unknown cmd 'reboot'" in replies[1]["error"]
    assert "exceeds the 4096-byte limit" in replies[2]["error"]
    assert "malformed request frames" in replies[3]["error"]
    assert osr_run["huge_reply"] is None  # a 1 MiB frame: libzmq drops that connection
    status = osr_run["status_after_bad"]
    assert status["ok"] and status["control_errors"] >= 4 and status["engine"] == "cpu"


def test_status_reports_the_final_latency_the_subscriber_measures(osr_run):
    """The daemon's own rolling figure (from each sample's arrival) and the subscriber's (from
    stream_start + word end / speed) measure the same words the same way."""
    status = osr_run["status_with_finals"]
    n = status["final_latency_words"]
    assert n > 0 and 0 < status["final_latency_median"] <= status["final_latency_p90"]
    finals = sorted((c for c in osr_run["main"].finals() if not c.from_snapshot), key=lambda c: c.time)
    seen = [c.time - (c.stream_start + w.end / 2) for c in finals for w in c.words][:n]  # --speed 2
    assert abs(status["final_latency_median"] - sorted(seen)[len(seen) // 2]) <= 0.5


def test_second_daemon_on_the_same_endpoints_refuses(osr_run):
    rc, stderr = osr_run["second_daemon"]
    assert rc == 2 and "already serving" in stderr


def test_echo_prints_each_utterance(osr_run):
    lines = [line for line in osr_run["stdout"].splitlines() if line.strip()]
    assert " ".join(lines) == final_text(osr_run["main"].finals())
    assert len(lines) >= 8
    logs = [json.loads(line) for line in osr_run["stderr"].splitlines() if line.startswith("{")]
    assert {"daemon_ready", "source_ended", "daemon_stopped"} <= {entry["event"] for entry in logs}


# -- run 2: stdin: silence, noise, speech, SIGTERM -----------------------------------------------
def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def stdin_run(tmp_path_factory, audio_dir):
    rng = np.random.default_rng(7)
    quiet = np.zeros(16000 * 4, dtype=np.float32)
    white = rng.normal(0, 0.1, 16000 * 4)
    brown = np.cumsum(rng.normal(0, 1, 16000 * 4))
    brown = 0.3 * (brown - np.convolve(brown, np.ones(1600) / 1600, "same")) / np.abs(brown).max()
    speech = load_audio(audio_dir / "osr_0034_8k.wav")[
        int(0.5 * 16000) : int(3.0 * 16000)
    ]  # "A gold ring will..."

    daemon = Daemon(
        tmp_path_factory.mktemp("runtime"), "--source", "stdin", "--language", "en", stdin=subprocess.PIPE
    )
    daemon.wait_ready()
    sub = Collector(daemon)
    sub.start()
    sub.connected.wait(60)
    daemon.proc.stdin.write(pcm16(np.concatenate([quiet, white, brown])))
    daemon.proc.stdin.flush()
    deadline = time.monotonic() + 60
    while daemon.status()["stream_time"] < 11.9:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run = {
        "daemon": daemon,
        "sub": sub,
        "status_after_noise": daemon.status(),
        "captions_after_noise": list(sub.of(Caption)),
    }
    daemon.proc.stdin.write(pcm16(speech))  # stops mid-sentence: the last words stay partial
    daemon.proc.stdin.flush()
    sub.wait_for(lambda e: isinstance(e, Caption) and not e.final and e.text)
    time.sleep(0.5)
    run["before_signal"] = sorted(sub.of(Caption), key=lambda c: c.seq)
    daemon.proc.send_signal(signal.SIGTERM)
    run["rc"], run["stdout"], run["stderr"] = daemon.finish(60)
    sub.join(30)
    return run


def test_silence_and_noise_make_no_captions_and_no_engine_work(stdin_run):
    status = stdin_run["status_after_noise"]
    assert stdin_run["captions_after_noise"] == []
    assert status["decodes"] == 0 and status["finals"] == 0 and status["partials"] == 0
    captions = stdin_run["sub"].of(Caption)
    assert captions and all(
        c.start is None or c.start >= 11.5 for c in captions
    )  # only the speech after 12 s


def test_sigterm_publishes_the_pending_partial_as_final_and_exits_cleanly(stdin_run):
    assert stdin_run["rc"] == 0, stdin_run["stderr"][-2000:]
    before = stdin_run["before_signal"]
    pending = [c for c in before if not c.final][-1]
    captions = sorted(stdin_run["sub"].of(Caption), key=lambda c: c.seq)
    last = captions[-1]
    assert last.final and last.segment_end
    finals = [c for c in captions if c.final]
    assert normalize(final_text(finals)).endswith(normalize(pending.text))
    assert "gold ring" in normalize(final_text(finals))
    states = [s.state for s in stdin_run["sub"].of(Status)]
    assert states[-1] == "stopping"
    daemon = stdin_run["daemon"]
    assert not Path(daemon.ctl[6:]).exists() and not Path(daemon.pub[6:]).exists()  # sockets cleaned up


# -- errors that need no full run --------------------------------------------------------------
def npustream(
    *args: str, env_dir: Path, stdin=subprocess.DEVNULL, timeout=120
) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(env_dir)}
    return subprocess.run(
        [sys.executable, "-m", "npustream", *args],
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_missing_file_and_bad_config_are_clear_errors(tmp_path):
    missing = npustream("run", "--source", f"file:{tmp_path}/nope.wav", env_dir=tmp_path)
    assert missing.returncode == 2 and "audio file not found" in missing.stderr
    bad = tmp_path / "npustream.toml"
    bad.write_text("hop = -1\n")
    result = npustream("run", "--config", str(bad), env_dir=tmp_path)
    assert result.returncode == 2
    assert f"config {bad}: key 'hop' must be seconds from 0.1 to 10, got -1.0" in result.stderr
    assert "Traceback" not in result.stderr + missing.stderr


def test_no_daemon_is_a_clear_error_for_status_and_subscribe(tmp_path):
    status = npustream("status", env_dir=tmp_path)
    assert status.returncode == 2 and "no npustream daemon" in status.stderr
    sub = npustream("subscribe", "--timeout", "1", env_dir=tmp_path)
    assert sub.returncode == 2 and "no npustream daemon is publishing" in sub.stderr


def test_source_that_ends_before_any_audio(tmp_path):
    result = npustream(
        "run", "--source", "stdin", "--language", "en", env_dir=tmp_path, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "stdin ended before any audio arrived" in result.stderr
    assert "Traceback" not in result.stderr
