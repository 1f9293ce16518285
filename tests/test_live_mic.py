"""Live microphone, end to end, on a real audio server: a private PulseAudio whose null-sink
monitor is the default input (tests/pulse.py). Speech is played into it in real time and
captured through sounddevice/PortAudio -> ALSA -> the pulse plugin, like a laptop microphone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
from daemon_harness import Daemon
from pulse import (  # noqa: F401 (fixtures)
    FIXED_DEVICE,
    FIXED_SINK,
    SINK,
    PulseServer,
    fixed_rate_pulse,
    pulse,
)

from npustream.protocol.control import request
from tools.wer import wer

CAPTURE_SCRIPT = textwrap.dedent("""
    import sys, threading, time, numpy as np, sounddevice as sd
    rate, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    device = sys.argv[4] if len(sys.argv) > 4 else None
    blocks, flowing = [], threading.Event()
    def callback(indata, frames, when, status):  # as the daemon captures: a callback stream
        blocks.append(indata[:, 0].copy())
        flowing.set()
    with sd.InputStream(device=device, samplerate=rate, channels=1, dtype="float32",
                        callback=callback):
        # The ALSA pulse plugin delivers its first block about 1.5 s after the start.
        if not flowing.wait(20):
            sys.exit("no audio arrived from the default input within 20 s")
        print("recording", flush=True)
        time.sleep(seconds)
    np.save(out, np.concatenate(blocks))
""")


def best_alignment(recorded: np.ndarray, source: np.ndarray) -> tuple[int, float]:
    """Lag (samples) and Pearson correlation of the recording segment that best matches source."""
    n = 1 << int(np.ceil(np.log2(len(recorded) + len(source))))
    xcorr = np.fft.irfft(np.fft.rfft(recorded, n) * np.conj(np.fft.rfft(source, n)), n)
    lag = int(np.argmax(np.abs(xcorr[: len(recorded) - len(source) + 1])))
    segment = recorded[lag : lag + len(source)]
    return lag, float(np.corrcoef(segment, source)[0, 1])


def record_while_playing(
    server: PulseServer,
    source_path,
    rate: int,
    seconds: float,
    out,
    device: str | None = None,
    sink: str = SINK,
) -> np.ndarray:
    """Capture `seconds` from the device with sounddevice in a fresh process while the file plays."""
    args = [sys.executable, "-c", CAPTURE_SCRIPT, str(rate), str(seconds), str(out)]
    recorder = subprocess.Popen(
        args + ([device] if device else []),
        env={**os.environ, **server.client_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert recorder.stdout.readline().strip() == "recording", recorder.stderr.read()
        if device is None:  # a PulseAudio client: the server shows the rate PortAudio opened
            assert server.recording_rates() == [rate]
        player = server.play(source_path, sink=sink)
        assert player.wait(timeout=60) == 0, player.stderr.read()
        assert recorder.wait(timeout=60) == 0, recorder.stderr.read()
    finally:
        recorder.kill()
    return np.load(out)


def speech_at(audio_dir, rate: int) -> tuple[object, np.ndarray]:
    path = audio_dir / "libri_1.flac"
    source, source_rate = sf.read(path, dtype="float32")
    return path, soxr.resample(source, source_rate, rate) if source_rate != rate else source


@pytest.mark.parametrize("rate", [16000, 48000])
def test_sounddevice_hears_what_is_played_into_the_virtual_microphone(
    pulse,
    audio_dir,
    tmp_path,
    rate,  # noqa: F811 (fixture)
):
    path, source = speech_at(audio_dir, rate)
    recorded = record_while_playing(pulse, path, rate, len(source) / rate + 2.0, tmp_path / "recorded.npy")
    lag, corr = best_alignment(recorded, source)
    print(f"captured at {rate} Hz: correlation {corr:.4f}, lag {lag / rate:.3f} s")
    # Two resamplings (file -> 48 kHz sink -> capture rate) and float->s16 leave a near copy.
    assert corr > 0.9, f"correlation {corr:.3f} at lag {lag / rate:.2f} s"
    assert 0 < lag / rate < 2.0  # the speech landed inside the recording, after it started


def test_fixed_rate_microphone_offers_only_its_rate(
    fixed_rate_pulse,
    audio_dir,
    tmp_path,  # noqa: F811 (fixture)
):
    """The fixture the daemon's resampling is tested on: 16 kHz is refused, the JACK rate works."""
    rate = fixed_rate_pulse.jack.rate
    probe = (
        "import sounddevice as sd, sys\n"
        "for r in (16000, 44100, 48000):\n"
        "    try: sd.check_input_settings(device=sys.argv[1], samplerate=r, channels=1)\n"
        "    except Exception: continue\n"
        "    print(r)\n"
    )
    accepted = subprocess.run(
        [sys.executable, "-c", probe, FIXED_DEVICE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **fixed_rate_pulse.client_env},
    ).stdout.split()
    assert accepted == [str(rate)]
    path, source = speech_at(audio_dir, rate)
    recorded = record_while_playing(
        fixed_rate_pulse,
        path,
        rate,
        len(source) / rate + 2.0,
        tmp_path / "recorded.npy",
        device=FIXED_DEVICE,
        sink=FIXED_SINK,
    )
    lag, corr = best_alignment(recorded, source)
    print(f"{rate} Hz-only device: correlation {corr:.4f}, lag {lag / rate:.3f} s")
    assert corr > 0.9, f"correlation {corr:.3f} at lag {lag / rate:.2f} s"


# -- the daemon on the live microphone ----------------------------------------------------------

MAX_WER = 0.10


def caption(
    daemon: Daemon,
    server: PulseServer,
    path,
    sink: str = SINK,
    quiet_seconds: float = 6.0,
    timeout: float = 90.0,
) -> str:
    """Play `path` into the microphone; the finals published for it, once the daemon has
    settled: the newest caption is a final (no partial left pending) and none came for
    `quiet_seconds`. Decoding can run seconds behind on a busy machine."""
    before = len(daemon.recorder.of("caption.final"))
    player = server.play(path, sink=sink)
    assert player.wait(timeout=120) == 0, player.stderr.read()
    played = time.monotonic()
    while time.monotonic() - played < timeout:
        captions = daemon.recorder.of("caption.partial", "caption.final")[-1:]
        settled = not captions or captions[-1]["type"] == "caption.final"
        last = captions[-1]["received"] if captions else played
        if settled and time.monotonic() - max(last, played) >= quiet_seconds:
            break
        time.sleep(0.2)
    return " ".join(m["text"].strip() for m in daemon.recorder.of("caption.final")[before:])


@pytest.fixture
def mic_daemon(tmp_path):
    """Starts `npustream run --source mic[:DEVICE]` on an audio server; stopped at teardown
    (request it after the server fixture, so it ends first)."""
    started: list[Daemon] = []

    def start(server: PulseServer, device: str | None = None) -> Daemon:
        source = f"mic:{device}" if device else "mic"
        daemon = Daemon(
            tmp_path / f"daemon{len(started)}",
            ["--source", source, "--language", "en"],
            env=server.client_env,
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


@pytest.mark.slow
def test_daemon_captions_the_live_microphone(pulse, mic_daemon, audio_dir, transcripts):  # noqa: F811
    server, daemon = pulse, mic_daemon(pulse)
    daemon.wait_ready()
    text = caption(daemon, server, audio_dir / "jfk.flac")
    error = wer(transcripts["jfk.flac"]["text"], text)
    print(f"live microphone WER {error:.3f}: {text!r}")
    assert error <= MAX_WER, f"WER {error:.3f}: {text!r}"
    opened = [e for e in daemon.log_events() if e["event"] == "mic_opened"]
    assert [(e["rate"], e["resampled"]) for e in opened] == [(16000, False)]
    assert daemon.stop() == 0


@pytest.mark.slow
def test_microphone_lost_and_restored_without_a_restart(
    pulse,
    mic_daemon,
    audio_dir,  # noqa: F811
    transcripts,
):
    server, daemon = pulse, mic_daemon(pulse)
    daemon.wait_ready()
    assert caption(daemon, server, audio_dir / "libri_1.flac"), "no captions before the fault"

    server.stop()  # the microphone vanishes
    lost = daemon.recorder.wait_for(
        lambda m: m["type"] == "status" and m.get("state") == "source_lost", 15, "source_lost"
    )
    assert request(daemon.ctl, "status", timeout=5.0)["source_state"] == "lost"
    time.sleep(3.0)  # gone for a while: retries fail, heartbeats go on
    beats_while_lost = [m for m in daemon.recorder.of("heartbeat") if m["received"] > lost["received"] + 0.5]
    assert len(beats_while_lost) >= 2 and beats_while_lost[-1]["source_state"] == "lost"

    server.start()  # ... and comes back on the same socket path
    daemon.recorder.wait_for(
        lambda m: m["type"] == "status" and m.get("state") == "source_restored", 30, "source_restored"
    )
    text = caption(daemon, server, audio_dir / "jfk.flac")
    error = wer(transcripts["jfk.flac"]["text"], text)
    print(f"WER after the microphone came back {error:.3f}: {text!r}")
    assert error <= MAX_WER, f"WER after the microphone came back {error:.3f}: {text!r}"

    # One stream throughout: same daemon, same stream, no message lost by the subscriber.
    assert daemon.proc.poll() is None
    assert len({m["stream_id"] for m in daemon.recorder.messages}) == 1
    seqs = [m["seq"] for m in daemon.recorder.messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert daemon.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("fixed_rate_pulse", [48000], indirect=True, ids=["48k-only"])
def test_daemon_resamples_a_microphone_that_refuses_16k(
    fixed_rate_pulse,
    mic_daemon,  # noqa: F811
    audio_dir,
    transcripts,
):
    server, daemon = fixed_rate_pulse, mic_daemon(fixed_rate_pulse, FIXED_DEVICE)
    daemon.wait_ready()
    text = caption(daemon, server, audio_dir / "jfk.flac", sink=FIXED_SINK)
    error = wer(transcripts["jfk.flac"]["text"], text)
    print(f"live microphone WER {error:.3f}: {text!r}")
    assert error <= MAX_WER, f"WER {error:.3f}: {text!r}"
    # The daemon asked for 16 kHz, was refused, and captured at the device's rate instead.
    opened = [e for e in daemon.log_events() if e["event"] == "mic_opened"]
    assert [(e["rate"], e["resampled"]) for e in opened] == [(server.jack.rate, True)]
    assert daemon.stop() == 0
