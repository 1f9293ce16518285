"""A private PulseAudio server for live-microphone tests: no root, no session, no real sound card.

A null sink ("npumic") swallows what is played into it; its monitor is the default source, so
a recorder of the default input hears exactly what the test plays: a virtual microphone.
Clients reach it through PULSE_SERVER; PortAudio (sounddevice) reaches it through its ALSA
back end and the ALSA pulse plugin (Debian: libasound2-plugins), which becomes ALSA's `default`
device when a server answers.

`stop()` and `start()` again on the same socket path make the microphone vanish and come back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SINK = "npumic"
TOOLS = ("pulseaudio", "pactl", "paplay")
APT_HINT = ("apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 "
            "(scripts/setup installs them)")


def missing_tools() -> list[str]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not any(Path(d, "libasound_module_pcm_pulse.so").exists()
               for d in ("/usr/lib/x86_64-linux-gnu/alsa-lib", "/usr/lib/aarch64-linux-gnu/alsa-lib",
                         "/usr/lib64/alsa-lib", "/usr/lib/alsa-lib")):
        missing.append("ALSA pulse plugin (libasound2-plugins)")
    return missing


class PulseServer:
    def __init__(self, root: Path, sink_rate: int = 48000, channels: int = 2) -> None:
        self.root = Path(root)
        self.runtime = self.root / "runtime"
        self.socket = self.runtime / "pulse" / "native"
        self.sink_rate, self.channels = sink_rate, channels
        self.log_path = self.root / "pulseaudio.log"
        self.proc: subprocess.Popen | None = None
        for d in (self.runtime, self.root / "home"):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)  # pulseaudio refuses a runtime directory others can read
        (self.root / "client.conf").write_text("autospawn = no\n")  # a stopped server stays stopped
        (self.root / "server.pa").write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={SINK} rate={sink_rate} channels={channels}\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SINK}.monitor\n"
        )

    @property
    def client_env(self) -> dict[str, str]:
        """Variables that point a client (pactl, paplay, PortAudio via ALSA) at this server."""
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
            "PULSE_COOKIE": str(self.root / "cookie"),
        }

    def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, "HOME": str(self.root / "home"), "XDG_RUNTIME_DIR": str(self.runtime),
               "XDG_CONFIG_HOME": str(self.root / "home" / ".config")}
        env.pop("PULSE_SERVER", None)
        cmd = ["pulseaudio", "-n", "--daemonize=no", "--system=no", "--exit-idle-time=-1",
               "--use-pid-file=no", "--realtime=no", "--high-priority=no", "--disallow-exit",
               "--log-target=stderr", "-F", str(self.root / "server.pa")]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.client_env},
                              capture_output=True, text=True, timeout=20, check=check)

    def play(self, path: str | Path) -> subprocess.Popen:
        """Start playing a sound file into the virtual microphone (real time)."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(path)],
                                env={**os.environ, **self.client_env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

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

    def __enter__(self) -> "PulseServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
