"""The compute tiles' program: one loop nest for every op, driven by a per-phase descriptor the
runtime sequence writes before it releases the core (npu/program/column.py). Written once as a tiny
structured IR that two back ends read: the DMA simulator (tests/tools/dma_sim.py) interprets it, and the
IRON design (mlir/iron_core.py) turns it into the Workers' bodies, so the program the
simulation verifies is the program the build compiles.

FIFOs (npu/plan/design.py): in0 (row stream), in1 (broadcast), out. Each holds 2 objects; the core
keeps an acquire and a release counter per FIFO (its ping-pong index is the counter mod 2).
`Held(fifo, k)` is the k-th object the core holds, oldest first.

The order the DMA programs send objects in, per op (npu/program/phases.py follows it exactly):
  matmul, per output block: K steps of [A tile on in0; 4 weight objects on in1], then, with a
           residual, 8 residual tiles on in1 (row stream r, core half j, tile t)
  attention, per head and query group: the group's query tiles on in1, then every K|V tile of the
           head on each row stream that has a query tile in the group
  layernorm: gamma and beta on in1, then row chunks alternating row streams, and within one
           between its two cores
"""

from __future__ import annotations

from dataclasses import dataclass

# descriptor fields, int32 each, in this order
FIELDS = (
    "mm_blocks",
    "mm_skip_blocks",
    "mm_k_rest",
    "mm_w_before",
    "mm_w_after",
    "mm_w_skip",
    "mm_res",
    "mm_r_before",
    "mm_r_after",
    "mm_gelu",
    "at_heads",
    "at_groups",
    "at_q_before",
    "at_q_after",
    "at_tail",
    "at_t_before",
    "at_t_after",
    "at_t_skip_q",
    "at_t_skip_kv",
    "at_kv_full",
    "at_kv_ragged",
    "at_nk_last",
    "ln_tasks",
    "ln_pairs",
    "ln_first",
    "ln_tail",
)
FIFOS = ("in0", "in1", "out")
# The glue entry points (mlir/column_glue.cc) a Call names, with their C arguments: the core's
# scratch first, then the call's arguments in order, a held object as (its FIFO's buffer, index).
GLUE = {
    "col_mm_zero": ("scratch", "i32"),
    "col_mm_acc": ("scratch", "in0", "i32", "in1", "i32", "i32"),
    "col_mm_keep_bias": ("scratch", "in1", "i32", "i32"),
    "col_mm_out": ("scratch", "i32", "in1", "i32", "i32", "out", "i32"),
    "col_mm_out_nores": ("scratch", "i32", "i32", "out", "i32"),
    "col_attn_keep_q": ("scratch", "in1", "i32"),
    "col_attn_init": ("scratch",),
    "col_attn_update": ("scratch", "in0", "i32", "i32"),
    "col_attn_finish": ("scratch", "out", "i32"),
    "col_layernorm": ("scratch", "in0", "i32", "i32", "in1", "i32", "in1", "i32", "out", "i32"),
}


@dataclass(frozen=True)
class Held:
    fifo: str
    k: int = 0


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Const:
    name: str  # a design constant: "m", "k", "n", "mq", "nk", "dh", "d", "r_out", "scale", "eps"


@dataclass(frozen=True)
class Acquire:
    fifo: str


@dataclass(frozen=True)
class Release:
    fifo: str


@dataclass(frozen=True)
class Skip:
    """Acquire and release `count` objects of an input FIFO without using them."""

    fifo: str
    count: str | int


@dataclass(frozen=True)
class Call:
    kernel: str  # a glue entry point of mlir/column_glue.cc
    args: tuple


@dataclass(frozen=True)
class Loop:
    count: str  # a descriptor field
    body: tuple


@dataclass(frozen=True)
class If:
    flag: str  # a descriptor field, nonzero = then
    then: tuple
    orelse: tuple = ()


def _matmul() -> tuple:
    def step(last: bool) -> tuple:
        ops = [Acquire("in0"), Skip("in1", "mm_w_before")]
        for slot in (0, 1):
            ops += [Acquire("in1"), Call("col_mm_acc", (Held("in0"), Held("in1"), slot))]
            if last:  # the epilogue needs the bias slice after the weight object is gone
                ops.append(Call("col_mm_keep_bias", (Held("in1"), slot)))
            ops.append(Release("in1"))
        return (*ops, Skip("in1", "mm_w_after"), Release("in0"))

    def out(slot: int, residual: bool) -> tuple:
        res = (Held("in1"),) if residual else ()
        return (
            Acquire("out"),
            Call(
                "col_mm_out" if residual else "col_mm_out_nores", (slot, *res, Field("mm_gelu"), Held("out"))
            ),
            Release("out"),
        )

    with_res = (
        Skip("in1", "mm_r_before"),
        *(op for slot in (0, 1) for op in (Acquire("in1"), *out(slot, True), Release("in1"))),
        Skip("in1", "mm_r_after"),
    )
    block = (
        Call("col_mm_zero", (0,)),
        Call("col_mm_zero", (1,)),
        Loop("mm_k_rest", step(False)),
        *step(True),
        If("mm_res", with_res, (*out(0, False), *out(1, False))),
    )
    return (Loop("mm_blocks", block), Loop("mm_skip_blocks", (Skip("in1", "mm_w_skip"),)))


def _attention() -> tuple:
    def group(before: str, after: str) -> tuple:
        # the query tile is copied out at once: holding it would stop the broadcast, and with
        # it the other cores' queries and the K|V streams they share (a deadlock)
        return (
            Skip("in1", before),
            Acquire("in1"),
            Call("col_attn_keep_q", (Held("in1"),)),
            Release("in1"),
            Skip("in1", after),
            Call("col_attn_init", ()),
            Loop(
                "at_kv_full",
                (Acquire("in0"), Call("col_attn_update", (Held("in0"), Const("nk"))), Release("in0")),
            ),
            Loop(
                "at_kv_ragged",
                (Acquire("in0"), Call("col_attn_update", (Held("in0"), Field("at_nk_last"))), Release("in0")),
            ),
            Acquire("out"),
            Call("col_attn_finish", (Held("out"),)),
            Release("out"),
        )

    head = (
        Loop("at_groups", group("at_q_before", "at_q_after")),
        If(
            "at_tail",
            group("at_t_before", "at_t_after"),
            (Skip("in1", "at_t_skip_q"), Skip("in0", "at_t_skip_kv")),
        ),
    )
    return (Loop("at_heads", head),)


def _layernorm() -> tuple:
    take = (
        Acquire("in0"),
        *(
            op
            for half in (0, 1)
            for op in (
                Acquire("out"),
                Call("col_layernorm", (Held("in0"), half, Held("in1", 0), Held("in1", 1), Held("out"))),
                Release("out"),
            )
        ),
        Release("in0"),
    )
    body = (
        Acquire("in1"),
        Acquire("in1"),  # gamma, beta: held for the whole task
        Loop("ln_pairs", (If("ln_first", (*take, Skip("in0", 1)), (Skip("in0", 1), *take)),)),
        Loop("ln_tail", (If("ln_first", take, (Skip("in0", 1),)),)),  # an odd last chunk: core half 0's
        Release("in1"),
        Release("in1"),
    )
    return (Loop("ln_tasks", body),)


# One phase: what a core runs after the runtime sequence releases it (the "go" lock) with a new
# descriptor. The core loops over phases forever.
PHASE = (*_matmul(), *_attention(), *_layernorm())


def descriptor(**values: int) -> tuple[int, ...]:
    """A descriptor with the given fields set, the rest 0 (loops that do not run)."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown descriptor fields {sorted(unknown)}")
    for name, value in values.items():
        if not 0 <= value < 2**31:
            raise ValueError(f"descriptor field {name}={value} is out of range")
    return tuple(int(values.get(name, 0)) for name in FIELDS)
