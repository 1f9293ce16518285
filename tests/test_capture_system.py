"""Desktop audio capture on a real sound server, without the model: the private PulseAudio of
tests/pulse.py in its desktop form. `system` records the monitor of the default output, found
through the server; when the default output changes it follows; `system:SINK` records SINK's
monitor; a sink that does not exist is one clear error."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pulse import SINK, SPEAKERS, desktop_pulse  # noqa: F401 (fixture)

from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.errors import AudioError
from npustream.stream.capture import soundserver
from npustream.stream.capture.mic import FOLLOW_SECONDS
from npustream.stream.capture.sources import open_source


@pytest.fixture
def server_env(desktop_pulse, monkeypatch):  # noqa: F811
    for key, value in desktop_pulse.client_env.items():
        monkeypatch.setenv(key, value)
    import sounddevice

    sounddevice._terminate()  # PortAudio lists devices at initialisation: see this test's server
    sounddevice._initialize()
    return desktop_pulse


def capture_while(source, action, seconds: float) -> np.ndarray:
    """What `source` delivers while `action()` runs and for `seconds` after it returned."""
    action()
    got, end = [source.read(10**7)], time.monotonic() + seconds
    while time.monotonic() < end:
        got.append(source.read(SAMPLE_RATE))
        time.sleep(0.05)
    return np.concatenate(got)


def correlation(captured: np.ndarray, played: np.ndarray) -> float:
    """Pearson correlation of `played` with the part of `captured` that matches it best."""
    n = 1 << int(np.ceil(np.log2(len(captured) + len(played))))
    xcorr = np.fft.irfft(np.fft.rfft(captured, n) * np.conj(np.fft.rfft(played, n)), n)
    at = int(np.argmax(xcorr[: len(captured) - len(played) + 1]))
    return float(np.corrcoef(captured[at : at + len(played)], played)[0, 1])


def test_system_records_the_default_output_and_follows_it(server_env, audio_dir):
    server = server_env
    speech = load_audio(audio_dir / "libri_1.flac")
    source = open_source("system")
    source.start()
    try:
        deadline = time.monotonic() + 15.0  # the monitor's stream delivers before anything plays
        while not (source._conns and source._conns[-1].callbacks):
            assert time.monotonic() < deadline, "system never started recording"
            time.sleep(0.1)
        time.sleep(0.5)
        source.read(10**7)  # start-up silence
        on_speakers = capture_while(
            source, lambda: server.play(audio_dir / "libri_1.flac", sink=None).wait(30), 1.0
        )
        server.pactl("set-default-sink", SINK)  # headphones plugged in: another default output
        deadline = time.monotonic() + FOLLOW_SECONDS + 15.0  # noticed, then the new stream flows
        while not (source._conns[-1].server_source == f"{SINK}.monitor" and source._conns[-1].callbacks):
            assert time.monotonic() < deadline, "system did not move to the new default output"
            time.sleep(0.1)
        source.read(10**7)
        on_new_default = capture_while(
            source, lambda: server.play(audio_dir / "libri_1.flac", sink=SINK).wait(30), 1.0
        )
        server.play(audio_dir / "libri_1.flac", sink=SPEAKERS).wait(30)  # no longer the default
        on_old = source.read(10**7)
    finally:
        source.close()
    first, second = correlation(on_speakers, speech), correlation(on_new_default, speech)
    print(f"default output {SPEAKERS}: r={first:.4f}; after the switch, {SINK}: r={second:.4f}")
    assert first > 0.95 and second > 0.95
    assert np.abs(on_old).max() < 1e-3  # the old output is not recorded any more
    assert not source.lost and source.take_gap() < 1.0  # the switch cost well under a second


def test_system_sink_records_that_sink_only(server_env, audio_dir):
    server = server_env
    source = open_source(f"system:{SINK}")
    source.start()
    try:
        time.sleep(1.5)
        source.read(10**7)
        other = capture_while(
            source, lambda: server.play(audio_dir / "libri_1.flac", sink=None).wait(30), 0.5
        )
        this = capture_while(source, lambda: server.play(audio_dir / "libri_1.flac", sink=SINK).wait(30), 1.0)
    finally:
        source.close()
    assert np.abs(other).max() < 1e-3
    assert correlation(this, load_audio(audio_dir / "libri_1.flac")) > 0.95


def test_an_output_that_does_not_exist_is_one_clear_error(server_env):
    with pytest.raises(AudioError, match=r"no output \(sink\) or monitor named 'hdmi-nowhere'.*speakers"):
        open_source("system:hdmi-nowhere")
    assert soundserver.monitor_source(f"{SINK}.monitor") == f"{SINK}.monitor"  # a monitor's own name


def test_no_sound_server_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-such-socket")
    with pytest.raises(AudioError, match="no sound server answers"):
        open_source("system")
