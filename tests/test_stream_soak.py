"""Five minutes of speech through the daemon while it is abused (issue 11, part 3), the short
form of bench/bench_soak.py: the shared English clips with pauses, fed on stdin at SPEED times
real time (tests/tools/soak.py), and meanwhile on the control socket: malformed requests,
multipart garbage, 10 MB frames, thousands of requests in a row, and a client that floods
snapshot requests and never reads a reply; on the caption socket: 50 subscribers that connect
and disconnect over and over, and one that never reads.

The healthy subscriber loses nothing (no seq gap), every second of audio reaches the daemon
and is captioned (WER against the concatenated transcripts), heartbeats keep their pace
through the flood, and resident memory stays within 200 MiB over the daemon's at READY."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
import zmq

from npustream.protocol.control import request
from tools import soak
from tools.wer import differences, wer

pytestmark = pytest.mark.slow

SPEED = 6.0  # times real time (the stdin reader holds the pipe when the engine falls behind)
HEARTBEAT = 0.5  # s
MINUTES = 5.0
MALFORMED = [
    b"status please",
    b'{"cmd": "reboot"}',
    b"[1, 2]",
    json.dumps({"cmd": "status", "pad": "x" * 10_000}).encode(),
]
FLOOD = 20_000  # snapshot requests from the client that never reads
IN_A_ROW = 3_000  # status and snapshot requests from one client, each waiting for its reply
OVERSIZED = 3  # 10 MB frames
CHURNERS = 50


class Abuse:
    """Everything hostile, each in its own thread, while the soak runs."""

    def __init__(self, run: soak.Soak):
        self.run = run
        self.ctx = zmq.Context.instance()
        self.stop_event = threading.Event()
        self.replies: dict[str, list] = {"malformed": [], "garbage": [], "in_a_row": []}
        self.flood_window: tuple[float, float] | None = None
        self.churn_rounds = 0
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._guard(f), daemon=True)
            for f in (self.control, self.flood, self.churn, self.never_reads)
        ]

    def _guard(self, fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test
                self.errors.append(exc)

        return run

    def _socket(self, kind):
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        return sock

    def _wait_fed(self, fraction: float) -> None:
        while self.run.fed() < fraction * self.run.plan.seconds and not self.stop_event.is_set():
            time.sleep(0.1)

    def control(self) -> None:
        ctl = self.run.ctl
        self._wait_fed(0.1)
        for body in MALFORMED:
            req = self._socket(zmq.REQ)
            req.connect(ctl)
            req.send(body)
            self.replies["malformed"].append(json.loads(req.recv()) if req.poll(10_000) else None)
            req.close()
        dealer = self._socket(zmq.DEALER)
        dealer.connect(ctl)
        rng = random.Random(11)
        for _ in range(200):  # multipart garbage: 1 to 6 frames of random bytes
            dealer.send_multipart([rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 7))])
        deadline = time.monotonic() + 30
        while len(self.replies["garbage"]) < 200 and time.monotonic() < deadline:
            if dealer.poll(1000):
                self.replies["garbage"].append(json.loads(dealer.recv_multipart()[-1]))
        dealer.close()
        for _ in range(OVERSIZED):
            req = self._socket(zmq.REQ)
            req.connect(ctl)
            req.send(b"x" * (10 << 20))
            time.sleep(0.5)
            req.close()
        self._wait_fed(0.3)
        req = self._socket(zmq.REQ)
        req.connect(ctl)
        for i in range(IN_A_ROW):
            req.send(json.dumps({"cmd": "status" if i % 2 else "snapshot"}).encode())
            if not req.poll(10_000):
                break
            self.replies["in_a_row"].append(json.loads(req.recv())["ok"])
        req.close()

    def flood(self) -> None:
        self._wait_fed(0.4)
        dealer = self._socket(zmq.DEALER)
        dealer.setsockopt(zmq.SNDHWM, 0)  # queue all of them (no limit on the sending side)
        dealer.connect(self.run.ctl)
        start = time.time()
        request = json.dumps({"cmd": "snapshot"}).encode()
        for _ in range(FLOOD):
            dealer.send_multipart([b"", request])
        self.stop_event.wait(10.0)  # connected and never reading while the daemon works through it
        self.flood_window = (start, time.time())
        self.stop_event.wait()
        dealer.close()

    def churn(self) -> None:
        while not self.stop_event.is_set():
            subs = []
            for _ in range(CHURNERS):
                sub = self._socket(zmq.SUB)
                sub.setsockopt(zmq.SUBSCRIBE, b"")
                sub.connect(self.run.pub)
                subs.append(sub)
            self.stop_event.wait(0.3)
            for sub in subs:
                if sub.poll(0):
                    sub.recv_multipart()
                sub.close()
            self.churn_rounds += 1
            self.stop_event.wait(0.2)

    def never_reads(self) -> None:
        sub = self._socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 1)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.run.pub)
        self.stop_event.wait()
        sub.close()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture(scope="module")
def soaked(audio_dir):
    plan = soak.plan(audio_dir, MINUTES * 60)
    run = soak.Soak(audio_dir, plan, SPEED, ("--heartbeat", str(HEARTBEAT)))
    abuse = Abuse(run)
    try:
        run.start()
        abuse.start()
        while run.fed() < 0.97 * plan.seconds and run.proc.poll() is None:
            time.sleep(0.5)
        status = request(run.ctl, "status", timeout=10.0)  # before the end of the stream
        result = run.finish(timeout=plan.seconds / SPEED + 600)
    finally:
        abuse.stop()
        run.kill()
    return result, abuse, status


def test_everything_fed_is_received_captioned_and_published_without_gaps(soaked, transcripts):
    result, abuse, status = soaked
    assert result.rc == 0, result.stderr
    assert result.fed == pytest.approx(result.plan.seconds, abs=0.01)
    ended = [s for s in result.statuses if s.state == "source_ended"][-1]
    assert f"after {result.fed:.1f} s of audio" in ended.message  # every sample reached the daemon
    assert result.gaps == 0 and result.seq_holes() == 0
    assert status["audio_dropped"] == 0
    reference = soak.references(transcripts, result.plan)
    error = wer(reference, result.text)
    assert error <= 0.08, f"WER {error:.3f} over {result.fed:.0f} s: " + "; ".join(
        differences(reference, result.text)
    )
    # Speech without words: 0-0.5 s a pass of lj_stream_a (the tail of a sentence's last word
    # that its alignment leaves out, "themselves." at 120.88 s); a phrase lost is 2 s ("And so
    # my fellow Americans", when a full window was cut 5 s before its end).
    assert status["speech_unread"] <= 1.5, f"{status['speech_unread']} s of speech without words"
    assert len(result.finals) >= len(result.plan.names)  # at least one utterance closed per clip


def test_memory_stays_within_its_bound(soaked):
    # Five minutes is still the allocator's warm-up: peaks rise through it (under pytest-xdist:
    # 356 then 383 MiB, 354 then 392 from the first half to the second); bench/bench_soak.py
    # judges the leveling off over 60 minutes (1e0a5c0: the halves +1.0 %; 2026-12-08, with and
    # without the warm-up below: +13.9 % and +8.3 %, not level). Here: the whole run, abuse included (10 MB
    # frames, floods, unread replies), stays within 200 MiB over the daemon's memory at READY
    # (measured: 57-130 MiB over it at the peak in 7 runs; 98-212 before the daemon warmed up
    # its full encoder context, Recognizer.warm_up, with one CI failure at 212).
    result, _, _ = soaked
    ready, peak = result.rss[0][1], max(mib for _, mib in result.rss)
    assert peak <= ready + 200, f"peak resident memory {peak:.0f} MiB, {ready:.0f} MiB at READY"


def test_control_abuse_is_answered_counted_or_dropped(soaked):
    result, abuse, status = soaked
    assert not abuse.errors, abuse.errors
    assert all(r is not None and r["ok"] is False for r in abuse.replies["malformed"]), abuse.replies[
        "malformed"
    ]
    assert len(abuse.replies["garbage"]) == 200 and not any(r["ok"] for r in abuse.replies["garbage"])
    assert len(abuse.replies["in_a_row"]) == IN_A_ROW and all(abuse.replies["in_a_row"])
    assert status["control_errors"] >= len(MALFORMED) + 200
    assert status["control_hangups"] >= OVERSIZED
    assert status["control_replies_dropped"] > 0  # the flooder's replies that could not go out
    assert abuse.churn_rounds >= 10


def test_heartbeats_keep_their_pace_through_the_control_flood(soaked):
    result, abuse, _ = soaked
    start, end = abuse.flood_window
    # Publication times (the daemon's clock in each heartbeat), not arrival in this busy process.
    times = [h.raw["time"] for _, h in result.heartbeats if start - 1 <= h.raw["time"] <= end + 1]
    assert len(times) >= 10
    worst = max(b - a for a, b in zip(times, times[1:]))
    assert worst < 3 * HEARTBEAT, f"a heartbeat came {worst:.2f} s after the one before (every {HEARTBEAT} s)"
