"""Where the daemon's two sockets are by default: ipc sockets private to this user, in
$XDG_RUNTIME_DIR/npustream (or /tmp/npustream-$UID). The daemon binds them; clients connect."""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir() -> Path:
    """Where the default ipc sockets live: $XDG_RUNTIME_DIR/npustream, else a per-user /tmp dir."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "npustream" if base else Path(f"/tmp/npustream-{os.getuid()}")


def default_pub() -> str:
    return f"ipc://{runtime_dir() / 'captions.sock'}"


def default_ctl() -> str:
    return f"ipc://{runtime_dir() / 'control.sock'}"
