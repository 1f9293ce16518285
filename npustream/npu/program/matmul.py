"""Matmuls and convs (im2col) as column-program phases: see npu/plan/design.py for the dataflow
and npu/program/core.py for the order the cores take objects in."""

from __future__ import annotations

from npustream.npu.plan.design import (
    BLOCK_COL_TILES,
    matmul_geometry,
    weight_object_bytes,
)
from npustream.npu.plan.plans import INPUT
from npustream.npu.program import core as core_program
from npustream.npu.program.column import WORD, Bd, DmaTask, LockOp, Unit
from npustream.npu.program.phases import (
    BF16,
    Ctx,
    Phase,
    Rings,
    blocked,
    object_read,
    shim_tile,
)


def matmul_phases(ctx: Ctx) -> list[Phase]:
    """Whole row pairs in one phase; an odd last row tile in a second (its descriptors differ:
    the second row stream is idle and its cores only let the broadcast pass)."""
    op, share = ctx.task.op, ctx.task.share
    g = matmul_geometry(op, share.row1 - share.row0, ctx.dims, ctx.t)
    full_pairs = g.row_tiles // 2
    parts = [(range(full_pairs), True)] if full_pairs else []
    if g.row_tiles % 2:
        parts.append((range(full_pairs, full_pairs + 1), False))
    phases = []
    for pairs, full in parts:
        ctx.rings.reset()
        phases.append(
            Phase(
                f"{op.name} rows {share.row0}-{share.row1}" + ("" if full else ", last row tile"),
                _matmul_descriptors(g, len(pairs), full, op.gelu),
                [_matmul_unit(ctx, g, p, full) for p in pairs],
            )
        )
    return phases


def _matmul_descriptors(g, pairs: int, full: bool, gelu: bool) -> list[tuple[int, ...]]:
    residual_tiles = BLOCK_COL_TILES * (2 if full else 1)  # after each block, on the broadcast
    out = []
    for c in range(4):
        r, j = divmod(c, 2)
        if full or r == 0:
            before = BLOCK_COL_TILES * r + 2 * j
            out.append(
                core_program.descriptor(
                    mm_blocks=pairs * g.col_blocks,
                    mm_k_rest=g.k_steps - 1,
                    mm_w_before=2 * j,
                    mm_w_after=2 - 2 * j,
                    mm_res=int(g.residual),
                    mm_r_before=before,
                    mm_r_after=residual_tiles - 2 - before,
                    mm_gelu=int(gelu),
                )
            )
        else:  # no row tile here: let the block's broadcast objects pass
            out.append(
                core_program.descriptor(
                    mm_skip_blocks=g.col_blocks,
                    mm_w_skip=BLOCK_COL_TILES * g.k_steps + (residual_tiles if g.residual else 0),
                )
            )
    return out


def _a_source(ctx: Ctx):
    """(buffer, word offset of A row i, words between A rows) of a matmul's A operand: an
    activation, or for a conv the im2col rows of its (front-padded) time-major input."""
    op = ctx.task.op
    src = op.inputs[0]
    if op.kind == "conv":
        stride = 1 if src == INPUT else 2
        buf, base, frame = ctx.act(src, -ctx.layouts.place(src)[1].front, 0)
        return buf, lambda i: base + i * stride * frame, stride * frame
    buf, base, words = ctx.act(src, 0, 0)
    return buf, lambda i: base + i * words, words


def _matmul_unit(ctx: Ctx, g, pair: int, full: bool) -> Unit:
    """One row pair: its A tiles for every column block, the weights (and residuals) block by
    block, every block's outputs."""
    op, share, t, rings = ctx.task.op, ctx.task.share, ctx.t, ctx.rings
    m, k, n = t.matmul_m, t.matmul_k, t.matmul_n
    tile_rows = (0, 1) if full else (0,)
    row0 = share.row0 + pair * 2 * m
    valid = [min(m, share.row1 - (row0 + r * m)) for r in tile_rows]
    a_buf, a_row, a_words = _a_source(ctx)
    # A: every K step once into a resident panel, else again for every column block
    runs = g.k_steps * (1 if g.resident else g.col_blocks)
    long = [
        DmaTask(
            "shim",
            "MM2S",
            "a",
            tuple(
                shim_tile(
                    a_buf, a_row(row0 + r * m), a_words, m, 8, k, iteration=(g.k_steps, k * BF16 // WORD, 0)
                )
                for r in tile_rows
            ),
            runs - 1,
        )
    ]
    sizes, strides = blocked(m, k, 4, 8)
    long.append(
        DmaTask(
            "mem",
            "S2MM",
            "a",
            tuple(rings.bd(f"a{r}", sizes, strides, per_use=2, writer=True) for r in tile_rows),
            runs - 1,
        )
    )
    for r in tile_rows:
        if g.resident:
            long += _panel_reads(rings, f"a{r}", g.k_steps, g.col_blocks)
            rings.advance(f"a{r}", rings.units[f"a{r}"] // 2)  # the next panel: the ring's other half
        else:
            long.append(DmaTask("mem", "MM2S", f"a{r}", (object_read(rings, f"a{r}"),), runs - 1))
            rings.advance(f"a{r}", 2 * runs)
    # outputs: a core's two tiles into one (4 x 4)-blocked m x 2n tile, read out by rows of
    # blocks, written by the shim into the output rows; one block after the other
    cores = [2 * r + j for r in tile_rows for j in (0, 1)]
    block_w = 16 * BF16 // WORD
    tile_w = n * BF16 // WORD
    out_buf, out_base, out_words = ctx.act(op.name, 0, 0)
    reads, writes = [], []
    for c in cores:
        r, j = divmod(c, 2)
        long.append(
            DmaTask(
                "mem",
                "S2MM",
                f"o{c}",
                tuple(
                    rings.bd(
                        f"o{c}",
                        (m // 4, n // 4, block_w),
                        (2 * n // 4 * block_w, block_w, 1),
                        per_use=2,
                        writer=True,
                        shift=tile * n // 4 * block_w,
                        lock=1,
                    )
                    for tile in (0, 1)
                ),
                g.col_blocks - 1,
            )
        )
        sizes, strides = blocked(valid[r], 2 * n, 4, 4)
        reads.append(rings.bd(f"o{c}", sizes, strides, per_use=2, writer=False))
        writes.append(
            shim_tile(
                out_buf,
                out_base + (row0 + r * m) * out_words + 2 * j * tile_w,
                out_words,
                valid[r],
                4,
                2 * n,
                iteration=(g.col_blocks, BLOCK_COL_TILES * tile_w, 0),
            )
        )
        rings.advance(f"o{c}", 2 * g.col_blocks)
    long += [
        DmaTask("mem", "MM2S", "o", tuple(reads), g.col_blocks - 1),
        DmaTask("shim", "S2MM", "o", tuple(writes), g.col_blocks - 1),
    ]
    # weights (and residuals), block by block: the weights are contiguous objects of "<op>.wb"
    w_obj = weight_object_bytes(t) // WORD
    objects = BLOCK_COL_TILES * g.k_steps
    w_first = ctx.weights(op.name + ".wb")
    residual = None
    if g.residual:
        residual = (
            ctx.act(op.inputs[1], 0, 0)
            if len(op.inputs) > 1
            else ("weights", ctx.weights(op.name + ".res"), g.n * BF16 // WORD)
        )
    steps = []
    r_sizes, r_strides = blocked(m, n, 4, 4)
    for block in range(g.col_blocks):
        step = [
            DmaTask(
                "shim",
                "MM2S",
                "b",
                (Bd("weights", w_first + block * objects * w_obj, (objects * w_obj,), (1,)),),
            ),
            DmaTask(
                "mem", "S2MM", "b", (rings.bd("b", (w_obj,), (1,), per_use=1, writer=True),), objects - 1
            ),
        ]
        residuals = 0
        if residual:  # row tile by row tile, its 4 column tiles, each into (4 x 4) blocks
            r_buf, r_base, r_words = residual
            step += [
                DmaTask(
                    "shim",
                    "MM2S",
                    "b",
                    (
                        shim_tile(
                            r_buf,
                            r_base + (row0 + r * m) * r_words + block * BLOCK_COL_TILES * tile_w,
                            r_words,
                            m,
                            4,
                            n,
                            iteration=(BLOCK_COL_TILES, tile_w, 0),
                        ),
                    ),
                    BLOCK_COL_TILES - 1,
                )
                for r in tile_rows
            ]
            residuals = BLOCK_COL_TILES * len(tile_rows)
            step.append(
                DmaTask(
                    "mem",
                    "S2MM",
                    "b",
                    (rings.bd("b", r_sizes, r_strides, per_use=1, writer=True, first=objects),),
                    residuals - 1,
                )
            )
        step.append(DmaTask("mem", "MM2S", "b", (object_read(rings, "b"),), objects + residuals - 1))
        rings.advance("b", objects + residuals)
        steps.append(step)
    return Unit(long, steps)


def _panel_reads(rings: Rings, ring: str, k_steps: int, blocks: int) -> list[DmaTask]:
    """Send a resident panel (k_steps objects) down a row stream once per column block. The
    first read takes the filled units and leaves a "hold"; the last one takes the hold back and
    frees the units, so the writer cannot refill the panel while blocks still read it."""
    units = 2 * k_steps
    start = rings.start(ring) + rings.pos[ring] * rings.words(ring)
    words = (units * rings.words(ring),), (1,)
    filled, free, hold = (
        LockOp(f"{ring}.cons", units),
        LockOp(f"{ring}.prod", units),
        LockOp(f"{ring}.hold", 1),
    )
    if blocks == 1:
        return [DmaTask("mem", "MM2S", ring, (Bd("mem", start, *words, acquire=filled, release=free),))]
    tasks = [DmaTask("mem", "MM2S", ring, (Bd("mem", start, *words, acquire=filled, release=hold),))]
    if blocks > 2:
        tasks.append(DmaTask("mem", "MM2S", ring, (Bd("mem", start, *words),), blocks - 3))
    return tasks + [DmaTask("mem", "MM2S", ring, (Bd("mem", start, *words, acquire=hold, release=free),))]
