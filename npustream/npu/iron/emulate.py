"""Run the IRON operator graph (graph.py) on the CPU with the operators' numerics.

Each NPU step reads and writes its `View`s of flat float32 buffers holding bf16 values, as the
device's buffer objects hold them; `run_operator` computes one operator with numerics.py (or,
with `exact=True`, in float32 without roundings: the check that the graph and the folds compute
Whisper's encoder). Layout flags are honoured literally (b_col_maj: B is stored [N, K];
c_col_maj: C is stored [N, M]), so a wrong view or flag shows up as a wrong result. The pyxrt
test double runs the same `run_operator` on device buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from npustream.bf16 import bf16_round
from npustream.npu.iron import host, numerics
from npustream.npu.iron.graph import HOST_BUFFERS, INPUT, OUTPUT, Graph, Operator, Step, View


class ExactOps:
    """float32 without roundings: max-subtracted softmax, erf GELU, two-pass LayerNorm."""

    @staticmethod
    def gemm(a, b):
        return np.asarray(a, np.float32) @ np.asarray(b, np.float32)

    @staticmethod
    def add(a, b):
        return np.asarray(a, np.float32) + np.asarray(b, np.float32)

    @staticmethod
    def gelu(x):
        from npustream.model.reference import gelu

        return gelu(np.asarray(x, np.float32)).astype(np.float32)

    @staticmethod
    def softmax(x, valid):
        x = np.array(x, np.float32)
        x[..., valid:] = -np.inf
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    @staticmethod
    def layernorm(x):
        c = x - x.mean(-1, keepdims=True)
        return c / np.sqrt((c * c).mean(-1, keepdims=True) + np.float32(1e-5))

    @staticmethod
    def store(x):
        return np.asarray(x, np.float32)


class IronOps:
    """The operators as the pinned amd/IRON kernels compute them (numerics.py)."""

    def __init__(self, num: numerics.IronNumerics = numerics.STOCK):
        self.num = num

    def gemm(self, a, b):
        return numerics.gemm(a, b, self.num)

    def add(self, a, b):
        return numerics.add(a, b, self.num)

    def gelu(self, x):
        return numerics.gelu(x, self.num)

    def softmax(self, x, valid):
        return numerics.softmax(x, valid, self.num)

    def layernorm(self, x):
        return numerics.layernorm(x, self.num)

    @staticmethod
    def store(x):
        return bf16_round(x)  # the host writes bf16 buffers, rounding to nearest even


def run_operator(op: Operator, ins: Sequence[np.ndarray], ops=None) -> np.ndarray:
    """One operator call: its input buffers (shaped as the step's views) -> its output, shaped as
    the output buffer is laid out."""
    ops = ops or IronOps()
    kw = op.kwargs
    if op.cls == "GEMM":
        a, b = ins
        c = ops.gemm(a, b.T if kw["b_col_maj"] else b)
        return c.T if kw["c_col_maj"] else c
    if op.cls == "ElementwiseAdd":
        return ops.add(*ins)
    if op.cls == "GELU":
        return ops.gelu(ins[0])
    if op.cls == "LayerNorm":
        return ops.layernorm(ins[0].reshape(-1, kw["tile_size"]))
    if op.cls == "Softmax":
        return ops.softmax(ins[0].reshape(-1, kw["cols"]), kw["mask_patch_value"])
    if op.cls == "Transpose":
        return ins[0].T
    raise ValueError(f"no numerics for operator {op.cls}")


class Machine:
    """The buffers of one graph, its constants loaded, and the steps that run on them."""

    def __init__(
        self,
        graph: Graph,
        constants: dict[str, np.ndarray],
        *,
        num: numerics.IronNumerics = numerics.STOCK,
        exact: bool = False,
    ):
        self.graph = graph
        self.ops = ExactOps() if exact else IronOps(num)
        self.mem = {name: np.zeros(size, np.float32) for name, size in graph.buffers.items()}
        for name in graph.constants:
            value = np.asarray(constants[name], np.float32).reshape(-1)
            if value.size != graph.buffers[name]:
                raise ValueError(
                    f"constant {name}: {value.size} values for a buffer of {graph.buffers[name]}"
                )
            self.mem[name][:] = value if name in HOST_BUFFERS else self.ops.store(value)

    def view(self, v: View) -> np.ndarray:
        return self.mem[v.buffer][v.offset : v.offset + v.size].reshape(v.shape)

    def write(self, v: View, value: np.ndarray) -> None:
        self.mem[v.buffer][v.offset : v.offset + v.size] = np.asarray(value, np.float32).reshape(-1)

    def run(self, mel: np.ndarray) -> np.ndarray:
        """log-mel [n_mels, 2 * n_ctx] -> encoder output float32 [n_ctx, d]."""
        self.mem[INPUT][:] = np.asarray(mel, np.float32).reshape(-1)
        for step in self.graph.steps:
            self.step(step)
        dims = self.graph.dims
        return self.view(View(OUTPUT, 0, (dims.n_audio_ctx, dims.n_audio_state))).copy()

    def step(self, step: Step) -> None:
        if step.op is None:
            self._host(step)
        else:
            self.write(step.args[-1], run_operator(step.op, [self.view(v) for v in step.args[:-1]], self.ops))

    def _host(self, step: Step) -> None:
        dims = self.graph.dims
        if step.host == "im2col_conv1":
            mel, cols = step.args
            self.write(cols, self.ops.store(host.im2col_conv1(self.view(mel), *cols.shape)))
        elif step.host == "im2col_conv2":
            conv1, cols = step.args
            self.write(
                cols, self.ops.store(host.im2col_conv2(self.view(conv1), 2 * dims.n_audio_ctx, *cols.shape))
            )
        elif step.host == "final_affine":
            unit, gamma, beta, out = step.args
            self.write(
                out, host.final_affine(self.view(unit), self.view(gamma), self.view(beta), dims.n_audio_ctx)
            )
        else:
            raise ValueError(f"unknown host step {step.host!r}")
