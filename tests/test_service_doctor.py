"""`npustream doctor` and `npustream devices` against real audio servers and real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from daemon_harness import Daemon
from pulse import FIXED_DEVICE, fixed_rate_pulse, pulse  # noqa: F401 (fixtures)

from npustream.service import npu_probe


def npustream(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npustream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def doctor(tmp_path, config: str, env: dict | None = None) -> tuple[int, dict]:
    path = tmp_path / "config.toml"
    path.write_text(config)
    env = {"XDG_RUNTIME_DIR": str(tmp_path), **(env or {})}  # sockets of this test only
    proc = npustream("doctor", "--config", str(path), "--json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def lines(report: dict, area: str) -> list[dict]:
    return [c for c in report["checks"] if c["area"] == area]


def test_default_microphone_through_the_sound_server(pulse, tmp_path):  # noqa: F811
    code, report = doctor(tmp_path, 'source = "mic"\n', pulse.client_env)
    assert code == 0 and report["can_run"], report
    default = [c for c in lines(report, "audio") if c["detail"].startswith("default input")]
    assert default and default[0]["status"] == "ok"
    assert "captures at 16 kHz directly" in default[0]["detail"]


def test_fixed_rate_microphone_is_reported_as_resampled(fixed_rate_pulse, tmp_path):  # noqa: F811
    rate = fixed_rate_pulse.jack.rate
    code, report = doctor(tmp_path, f'source = "mic:{FIXED_DEVICE}"\n', fixed_rate_pulse.client_env)
    assert code == 0, report
    chosen = [c for c in lines(report, "audio") if c["detail"].startswith(f"mic:{FIXED_DEVICE}")]
    assert f"offers {rate / 1000:g} kHz: resampled to 16 kHz" in chosen[0]["detail"]


def test_unknown_microphone_fails_with_a_fix(pulse, tmp_path):  # noqa: F811
    code, report = doctor(tmp_path, 'source = "mic:no-such-microphone"\n', pulse.client_env)
    assert code == 1 and not report["can_run"]
    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert len(failed) == 1 and "no-such-microphone" in failed[0]["detail"]
    assert "npustream devices" in failed[0]["fix"]


def test_sources_without_a_microphone_need_no_audio_device(tmp_path, audio_dir):
    code, report = doctor(tmp_path, f'source = "file:{audio_dir / "jfk.flac"}"\n')
    assert code == 0 and [c["status"] for c in lines(report, "audio")] == ["ok"]
    code, report = doctor(tmp_path, f'source = "file:{tmp_path / "missing.wav"}"\n')
    assert code == 1 and lines(report, "audio")[0]["status"] == "FAIL"


def test_bad_config_names_the_key(tmp_path):
    code, report = doctor(tmp_path, 'source = "sample"\nhopp = 2\n')
    assert code == 1
    assert "hopp" in lines(report, "config")[0]["detail"] and lines(report, "config")[0]["fix"]


def test_engine_choice_and_reason(tmp_path):
    code, report = doctor(tmp_path, 'source = "sample"\nengine = "npu"\n')
    assert code == 0  # no NPU is not fatal: the CPU takes over
    if npu_probe.probe().blocker is not None:
        assert report["engine"] == "cpu"
        assert report["engine_reason"].startswith("engine = npu, but ")
        npu = {c["detail"].split(":")[0]: c for c in lines(report, "npu")}
        assert npu["device"]["status"] == "warn" and npu["device"]["fix"]
    else:
        assert report["engine"] == "npu"
    code, report = doctor(tmp_path, 'source = "sample"\nengine = "cpu"\n')
    assert report["engine"] == "cpu" and report["engine_reason"].startswith("engine = cpu")


def test_stale_control_socket_is_flagged(tmp_path):
    runtime = tmp_path / "npustream"
    runtime.mkdir()
    (runtime / "control.sock").write_text("")  # left behind by a daemon that died
    code, report = doctor(tmp_path, 'source = "sample"\n')
    daemon = lines(report, "daemon")
    assert daemon[0]["status"] == "warn" and "nothing answers" in daemon[0]["detail"]
    assert code == 0  # a new daemon replaces the stale socket


def test_human_output_fits_one_screen(pulse, tmp_path):  # noqa: F811
    config = tmp_path / "config.toml"
    config.write_text('source = "mic"\nengine = "npu"\n')
    proc = npustream(
        "doctor", "--config", str(config), env={**pulse.client_env, "XDG_RUNTIME_DIR": str(tmp_path)}
    )
    out = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(out) <= 30, proc.stdout
    assert out[-2].startswith("engine: run would use ") and out[-1].startswith("result: ")


def test_devices_lists_index_name_channels_and_rates(fixed_rate_pulse):  # noqa: F811
    proc = npustream("devices", "--json", env=fixed_rate_pulse.client_env)
    assert proc.returncode == 0, proc.stderr
    devices = {d["name"]: d for d in map(json.loads, proc.stdout.splitlines())}
    default = next(d for d in devices.values() if d["is_default"])
    assert default["name"] == "default" and 16000 in default["rates"]
    fixed = devices[FIXED_DEVICE]
    assert fixed["rates"] == [fixed_rate_pulse.jack.rate] and fixed["channels"] == 1
    assert fixed["default_rate"] == fixed_rate_pulse.jack.rate
    table = npustream("devices", env=fixed_rate_pulse.client_env).stdout
    assert f"{fixed['index']:>3}  {FIXED_DEVICE}" in table


def test_a_running_daemon_is_found_on_its_control_socket(tmp_path):
    daemon = Daemon(tmp_path / "daemon", ["--source", "stdin"])
    try:
        daemon.wait_ready()
        config = f'source = "sample"\npub = "{daemon.pub}"\nctl = "{daemon.ctl}"\n'
        code, report = doctor(tmp_path, config)
        running = lines(report, "daemon")[0]
        assert code == 0
        assert running["status"] == "ok" and "a daemon is running (engine cpu" in running["detail"]
        assert daemon.stop() == 0
    finally:
        daemon.close()
