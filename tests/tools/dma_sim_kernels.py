"""The DMA simulator's cores call the column glue (mlir/column_glue.cc), built for the host with
the kernels' portable C++ paths (tests/tools/host_kernels.py) and the design's generated headers: the same
entry points, pointer arithmetic and scratch layout the AIE build links.

The portable paths take row-major tiles while the objects hold the AIE path's blocked layouts
(npu/ops/blocking.py), so each call gets shadow FIFO buffers with its input objects unblocked, and its
output objects are blocked again afterwards.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
from pathlib import Path

import numpy as np

from npustream.npu.ops.blocking import A_BLOCK, B_BLOCK, C_BLOCK, block, unblock
from npustream.npu.plan.design import layernorm_rows
from npustream.npu.program import core as cp
from tools import host_kernels

GLUE_SOURCE = Path(__file__).resolve().parents[2] / "mlir" / "column_glue.cc"


@functools.lru_cache(maxsize=4)
def glue_library(dims, tiles) -> ctypes.CDLL:
    """The column glue (mlir/column_glue.cc) and the kernels' portable paths, built for the host
    with this design's generated headers."""
    from npustream.npu.ops.tiles import c_header as tiles_header
    from npustream.npu.plan.design import c_header as design_header

    headers = {"npu_tiles.h": tiles_header(tiles), "column_design.h": design_header(dims, tiles)}
    key = hashlib.sha256("".join(headers.values()).encode()).hexdigest()[:16]
    include = host_kernels._cache_root() / "column-headers" / key
    include.mkdir(parents=True, exist_ok=True)
    for name, text in headers.items():
        if not (include / name).is_file():
            (include / name).write_text(text)
    lib = ctypes.CDLL(str(host_kernels.build(extra_sources=(GLUE_SOURCE,), include_dirs=(include,))))
    for name, params in cp.GLUE.items():
        function = getattr(lib, name)
        function.argtypes = [ctypes.c_int32 if p == "i32" else ctypes.c_void_p for p in params]
        function.restype = None
    return lib


class Kernels:
    """The glue's entry points for a design, called with a core's FIFOs and scratch."""

    def __init__(self, plan):
        self.lib = glue_library(plan.dims, plan.tiles)
        t, dims = plan.tiles, plan.dims
        m, k, n, mq, nk, dh = t.matmul_m, t.matmul_k, t.matmul_n, t.attn_q_rows, t.attn_kv_rows, dims.d_head
        self.values = {"nk": nk, "r_out": layernorm_rows(dims, t)[1]}
        a, w, c = (m, k, A_BLOCK), (k, n, B_BLOCK), (m, n, C_BLOCK)
        self.inputs = {  # (kernel, FIFO) -> [(element offset, rows, cols, blocks)] of the object
            ("col_mm_acc", "in0"): [(0, *a)],
            ("col_mm_acc", "in1"): [(0, *w)],
            ("col_mm_keep_bias", "in1"): [(0, *w)],
            ("col_mm_out", "in1"): [(0, *c)],
            ("col_attn_keep_q", "in1"): [(0, mq, dh, A_BLOCK)],
            ("col_attn_update", "in0"): [(0, nk, dh, A_BLOCK), (nk * dh, nk, dh, B_BLOCK)],
        }
        self.outputs = {"col_mm_out": c, "col_mm_out_nores": c, "col_attn_finish": (mq, dh, C_BLOCK)}

    def call(self, core, node: cp.Call, desc: dict) -> None:
        args, shadows = [core.scratch.ctypes.data], []
        for arg in node.args:
            if isinstance(arg, cp.Held):
                fifo = core.fifos[arg.fifo]
                index = (core.rel[arg.fifo] + arg.k) % 2
                if not core.rel[arg.fifo] + arg.k < core.acq[arg.fifo]:
                    raise RuntimeError(f"core {core.core} uses {arg} without holding it")
                shadow = fifo.buffer.copy()
                bits = shadow[index].view(np.uint16)
                for offset, rows, cols, shape in self.inputs.get((node.kernel, arg.fifo), []):
                    bits[offset : offset + rows * cols] = unblock(bits[offset:], rows, cols, shape).reshape(
                        -1
                    )
                shadows.append((arg.fifo, fifo, index, shadow))
                args += [shadow.ctypes.data, index]
            elif isinstance(arg, cp.Field):
                args.append(desc[arg.name])
            elif isinstance(arg, cp.Const):
                args.append(self.values[arg.name])
            else:
                args.append(arg)
        getattr(self.lib, node.kernel)(*args)
        for name, fifo, index, shadow in shadows:
            if name == "out":
                bits = shadow[index].view(np.uint16)
                if node.kernel in self.outputs:
                    rows, cols, shape = self.outputs[node.kernel]
                    bits[: rows * cols] = block(bits[: rows * cols].reshape(rows, cols), shape)
                fifo.buffer[index] = shadow[index]
