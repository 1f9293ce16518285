"""A private PulseAudio server for live-microphone tests: no root, no session, no real sound card.

A null sink ("npumic") swallows what is played into it; its monitor is the default source, so
a recorder of the default input hears exactly what the test plays: a virtual microphone.
Clients reach it through PULSE_SERVER; PortAudio (sounddevice) reaches it through its ALSA
back end and the ALSA pulse plugin (Debian: libasound2-plugins), which becomes ALSA's `default`
device when a server answers.

`stop()` and `start()` again on the same socket path make the microphone vanish and come back.

With `desktop`, the server looks like a laptop's: the default output is another null sink,
SPEAKERS (what `--source system` records through its monitor; paplay without --device plays
into it), and the default input is MIC_SOURCE, a source that is not a monitor (remapped from
SINK's monitor), so what is played into SINK is still heard by the microphone.

With `fixed_rate`, a second virtual microphone accepts only that sample rate, like a USB headset
that offers 48 kHz alone: a JACK server (dummy back end, no sound card) runs at that rate,
PulseAudio plays the sink "to_jack" into it (module-jack-sink), and the ALSA JACK plugin
exposes those ports as the ALSA device FIXED_DEVICE, which PortAudio opens at the JACK rate or not
at all. Clients find that device through $XDG_CONFIG_HOME/alsa/asoundrc.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import soundfile

SINK = "npumic"
FIXED_SINK = "to_jack"
FIXED_DEVICE = "fixed_rate_mic"
SPEAKERS = "speakers"
MIC_SOURCE = "mic"
TOOLS = ("pulseaudio", "pactl", "paplay")
APT_HINT = (
    "apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 "
    "jackd2 pulseaudio-module-jack (scripts/setup installs them)"
)


def missing_tools(fixed_rate: bool = False) -> list[str]:
    missing = [
        tool for tool in TOOLS + (("jackd", "jack_lsp") if fixed_rate else ()) if shutil.which(tool) is None
    ]
    if not any(
        Path(d, "libasound_module_pcm_pulse.so").exists()
        for d in (
            "/usr/lib/x86_64-linux-gnu/alsa-lib",
            "/usr/lib/aarch64-linux-gnu/alsa-lib",
            "/usr/lib64/alsa-lib",
            "/usr/lib/alsa-lib",
        )
    ):
        missing.append("ALSA pulse plugin (libasound2-plugins)")
    return missing


def terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class PulseServer:
    def __init__(
        self,
        root: Path,
        sink_rate: int = 48000,
        channels: int = 2,
        fixed_rate: int | None = None,
        desktop: bool = False,
    ) -> None:
        self.root = Path(root)
        self.runtime = self.root / "runtime"
        self.socket = self.runtime / "pulse" / "native"
        self.sink_rate, self.channels = sink_rate, channels
        self.log_path = self.root / "pulseaudio.log"
        self.proc: subprocess.Popen | None = None
        self.jack = JackServer(self.root, fixed_rate) if fixed_rate else None
        for d in (self.runtime, self.root / "home"):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)  # pulseaudio refuses a runtime directory others can read
        (self.root / "client.conf").write_text("autospawn = no\n")  # a stopped server stays stopped
        (self.root / "server.pa").write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={SINK} rate={sink_rate} channels={channels}\n"
            + (
                f"load-module module-null-sink sink_name={SPEAKERS} rate={sink_rate} channels={channels}\n"
                f"load-module module-remap-source master={SINK}.monitor source_name={MIC_SOURCE}\n"
                f"set-default-sink {SPEAKERS}\n"
                f"set-default-source {MIC_SOURCE}\n"
                if desktop
                else f"set-default-sink {SINK}\nset-default-source {SINK}.monitor\n"
            )
            + (
                f"load-module module-jack-sink sink_name={FIXED_SINK} client_name={FIXED_SINK} "
                f"connect=0 channels={channels}\n"
                if self.jack
                else ""
            )
        )

    @property
    def client_env(self) -> dict[str, str]:
        """Variables that point a client (pactl, paplay, PortAudio via ALSA) at this server."""
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
            "PULSE_COOKIE": str(self.root / "cookie"),
            **(self.jack.client_env if self.jack else {}),
        }

    def start(self, timeout: float = 20.0) -> None:
        if self.jack and not self.jack.running:
            self.jack.start()
        env = {
            **os.environ,
            **(self.jack.client_env if self.jack else {}),
            "HOME": str(self.root / "home"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.root / "home" / ".config"),
        }
        env.pop("PULSE_SERVER", None)
        # Real-time/high priority as on a desktop (pulseaudio falls back quietly where the
        # system does not allow it): the capture must not break up on a loaded machine.
        cmd = [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--system=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--realtime=yes",
            "--high-priority=yes",
            "--disallow-exit",
            "--log-target=stderr",
            "-F",
            str(self.root / "server.pa"),
        ]
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited ({self.proc.returncode}): {self.log_tail()}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pulseaudio did not answer within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.client_env},
            capture_output=True,
            text=True,
            timeout=20,
            check=check,
        )

    def play(self, path: str | Path, sink: str | None = SINK) -> subprocess.Popen:
        """Start playing a sound file into a virtual microphone (real time). The file is first
        decoded to 16-bit WAV: paplay's own reading of 24-bit FLAC (jfk.flac) plays 11 s of
        speech in under 4 s."""
        wav = self.root / f"play-{Path(path).stem}.wav"
        if not wav.exists():
            audio, rate = soundfile.read(path, dtype="float32")
            soundfile.write(wav, audio, rate, subtype="PCM_16")
        return subprocess.Popen(
            ["paplay", *([f"--device={sink}"] if sink else []), str(wav)],  # None: the default output
            env={**os.environ, **self.client_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def recording_rates(self) -> list[int]:
        """Sample rates of the streams currently recording from the server (one per client)."""
        out = self.pactl("list", "short", "source-outputs").stdout
        rates = []
        for line in out.splitlines():  # index source client driver "float32le 1ch 16000Hz"
            for word in line.split():
                if word.endswith("Hz") and word[:-2].isdigit():
                    rates.append(int(word[:-2]))
        return rates

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def __enter__(self):
        self.start()
        return self

    def close(self) -> None:
        self.stop()
        if self.jack:
            self.jack.stop()

    def __exit__(self, *exc) -> None:
        self.close()


class JackServer:
    """jackd with the dummy back end at one sample rate, and the ALSA device that captures from
    PulseAudio's JACK sink ports through the ALSA JACK plugin."""

    def __init__(self, root: Path, rate: int) -> None:
        self.root, self.rate = Path(root), rate
        self.name = f"npustream-test-{os.getpid()}-{id(self):x}"  # no clash with a user's server
        self.proc: subprocess.Popen | None = None
        asoundrc = self.root / "xdg-config" / "alsa" / "asoundrc"
        asoundrc.parent.mkdir(parents=True, exist_ok=True)
        asoundrc.write_text(
            f"pcm.{FIXED_DEVICE} {{\n  type jack\n"
            f'  capture_ports {{ 0 "{FIXED_SINK}:front-left" }}\n'
            f'  hint {{ show on description "{rate} Hz only virtual microphone" }}\n}}\n'
        )

    @property
    def client_env(self) -> dict[str, str]:
        return {
            "JACK_DEFAULT_SERVER": self.name,
            "JACK_NO_AUDIO_RESERVATION": "1",
            "XDG_CONFIG_HOME": str(self.root / "xdg-config"),
        }

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        # Real time first, as audio servers run on a desktop: on a loaded 2-core machine a
        # non-real-time JACK misses cycles (xruns) and the captured speech breaks up. Where
        # real-time scheduling is not allowed, run without it.
        for realtime in (["-R"], ["--no-realtime"]):
            if self._start(realtime, timeout):
                return
        log_text = (self.root / "jackd.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"jackd did not start at {self.rate} Hz: {log_text}")

    def _start(self, realtime: list[str], timeout: float) -> bool:
        env = {**os.environ, **self.client_env}
        with open(self.root / "jackd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "jackd",
                    *realtime,
                    "-n",
                    self.name,
                    "-d",
                    "dummy",
                    "-r",
                    str(self.rate),
                    "-p",
                    "4096",
                    "-C",
                    "2",
                    "-P",
                    "2",
                ],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            lsp = subprocess.run(
                ["jack_lsp", "-s", self.name],
                env=env,
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            if "system:capture_1" in lsp.stdout:
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None


def start_pulse(root: Path, fixed_rate: int | None = None, desktop: bool = False) -> PulseServer:
    missing = missing_tools(fixed_rate=fixed_rate is not None)
    if missing:  # fail, not skip: CI must not pass without testing the microphone path
        pytest.fail(f"live-microphone tests need {', '.join(missing)}: {APT_HINT}", pytrace=False)
    server = PulseServer(root, fixed_rate=fixed_rate, desktop=desktop)
    server.start()
    return server


@pytest.fixture
def pulse(tmp_path):
    """A private PulseAudio whose default input hears what `pulse.play()` plays."""
    server = start_pulse(tmp_path / "pulse")
    yield server
    server.close()


@pytest.fixture(params=[44100, 48000], ids=["44k1-only", "48k-only"])
def fixed_rate_pulse(request, tmp_path):
    """As `pulse`, plus FIXED_DEVICE, which accepts only the parameter's sample rate."""
    server = start_pulse(tmp_path / "pulse", fixed_rate=request.param)
    yield server
    server.close()


@pytest.fixture
def desktop_pulse(tmp_path):
    """A private PulseAudio set up as a desktop: default output SPEAKERS, default input MIC_SOURCE
    (which hears what is played into SINK)."""
    server = start_pulse(tmp_path / "pulse", desktop=True)
    yield server
    server.close()
