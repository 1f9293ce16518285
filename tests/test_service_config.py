"""The default config `npustream service install` writes is one the daemon accepts, it changes
only the engine (the service asks for the NPU), and what it shows as defaults are the daemon's."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields

from npustream.service import install
from npustream.stream import config as stream_config

COMMENTED = re.compile(r"^# (\w+) = (.+)$")


def test_default_config_loads_and_asks_for_the_npu_only(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(install.default_config_text())
    assert stream_config.build(path) == stream_config.StreamConfig(engine="npu")


def test_commented_values_are_the_daemons_defaults(tmp_path):
    lines = [line[2:] for line in install.default_config_text().splitlines() if COMMENTED.match(line)]
    shown = tomllib.loads("\n".join(lines))
    assert {"source", "hop", "endpoint_ms"} <= set(shown)
    defaults = {f.name: f.default for f in fields(stream_config.StreamConfig)}
    assert {k: defaults[k] for k in shown} == shown
    # Uncommented, the file is still valid: the names are the daemon's keys.
    path = tmp_path / "uncommented.toml"
    path.write_text("\n".join(lines))
    assert stream_config.build(path) == stream_config.StreamConfig()
