"""The Whisper encoder expressed as the operations the NPU executes.

`NpuOp` describes one operation's work and traffic; the timing model costs it, the planner
places it, the emulator runs it. `encoder_ops(dims, tiles)` lists them in execution order:
conv stem, then per layer LN1, QKV, attention, out-proj(+residual), LN2, FC1(+GELU),
FC2(+residual), then the final LayerNorm.
"""

from __future__ import annotations

from dataclasses import dataclass


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
