"""Encoder weights in the layout and dtype the NPU kernels consume, converted once and cached.

From the float32 weights of the numpy model.bin reader, per op of graph.encoder_ops:

    "<op>.w"     matmul weight B[K,N] (K inputs, N outputs): bf16 bits, zero-padded to tile
                 multiples, tile-major uint16[K/k, N/n, k, n] (one contiguous tile per DMA)
    "<op>.b"     bias, fp32[N padded]
    "<op>.g", "<op>.beta"   LayerNorm gamma, beta, fp32[D]
    "stem.conv2.res"        positional embedding, bf16 bits [n_audio_ctx, d] (conv2's residual)

Conv weights [C_out, C_in, 3] become B[3*C_in, C_out] with row tap*C_in + c_in, the order of an
im2col row of a time-major input (npu/run/emulator.py). Linear weights [out, in] become B = W^T.
The fused QKV bias is used as stored: Whisper's key has no bias, CTranslate2 stores zeros there.

The cache is a directory of .npy files (memory-mapped on load) plus meta.json, keyed by the
sha256 of model.bin, the tile sizes and LAYOUT_VERSION, so a change to any of them converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from npustream import log
from npustream.errors import ModelError
from npustream.model import ct2_reader
from npustream.model.dims import WhisperDims
from npustream.npu.ops.numerics import from_bf16_bits, to_bf16_bits
from npustream.npu.ops.tiles import DEFAULT_TILES, Tiles, check_l1, padded

logger = log.get(__name__)

LAYOUT_VERSION = 1


def matmul_shape(op: str, dims: WhisperDims) -> tuple[int, int]:
    """(K, N) of a matmul op's weight B, before padding."""
    d = dims.n_audio_state
    shapes = {
        "stem.conv1": (3 * dims.n_mels, d),
        "stem.conv2": (3 * d, d),
        "qkv": (d, 3 * d),
        "out_proj": (d, d),
        "fc1": (d, dims.n_ff),
        "fc2": (dims.n_ff, d),
    }
    return shapes[op if op.startswith("stem.") else op.split(".", 1)[1]]


def tile_matrix(b: np.ndarray, tiles: Tiles) -> np.ndarray:
    """float32 B[K,N] -> bf16 bits uint16[K/k, N/n, k, n], zero-padded."""
    k, n = tiles.matmul_k, tiles.matmul_n
    kp, np_ = padded(b.shape[0], k), padded(b.shape[1], n)
    full = np.zeros((kp, np_), np.float32)
    full[: b.shape[0], : b.shape[1]] = b
    return np.ascontiguousarray(to_bf16_bits(full).reshape(kp // k, k, np_ // n, n).swapaxes(1, 2))


def untile_matrix(tiled: np.ndarray, k_rows: int, n_cols: int) -> np.ndarray:
    """uint16[K/k, N/n, k, n] -> float32 B[k_rows, n_cols] (padding cropped)."""
    kt, nt, k, n = tiled.shape
    return from_bf16_bits(tiled.swapaxes(1, 2).reshape(kt * k, nt * n)[:k_rows, :n_cols])


def _pad_vector(v: np.ndarray, tile: int) -> np.ndarray:
    out = np.zeros(padded(v.shape[0], tile), np.float32)
    out[: v.shape[0]] = v
    return out


def convert(weights: dict[str, np.ndarray], dims: WhisperDims, tiles: Tiles) -> dict[str, np.ndarray]:
    """ct2_reader.encoder_weights (float32, CTranslate2 names) -> kernel tensors by op name."""
    out: dict[str, np.ndarray] = {}

    def matmul(op: str, b: np.ndarray, bias: np.ndarray) -> None:
        out[op + ".w"] = tile_matrix(b, tiles)
        out[op + ".b"] = _pad_vector(bias, tiles.matmul_n)

    def conv(op: str, scope: str) -> None:
        w = weights[f"encoder/{scope}/weight"]  # [C_out, C_in, taps]
        matmul(op, w.transpose(2, 1, 0).reshape(-1, w.shape[0]), weights[f"encoder/{scope}/bias"])

    def norm(op: str, scope: str) -> None:
        out[op + ".g"] = np.ascontiguousarray(weights[f"{scope}/gamma"], np.float32)
        out[op + ".beta"] = np.ascontiguousarray(weights[f"{scope}/beta"], np.float32)

    try:
        conv("stem.conv1", "conv1")
        conv("stem.conv2", "conv2")
        out["stem.conv2.res"] = to_bf16_bits(weights["encoder/position_encodings/encodings"])
        for i in range(dims.n_audio_layer):
            src, p = f"encoder/layer_{i}/", f"layer{i}."
            norm(p + "ln1", src + "self_attention/layer_norm")
            for op, scope in (
                ("qkv", "self_attention/linear_0"),
                ("out_proj", "self_attention/linear_1"),
                ("fc1", "ffn/linear_0"),
                ("fc2", "ffn/linear_1"),
            ):
                matmul(p + op, weights[src + scope + "/weight"].T, weights[src + scope + "/bias"])
            norm(p + "ln2", src + "ffn/layer_norm")
        norm("final_ln", "encoder/layer_norm")
    except KeyError as missing:
        raise ModelError(f"encoder weights lack {missing.args[0]}") from None
    return out


@dataclass(frozen=True)
class NpuWeights:
    """The converted tensors (read-only, usually memory-mapped) with their dims and tiles."""

    dims: WhisperDims
    tiles: Tiles
    tensors: dict[str, np.ndarray]
    _operands: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def matrix(self, op: str) -> np.ndarray:
        """The op's weight as float32 B[K, N], decoded from its bf16 tiles (cached)."""
        key = op + ".w"
        if key not in self._operands:
            self._operands[key] = untile_matrix(self.tensors[key], *matmul_shape(op, self.dims))
        return self._operands[key]

    def vector(self, name: str, length: int | None = None) -> np.ndarray:
        """An fp32 vector (bias cropped to `length`, gamma, beta) or the bf16 positional table."""
        v = self.tensors[name]
        if v.dtype == np.uint16:
            if name not in self._operands:
                self._operands[name] = from_bf16_bits(v)
            return self._operands[name]
        return v if length is None else v[:length]


def from_float32(
    weights: dict[str, np.ndarray], dims: WhisperDims, tiles: Tiles = DEFAULT_TILES
) -> NpuWeights:
    """Convert in memory, no cache (random-weight tests, other shapes)."""
    check_l1(tiles, dims)
    return NpuWeights(dims, tiles, convert(weights, dims, tiles))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _default_cache_root(model_dir: Path) -> Path:
    """Beside the model when its directory is writable, else the user's cache directory."""
    if os.access(model_dir, os.W_OK):
        return model_dir / "npu-layout"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "npustream" / "npu-layout"


def cache_key(model_sha: str, tiles: Tiles) -> str:
    t = "-".join(str(v) for v in asdict(tiles).values())
    return f"{model_sha[:16]}-t{t}-v{LAYOUT_VERSION}"


def load_npu_weights(
    model_dir: str | Path, tiles: Tiles = DEFAULT_TILES, *, cache_root: Path | None = None
) -> NpuWeights:
    """The model's encoder in kernel layout: from the cache, or converted now and cached."""
    model_dir = Path(model_dir)
    model = ct2_reader.load(model_dir)
    if model.dims is None:
        raise ModelError(f"{model_dir}/model.bin is a {model.spec_name}, not a Whisper model")
    check_l1(tiles, model.dims)
    cache = (cache_root or _default_cache_root(model_dir)) / cache_key(
        _sha256(model_dir / "model.bin"), tiles
    )
    if not (cache / "meta.json").is_file():
        logger.info("npu_layout.convert", model=str(model_dir), cache=str(cache))
        tensors = convert(ct2_reader.encoder_weights(model), model.dims, tiles)
        _write_cache(
            cache, tensors, {"dims": asdict(model.dims), "tiles": asdict(tiles), "version": LAYOUT_VERSION}
        )
    meta = json.loads((cache / "meta.json").read_text())
    tensors = {name: np.load(cache / f"{name}.npy", mmap_mode="r") for name in meta["tensors"]}
    return NpuWeights(model.dims, tiles, tensors)


def _write_cache(cache: Path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    """Write into a temporary sibling, then rename: a reader never sees half a cache."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
    try:
        for name, value in tensors.items():
            np.save(tmp / f"{name}.npy", value)
        (tmp / "meta.json").write_text(json.dumps({**meta, "tensors": sorted(tensors)}, indent=1))
        os.rename(tmp, cache)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if (cache / "meta.json").is_file():  # another process finished the same cache first
            return
        raise ModelError(f"cannot write the NPU weight cache {cache}: {error.strerror}") from error
