"""The microphone source against a real audio server: a private PulseAudio with a null sink,
whose monitor is the "microphone"; paplay speaks into it. PortAudio reaches it through the
ALSA `pulse` device. Covers capture at 16 kHz and at 48 kHz (resampled), and the daemon
surviving the audio server going away and coming back (source_lost, source_restored)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_stream_daemon import (  # same directory: pytest puts it on sys.path
    Collector,
    Daemon,
    final_text,
)

from npustream.asr.audio import load_audio
from npustream.client import Caption, Status
from tools.wer import wer

pytestmark = pytest.mark.slow


class PulseServer:
    def __init__(self, runtime: Path):
        for tool in ("pulseaudio", "pactl", "paplay"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} not found: install pulseaudio and pulseaudio-utils (scripts/setup does)")
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(runtime),
            "PULSE_RUNTIME_PATH": str(runtime / "pulse"),
            "HOME": str(runtime),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "pulseaudio",
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-L",
                "module-native-protocol-unix",
                "-L",
                "module-null-sink sink_name=vspk rate=44100",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and self.proc.poll() is None, "pulseaudio did not start"
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-source", "vspk.monitor"], env=self.env, check=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def play(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "--device", "vspk", str(path)], env=self.env)


@pytest.fixture
def pulse(tmp_path):
    server = PulseServer(tmp_path)
    server.start()
    yield server
    server.stop()


def clip(audio_dir: Path, tmp_path: Path, start: float, end: float, name: str) -> Path:
    path = tmp_path / name
    soundfile.write(
        path, load_audio(audio_dir / "osr_0034_8k.wav")[int(start * 16000) : int(end * 16000)], 16000
    )
    return path


@pytest.mark.parametrize("rate", [None, 48000])
def test_mic_captures_what_is_played(pulse, audio_dir, tmp_path, rate, monkeypatch):
    for key, value in pulse.env.items():
        monkeypatch.setenv(key, value)
    import sounddevice

    sounddevice._terminate()  # PortAudio lists devices at initialisation: see this test's server
    sounddevice._initialize()
    from npustream.stream.capture.mic import MicSource

    source = MicSource("pulse", rate=rate)
    source.start()
    try:
        time.sleep(1.5)
        source.read(10**7)  # discard start-up silence
        played = clip(audio_dir, tmp_path, 0.5, 4.0, "gold.wav")
        player = pulse.play(played)
        got = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            got.append(source.read(16000))
            time.sleep(0.05)
        player.wait(10)
        captured = np.concatenate(got)
    finally:
        source.close()
    assert source._conns[0].rate == (rate or 16000)
    reference = soundfile.read(played, dtype="float32")[0]
    # Every half second of the played clip must be in the capture, sample for sample (after
    # the trip through PulseAudio's 44.1 kHz sink and, at 48 kHz, our resampler), and all at
    # the same offset: no dropouts, no drift.
    offsets = []
    for b in range(0, len(reference) - 8000, 8000):
        block = reference[b : b + 8000]
        if np.abs(block).max() < 0.05:
            continue
        n = len(captured) + len(block)
        corr = np.fft.irfft(np.fft.rfft(captured, n) * np.conj(np.fft.rfft(block, n)), n)[
            : len(captured) - 8000 + 1
        ]
        at = int(np.argmax(corr))
        similarity = np.corrcoef(captured[at : at + 8000], block)[0, 1]
        assert similarity > 0.95, f"block at {b / 16000:.1f} s not found in the capture (r={similarity:.3f})"
        offsets.append(at - b)
    assert len(offsets) >= 4 and max(offsets) - min(offsets) <= 2, offsets
    assert source.take_gap() == 0.0


def test_daemon_survives_the_audio_server_going_away(pulse, audio_dir, tmp_path):
    sentences = clip(audio_dir, tmp_path, 0.5, 7.3, "two.wav")  # "A gold ring ... took a year."
    third = clip(audio_dir, tmp_path, 7.3, 10.5, "third.wav")  # "She saw a cat in the neighbor's house."
    daemon = Daemon(tmp_path, "--source", "mic:pulse", "--language", "en", env=pulse.env)
    daemon.wait_ready()
    sub = Collector(daemon)
    sub.start()
    sub.connected.wait(60)
    time.sleep(1.0)
    pulse.play(sentences).wait(30)
    sub.wait_for(lambda e: isinstance(e, Caption) and e.final and "year" in e.text.lower(), timeout=60)

    pulse.stop()
    sub.wait_for(lambda e: isinstance(e, Status) and e.state == "source_lost", timeout=30)
    assert daemon.status()["source_state"] == "lost"  # sockets and subscribers stay up
    pulse.start()
    sub.wait_for(lambda e: isinstance(e, Status) and e.state == "source_restored", timeout=30)
    time.sleep(1.0)
    pulse.play(third).wait(30)
    sub.wait_for(lambda e: isinstance(e, Caption) and e.final and "house" in e.text.lower(), timeout=60)
    daemon.proc.send_signal(signal.SIGTERM)
    rc, _, err = daemon.finish(60)
    sub.join(30)
    assert rc == 0, err[-2000:]
    reference = (
        "A gold ring will please most any girl. The long journey home took a year. "
        "She saw a cat in the neighbor's house."
    )
    text = final_text(sub.finals())
    assert wer(reference, text) <= 0.1, text
    assert sub.sub.gaps == 0
