"""Audio input devices as PortAudio (sounddevice) sees them, for `npustream devices` and doctor."""

from __future__ import annotations

from dataclasses import dataclass

from npustream.errors import AudioError

PROBE_RATES = (16000, 44100, 48000)  # Whisper's rate, then what sound cards usually offer
PORTAUDIO_HINT = "apt-get install libportaudio2 (Debian/Ubuntu) or your distribution's portaudio"


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    is_default: bool
    rates: tuple[int, ...]  # those of PROBE_RATES the device accepts for mono capture


def sounddevice():
    """The sounddevice module, or an AudioError saying how to get PortAudio."""
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise AudioError(f"PortAudio is not installed ({exc}): {PORTAUDIO_HINT}") from None
    return sd


def portaudio_version() -> str:
    return sounddevice().get_portaudio_version()[1].split(",")[0]  # without the git revision


def _accepted_rates(sd, index: int) -> tuple[int, ...]:
    rates = []
    for rate in PROBE_RATES:
        try:
            sd.check_input_settings(device=index, samplerate=rate, channels=1, dtype="float32")
        except Exception:  # noqa: BLE001, S112 - PortAudioError or ValueError: rate not offered
            continue
        rates.append(rate)
    return tuple(rates)


def input_devices(probe_rates: bool = True) -> list[InputDevice]:
    sd = sounddevice()
    hostapis = sd.query_hostapis()
    default_index = _default_input_index(sd)
    devices = []
    for info in sd.query_devices():
        if info["max_input_channels"] < 1:
            continue
        devices.append(
            InputDevice(
                index=info["index"],
                name=info["name"],
                hostapi=hostapis[info["hostapi"]]["name"],
                channels=info["max_input_channels"],
                default_rate=info["default_samplerate"],
                is_default=info["index"] == default_index,
                rates=_accepted_rates(sd, info["index"]) if probe_rates else (),
            )
        )
    return devices


def _default_input_index(sd) -> int | None:
    index = sd.default.device[0]
    if index is None or index < 0:
        return None
    return int(index)


def resolve(spec: str | None, devices: list[InputDevice]) -> InputDevice:
    """The device `mic` or `mic:SPEC` opens: sounddevice's own lookup, as the daemon does it (an
    index, or a name: a unique part of "NAME, HOST API"), so doctor cannot disagree with `run`."""
    sd = sounddevice()
    device: str | int | None = int(spec) if spec and spec.strip().isdigit() else (spec or None)
    try:
        index = sd.query_devices(device, kind="input")["index"]
    except (ValueError, sd.PortAudioError) as exc:
        raise AudioError(f"audio input {spec or '(default)'}: {exc}") from None
    match = [d for d in devices if d.index == index]
    if not match:
        raise AudioError(f"audio device {spec!r} is not an input device")
    return match[0]


def describe_rates(device: InputDevice) -> str:
    if 16000 in device.rates:
        return "captures at 16 kHz directly"
    if device.rates:
        return f"offers {'/'.join(f'{r / 1000:g}' for r in device.rates)} kHz: resampled to 16 kHz"
    return f"default {device.default_rate:g} Hz: resampled to 16 kHz"
