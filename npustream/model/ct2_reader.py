"""Read (and write) CTranslate2's model.bin with numpy, memory-mapped: no copy of the weights.

Layout (little-endian; CTranslate2 python/ctranslate2/specs/model_spec.py `_serialize`,
src/models/model.cc `Model::load`):

    u32 binary_version                                   (6 today)
    string spec_name, u32 spec_revision                  (binary_version >= 2)
    u32 n_variables, then per variable:
        string name, u8 rank, u32 dims[rank],
        u8 dtype id, u32 n_bytes                         (binary_version >= 4)
        | u8 item size, u32 n_items                      (older: dtype guessed from the width)
        bytes[n_bytes]                                   (no alignment padding)
    u32 n_aliases, then per alias: string alias, string target   (binary_version >= 3)

    string = u16 length including a trailing NUL, then the bytes.

Scalars (e.g. `encoder/num_heads`, an int16) are rank-0 variables. An int8 or int16 `.../weight`
comes with `.../weight_scale` (int8: one float32 per output row, q = rint(w * scale)).
An alias also aliases the target's `_scale`, as the C++ loader does.
numpy has no bfloat16: such variables are exposed as their raw uint16 bits (`bfloat16_to_float32`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from pathlib import Path

import numpy as np

from npustream.bf16 import from_bf16_bits
from npustream.errors import ModelError
from npustream.model.dims import WhisperDims

CURRENT_BINARY_VERSION = 6

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
DTYPE_NAMES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# numpy storage of each: bfloat16 is kept as its raw 16 bits.
_STORAGE = {
    "float32": np.dtype("<f4"),
    "int8": np.dtype("i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
}
# Binary versions < 4 stored the item width only; this is how the C++ loader maps it.
_LEGACY_WIDTH = {4: "float32", 2: "int16", 1: "int8"}


@dataclasses.dataclass(frozen=True)
class Ct2Model:
    binary_version: int
    spec_name: str
    spec_revision: int
    arrays: dict[str, np.ndarray]  # stored variables, read-only views of the mapped file
    aliases: dict[str, str]  # alias name -> stored variable name
    dims: WhisperDims | None  # for a WhisperSpec; None for other specs
    config: dict = dataclasses.field(default_factory=dict)  # config.json beside model.bin, if any
    dtypes: dict[str, str] = dataclasses.field(default_factory=dict)  # CTranslate2 dtype names

    def resolve(self, name: str) -> str:
        """The stored name behind `name` (aliases followed, `_scale` aliases included)."""
        if name in self.arrays:
            return name
        if name in self.aliases:
            return self.aliases[name]
        if name.endswith("_scale") and name[: -len("_scale")] in self.aliases:
            return self.aliases[name[: -len("_scale")]] + "_scale"
        raise KeyError(name)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[self.resolve(name)]

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
        except KeyError:
            return False
        return True

    def dtype(self, name: str) -> str:
        return self.dtypes[self.resolve(name)]

    def scalar(self, name: str) -> int | float:
        value = self[name]
        if value.ndim != 0:
            raise ModelError(f"model variable {name} is not a scalar (shape {value.shape})")
        return value.item()

    def float32(self, name: str) -> np.ndarray:
        """`name` as float32: float16/bfloat16 widened, int8/int16 dequantised with their scale."""
        value, dtype = self[name], self.dtype(name)
        if dtype == "float32":
            return np.asarray(value)
        if dtype == "float16":
            return value.astype(np.float32)
        if dtype == "bfloat16":
            return from_bf16_bits(value)
        if name + "_scale" not in self:
            raise ModelError(f"model variable {name} is {dtype} without {name}_scale")
        scale = np.asarray(self[name + "_scale"], dtype=np.float32)
        if scale.ndim == 1:  # one scale per output row (int8); broadcast over the rest
            scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
        return value.astype(np.float32) / scale


class _Cursor:
    """Sequential little-endian reads over the mapped file, with a clear error at the end."""

    def __init__(self, data: np.ndarray, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> np.ndarray:
        if self.pos + n > len(self.data):
            raise ModelError(
                f"{self.path} is truncated: needed {n} bytes at offset {self.pos}, file has {len(self.data)}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size).tobytes())[0]

    def string(self) -> str:
        raw = self.take(self.unpack("<H")).tobytes()
        return raw.split(b"\0", 1)[0].decode("utf-8")


def _read_header(cur: _Cursor) -> tuple[int, str, int]:
    binary_version = cur.unpack("<I")
    if not 1 <= binary_version <= CURRENT_BINARY_VERSION:
        raise ModelError(
            f"{cur.path} has binary version {binary_version}; this reader knows 1 to "
            f"{CURRENT_BINARY_VERSION} (not a CTranslate2 model.bin?)"
        )
    if binary_version < 2:
        return binary_version, "", 1
    spec_name = cur.string()
    return binary_version, spec_name, cur.unpack("<I")


def read_spec_name(path: str | Path) -> str:
    """The spec name in model.bin's header ("" before binary version 2), weights left unread."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = np.frombuffer(f.read(10 + 0xFFFF), dtype=np.uint8)
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror}") from error
    return _read_header(_Cursor(head, path))[1]


def read_model_bin(path: str | Path, config: dict | None = None) -> Ct2Model:
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ModelError(f"{path} is empty")
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror}") from error
    cur = _Cursor(data, path)
    binary_version, spec_name, spec_revision = _read_header(cur)

    arrays: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for _ in range(cur.unpack("<I")):
        name = cur.string()
        shape = tuple(cur.unpack("<I") for _ in range(cur.unpack("<B")))
        if binary_version >= 4:
            type_id = cur.unpack("<B")
            if type_id >= len(DTYPE_NAMES):
                raise ModelError(f"{path}: variable {name} has unknown dtype id {type_id}")
            dtype_name, n_bytes = DTYPE_NAMES[type_id], cur.unpack("<I")
        else:
            width = cur.unpack("<B")
            if width not in _LEGACY_WIDTH:
                raise ModelError(f"{path}: variable {name} has unknown item width {width}")
            dtype_name, n_bytes = _LEGACY_WIDTH[width], cur.unpack("<I") * width
        storage = _STORAGE[dtype_name]
        if n_bytes != int(np.prod(shape, dtype=np.int64)) * storage.itemsize:
            raise ModelError(f"{path}: variable {name} has {n_bytes} bytes for shape {shape}")
        # A view of the mapped bytes (possibly unaligned; numpy handles that), never a copy.
        arrays[name] = cur.take(n_bytes).view(storage).reshape(shape)
        dtypes[name] = dtype_name

    aliases: dict[str, str] = {}
    if binary_version >= 3:
        for _ in range(cur.unpack("<I")):
            alias = cur.string()
            aliases[alias] = cur.string()
    if cur.pos != len(data):
        raise ModelError(f"{path} has {len(data) - cur.pos} unexpected bytes after the model")

    model = Ct2Model(binary_version, spec_name, spec_revision, arrays, aliases, None, config or {}, dtypes)
    if spec_name == "WhisperSpec":
        model = dataclasses.replace(model, dims=whisper_dims(model))
    return model


def load(model_dir: str | Path) -> Ct2Model:
    """model.bin (and config.json when present) of a CTranslate2 model directory."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return read_model_bin(model_dir / "model.bin", config)


def _count_layers(model: Ct2Model, scope: str) -> int:
    pattern = re.compile(re.escape(scope) + r"/layer_(\d+)/")
    found = {int(m.group(1)) for n in (*model.arrays, *model.aliases) if (m := pattern.match(n))}
    if found != set(range(len(found))):
        raise ModelError(f"{scope} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def whisper_dims(model: Ct2Model) -> WhisperDims:
    """Dimensions read from the weights themselves: nothing assumed from the model's name."""
    try:
        d_model, n_mels, _kernel = model["encoder/conv1/weight"].shape
        n_audio_ctx = model["encoder/position_encodings/encodings"].shape[0]
        n_vocab, n_text_state = model["decoder/embeddings/weight"].shape
        n_text_ctx = model["decoder/position_encodings/encodings"].shape[0]
        n_audio_head = int(model.scalar("encoder/num_heads"))
        n_text_head = int(model.scalar("decoder/num_heads"))
    except KeyError as missing:
        raise ModelError(f"Whisper model.bin lacks variable {missing.args[0]}") from None
    return WhisperDims(
        n_mels=n_mels,
        n_audio_ctx=n_audio_ctx,
        n_audio_state=d_model,
        n_audio_head=n_audio_head,
        n_audio_layer=_count_layers(model, "encoder"),
        n_vocab=n_vocab,
        n_text_ctx=n_text_ctx,
        n_text_state=n_text_state,
        n_text_head=n_text_head,
        n_text_layer=_count_layers(model, "decoder"),
    )


def encoder_weights(model: Ct2Model) -> dict[str, np.ndarray]:
    """Every non-scalar encoder tensor as float32, by its CTranslate2 name (aliases resolved).

    Quantisation scales are folded in, so `*_scale` entries are not returned.
    """
    names = {n for n in (*model.arrays, *model.aliases) if n.startswith("encoder/")}
    return {
        name: np.ascontiguousarray(model.float32(name))
        for name in sorted(names)
        if not name.endswith("_scale") and model[name].ndim > 0
    }


def write_model_bin(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    *,
    spec_name: str,
    spec_revision: int = 1,
    aliases: dict[str, str] | None = None,
    dtypes: dict[str, str] | None = None,
) -> None:
    """Write variables in CTranslate2's current format (binary version 6).

    `dtypes` names the CTranslate2 dtype where the numpy one is ambiguous: a uint16 array
    must be marked "bfloat16" (numpy has no bfloat16). Others follow the numpy dtype.
    """
    dtypes = dtypes or {}

    def string(text: str) -> bytes:
        raw = text.encode("utf-8") + b"\0"
        return struct.pack("<H", len(raw)) + raw

    with open(path, "wb") as out:
        out.write(struct.pack("<I", CURRENT_BINARY_VERSION))
        out.write(string(spec_name) + struct.pack("<I", spec_revision))
        out.write(struct.pack("<I", len(arrays)))
        for name, value in arrays.items():
            value = np.asarray(value)
            dtype_name = dtypes.get(name, value.dtype.name)
            if dtype_name not in DTYPE_NAMES or _STORAGE[dtype_name].itemsize != value.itemsize:
                raise ValueError(f"{name}: cannot store numpy {value.dtype} as {dtype_name}")
            raw = np.ascontiguousarray(value).astype(_STORAGE[dtype_name], copy=False).tobytes()
            out.write(string(name) + struct.pack("<B", value.ndim))
            out.write(struct.pack(f"<{value.ndim}I", *value.shape))
            out.write(struct.pack("<BI", DTYPE_NAMES.index(dtype_name), len(raw)))
            out.write(raw)
        out.write(struct.pack("<I", len(aliases or {})))
        for alias, target in (aliases or {}).items():
            out.write(string(alias) + string(target))
