"""Where each activation and weight of a plan lives: byte layouts of the buffers the executor
allocates once, shared by the emulator backend, the XRT runtime and the build manifest.

Every column works on three activation buffers, each a flat array of bf16 values (2 bytes):
    "in"      the ping-pong slot it consumes: the activations live at its first op
    "out"     the ping-pong slot it produces: the activations live after its last op
    "scratch" its private working memory: everything produced and consumed inside the column,
              packed by liveness (a region is reused once no later op reads its tensor)
In the split plan all columns share one window's buffers (each writes its own rows or heads).
The weights of a column's ops are one packed, read-only buffer, uploaded once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npustream.model.dims import WhisperDims
from npustream.npu.layout import NpuWeights
from npustream.npu.plan import Plan, live_at
from npustream.npu.tiles import Tiles

ALIGN = 64  # DMA addresses need 4-byte alignment; 64 keeps every tensor on a cache line
BF16 = 2
ROLES = ("in", "scratch", "out")


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class Placed:
    offset: int  # bytes
    rows: int
    cols: int

    @property
    def nbytes(self) -> int:
        return self.rows * self.cols * BF16

    def view(self, buffer: np.ndarray) -> np.ndarray:
        """This tensor's bf16 bits [rows, cols] inside a uint8 buffer (a view, no copy)."""
        return buffer[self.offset : self.offset + self.nbytes].view(np.uint16).reshape(self.rows, self.cols)


@dataclass(frozen=True)
class BufferLayout:
    tensors: dict[str, Placed]
    nbytes: int


def _packed(names: tuple[str, ...], shapes: dict[str, tuple[int, int]]) -> BufferLayout:
    tensors, offset = {}, 0
    for name in names:
        tensors[name] = Placed(offset, *shapes[name])
        offset = _aligned(offset + tensors[name].nbytes)
    return BufferLayout(tensors, max(offset, ALIGN))


@dataclass(frozen=True)
class ColumnLayouts:
    first: int  # op range [first, stop) whose buffers these are
    stop: int
    buffers: dict[str, BufferLayout]  # by role
    where: dict[str, str]  # tensor name -> role it is read from and written to
    carried: tuple[str, ...]  # copied "in" -> "out" before the first op

    def place(self, name: str) -> tuple[str, Placed]:
        role = self.where[name]
        return role, self.buffers[role].tensors[name]


def _allocate_scratch(plan: Plan, first: int, stop: int, where: dict[str, str]) -> BufferLayout:
    """Place the range's outputs that have no other role (marking them "scratch" in `where`),
    first fit into regions freed as soon as their tensor's last reader has run."""
    shapes, ops = plan.shapes, plan.ops
    last_read = {name: i for i in range(first, stop) for name in ops[i].inputs}
    free: list[tuple[int, int]] = []  # (offset, size) regions no longer in use
    live: dict[str, Placed] = {}
    table: dict[str, Placed] = {}
    end = 0
    for i in range(first, stop):
        name = ops[i].name
        if name not in where:
            where[name] = "scratch"
            size = _aligned(shapes[name][0] * shapes[name][1] * BF16)
            fit = next((r for r in free if r[1] >= size), None)
            if fit:
                free.remove(fit)
                offset = fit[0]
                if fit[1] > size:
                    free.append((offset + size, fit[1] - size))
            else:
                offset, end = end, end + size
            live[name] = table[name] = Placed(offset, *shapes[name])
        for done in [n for n in live if last_read.get(n, i) <= i and n != name]:
            region = live.pop(done)  # op i was its last reader: the region is free for later ops
            free.append((region.offset, _aligned(region.nbytes)))
    return BufferLayout(table, max(end, ALIGN))


def _column_layouts(plan: Plan, first: int, stop: int) -> ColumnLayouts:
    live_in, live_out = live_at(plan.ops, first), live_at(plan.ops, stop)
    where = {name: "in" for name in live_in}
    where.update({name: "out" for name in live_out})
    scratch = _allocate_scratch(plan, first, stop, where)
    buffers = {"in": _packed(live_in, plan.shapes), "scratch": scratch, "out": _packed(live_out, plan.shapes)}
    carried = tuple(n for n in live_in if n in live_out)
    return ColumnLayouts(first, stop, buffers, where, carried)


def plan_layouts(plan: Plan) -> list[ColumnLayouts]:
    """Per column: its buffers' layouts (split: the same shared layouts for every column)."""
    if plan.kind == "pipeline":
        return [_column_layouts(plan, s.first, s.stop) for s in plan.stages]
    shared = _column_layouts(plan, 0, len(plan.ops))
    return [shared] * len(plan.columns)


def column_weight_names(plan: Plan, column: int, weights: NpuWeights) -> list[str]:
    """The weight tensors of the ops a column runs, in op order."""
    ops = {task.op.name for task in plan.columns[column]}
    return [name for name in weights.tensors if name.rsplit(".", 1)[0] in ops]


def pack_weights(weights: NpuWeights, names: list[str]) -> tuple[np.ndarray, dict[str, tuple[int, str, tuple]]]:
    """Concatenate tensors into one uint8 buffer; table name -> (offset, dtype, shape)."""
    table, offset = {}, 0
    for name in names:
        t = weights.tensors[name]
        table[name] = (offset, t.dtype.str, tuple(t.shape))
        offset = _aligned(offset + t.nbytes)
    blob = np.zeros(max(offset, ALIGN), np.uint8)
    for name, (off, _, _) in table.items():
        t = np.ascontiguousarray(weights.tensors[name])
        blob[off : off + t.nbytes] = t.reshape(-1).view(np.uint8)
    return blob, table


def unpack_weights(blob: np.ndarray, table: dict, dims: WhisperDims, tiles: Tiles) -> NpuWeights:
    """The tensors of a packed buffer (views into it, no copy) as NpuWeights."""
    tensors = {}
    for name, (offset, dtype, shape) in table.items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        tensors[name] = blob[offset : offset + count * dt.itemsize].view(dt).reshape(shape)
    return NpuWeights(dims, tiles, tensors)
