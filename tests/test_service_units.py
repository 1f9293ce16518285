"""The systemd units: generated from the templates, accepted by systemd's own checker, installed
and removed by `npustream service`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from npustream.service import install

REPO = Path(__file__).resolve().parents[1]
# The repository's copies are what `install` writes for a system-wide Python.
REPO_UNITS = {
    "npustream.service": ("user", False),
    "npustream-system.service": ("system", False),
    "npustream-web.service": ("user", True),  # `npustream web`
    "npustream-web-system.service": ("system", True),
}
DEFAULT_PYTHON = "/usr/bin/python3"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze missing: apt-get install systemd (scripts/setup does)",
)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npustream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def verify(unit: Path, scope: str, tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = ["systemd-analyze", *(["--user"] if scope == "user" else []), "verify", "--man=no", str(unit)]
    # The user manager needs a runtime directory, and socket units put paths of 108 bytes at
    # most under it: a short one (pytest's tmp_path can be longer under pytest-xdist).
    with tempfile.TemporaryDirectory(prefix="xdg-", dir="/tmp") as runtime:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "XDG_RUNTIME_DIR": runtime},
        )


@pytest.mark.parametrize("name", REPO_UNITS)
def test_repository_units_are_generated_from_the_templates(name):
    scope, web = REPO_UNITS[name]
    expected = install.render_unit(scope, DEFAULT_PYTHON, web=web)
    assert (REPO / "systemd" / name).read_text() == expected, (
        f"systemd/{name} is out of date; regenerate it: npustream service show --{scope} "
        f"{'--web ' if web else ''}--python {DEFAULT_PYTHON} > systemd/{name}"
    )


@needs_systemd_analyze
@pytest.mark.parametrize("name", REPO_UNITS)
def test_systemd_analyze_verify_accepts_the_units(name, tmp_path):
    if not Path(DEFAULT_PYTHON).exists():
        pytest.fail(f"{DEFAULT_PYTHON} missing: verify checks that ExecStart exists")
    proc = verify(REPO / "systemd" / name, REPO_UNITS[name][0], tmp_path)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr  # warnings count too


@needs_systemd_analyze
def test_verify_catches_a_broken_unit(tmp_path):
    """The checker is not a rubber stamp: a missing interpreter and an unknown key are flagged."""
    unit = tmp_path / "npustream.service"
    unit.write_text(install.render_unit("system", "/nonexistent/python3"))
    assert verify(unit, "system", tmp_path).returncode != 0
    unit.write_text(
        install.render_unit("system", DEFAULT_PYTHON).replace(
            "Restart=on-failure", "Restart=on-failure\nWatchdogSecs=30"
        )
    )
    assert "Unknown key" in verify(unit, "system", tmp_path).stderr


@needs_systemd_analyze
def test_system_unit_hardening_exposure(tmp_path):
    """systemd's own exposure score (0 safe .. 10 unsafe) stays in its "OK" band."""
    proc = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--threshold=30",
            "--man=no",
            str(REPO / "systemd/npustream-system.service"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-600:] + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "Overall exposure level" in x)
    assert float(line.split(":")[1].split()[0]) <= 3.0, line


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_units_carry_readiness_watchdog_and_restart():
    for scope in ("user", "system"):
        d = directives(install.render_unit(scope, DEFAULT_PYTHON))
        assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"]
        assert 0 < int(d["WatchdogSec"][0]) < int(d["TimeoutStartSec"][0])
        assert d["ExecStart"] == [f"{DEFAULT_PYTHON} -m npustream run --config %E/npustream/config.toml"]
    d = directives(install.render_unit("system", DEFAULT_PYTHON))
    assert d["DevicePolicy"] == ["closed"]
    assert d["DeviceAllow"] == ["/dev/accel/accel0 rw", "char-alsa rw"]
    assert d["SupplementaryGroups"] == ["audio render"] and d["User"] == ["npustream"]
    for key in ("RuntimeDirectory", "StateDirectory", "CacheDirectory"):
        assert d[key] == ["npustream"]


def test_exec_start_quotes_awkward_interpreter_paths(tmp_path):
    assert install.exec_path("/opt/my env/bin/python") == '"/opt/my env/bin/python"'
    assert install.exec_path("/opt/100%/python") == "/opt/100%%/python"


@needs_systemd_analyze
def test_user_install_and_uninstall(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = run_cli("service", "install", "--user", env=env)
    assert first.returncode == 0, first.stderr
    unit = tmp_path / "config/systemd/user/npustream.service"
    config = tmp_path / "config/npustream/config.toml"
    assert f"wrote {unit}" in first.stdout and f"wrote default config {config}" in first.stdout
    assert "loginctl enable-linger" in first.stdout
    assert unit.read_text() == install.render_unit("user", sys.executable)
    assert config.read_text() == install.default_config_text()
    assert verify(unit, "user", tmp_path).returncode == 0  # this venv's interpreter as ExecStart

    config.write_text('source = "mic:2"\n')  # a user's edit survives a reinstall
    second = run_cli("service", "install", "--user", env=env)
    assert f"unchanged {unit}" in second.stdout and f"kept existing config {config}" in second.stdout
    assert config.read_text() == 'source = "mic:2"\n'

    removed = run_cli("service", "uninstall", "--user", env=env)
    assert removed.returncode == 0 and not unit.exists() and config.exists()
    run_cli("service", "uninstall", "--user", "--purge", env=env)
    assert not config.exists()


@needs_systemd_analyze
def test_user_install_with_the_web_page(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = run_cli("service", "install", "--user", "--web", env=env)
    assert done.returncode == 0, done.stderr
    units = tmp_path / "config/systemd/user"
    web = units / "npustream-web.service"
    assert (
        f"wrote {web}" in done.stdout
        and "enable --now npustream.service npustream-web.service" in done.stdout
    )
    text = web.read_text()
    assert text == install.render_unit("user", sys.executable, web=True)
    assert "After=npustream.service" in text and "Wants=npustream.service" in text
    assert f"ExecStart={sys.executable} -m npustream web --config %E/npustream/config.toml" in text
    assert verify(web, "user", tmp_path).returncode == 0
    removed = run_cli("service", "uninstall", "--user", env=env)
    assert removed.returncode == 0 and f"removed {web}" in removed.stdout
    assert not web.exists() and not (units / "npustream.service").exists()


@needs_systemd_analyze
def test_staged_system_install_matches_the_repository_unit(tmp_path):
    proc = run_cli("service", "install", "--system", "--root", str(tmp_path), "--python", DEFAULT_PYTHON)
    assert proc.returncode == 0, proc.stderr
    unit = tmp_path / "etc/systemd/system/npustream.service"
    assert unit.read_text() == (REPO / "systemd/npustream-system.service").read_text()
    # systemd-sysusers reads the user definition and would create it (dry run, staged root).
    users = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert users.returncode == 0 and "error" not in users.stderr.lower(), users.stderr
    assert "Creating user 'npustream'" in users.stdout + users.stderr


def test_system_install_refuses_an_interpreter_hidden_by_protect_home(tmp_path):
    proc = run_cli(
        "service", "install", "--system", "--root", str(tmp_path), "--python", "/home/alice/.venv/bin/python"
    )
    assert proc.returncode == 2 and "ProtectHome" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written
