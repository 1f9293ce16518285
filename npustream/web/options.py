"""`npustream web`'s options: flags, else the daemon's config file (its pub/ctl endpoints and a
[web] table), else the defaults. The same file the daemon reads, so the page finds the
daemon wherever the daemon's config puts it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from npustream.errors import ConfigError
from npustream.web import DEFAULT_LISTEN

WEB_KEYS = ("listen",)


@dataclass(frozen=True)
class WebOptions:
    listen: str = DEFAULT_LISTEN
    endpoint: str | None = None  # None: the daemon's default ipc socket
    ctl: str | None = None


def _string(value, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def load(config: str | None, listen: str | None, endpoint: str | None, ctl: str | None) -> WebOptions:
    values: dict[str, str | None] = {}
    if config:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for key, name in (("pub", "endpoint"), ("ctl", "ctl")):
            if data.get(key):
                values[name] = _string(data[key], f"config {path}: key '{key}'")
        table = data.get("web", {})
        if not isinstance(table, dict):
            raise ConfigError(f"config {path}: 'web' must be a table ([web])")
        for key, value in table.items():
            if key not in WEB_KEYS:
                raise ConfigError(
                    f"config {path}: unknown key '{key}' in [web] (known: {', '.join(WEB_KEYS)})"
                )
            values[key] = _string(value, f"config {path}: [web] key '{key}'")
    for name, flag in (("listen", listen), ("endpoint", endpoint), ("ctl", ctl)):
        if flag is not None:
            values[name] = flag
    return WebOptions(**values)
