"""LayerNorm as a column-program phase: see npu/plan/design.py for the dataflow and
npu/program/core.py for the order the cores take objects in."""

from __future__ import annotations

from npustream.npu.ops.tiles import n_tiles
from npustream.npu.plan.design import layernorm_rows
from npustream.npu.program import core as core_program
from npustream.npu.program.column import Bd, DmaTask, Unit
from npustream.npu.program.phases import Ctx, Phase, object_read, output_ring_write


def layernorm_phases(ctx: Ctx) -> list[Phase]:
    """Chunk i of r_in rows goes down row stream i % 2 to core half (i // 2) % 2, so chunks
    4q .. 4q+3 belong to cores 0, 2, 1, 3."""
    op, share, rings = ctx.task.op, ctx.task.share, ctx.rings
    d = ctx.dims.n_audio_state
    r_in, r_out = layernorm_rows(ctx.dims, ctx.t)
    rows = share.row1 - share.row0
    chunks = n_tiles(rows, r_in)
    descriptors = []
    for c in range(4):
        s, j = divmod(c, 2)
        on_stream = len(range(s, chunks, 2))
        descriptors.append(
            core_program.descriptor(
                ln_tasks=1, ln_pairs=on_stream // 2, ln_first=int(j == 0), ln_tail=on_stream % 2
            )
        )
    long = [
        DmaTask(
            "shim",
            "MM2S",
            "b",
            tuple(Bd("weights", ctx.weights(op.name + part), (d,), (1,)) for part in (".g", ".beta")),
        ),
        DmaTask("mem", "S2MM", "b", (rings.bd("b", (d,), (1,), per_use=1, writer=True),), 1),
        DmaTask("mem", "MM2S", "b", (object_read(rings, "b"),), 1),
    ]
    rings.advance("b", 2)
    x_buf, x_base, row_w = ctx.act(op.inputs[0], 0, 0)
    y_buf, y_base, _ = ctx.act(op.name, 0, 0)
    long.append(
        DmaTask(
            "shim", "MM2S", "a", (Bd(x_buf, x_base + share.row0 * row_w, (chunks * r_in * row_w,), (1,)),)
        )
    )
    chunk = (r_in * row_w,), (1,)
    long.append(
        DmaTask(
            "mem",
            "S2MM",
            "a",
            tuple(rings.bd(f"a{s}", *chunk, per_use=2, writer=True) for s in (0, 1)[: min(chunks, 2)]),
            (chunks - 1) // 2,
        )
    )
    if chunks % 2 and chunks > 1:  # the pairs' chain ran once too few on stream 0
        long[-1] = DmaTask("mem", "S2MM", "a", long[-1].bds, chunks // 2 - 1)
        long.append(
            DmaTask("mem", "S2MM", "a", (rings.bd("a0", *chunk, per_use=2, writer=True, first=chunks - 1),))
        )
    for s in (0, 1)[: min(chunks, 2)]:
        count = len(range(s, chunks, 2))
        long.append(DmaTask("mem", "MM2S", f"a{s}", (object_read(rings, f"a{s}"),), count - 1))
        rings.advance(f"a{s}", 2 * count)
    owner = [2 * (i % 2) + (i // 2) % 2 for i in range(chunks)]
    for c in sorted(set(owner)):
        long.append(output_ring_write(rings, c, 2 * owner.count(c)))
    full_rounds = (rows // r_in) // 4  # rounds of 4 chunks with every row kept
    if full_rounds:
        reads = [
            rings.bd(f"o{c}", (2, r_out, row_w), (rings.words(f"o{c}"), row_w, 1), per_use=2, writer=False)
            for c in (0, 2, 1, 3)
        ]
        long.append(DmaTask("mem", "MM2S", "o", tuple(reads), full_rounds - 1))
    seen = {c: full_rounds for c in range(4)}
    reads = []
    for i in range(4 * full_rounds, chunks):  # the rest, with the last chunk's rows trimmed
        c = owner[i]
        valid = min(r_in, rows - i * r_in)
        for half in (0, 1):  # an object with no kept rows stays in the ring (reset next phase)
            kept = min(r_out, valid - half * r_out)
            if kept > 0:
                reads.append(
                    rings.bd(
                        f"o{c}", (kept * row_w,), (1,), per_use=1, writer=False, first=2 * seen[c] + half
                    )
                )
        seen[c] += 1
    if reads:
        long.append(DmaTask("mem", "MM2S", "o", tuple(reads)))
    for c in sorted(set(owner)):
        rings.advance(f"o{c}", 2 * owner.count(c))
    long.append(
        DmaTask("shim", "S2MM", "o", (Bd(y_buf, y_base + share.row0 * row_w, (rows * row_w,), (1,)),))
    )
    return [Phase(f"{op.name} rows {share.row0}-{share.row1}", descriptors, [Unit(long)])]
