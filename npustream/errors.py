"""Errors a user sees as one clear line (the CLI prints str(error) and exits non-zero)."""


class NpustreamError(Exception):
    """Base for errors that carry a user-facing message."""


class AudioError(NpustreamError):
    """Audio that cannot be used: missing, corrupt, unsupported, empty, or non-finite."""


class ModelError(NpustreamError):
    """A model directory or weights file that cannot be used."""


class ConfigError(NpustreamError):
    """A bad configuration key or value."""


class EngineError(NpustreamError):
    """An encoder engine that cannot run (missing hardware, runtime, or build artefacts)."""
