"""An accelerated soak of `npustream run`: many utterances fast, to find a leak, a lost message
or a drift that a short run hides.

The audio is the shared English clips in turn, each followed by a pause, repeated until the
wanted length; it is written as raw PCM to the daemon's stdin at `speed` times real time, in
0.1 s pieces, generated as it goes (the daemon's memory, not the feeder's, is measured). The
daemon's stdin reader holds the pipe when the daemon falls behind, so nothing is dropped: a
slow engine only slows the run. A `client.Subscriber` (the healthy subscriber) records every
message; the daemon's resident memory (VmRSS) is sampled once a second with the audio fed so
far. At the end of the audio stdin closes: the daemon decodes what is left, publishes
`source_ended` and exits 0.

Used by tests/test_stream_soak.py (5 minutes, in `make test`) and bench/bench_soak.py
(>= 60 minutes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.client import Caption, Gap, Heartbeat, Status, Subscriber
from npustream.protocol import control

CLIPS = ("lj_stream_a.flac", "jfk.flac", "libri_1.flac", "osr_0034_8k.wav")  # English, with transcripts
PAUSES = (1.5, 3.0, 1.0, 2.5)  # s of silence after each clip, in turn
PIECE = 0.1  # s of audio per write
READY_TIMEOUT = 180.0  # s: model load on a busy 2-core machine


@dataclass(frozen=True)
class Plan:
    """Which clips, in order, each followed by its pause; `seconds` in all."""

    names: tuple[str, ...]
    pauses: tuple[float, ...]
    seconds: float


def plan(audio_dir: Path, seconds: float) -> Plan:
    lengths = {name: len(load_audio(audio_dir / name)) / SAMPLE_RATE for name in CLIPS}
    names, pauses, total, i = [], [], 0.0, 0
    while total < seconds:
        name, pause = CLIPS[i % len(CLIPS)], PAUSES[i % len(PAUSES)]
        names.append(name)
        pauses.append(pause)
        total += lengths[name] + pause
        i += 1
    return Plan(tuple(names), tuple(pauses), total)


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def rss_mib(pid: int) -> float | None:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024


@dataclass
class SoakResult:
    plan: Plan
    rc: int
    stderr: str
    wall: float
    fed: float  # s of audio written
    rss: list[tuple[float, float]]  # (s of audio fed, MiB resident)
    captions: list[Caption]
    heartbeats: list[tuple[float, Heartbeat]]  # (monotonic arrival, heartbeat)
    statuses: list[Status]
    gaps: int  # messages the healthy subscriber missed (seq jumps)
    last_status: dict = field(default_factory=dict)  # the daemon's status reply near the end

    @property
    def finals(self) -> list[Caption]:
        return [c for c in self.captions if c.final]

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.finals if c.text)

    def rss_at(self, fraction: float) -> float:
        """Resident MiB at the first sample with at least this fraction of the audio fed."""
        wanted = fraction * self.plan.seconds
        return next((mib for fed, mib in self.rss if fed >= wanted), self.rss[-1][1])

    def peak_rss(self, start: float, end: float) -> float:
        """The highest resident MiB sampled while [start, end) of the audio's share was fed.
        Peaks, not single samples: the allocator hands memory back and takes it again as the
        window sizes change (tens of MiB either way), a leak raises the peaks."""
        lo, hi = start * self.plan.seconds, end * self.plan.seconds
        return max((mib for fed, mib in self.rss if lo <= fed < hi or (end >= 1 and fed >= hi)), default=0.0)

    def seq_holes(self) -> int:
        """Missing seq numbers among the live messages the subscriber received."""
        seqs = sorted(
            {c.seq for c in self.captions if not c.from_snapshot}
            | {h.seq for _, h in self.heartbeats}
            | {s.seq for s in self.statuses}
        )
        return (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0


class Soak:
    """One daemon run over `plan` at `speed`; call start(), optionally do things while it runs
    (ctl, pub, fed()), then finish()."""

    def __init__(self, audio_dir: Path, the_plan: Plan, speed: float, extra_args: tuple[str, ...] = ()):
        self.audio_dir, self.plan, self.speed = audio_dir, the_plan, speed
        self.runtime = Path(tempfile.mkdtemp(prefix="npustream-soak-"))
        self.pub = f"ipc://{self.runtime}/captions.sock"
        self.ctl = f"ipc://{self.runtime}/control.sock"
        self.stderr_path = self.runtime / "daemon.log"
        self._fed = 0
        self.rss: list[tuple[float, float]] = []
        self.captions: list[Caption] = []
        self.heartbeats: list[tuple[float, Heartbeat]] = []
        self.statuses: list[Status] = []
        self.last_status: dict = {}
        self.errors: list[BaseException] = []
        env = {**os.environ, "NPUSTREAM_LOG": "info", "HF_HUB_OFFLINE": "1"}
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "npustream",
                    "run",
                    "--source",
                    "stdin",
                    "--language",
                    "en",
                    "--pub",
                    self.pub,
                    "--ctl",
                    self.ctl,
                    *extra_args,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        self._threads = [
            threading.Thread(target=self._guard(f), daemon=True, name=f.__name__)
            for f in (self._feed, self._subscribe, self._sample)
        ]

    def fed(self) -> float:
        return self._fed / SAMPLE_RATE

    def _guard(self, fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
                self.errors.append(exc)

        run.__name__ = fn.__name__
        return run

    def start(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                control.request(self.ctl, "status", timeout=0.5)
                break
            except control.DaemonUnreachable:
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon not up in {READY_TIMEOUT:g} s: {self.log_tail()}") from None
                time.sleep(0.2)
        self.rss.append((0.0, rss_mib(self.proc.pid)))
        self._subscribed = threading.Event()
        self._threads[1].start()
        self._subscribed.wait(60)
        self.started = time.monotonic()
        self._threads[0].start()
        self._threads[2].start()

    def _feed(self) -> None:
        piece = int(PIECE * SAMPLE_RATE)
        t0 = time.monotonic()
        try:
            for name, pause in zip(self.plan.names, self.plan.pauses):
                audio = np.concatenate(
                    [load_audio(self.audio_dir / name), np.zeros(int(pause * SAMPLE_RATE), np.float32)]
                )
                for i in range(0, len(audio), piece):
                    ahead = t0 + self._fed / SAMPLE_RATE / self.speed - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    block = audio[i : i + piece]
                    self.proc.stdin.write(pcm16(block))  # blocks while the daemon is behind
                    self._fed += len(block)
            self.proc.stdin.flush()
        finally:
            self.rss.append((self.fed(), rss_mib(self.proc.pid)))
            self.proc.stdin.close()  # end of stream

    def _subscribe(self) -> None:
        sub = Subscriber(self.pub, self.ctl, status=True, heartbeats=True, connect_timeout=30)
        try:
            sub.connect()
            self._subscribed.set()
            for event in sub:
                if isinstance(event, Caption):
                    self.captions.append(event)
                elif isinstance(event, Heartbeat):
                    self.heartbeats.append((time.monotonic(), event))
                elif isinstance(event, Status):
                    self.statuses.append(event)
                elif isinstance(event, Gap):
                    pass  # counted in sub.gaps
            self.gaps = sub.gaps
        finally:
            self._subscribed.set()
            sub.close()

    def _sample(self) -> None:
        while self.proc.poll() is None and self._threads[0].is_alive():
            mib = rss_mib(self.proc.pid)
            if mib is not None:
                self.rss.append((self.fed(), mib))
            try:
                self.last_status = control.request(self.ctl, "status", timeout=2.0)
            except control.DaemonUnreachable:
                pass
            time.sleep(1.0)

    def log_tail(self, n: int = 3000) -> str:
        return self.stderr_path.read_text(errors="replace")[-n:]

    def finish(self, timeout: float) -> SoakResult:
        self._threads[0].join(timeout)
        rc = self.proc.wait(timeout=120)
        for t in self._threads[1:]:
            t.join(30)
        if self.errors:
            raise self.errors[0]
        return SoakResult(
            self.plan,
            rc,
            self.log_tail(),
            time.monotonic() - self.started,
            self.fed(),
            self.rss,
            self.captions,
            self.heartbeats,
            self.statuses,
            getattr(self, "gaps", -1),
            self.last_status,
        )

    def kill(self) -> None:
        """Make sure the daemon is gone (after finish() it is) and remove the runtime dir."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        shutil.rmtree(self.runtime, ignore_errors=True)


def references(transcripts: dict, the_plan: Plan) -> str:
    return " ".join(transcripts[name]["text"] for name in the_plan.names)


def load_transcripts(audio_dir: Path) -> dict:
    return json.loads((audio_dir / "transcripts.json").read_text())
