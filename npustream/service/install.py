"""Install and remove the systemd unit: the unit text comes from service/templates/ (the one source
the repository's systemd/ files are generated from), with ExecStart set to this interpreter.

    user   ~/.config/systemd/user/npustream.service   + ~/.config/npustream/config.toml
    system /etc/systemd/system/npustream.service      + /etc/npustream/config.toml
           + /etc/sysusers.d/npustream.conf (the service's own user)

With web=True (`--web`), npustream-web.service beside it: `npustream web`, ordered after the
daemon and wanting it (the page follows the daemon through restarts by itself).

`root` stages the system files under another directory (packaging); nothing is run then.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from npustream import log
from npustream.errors import ConfigError, NpustreamError

logger = log.get(__name__)

UNIT_NAME = "npustream.service"
WEB_UNIT_NAME = "npustream-web.service"
SCOPES = ("user", "system")
SYSTEM_USER = "npustream"
SYSUSERS_LINE = f'u {SYSTEM_USER} - "npustream live speech captioning" /var/lib/npustream\n'


def template_text(name: str) -> str:
    return resources.files("npustream.service").joinpath("templates", name).read_text("utf-8")


def exec_path(path: str) -> str:
    """A path as one ExecStart word: '%' escaped as a specifier, quoted when it has blanks."""
    path = path.replace("%", "%%")
    if any(c.isspace() for c in path) or '"' in path or "\\" in path:
        path = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return path


def render_unit(scope: str, python: str, web: bool = False) -> str:
    """The daemon's unit, or with web=True the web page's."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown service scope {scope!r}; choose user or system")
    name = f"web-{scope}.service" if web else f"{scope}.service"
    return Template(template_text(name)).substitute(python=exec_path(python))


def default_config_text() -> str:
    return template_text("config.toml")


def _config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"  # as systemd's %E


@dataclass
class Layout:
    scope: str
    unit: Path
    config: Path
    sysusers: Path | None
    staged: bool  # under a --root: write files only, run nothing

    @classmethod
    def for_scope(cls, scope: str, root: str | Path | None = None) -> Layout:
        if scope == "user":
            if root is not None:
                raise ConfigError("--root stages a system install; it does not apply to --user")
            home = _config_home()
            return cls(
                scope, home / "systemd/user" / UNIT_NAME, home / "npustream/config.toml", None, staged=False
            )
        base = Path(root) if root is not None else Path("/")
        return cls(
            scope,
            base / "etc/systemd/system" / UNIT_NAME,
            base / "etc/npustream/config.toml",
            base / "etc/sysusers.d/npustream.conf",
            staged=root is not None,
        )

    @property
    def web_unit(self) -> Path:
        return self.unit.with_name(WEB_UNIT_NAME)


@dataclass
class Report:
    done: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"  {line}" for line in self.done]
        return "\n".join(lines + [f"next: {hint}" for hint in self.hints])


def _write(path: Path, text: str, mode: int) -> str:
    """Write atomically; returns 'wrote', 'updated' or 'unchanged'."""
    if path.is_file() and path.read_text("utf-8") == text:
        return "unchanged"
    verb = "updated" if path.exists() else "wrote"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, "utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)
    return verb


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()  # sd_booted(3)


def _systemctl(scope: str, *args: str) -> subprocess.CompletedProcess:
    cmd = ["systemctl", *(["--user"] if scope == "user" else []), *args]
    logger.debug("run", cmd=" ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _check_python_visible(scope: str, python: str) -> None:
    if scope != "system":
        return
    for hidden in ("/home", "/root", "/run/user"):  # ProtectHome=yes
        if Path(python).is_relative_to(hidden) or Path(python).resolve().is_relative_to(hidden):
            raise ConfigError(
                f"the system service cannot run {python}: ProtectHome=yes hides {hidden} from it. "
                "Install npustream elsewhere (python3 -m venv /opt/npustream && "
                "/opt/npustream/bin/pip install npustream) and run that one's `npustream service "
                "install --system`, or use --user"
            )


def _create_system_user(layout: Layout, report: Report) -> None:
    verb = _write(layout.sysusers, SYSUSERS_LINE, 0o644)
    report.done.append(f"{verb} {layout.sysusers} (the service's own user, {SYSTEM_USER})")
    if layout.staged:
        report.hints.append("on the target, run: systemd-sysusers npustream.conf")
        return
    if shutil.which("systemd-sysusers"):
        proc = subprocess.run(
            ["systemd-sysusers", str(layout.sysusers)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise NpustreamError(f"systemd-sysusers failed: {proc.stderr.strip()}")
        report.done.append(f"ensured system user {SYSTEM_USER} (systemd-sysusers)")
    else:
        report.hints.append(f"create the user: useradd --system --user-group {SYSTEM_USER}")


def install(
    scope: str,
    *,
    enable: bool = False,
    python: str | None = None,
    root: str | Path | None = None,
    web: bool = False,
) -> Report:
    python = python or sys.executable
    layout = Layout.for_scope(scope, root)
    _check_python_visible(scope, python)
    if scope == "system" and not layout.staged and os.geteuid() != 0:
        raise NpustreamError(
            "installing the system service needs root: sudo npustream service "
            "install --system (or --user for this user's session)"
        )
    report = Report()
    verb = _write(layout.unit, render_unit(scope, python), 0o644)
    report.done.append(f"{verb} {layout.unit} (ExecStart={python} -m npustream run)")
    units = [UNIT_NAME]
    if web:
        verb = _write(layout.web_unit, render_unit(scope, python, web=True), 0o644)
        report.done.append(
            f"{verb} {layout.web_unit} (ExecStart={python} -m npustream web, after the daemon)"
        )
        units.append(WEB_UNIT_NAME)
    if layout.config.exists():
        report.done.append(f"kept existing config {layout.config}")
    else:
        _write(layout.config, default_config_text(), 0o644)
        report.done.append(f"wrote default config {layout.config}")
    if scope == "system":
        _create_system_user(layout, report)
    if layout.staged:
        return report
    _activate(scope, enable, report, units)
    if scope == "user":
        report.hints.append('start at boot without logging in: loginctl enable-linger "$USER"')
    journal = "journalctl --user -u npustream -f" if scope == "user" else "journalctl -u npustream -f"
    report.hints.append(f"check it: npustream doctor; logs: {journal}")
    return report


def _activate(scope: str, enable: bool, report: Report, units: list[str]) -> None:
    flag = "--user " if scope == "user" else ""
    names = " ".join(units)
    if not (systemd_running() and shutil.which("systemctl")):
        report.done.append("systemd is not running here: nothing reloaded or started")
        report.hints.append(f"where systemd runs: systemctl {flag}enable --now {names}")
        if enable:
            raise NpustreamError(
                f"--enable needs a running systemd, and none runs here "
                f"(the unit was written: {report.done[0]})"
            )
        return
    reload = _systemctl(scope, "daemon-reload")
    if reload.returncode != 0:
        raise NpustreamError(f"systemctl {flag}daemon-reload failed: {reload.stderr.strip()}")
    report.done.append(f"ran systemctl {flag}daemon-reload")
    if not enable:
        report.hints.append(f"start it now and at every login/boot: systemctl {flag}enable --now {names}")
        return
    started = _systemctl(scope, "enable", "--now", *units)
    if started.returncode != 0:
        raise NpustreamError(f"systemctl {flag}enable --now {names} failed: {started.stderr.strip()}")
    report.done.append(f"ran systemctl {flag}enable --now {names}")


def uninstall(scope: str, *, purge: bool = False, root: str | Path | None = None) -> Report:
    layout = Layout.for_scope(scope, root)
    if scope == "system" and not layout.staged and os.geteuid() != 0:
        raise NpustreamError(
            "removing the system service needs root: sudo npustream service uninstall --system"
        )
    report = Report()
    flag = "--user " if scope == "user" else ""
    live = not layout.staged and systemd_running() and shutil.which("systemctl")
    # The web unit first: it wants the daemon, and would otherwise outlive it.
    for unit in (layout.web_unit, layout.unit):
        if live and unit.exists():
            stopped = _systemctl(scope, "disable", "--now", unit.name)
            if stopped.returncode != 0:
                raise NpustreamError(
                    f"systemctl {flag}disable --now {unit.name} failed: {stopped.stderr.strip()}"
                )
            report.done.append(f"ran systemctl {flag}disable --now {unit.name}")
        if unit.exists():
            unit.unlink()
            report.done.append(f"removed {unit}")
        elif unit == layout.unit:
            report.done.append(f"no unit at {unit}")
    if live:
        _systemctl(scope, "daemon-reload")
        report.done.append(f"ran systemctl {flag}daemon-reload")
    if purge:
        for path in (layout.config, layout.sysusers):
            if path is not None and path.exists():
                path.unlink()
                report.done.append(f"removed {path}")
        if layout.config.parent.is_dir() and not any(layout.config.parent.iterdir()):
            layout.config.parent.rmdir()
    elif layout.config.exists():
        report.done.append(f"kept config {layout.config} (--purge removes it)")
    if scope == "system" and not layout.staged:
        report.hints.append(
            f"the system user {SYSTEM_USER} and /var/lib, /var/cache/npustream "
            "are kept; remove them by hand if wanted"
        )
    return report
