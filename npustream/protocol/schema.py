"""The caption stream's JSON Schema (captions.schema.json, shipped in this package): the
machine-readable form of messages.py, for clients that validate what they receive."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def caption_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("captions.schema.json").read_text("utf-8"))
