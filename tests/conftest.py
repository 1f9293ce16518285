"""Shared fixtures: the project's real audio and OpenAI Whisper's reference arrays in ../shared;
the IRON design's modules (mlir/) on the recording test double of mlir-aie's Python API.

The shared material is required, not optional: if it is missing, tests fail with a message
saying where it was looked for (a skip would let CI pass without testing anything).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("NPUSTREAM_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
AUDIO_DIR = SHARED_DIR / "audio"
REFERENCE_DIR = SHARED_DIR / "reference"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(
            f"shared test material missing: {what} not found at {path} "
            f"(expected <repo>/../shared, or set NPUSTREAM_SHARED_DIR)",
            pytrace=False,
        )
    return path


def _reference_npz_paths() -> list[Path]:
    paths = sorted(_require(REFERENCE_DIR, "reference directory").glob("*.npz"))
    if not paths:
        pytest.fail(f"no reference .npz files in {REFERENCE_DIR}", pytrace=False)
    return paths


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`reference_npz` runs a test once per /shared/reference/*.npz (and fails if there are none)."""
    if "reference_npz" in metafunc.fixturenames:
        paths = _reference_npz_paths()
        metafunc.parametrize("reference_npz", paths, ids=[p.name.split("_whisper_ref")[0] for p in paths])


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR, "shared directory")


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    return _require(AUDIO_DIR, "shared audio directory")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _require(REFERENCE_DIR, "reference directory")


@pytest.fixture(scope="session")
def transcripts(audio_dir: Path) -> dict[str, dict[str, str]]:
    """{file name: {"text", "source", "notes"}} for every file in the shared audio directory."""
    path = _require(audio_dir / "transcripts.json", "transcripts.json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def reference_audio_path(reference_npz: Path, audio_dir: Path) -> Path:
    """The shared audio file a reference .npz was made from (named in the .json beside it)."""
    meta = json.loads(reference_npz.with_suffix(".json").read_text(encoding="utf-8"))
    return _require(audio_dir / Path(meta["source_file"]).name, "reference source audio")


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """The packaged Whisper base, assembled once into the user's model cache."""
    from npustream.model.store import ensure_packaged_model

    return ensure_packaged_model(progress=False)


@pytest.fixture(scope="session")
def jfk_mel(audio_dir: Path):
    """The encoder input for the 11 s JFK clip: one 30 s window of log-mel features."""
    from npustream.asr.audio import load_audio
    from npustream.asr.features import window_features

    return window_features(load_audio(audio_dir / "jfk.flac"))


IRON_DESIGN = tuple(
    f"mlir.{name}" for name in ("encoder_column", "iron_sequence", "iron_column", "iron_core", "build")
)


@pytest.fixture(scope="module")
def iron():
    """The design's modules on the double (real mlir-aie, if installed, is left alone: skip)."""
    try:
        importlib.import_module("aie.iron")
        pytest.skip("mlir-aie is installed: tests/test_npu_resources.py resolves the design with it")
    except ImportError:
        pass
    from doubles.iron import base as iron_double
    from doubles.iron.install import install

    saved = {k: v for k, v in sys.modules.items() if k == "aie" or k.startswith("aie.")}
    install()
    yield iron_double, importlib.import_module("mlir.encoder_column")
    for name in IRON_DESIGN:
        sys.modules.pop(name, None)
    for k in [k for k in sys.modules if k == "aie" or k.startswith("aie.")]:
        del sys.modules[k]
    sys.modules.update(saved)
