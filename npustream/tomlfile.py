"""Reading the TOML config file that the daemon (`run`) and the caption page (`web`) share, with
one ConfigError line naming the file for every way it can fail."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from npustream.errors import ConfigError


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
