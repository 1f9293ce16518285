"""The AIE kernels' portable C++ paths (kernels/*.cc), built with the host's g++ and called
through ctypes, behind the same numpy-level functions as npu/ops/numerics.py.

The build is `g++ -O2 -std=c++20 -shared -fPIC -ffp-contract=off` (no fused multiply-add, so
a*b+c rounds twice, as in numpy) into a cache directory keyed by the sha256 of the kernel
sources, the command and the compiler's version: a source edit rebuilds, nothing else does.
These functions exist to check the kernels against the emulator's numerics (tests/
test_kernels_host.py); they run tile by tile in scalar C++ and are not fast.

Inputs are "bf16 values" as in npu/ops/numerics.py: float32 arrays whose values are exactly bf16. A
value that is not raises ValueError (the kernels could only see it rounded).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from npustream import log
from npustream.errors import EngineError
from npustream.npu.ops import numerics
from npustream.npu.ops.numerics import AttnState
from npustream.npu.ops.tiles import DEFAULT_TILES

logger = log.get(__name__)

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
COMPILE_FLAGS = ("-O2", "-std=c++20", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math")

_f32p = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_u16p = np.ctypeslib.ndpointer(np.uint16, flags="C_CONTIGUOUS")
_opt = ctypes.c_void_p  # optional pointer argument: None is NULL
_i32, _f32 = ctypes.c_int32, ctypes.c_float
_SIGNATURES = {
    "npu_to_bf16": (_f32p, _u16p, _i32),
    "npu_from_bf16": (_u16p, _f32p, _i32),
    "npu_exp_lut": (_f32p, _f32p, _i32),
    "npu_matmul_zero": (_f32p, _i32, _i32),
    "npu_matmul_acc": (_u16p, _u16p, _f32p, _i32, _i32, _i32),
    "npu_matmul_out": (_f32p, _opt, _opt, _i32, _u16p, _i32, _i32),
    "npu_layernorm": (_u16p, _f32p, _f32p, _u16p, _i32, _i32, _f32),
    "npu_gelu_bf16": (_u16p, _u16p, _i32),
    "npu_gelu_f32": (_f32p, _f32p, _i32),
    "npu_attn_init": (_f32p, _f32p, _f32p, _i32, _i32),
    "npu_attn_update": (_u16p, _u16p, _u16p, _f32p, _f32p, _f32p, _i32, _i32, _i32, _i32, _f32),
    "npu_attn_finish": (_f32p, _f32p, _u16p, _i32, _i32),
}


def _cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "npustream" / "host-kernels"


def _compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise EngineError(
            f"C++ compiler {cxx!r} not found: install g++ (scripts/setup does) to build the kernels"
        )
    return cxx


def build(
    cache_root: Path | None = None,
    kernels_dir: Path = KERNELS_DIR,
    *,
    extra_sources: tuple[Path, ...] = (),
    include_dirs: tuple[Path, ...] = (),
) -> Path:
    """Compile the portable kernels (if not cached) and return the shared library's path.
    `extra_sources` are compiled with them (the column glue, with its generated headers in
    `include_dirs`; tests/tools/dma_sim.py)."""
    sources = sorted(kernels_dir.glob("*.cc")) + list(extra_sources)
    if not sources:
        raise EngineError(f"no kernel sources (*.cc) in {kernels_dir}")
    cxx = _compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256(" ".join((cxx, *COMPILE_FLAGS, version)).encode())
    headers = [h for d in (kernels_dir, *include_dirs) for h in sorted(Path(d).glob("*.h"))]
    for path in headers + sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    lib = (cache_root or _cache_root()) / digest.hexdigest()[:20] / "libnpukernels.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
    os.close(fd)
    includes = [f"-I{d}" for d in (kernels_dir, *include_dirs)]
    command = [cxx, *COMPILE_FLAGS, *includes, *map(str, sources), "-o", tmp]
    logger.info("host_kernels.compile", sources=len(sources), output=str(lib))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        os.unlink(tmp)
        raise EngineError(f"building the host kernels failed ({' '.join(command)}):\n{result.stderr[-4000:]}")
    os.replace(tmp, lib)  # atomic: a concurrent reader sees no library or a whole one
    return lib


@functools.cache
def library() -> ctypes.CDLL:
    """The built library with every entry point's argument types declared."""
    lib = ctypes.CDLL(str(build()))
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, None
    return lib


# --- argument checks --------------------------------------------------------------------------


def _bf16_bits(x: np.ndarray, name: str, ndim: int | None = None) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if not np.array_equal(numerics.bf16_round(x), x, equal_nan=True):
        raise ValueError(f"{name} holds values that are not bf16 (round them with numerics.bf16_round)")
    return np.ascontiguousarray(numerics.to_bf16_bits(x))


def _f32(x: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    return x


# --- the npu/ops/numerics.py functions, computed by the kernels ----------------------------------------


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.uint16)
    library().npu_to_bf16(x.ravel(), out.reshape(-1), x.size)
    return out


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(bits, np.uint16)
    out = np.empty(bits.shape, np.float32)
    library().npu_from_bf16(bits.ravel(), out.reshape(-1), bits.size)
    return out


def bf16_round(x: np.ndarray) -> np.ndarray:
    return from_bf16_bits(to_bf16_bits(x))


def exp_lut(x: np.ndarray) -> np.ndarray:
    """The kernels' table exp (npu_numerics.h), fp32 results."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    library().npu_exp_lut(x.ravel(), out.reshape(-1), x.size)
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    """fp32 GELU (the matmul epilogue's step)."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    library().npu_gelu_f32(x.ravel(), out.reshape(-1), x.size)
    return out


def gelu_bf16(x: np.ndarray) -> np.ndarray:
    """The standalone GELU op: bf16 values in, bf16(gelu(x)) out."""
    bits = _bf16_bits(x, "x")
    out = np.empty(bits.shape, np.uint16)
    library().npu_gelu_bf16(bits.reshape(-1), out.reshape(-1), bits.size)
    return numerics.from_bf16_bits(out)


def matmul_tile(
    a: np.ndarray,
    b: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    gelu: bool = False,
    residual: np.ndarray | None = None,
    k_tile: int = DEFAULT_TILES.matmul_k,
) -> np.ndarray:
    """As numerics.matmul_tile, through the kernel's calls: zero, one acc per K tile, out."""
    a_bits, b_bits = _bf16_bits(a, "a", 2), _bf16_bits(b, "b", 2)
    (m, k), (k_b, n) = a_bits.shape, b_bits.shape
    if k != k_b:
        raise ValueError(f"a is [{m}, {k}] but b is [{k_b}, {n}]")
    lib = library()
    acc = np.empty((m, n), np.float32)
    lib.npu_matmul_zero(acc, m, n)
    for k0 in range(0, k, k_tile):  # the NPU's K loop: tiles arrive in order
        a_tile = np.ascontiguousarray(a_bits[:, k0 : k0 + k_tile])
        b_tile = np.ascontiguousarray(b_bits[k0 : k0 + k_tile])
        lib.npu_matmul_acc(a_tile, b_tile, acc, m, a_tile.shape[1], n)
    bias_f32 = None if bias is None else _f32(bias, (n,), "bias")
    res_bits = None if residual is None else _bf16_bits(residual, "residual", 2)
    if res_bits is not None and res_bits.shape != (m, n):
        raise ValueError(f"residual must have shape {(m, n)}, got {res_bits.shape}")
    out = np.empty((m, n), np.uint16)
    lib.npu_matmul_out(
        acc,
        None if bias_f32 is None else bias_f32.ctypes.data,
        None if res_bits is None else res_bits.ctypes.data,
        int(gelu),
        out,
        m,
        n,
    )
    return numerics.from_bf16_bits(out)


def layernorm_rows(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    bits = _bf16_bits(x, "x", 2)
    rows, d = bits.shape
    out = np.empty((rows, d), np.uint16)
    gamma, beta = _f32(gamma, (d,), "gamma"), _f32(beta, (d,), "beta")
    library().npu_layernorm(bits, gamma, beta, out, rows, d, eps)
    return numerics.from_bf16_bits(out)


def attn_init(mq: int, d_head: int, batch: tuple[int, ...] = ()) -> AttnState:
    state = AttnState(
        np.empty((*batch, mq), np.float32),
        np.empty((*batch, mq), np.float32),
        np.empty((*batch, mq, d_head), np.float32),
    )
    for i in np.ndindex(*batch):  # one kernel state per (head, query tile); views, in place
        library().npu_attn_init(state.m[i], state.l[i], state.acc[i], mq, d_head)
    return state


def attn_update(state: AttnState, q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> AttnState:
    """Fold one key/value tile in, for every leading (batch) index; k and v hold only valid keys."""
    q_bits, k_bits, v_bits = _bf16_bits(q, "q"), _bf16_bits(k, "k"), _bf16_bits(v, "v")
    *batch, mq, dh = q_bits.shape
    nk = k_bits.shape[-2]
    if k_bits.shape != (*batch, nk, dh) or v_bits.shape != k_bits.shape:
        raise ValueError(f"q {q_bits.shape}, k {k_bits.shape}, v {v_bits.shape} do not match")
    new = AttnState(  # copies: the caller's state stays as it was, as with numerics.attn_update
        _f32(state.m, (*batch, mq), "state.m").copy(),
        _f32(state.l, (*batch, mq), "state.l").copy(),
        _f32(state.acc, (*batch, mq, dh), "state.acc").copy(),
    )
    lib = library()
    for i in np.ndindex(*batch):
        lib.npu_attn_update(
            q_bits[i], k_bits[i], v_bits[i], new.m[i], new.l[i], new.acc[i], mq, nk, nk, dh, scale
        )
    return new


def attn_finish(state: AttnState) -> np.ndarray:
    acc = np.ascontiguousarray(state.acc, np.float32)
    *batch, mq, dh = acc.shape
    l = _f32(state.l, (*batch, mq), "state.l")
    out = np.empty(acc.shape, np.uint16)
    for i in np.ndindex(*batch):
        library().npu_attn_finish(l[i], acc[i], out[i], mq, dh)
    return numerics.from_bf16_bits(out)
