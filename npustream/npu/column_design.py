"""The per-column NPU program's buffers, as plain numbers: the single description that the IRON
design (mlir/encoder_column.py) builds from, the timing model's dataflows size against, and the
resource checker verifies. No mlir-aie needed to read it.

One column = shim tile (row 0), mem tile (row 1), compute tiles (rows 2-5). Data moves through
ObjectFIFOs of depth 2 (ping-pong: the DMA fills one object while the core works on the other):

    shim --panel-->  mem tile --split-->     core i "in0"   A row blocks / K|V of one head /
                                                            LayerNorm rows (each core its own)
    shim --stream--> mem tile --broadcast--> core i "in1"   weight+bias tiles / query tiles /
                                                            gamma|beta (every core the same)
    core i "out" --> mem tile --join--> shim --> DDR

The mem tile's "panel" objects are large (what the op keeps resident: rows of A, or one head's
K and V); an op whose resident data does not fit one object uses both objects as one
(single-buffered: its loads then wait for the cores). Per core: 2 input and 1 output DMA
channel; mem tile: 6 in (panel, stream, 4 joins) and 6 out (4 split, 1 broadcast, 1 to shim);
shim: 2 out to the array, 1 in. Kernels share one scratch buffer per core (never two at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.model.dims import WhisperDims
from npustream.npu.params import NpuParams
from npustream.npu.tiles import Tiles

BF16, F32 = 2, 4
STACK_BYTES = 1024  # mlir-aie's default core stack


@dataclass(frozen=True)
class Fifo:
    name: str
    producer: str  # "shim", "memtile" or "core<i>"
    consumers: tuple[str, ...]
    object_bytes: int
    depth: int = 2
    broadcast: bool = False  # one DMA channel feeds every consumer


@dataclass(frozen=True)
class ColumnDesign:
    fifos: tuple[Fifo, ...]
    scratch_bytes: int  # per core: matmul accumulator or attention state, whichever is larger
    stack_bytes: int = STACK_BYTES

    def fifo(self, name: str) -> Fifo:
        return next(f for f in self.fifos if f.name == name)

    @property
    def panel_bytes(self) -> int:
        """One mem-tile panel object: what a double-buffered op may keep resident."""
        return self.fifo("panel").object_bytes


def core_objects(dims: WhisperDims, tiles: Tiles) -> dict[str, int]:
    """Bytes of one object of each core FIFO: the largest any kernel puts through it."""
    d, dh = dims.n_audio_state, dims.d_head
    m, k, n = tiles.matmul_m, tiles.matmul_k, tiles.matmul_n
    r, mq, nk = tiles.layernorm_rows, tiles.attn_q_rows, tiles.attn_kv_rows
    return {
        # A tile; the residual tile after each output tile's K loop; K|V tile; LayerNorm rows
        "in0": max(m * k * BF16, m * n * BF16, 2 * nk * dh * BF16, r * d * BF16),
        # weight tile with its bias slice; query tile; gamma|beta
        "in1": max(k * n * BF16 + n * F32, mq * dh * BF16, 2 * d * F32),
        "out": max(m * n * BF16, mq * dh * BF16, r * d * BF16),
        "scratch": max(
            m * n * F32,  # matmul fp32 accumulator, resident across the K loop
            mq * nk * F32 + mq * nk * BF16 + mq * dh * F32 + 2 * mq * F32,  # scores, P, acc, m, l
        ),
    }


def column_design(dims: WhisperDims, tiles: Tiles, params: NpuParams) -> ColumnDesign:
    cores = tuple(f"core{i}" for i in range(params.tiles_per_column))
    obj = core_objects(dims, tiles)
    fifos = [Fifo(f"in0_{c}", "memtile", (c,), obj["in0"]) for c in cores]
    fifos.append(Fifo("in1", "memtile", cores, obj["in1"], broadcast=True))
    fifos += [Fifo(f"out_{c}", c, ("memtile",), obj["out"]) for c in cores]
    stream = Fifo("stream", "shim", ("memtile",), obj["in1"], broadcast=True)
    joined = Fifo("joined", "memtile", ("shim",), len(cores) * obj["out"])
    staging = 2 * stream.object_bytes + 2 * joined.object_bytes
    # the rest of the mem tile: two panel objects
    panel = Fifo("panel", "shim", ("memtile",), (params.memtile_bytes - staging) // 2)
    return ColumnDesign((panel, stream, joined, *fifos), obj["scratch"])
