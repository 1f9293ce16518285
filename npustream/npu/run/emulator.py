"""The encoder run as the NPU's operations, with the kernels' numerics, on the CPU.

Every op of graph.encoder_ops runs through npu/ops/numerics.py: bf16 activations and weights, fp32
accumulation, one rounding per kernel output, flash attention over key/value tiles of
tiles.attn_kv_rows. Nothing is skipped and nothing the NPU does in bf16 is kept in fp32 here.

One step runs on the host by design: `prepare_mel` turns the [n_mels, 3000] log-mel (made on
the host by the feature extractor) time-major, pads one zero frame at each end and rounds it to
bf16: that is how the input buffer is written before it is handed to the NPU. The im2col of
both convolutions is not a host step: in a time-major buffer, the im2col row of output frame t
is one contiguous run of 3*C_in values (starting at frame t*stride), so the DMA reads it with an
address pattern (stride `stride*C_in`, length `3*C_in`); `_im2col` is that pattern, as a view.

Vectorised where the result is the same as running tile by tile:
- matmul: all row and column tiles in one BLAS call. Bit-identical per element except for the
  order of the fp32 sums over K (BLAS blocks them; the kernel loops over K tiles), which moves a
  bf16 output by at most one ulp, rarely.
- attention: one head at a time, all query rows and all key/value tiles together
  (`flash_attention`): the running max, P, alpha and l are the very values the kernel's tile loop
  computes (scores up to the fp32 sum order of q.k); only the P.V rescale-and-add loop is
  associated differently (fp32 rounding). A P element whose exp lands near a bf16 rounding
  boundary can round the other way when its score differs in the last fp32 bit, which moves the
  output by up to one bf16 ulp of that probability times v (see docs/npu-numerics.md).
- LayerNorm: all rows at once; rows are independent (sum order as above).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from npustream.errors import EngineError
from npustream.npu.ops import numerics
from npustream.npu.ops.graph import NpuOp, encoder_ops
from npustream.npu.ops.weights import NpuWeights, matmul_shape


def prepare_mel(mel: np.ndarray) -> np.ndarray:
    """Host step: log-mel [n_mels, frames] -> bf16 values [frames + 2, n_mels], zero-padded."""
    n_mels, frames = mel.shape
    out = np.zeros((frames + 2, n_mels), np.float32)
    out[1:-1] = mel.T
    return numerics.bf16_round(out)


def _im2col(padded: np.ndarray, rows_out: int, stride: int, taps: int = 3) -> np.ndarray:
    """The DMA's view of a padded time-major [T + 2, C] buffer as [rows_out, taps * C] rows."""
    padded = np.ascontiguousarray(padded)
    c = padded.shape[1]
    item = padded.itemsize
    return np.lib.stride_tricks.as_strided(
        padded, shape=(rows_out, taps * c), strides=(stride * c * item, item), writeable=False
    )


def _conv_input(op: NpuOp, acts: dict[str, np.ndarray], rows_total: int) -> np.ndarray:
    source = acts[op.inputs[0]]
    if op.name == "stem.conv1":  # "mel" is already padded by prepare_mel
        return _im2col(source, rows_total, stride=1)
    padded = np.zeros((source.shape[0] + 2, source.shape[1]), np.float32)
    padded[1:-1] = source  # the zero frames at both ends of conv1's output buffer
    return _im2col(padded, rows_total, stride=2)


def _matmul(op: NpuOp, acts: dict[str, np.ndarray], w: NpuWeights, rows: slice) -> np.ndarray:
    a = _conv_input(op, acts, op.rows) if op.kind == "conv" else acts[op.inputs[0]]
    _, n = matmul_shape(op.name, w.dims)
    if op.name + ".res" in w.tensors:  # conv2: the positional embedding
        residual = w.vector(op.name + ".res")[rows]
    elif len(op.inputs) > 1:
        residual = acts[op.inputs[1]][rows]
    else:
        residual = None
    return numerics.matmul_tile(
        a[rows], w.matrix(op.name), w.vector(op.name + ".b", n), gelu=op.gelu, residual=residual
    )


def _layernorm(op: NpuOp, acts: dict[str, np.ndarray], w: NpuWeights, rows: slice) -> np.ndarray:
    x = acts[op.inputs[0]][rows]
    return numerics.layernorm_rows(x, w.vector(op.name + ".g"), w.vector(op.name + ".beta"))


def flash_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, kv_rows: int) -> np.ndarray:
    """The attention kernel's result for q[h, r, dh] against k, v[h, t, dh], all key tiles at once.

    The kernel folds key/value tiles j = 0, 1, ... into a running state (numerics.attn_update).
    The same quantities, vectorised over tiles where the recurrence allows:
      m_j     = max(m_{j-1}, rowmax s_j)                    a cumulative max: identical
      alpha_j = bf16(exp_lut(m_{j-1} - m_j)), p_j = bf16(exp_lut(s_j - m_j))    identical
      l_j     = l_{j-1} alpha_j + lane_sum(p_j)              the same recurrence
      acc_j   = mul_split(acc_{j-1}, alpha_j) + p_j v_j      the same recurrence, P.V per tile
    The padding of the ragged last key tile gets score -inf: p = 0, as the kernel's valid-key
    count. Only the fp32 sums of q k^T and P.V are BLAS-ordered (docs/npu-numerics.md).
    """
    h, r, dh = q.shape
    t = k.shape[1]
    n_kv = -(-t // kv_rows)
    s = np.full((h, r, n_kv * kv_rows), -np.inf, np.float32)
    np.matmul(q, k.transpose(0, 2, 1), out=s[:, :, :t])
    s[:, :, :t] *= np.float32(scale)
    tiles = s.reshape(h, r, n_kv, kv_rows)
    m = np.maximum.accumulate(tiles.max(axis=-1), axis=-1)  # m_j, [h, r, n_kv]
    before = np.concatenate([np.full((h, r, 1), -np.inf, np.float32), m[..., :-1]], -1)
    alpha = numerics.bf16_round(numerics.exp_lut(before - m))
    p = numerics.bf16_round(numerics.exp_lut(tiles - m[..., None]))  # [h, r, n_kv, kv_rows]
    row_sums = numerics.lane_sum(p)
    v_tiles = np.zeros((h, n_kv * kv_rows, dh), np.float32)
    v_tiles[:, :t] = v
    v_tiles = v_tiles.reshape(h, n_kv, kv_rows, dh)
    pv = np.matmul(p.transpose(0, 2, 1, 3), v_tiles)  # every tile's P.V at once: [h, n_kv, r, dh]
    state = numerics.attn_init(r, dh, (h,))
    l, acc = state.l, state.acc
    for j in range(n_kv):
        l = l * alpha[..., j] + row_sums[..., j]
        acc = numerics.mul_split(acc, alpha[..., j, None]) + pv[:, j]
    return numerics.attn_finish(numerics.AttnState(m[..., -1], l, acc))


def _attention(
    op: NpuOp, acts: dict[str, np.ndarray], w: NpuWeights, rows: slice, heads: slice
) -> np.ndarray:
    """Queries of `rows` and heads of `heads` against all keys, key/value tile by tile."""
    d, dh = w.dims.n_audio_state, w.dims.d_head
    qkv = acts[op.inputs[0]]  # [T, 3d]: q | k | v, each head's dh columns in order
    h = range(op.heads)[heads]

    def split(part: int, take: slice, head: int) -> np.ndarray:  # -> [1, rows, dh]
        return np.ascontiguousarray(qkv[take, part * d + head * dh : part * d + (head + 1) * dh])[None]

    def one_head(head: int) -> np.ndarray:  # one head at a time bounds the scores to rows x T
        q, k, v = split(0, rows, head), split(1, slice(None), head), split(2, slice(None), head)
        return flash_attention(q, k, v, dh**-0.5, w.tiles.attn_kv_rows)[0]

    # numpy releases the GIL in its loops: heads run on all cores, as the NPU runs them on tiles
    return np.concatenate(list(_head_pool().map(one_head, h)), axis=1)


@lru_cache(maxsize=1)
def _head_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="npu-emu-head")


def run_op(
    op: NpuOp,
    acts: dict[str, np.ndarray],
    weights: NpuWeights,
    *,
    rows: slice | None = None,
    heads: slice | None = None,
) -> np.ndarray:
    """Run one op (or the output rows `rows` / the heads `heads` of it) and return its output.

    `acts` maps activation names (op names, and "mel" from prepare_mel) to bf16-valued float32
    arrays and is not modified. The result is the op's output restricted to `rows` (a slice of
    its op.rows output rows) and, for attention, to the columns of `heads`
    (heads.start*d_head .. heads.stop*d_head).
    """
    rows = rows if rows is not None else slice(None)
    if heads is not None and op.kind != "attention":
        raise EngineError(f"op {op.name} ({op.kind}) cannot be split by heads")
    if op.kind in ("matmul", "conv"):
        return _matmul(op, acts, weights, rows)
    if op.kind == "layernorm":
        return _layernorm(op, acts, weights, rows)
    if op.kind == "attention":
        return _attention(op, acts, weights, rows, heads if heads is not None else slice(None))
    raise EngineError(f"the emulator has no kernel for op kind {op.kind!r} ({op.name})")


def encode_window(mel: np.ndarray, weights: NpuWeights) -> np.ndarray:
    """log-mel f32[n_mels, 2*n_audio_ctx] -> encoder output f32[n_audio_ctx, d_model]."""
    dims = weights.dims
    if mel.shape != (dims.n_mels, 2 * dims.n_audio_ctx):
        raise EngineError(
            f"encoder window must be [{dims.n_mels}, {2 * dims.n_audio_ctx}], got {list(mel.shape)}"
        )
    acts = {"mel": prepare_mel(np.asarray(mel, np.float32))}
    ops = encoder_ops(dims, weights.tiles)
    last_use = {name: i for i, op in enumerate(ops) for name in op.inputs}
    for i, op in enumerate(ops):
        acts[op.name] = run_op(op, acts, weights)
        for name in [n for n in acts if last_use.get(n, len(ops)) <= i and n != op.name]:
            del acts[name]  # free activations no later op reads
    return acts[ops[-1].name]
