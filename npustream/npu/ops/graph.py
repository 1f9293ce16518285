"""The Whisper encoder expressed as the operations the NPU executes.

`NpuOp` describes one operation's work and traffic; the timing model costs it, the planner
places it, the emulator runs it. `encoder_ops(dims, tiles)` lists them in execution order:
conv stem, then per layer LN1, QKV, attention, out-proj(+residual), LN2, FC1(+GELU),
FC2(+residual), then the final LayerNorm.

Counts are what the kernels do with the tiling, padding included: a matmul over M rows runs
ceil(M/m) row tiles of m rows, so its MACs are padded(M) * padded(K) * padded(N). Bytes count
each operand crossing into the array once (bf16 activations and weights, fp32 bias/gamma/beta);
how often a tile is re-streamed from the mem tile is the timing model's business.

Each op's output activation is named by the op's name; `inputs` names the activations it reads
("mel" is the host-prepared input, see npu/run/emulator.py), in the order the kernel takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.ops.tiles import DEFAULT_TILES, Tiles, check_l1, n_tiles, padded

BF16, F32 = 2, 4

# Element counts of the ops' work, for op kinds the custom kernels do not run (the timing model
# takes the custom kernels' cycles from their code: ops/kernel_costs.py). GELU as the A&S erf
# form once computed it: abs, |x|/sqrt2, p*z, 1+, Horner (4 mul-add pairs and the leading t*),
# z*z, negate, poly*exp, *0.5, 1-q, compare, select, x*phi.
GELU_VECTOR_OPS = 20
GELU_TRANSCENDENTALS = 2  # the reciprocal 1/(1+p*z) and exp(-z*z)
# LayerNorm per element: sum, subtract mean, square, sum, *rstd, *gamma, +beta, round.
LAYERNORM_VECTOR_OPS = 8
# Attention per score: *scale, row max, subtract max, round P to bf16, row sum.
ATTN_SCORE_VECTOR_OPS = 5


@dataclass(frozen=True)
class NpuOp:
    name: str  # "stem.conv1", "layer3.fc1", "final_ln"
    kind: str  # "conv" | "matmul" | "layernorm" | "attention" | "add" | "gelu"
    layer: int  # -1 conv stem, 0..n_layer-1 encoder layers, n_layer final LayerNorm
    macs: int  # multiply-accumulates done by the matmul unit
    vector_elems: int  # element operations on the vector unit (adds, muls, max, reductions)
    transcendental_elems: int  # exp / erf / tanh / rsqrt evaluations
    weight_bytes: int  # constants streamed from DDR (bf16 weights, fp32 bias/gamma/beta)
    in_bytes: int  # activations read from DDR or the previous stage
    out_bytes: int  # activations written
    rows: int  # independent rows (sequence positions) the op can be split over
    heads: int = 1  # independent heads (attention), for the split plan
    inputs: tuple[str, ...] = ()  # names of the activations read (op names, or "mel")
    gelu: bool = False  # matmul/conv with GELU fused into the epilogue
    residual: bool = False  # matmul/conv with a residual added in the epilogue


def _matmul(
    name: str,
    kind: str,
    layer: int,
    rows: int,
    k: int,
    n: int,
    tiles: Tiles,
    inputs: tuple[str, ...],
    *,
    gelu: bool = False,
    residual: str | None = None,
    constant_residual: bool = False,
) -> NpuOp:
    """A [rows,k] @ [k,n] + bias (+GELU) (+residual) op on the matmul kernel.

    `residual` is either an activation (listed in inputs) or, with constant_residual, a weight
    (the positional embedding), counted in weight_bytes.
    """
    mp, kp, np_ = padded(rows, tiles.matmul_m), padded(k, tiles.matmul_k), padded(n, tiles.matmul_n)
    out_elems = mp * np_
    per_out = 2 + (GELU_VECTOR_OPS if gelu else 0) + (1 if residual else 0)  # bias, round
    weight_bytes = kp * np_ * BF16 + np_ * F32
    in_bytes = mp * kp * BF16
    if residual and constant_residual:
        weight_bytes += out_elems * BF16
    elif residual:
        in_bytes += out_elems * BF16
        inputs = (*inputs, residual)
    return NpuOp(
        name=name,
        kind=kind,
        layer=layer,
        macs=mp * kp * np_,
        vector_elems=out_elems * per_out,
        transcendental_elems=out_elems * GELU_TRANSCENDENTALS if gelu else 0,
        weight_bytes=weight_bytes,
        in_bytes=in_bytes,
        out_bytes=out_elems * BF16,
        rows=rows,
        inputs=inputs,
        gelu=gelu,
        residual=residual is not None,
    )


def _layernorm(name: str, layer: int, rows: int, d: int, tiles: Tiles, source: str) -> NpuOp:
    rp = padded(rows, tiles.layernorm_rows)
    return NpuOp(
        name=name,
        kind="layernorm",
        layer=layer,
        macs=0,
        vector_elems=rp * d * LAYERNORM_VECTOR_OPS + rp * 3,  # + per row: /D twice, +eps
        transcendental_elems=rp,  # one rsqrt per row
        weight_bytes=2 * d * F32,
        in_bytes=rp * d * BF16,
        out_bytes=rp * d * BF16,
        rows=rows,
        inputs=(source,),
    )


def _attention(name: str, layer: int, dims: WhisperDims, tiles: Tiles, source: str) -> NpuOp:
    """Flash attention per head: every query tile against every key/value tile.

    The matmul unit works on whole tiles, so MACs use the padded key count; the ragged last
    key tile's padding rows are masked out of the softmax (see numerics.attn_update).
    """
    t, h, dh = dims.n_audio_ctx, dims.n_audio_head, dims.d_head
    tq, tk = padded(t, tiles.attn_q_rows), padded(t, tiles.attn_kv_rows)
    kv_tiles = n_tiles(t, tiles.attn_kv_rows)
    scores = tq * tk
    per_head_vector = (
        scores * ATTN_SCORE_VECTOR_OPS
        + tq * kv_tiles * (4 + dh)  # new max, m - m', l*alpha + sum, acc rescale
        + tq * dh * 2  # finish: acc * (1/l), round
    )
    return NpuOp(
        name=name,
        kind="attention",
        layer=layer,
        macs=h * scores * dh * 2,  # q k^T and p v
        vector_elems=h * per_head_vector,
        transcendental_elems=h * (scores + tq * kv_tiles + tq),  # exp(s-m'), exp(m-m'), 1/l
        weight_bytes=0,
        in_bytes=tq * 3 * dims.n_audio_state * BF16,
        out_bytes=tq * dims.n_audio_state * BF16,
        rows=t,
        heads=h,
        inputs=(source,),
    )


def encoder_ops(dims: WhisperDims, tiles: Tiles = DEFAULT_TILES) -> list[NpuOp]:
    """The encoder's NPU operations in execution order, counted for these dims and tiles."""
    check_l1(tiles, dims)
    t, d, n_mels = dims.n_audio_ctx, dims.n_audio_state, dims.n_mels
    ops = [
        # conv1 (k3, pad 1) over 2t frames as a matmul on im2col rows of the time-major mel
        _matmul("stem.conv1", "conv", -1, 2 * t, 3 * n_mels, d, tiles, ("mel",), gelu=True),
        # conv2 (k3, stride 2, pad 1) + GELU, then + positional embedding as the residual
        _matmul(
            "stem.conv2",
            "conv",
            -1,
            t,
            3 * d,
            d,
            tiles,
            ("stem.conv1",),
            gelu=True,
            residual="pos_emb",
            constant_residual=True,
        ),
    ]
    x = "stem.conv2"
    for i in range(dims.n_audio_layer):
        p = f"layer{i}."
        ops += [
            _layernorm(p + "ln1", i, t, d, tiles, x),
            _matmul(p + "qkv", "matmul", i, t, d, 3 * d, tiles, (p + "ln1",)),
            _attention(p + "attn", i, dims, tiles, p + "qkv"),
            _matmul(p + "out_proj", "matmul", i, t, d, d, tiles, (p + "attn",), residual=x),
            _layernorm(p + "ln2", i, t, d, tiles, p + "out_proj"),
            _matmul(p + "fc1", "matmul", i, t, d, dims.n_ff, tiles, (p + "ln2",), gelu=True),
            _matmul(p + "fc2", "matmul", i, t, dims.n_ff, d, tiles, (p + "fc1",), residual=p + "out_proj"),
        ]
        x = p + "fc2"
    ops.append(_layernorm("final_ln", dims.n_audio_layer, t, d, tiles, x))
    return ops
