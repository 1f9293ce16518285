"""Where each activation and weight of a plan lives: byte layouts of the buffers the executor
allocates once, shared by the emulator backend, the XRT runtime, the column programs (DMA
addresses) and the build manifest.

Every column works on three activation buffers, each a flat array of bf16 values (2 bytes):
    "in"      the ping-pong slot it consumes: the activations live at its first op
    "out"     the ping-pong slot it produces: the activations live after its last op
    "scratch" its private working memory: everything produced and consumed inside the column,
              packed by liveness (a region is reused once no later op reads its tensor)
In the split plan all columns share one window's buffers (each writes its own rows or heads).

The DMA reads whole kernel tiles, so a tensor's allocation reaches past its rows (`back` rows:
read, never written; zero at allocation, or left by earlier tensors: finite values whose results
land in output rows nobody keeps). conv2's im2col row 0 starts one frame before its input: that
input gets one `front` row, zeroed at allocation and never written or reused by any tensor.

The weights of a column's ops are one packed, read-only buffer in the kernels' layout
(`device_tensor`): per matmul "<op>.wb", the weight tiles in 8 x 4 blocks, each followed by its
fp32 bias slice, ordered column block by column block, K step by K step, 4 tiles per step:
exactly the order the broadcast stream sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npustream.model.dims import WhisperDims
from npustream.npu.ops.blocking import B_BLOCK, block, unblock
from npustream.npu.ops.tiles import Tiles, padded
from npustream.npu.ops.weights import NpuWeights, matmul_shape
from npustream.npu.plan.design import BLOCK_COL_TILES, layernorm_rows
from npustream.npu.plan.plans import INPUT, Plan, live_at

ALIGN = 64  # DMA addresses need 4-byte alignment; 64 keeps every tensor on a cache line
BF16, F32 = 2, 4
ROLES = ("in", "scratch", "out")


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class Placed:
    offset: int  # bytes, where row 0 starts
    rows: int
    cols: int
    front: int = 0  # reserved rows before row 0 (zeros)
    back: int = 0  # rows after the last one that reads may reach

    @property
    def nbytes(self) -> int:
        return self.rows * self.cols * BF16

    @property
    def reserved_bytes(self) -> int:
        return (self.front + self.rows + self.back) * self.cols * BF16

    def view(self, buffer: np.ndarray) -> np.ndarray:
        """This tensor's bf16 bits [rows, cols] inside a uint8 buffer (a view, no copy)."""
        return buffer[self.offset : self.offset + self.nbytes].view(np.uint16).reshape(self.rows, self.cols)


@dataclass(frozen=True)
class BufferLayout:
    tensors: dict[str, Placed]
    nbytes: int


def tensor_pads(plan: Plan) -> dict[str, tuple[int, int]]:
    """(front, back) rows of every activation: how far before and after its rows the column
    programs' reads reach (npu/program/phases.py)."""
    t, dims = plan.tiles, plan.dims
    r_in, _ = layernorm_rows(dims, t)
    pads: dict[str, tuple[int, int]] = {}
    for name, (rows, _cols) in plan.shapes.items():
        reach = max(padded(rows, t.matmul_m), padded(rows, t.attn_q_rows), padded(rows, r_in))
        pads[name] = (0, reach - rows)
    for op in plan.ops:
        if op.kind != "conv":  # im2col: row r of the A panel reads frames stride*r .. + K
            continue
        src = op.inputs[0]
        rows, cols = plan.shapes[src]
        k_pad = padded(matmul_shape(op.name, dims)[0], t.matmul_k)
        stride, front = (1, 0) if src == INPUT else (2, 1)
        last = (padded(op.rows, t.matmul_m) - 1) * stride * cols + k_pad  # elements from the front row
        pads[src] = (front, max(pads[src][1], -(-last // cols) - front - rows))
    return pads


def _packed(names: tuple[str, ...], shapes: dict[str, tuple[int, int]], pads) -> BufferLayout:
    tensors, offset = {}, 0
    for name in names:
        front, back = pads[name]
        cols = shapes[name][1]
        tensors[name] = Placed(offset + front * cols * BF16, *shapes[name], front, back)
        offset = _aligned(offset + tensors[name].reserved_bytes)
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


def _allocate_scratch(plan: Plan, first: int, stop: int, where: dict[str, str], pads) -> BufferLayout:
    """Place the range's outputs that have no other role (marking them "scratch" in `where`),
    first fit into regions freed as soon as their tensor's last reader has run. A tensor's
    front rows stay reserved after it dies (they must stay zero)."""
    shapes, ops = plan.shapes, plan.ops
    last_read = {name: i for i in range(first, stop) for name in ops[i].inputs}
    free: list[tuple[int, int]] = []  # (offset, size) regions no longer in use
    live: dict[str, tuple[int, int]] = {}  # name -> (freeable offset, size)
    table: dict[str, Placed] = {}
    end = 0
    for i in range(first, stop):
        name = ops[i].name
        if name not in where:
            where[name] = "scratch"
            front, back = pads[name]
            rows, cols = shapes[name]
            size = _aligned((front + rows + back) * cols * BF16)
            fit = next((r for r in free if r[1] >= size), None)
            if fit:
                free.remove(fit)
                offset = fit[0]
                if fit[1] > size:
                    free.append((offset + size, fit[1] - size))
            else:
                offset, end = end, end + size
            reserved = front * cols * BF16
            table[name] = Placed(offset + reserved, rows, cols, front, back)
            live[name] = (offset + reserved, size - reserved)
        for done in [n for n in live if last_read.get(n, i) <= i and n != name]:
            free.append(live.pop(done))  # op i was its last reader: the region is free for later ops
    return BufferLayout(table, max(end, ALIGN))


def _column_layouts(plan: Plan, first: int, stop: int) -> ColumnLayouts:
    pads = tensor_pads(plan)
    live_in, live_out = live_at(plan.ops, first), live_at(plan.ops, stop)
    where = {name: "in" for name in live_in}
    where.update({name: "out" for name in live_out})
    scratch = _allocate_scratch(plan, first, stop, where, pads)
    buffers = {
        "in": _packed(live_in, plan.shapes, pads),
        "scratch": scratch,
        "out": _packed(live_out, plan.shapes, pads),
    }
    carried = tuple(n for n in live_in if n in live_out)
    return ColumnLayouts(first, stop, buffers, where, carried)


def plan_layouts(plan: Plan) -> list[ColumnLayouts]:
    """Per column: its buffers' layouts (split: the same shared layouts for every column)."""
    if plan.kind.staged:
        return [_column_layouts(plan, s.first, s.stop) for s in plan.stages]
    shared = _column_layouts(plan, 0, len(plan.ops))
    return [shared] * len(plan.columns)


# --- weights in the device layout ------------------------------------------------------------


def column_weight_names(plan: Plan, column: int, weights: NpuWeights) -> list[str]:
    """The device weight tensors of the ops a column runs, in op order."""
    names = []
    for task in plan.columns[column]:
        op = task.op.name
        if task.op.kind in ("matmul", "conv"):
            names.append(op + ".wb")
            if op + ".res" in weights.tensors:
                names.append(op + ".res")
        elif task.op.kind == "layernorm":
            names += [op + ".g", op + ".beta"]
    return list(dict.fromkeys(names))


def device_tensor(weights: NpuWeights, name: str) -> np.ndarray:
    """A tensor of the device weights buffer, from the converted weights (npu/ops/weights.py)."""
    base, kind = name.rsplit(".", 1)
    if kind == "wb":
        tiled = np.asarray(weights.tensors[base + ".w"])  # uint16 [K/k, N/n, k, n], row-major tiles
        kt, nt, _, n = tiled.shape
        blocked = np.stack(
            [[block(tiled[s, c], B_BLOCK) for s in range(kt)] for c in range(nt)]
        )  # [nt, kt, k*n]
        bias = np.asarray(weights.tensors[base + ".b"], np.float32).reshape(nt, 1, n).view(np.uint16)
        objects = np.concatenate([blocked, np.broadcast_to(bias, (nt, kt, 2 * n))], axis=-1)
        groups = nt // BLOCK_COL_TILES
        return np.ascontiguousarray(objects.reshape(groups, BLOCK_COL_TILES, kt, -1).swapaxes(1, 2))
    tensor = np.asarray(weights.tensors[name])
    if kind == "res":  # the positional embedding, read in whole 64-row tiles
        rows = padded(tensor.shape[0], weights.tiles.matmul_m)
        return np.concatenate([tensor, np.zeros((rows - tensor.shape[0], tensor.shape[1]), tensor.dtype)])
    return tensor


def pack_weights(
    weights: NpuWeights, names: list[str]
) -> tuple[np.ndarray, dict[str, tuple[int, str, tuple]]]:
    """The device tensors `names` in one uint8 buffer; table name -> (offset, dtype, shape)."""
    tensors = {name: device_tensor(weights, name) for name in names}
    table, offset = {}, 0
    for name, t in tensors.items():
        table[name] = (offset, t.dtype.str, tuple(t.shape))
        offset = _aligned(offset + t.nbytes)
    blob = np.zeros(max(offset, ALIGN), np.uint8)
    for name, (off, _, _) in table.items():
        t = np.ascontiguousarray(tensors[name])
        blob[off : off + t.nbytes] = t.reshape(-1).view(np.uint8)
    return blob, table


def unpack_weights(blob: np.ndarray, table: dict, dims: WhisperDims, tiles: Tiles) -> NpuWeights:
    """The emulator's tensors (npu/ops/weights.py) back from a packed device buffer."""
    tensors = {}
    for name, (offset, dtype, shape) in table.items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        t = blob[offset : offset + count * dt.itemsize].view(dt).reshape(shape)
        base, kind = name.rsplit(".", 1)
        if kind == "wb":
            groups, kt, _, length = t.shape
            k, n = tiles.matmul_k, tiles.matmul_n
            objects = t.swapaxes(1, 2).reshape(groups * BLOCK_COL_TILES, kt, length)  # [nt, kt, obj]
            tensors[base + ".w"] = np.stack(
                [
                    [unblock(objects[c, s, : k * n], k, n, B_BLOCK) for c in range(objects.shape[0])]
                    for s in range(kt)
                ]
            )
            tensors[base + ".b"] = np.ascontiguousarray(objects[:, 0, k * n :]).view(np.float32).reshape(-1)
        elif kind == "res":
            tensors[name] = t[: dims.n_audio_ctx]
        else:
            tensors[name] = t
    return NpuWeights(dims, tiles, tensors)
