"""Live microphone, end to end, on a real audio server: a private PulseAudio whose null-sink
monitor is the default input (tests/pulse.py). Speech is played into it in real time and
captured through sounddevice/PortAudio -> ALSA -> the pulse plugin, like a laptop microphone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import soxr

from pulse import APT_HINT, PulseServer, missing_tools

CAPTURE_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, sounddevice as sd
    rate, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    blocks = []
    def callback(indata, frames, when, status):  # as the daemon captures: a callback stream
        blocks.append(indata[:, 0].copy())
    with sd.InputStream(samplerate=rate, channels=1, dtype="float32", callback=callback):
        print("recording", flush=True)
        time.sleep(seconds)
    np.save(out, np.concatenate(blocks))
""")


@pytest.fixture
def pulse(tmp_path):
    missing = missing_tools()
    if missing:
        pytest.fail(f"live-microphone tests need {', '.join(missing)}: {APT_HINT}", pytrace=False)
    with PulseServer(tmp_path / "pulse") as server:
        yield server


def best_alignment(recorded: np.ndarray, source: np.ndarray) -> tuple[int, float]:
    """Lag (samples) and Pearson correlation of the recording segment that best matches source."""
    n = 1 << int(np.ceil(np.log2(len(recorded) + len(source))))
    xcorr = np.fft.irfft(np.fft.rfft(recorded, n) * np.conj(np.fft.rfft(source, n)), n)
    lag = int(np.argmax(np.abs(xcorr[: len(recorded) - len(source) + 1])))
    segment = recorded[lag : lag + len(source)]
    return lag, float(np.corrcoef(segment, source)[0, 1])


@pytest.mark.parametrize("rate", [16000, 48000])
def test_sounddevice_hears_what_is_played_into_the_virtual_microphone(pulse, audio_dir, tmp_path,
                                                                      rate):
    source_path = audio_dir / "libri_1.flac"
    source, source_rate = sf.read(source_path, dtype="float32")
    source = soxr.resample(source, source_rate, rate) if source_rate != rate else source
    seconds = len(source) / rate + 3.0
    out = tmp_path / "recorded.npy"
    recorder = subprocess.Popen([sys.executable, "-c", CAPTURE_SCRIPT, str(rate), str(seconds),
                                 str(out)], env={**os.environ, **pulse.client_env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert recorder.stdout.readline().strip() == "recording", recorder.stderr.read()
        assert pulse.recording_rates() == [rate]  # PortAudio opened the virtual mic at this rate
        player = pulse.play(source_path)
        assert player.wait(timeout=60) == 0, player.stderr.read()
        assert recorder.wait(timeout=60) == 0, recorder.stderr.read()
    finally:
        recorder.kill()
    recorded = np.load(out)
    lag, corr = best_alignment(recorded, source)
    # Two resamplings (file -> 48 kHz sink -> capture rate) and float->s16 leave a near copy.
    assert corr > 0.9, f"correlation {corr:.3f} at lag {lag / rate:.2f} s"
    assert 0 < lag / rate < 2.5  # the speech landed inside the recording, after it started
