"""Attention as column-program phases: see npu/plan/design.py for the dataflow and
npu/program/core.py for the order the cores take objects in."""

from __future__ import annotations

from npustream.npu.ops.tiles import n_tiles
from npustream.npu.program import core as core_program
from npustream.npu.program.column import WORD, DmaTask, Unit
from npustream.npu.program.phases import (
    BF16,
    Ctx,
    Phase,
    blocked,
    broadcast,
    object_read,
    output_ring_write,
    shim_tile,
)


def attention_phases(ctx: Ctx) -> list[Phase]:
    op, share, t = ctx.task.op, ctx.task.share, ctx.t
    mq, nk = t.attn_q_rows, t.attn_kv_rows
    q_tiles = n_tiles(share.row1 - share.row0, mq)
    full, rem = divmod(q_tiles, 4)
    kv_full, nk_last = divmod(op.rows, nk)
    kv_tiles = kv_full + (1 if nk_last else 0)
    descriptors = []
    for c in range(4):
        r = c // 2
        if c < rem:  # a query tile in the last, partial group
            tail = {"at_tail": 1, "at_t_before": c, "at_t_after": rem - 1 - c}
        else:  # let its queries pass, and the K|V pass too if the row stream carries one
            tail = {"at_t_skip_q": rem, "at_t_skip_kv": kv_tiles if rem > 2 * r else 0}
        descriptors.append(
            core_program.descriptor(
                at_heads=share.head1 - share.head0,
                at_groups=full,
                at_q_before=c,
                at_q_after=3 - c,
                at_kv_full=kv_full,
                at_kv_ragged=int(nk_last > 0),
                at_nk_last=nk_last,
                **tail,
            )
        )
    units = [_attention_unit(ctx, h, q_tiles, kv_tiles) for h in range(share.head0, share.head1)]
    return [
        Phase(
            f"{op.name} rows {share.row0}-{share.row1} heads {share.head0}-{share.head1}", descriptors, units
        )
    ]


def _attention_unit(ctx: Ctx, head: int, q_tiles: int, kv_tiles: int) -> Unit:
    """One head: its query tiles (broadcast, in groups of 4), for each group every K|V tile down
    each row stream with a query tile in the group, every group's output tiles."""
    op, share, t, rings = ctx.task.op, ctx.task.share, ctx.t, ctx.rings
    mq, nk, dh, d = t.attn_q_rows, t.attn_kv_rows, ctx.dims.d_head, ctx.dims.n_audio_state
    buf, base, row_w = ctx.act(op.inputs[0], 0, 0)

    def col(part: int) -> int:
        return (part * d + head * dh) * BF16 // WORD

    sizes, strides = blocked(mq, dh, 4, 8)
    long = broadcast(
        rings,
        shim_tile(
            buf, base + share.row0 * row_w + col(0), row_w, mq, 8, dh, iteration=(q_tiles, mq * row_w, 0)
        ),
        sizes,
        strides,
        q_tiles,
    )
    long[0] = DmaTask("shim", "MM2S", "b", long[0].bds, q_tiles - 1)
    # outputs: tile i is core i % 4's; groups of 4 share a chain, the last group its own
    out_buf, out_base, out_words = ctx.act(op.name, 0, 0)
    for c in range(min(4, q_tiles)):
        count = len(range(c, q_tiles, 4))
        long.append(output_ring_write(rings, c, count))
    last_group = (q_tiles - 1) // 4
    for groups, first in ((range(last_group), 0), (range(last_group, last_group + 1), last_group)):
        if not groups:
            continue
        reads, writes = [], []
        for c in range(min(4, q_tiles - 4 * first)):
            row = share.row0 + (4 * first + c) * mq
            valid = min(mq, share.row1 - row)
            o_sizes, o_strides = blocked(valid, dh, 4, 4)
            reads.append(rings.bd(f"o{c}", o_sizes, o_strides, per_use=1, writer=False, first=first))
            writes.append(
                shim_tile(
                    out_buf,
                    out_base + row * out_words + head * dh * BF16 // WORD,
                    out_words,
                    valid,
                    4,
                    dh,
                    iteration=(len(groups), 4 * mq * out_words, 0),
                )
            )
        long += [
            DmaTask("mem", "MM2S", "o", tuple(reads), len(groups) - 1),
            DmaTask("shim", "S2MM", "o", tuple(writes), len(groups) - 1),
        ]
    for c in range(min(4, q_tiles)):
        rings.advance(f"o{c}", len(range(c, q_tiles, 4)))
    k_sizes, k_strides = blocked(nk, dh, 4, 8)
    v_sizes, v_strides = blocked(nk, dh, 8, 4)
    kv_iter = (kv_tiles, nk * row_w, 0)
    steps = []
    for q0 in range(0, q_tiles, 4):
        streams = [r for r in (0, 1) if q_tiles - q0 > 2 * r]
        shim, mem = [], []
        for r in streams:
            shim += [
                shim_tile(buf, base + col(1), row_w, nk, 8, dh, iteration=kv_iter),
                shim_tile(buf, base + col(2), row_w, nk, 4, dh, iteration=kv_iter),
            ]
            mem += [
                rings.bd(f"a{r}", k_sizes, k_strides, per_use=2, writer=True, lock=1),
                rings.bd(
                    f"a{r}", v_sizes, v_strides, per_use=2, writer=True, lock=1, shift=rings.words(f"a{r}")
                ),
            ]
        step = [
            DmaTask("shim", "MM2S", "a", tuple(shim), kv_tiles - 1),
            DmaTask("mem", "S2MM", "a", tuple(mem), kv_tiles - 1),
        ]
        for r in streams:
            step.append(DmaTask("mem", "MM2S", f"a{r}", (object_read(rings, f"a{r}"),), kv_tiles - 1))
            rings.advance(f"a{r}", 2 * kv_tiles)
        steps.append(step)
    return Unit(long, steps)
