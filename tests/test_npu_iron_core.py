"""The cores' IRON program (mlir/iron_core.py) as the test double records it, executed with
upstream's semantics for every operator it uses on loaded values (the double's Value: `1 - v`
builds `v - 1`, as mlir-aie's ArithValue.__rsub__ does), against the core program it is built
from (core_program.PHASE): for every combination of the descriptor's If flags, the same lock
operations and the same glue calls with the same arguments, in order. A hang like `range_(1 -
flag)` (issue 14: every `orelse` ran no trip, and a matmul without a residual never released its
output) fails here. Also: the cores' ping-pong BD chains, with Bd.next as upstream resolves it.
"""

from __future__ import annotations

import itertools
import sys

import pytest

from npustream.npu.program import core as cp

LOOP_COUNT = 2  # every Loop / Skip count field: two trips, so the ping-pong parity moves


def _flags(nodes) -> list[str]:
    out = []
    for node in nodes:
        if isinstance(node, cp.If):
            out += [node.flag, *_flags(node.then), *_flags(node.orelse)]
        elif isinstance(node, cp.Loop):
            out += _flags(node.body)
    return sorted(set(out))


class _Recorded:
    """Runs a Worker body the double recorded: loads, stores, loops, lock uses and calls."""

    def __init__(self, memory: dict[str, list[int]]):
        self.memory, self.ivs, self.events = memory, {}, []

    def value(self, v):
        if isinstance(v, int):
            return v
        expr = getattr(v, "expr", None)
        if expr is None:
            return getattr(v, "name", v)  # a Buffer argument: its name
        kind, *args = expr
        if kind == "load":
            return self.memory[args[0]][self.value(args[1])]
        if kind == "iv":
            return self.ivs[args[0]]
        a, b = (self.value(x) for x in args)
        return {"add": a + b, "sub": a - b, "mul": a * b, "and": a & b}[kind]

    def run(self, ops) -> None:
        for op in ops:
            kind = op[0]
            if kind == "for":
                start, stop, step = (op[3], op[1], op[4]) if len(op) > 3 else (0, op[1], 1)
                start, stop, step = self.value(start), self.value(stop), self.value(step)
                trips = range(start, stop, step) if stop != sys.maxsize else range(1)  # one phase
                for i in trips:
                    self.ivs[id(op[2])] = i
                    self.run(op[2])
            elif kind == "store":
                self.memory[op[1]][self.value(op[2])] = self.value(op[3])
            elif kind in ("acquire", "release"):
                self.events.append((kind, op[1], op[2]))
            elif kind == "call":
                self.events.append(("call", op[1], tuple(self.value(a) for a in op[2])))
            else:
                raise AssertionError(f"unknown recorded op {op!r}")


def _reference(c: int, fields: dict[str, int], constants: dict[str, int], scratch: str) -> list:
    """core_program.PHASE walked directly: what the core must do."""
    acq, rel, events = dict.fromkeys(cp.FIFOS, 0), dict.fromkeys(cp.FIFOS, 0), []

    def lock(fifo: str, acquire: bool) -> str:
        inbound = fifo != "out"
        return f"{fifo}_{'cons' if inbound == acquire else 'prod'}_c{c}"

    def walk(nodes) -> None:
        for node in nodes:
            if isinstance(node, cp.Acquire):
                events.append(("acquire", lock(node.fifo, True), 1))
                acq[node.fifo] += 1
            elif isinstance(node, cp.Release):
                events.append(("release", lock(node.fifo, False), 1))
                rel[node.fifo] += 1
            elif isinstance(node, cp.Skip):
                count = node.count if isinstance(node.count, int) else fields[node.count]
                for _ in range(count):
                    walk((cp.Acquire(node.fifo), cp.Release(node.fifo)))
            elif isinstance(node, cp.Loop):
                for _ in range(fields[node.count]):
                    walk(node.body)
            elif isinstance(node, cp.If):
                walk(node.then if fields[node.flag] else node.orelse)
            elif isinstance(node, cp.Call):
                args = [scratch]
                for arg in node.args:
                    if isinstance(arg, cp.Held):
                        args += [f"{arg.fifo}_c{c}", (rel[arg.fifo] + arg.k) & 1]
                    elif isinstance(arg, cp.Field):
                        args.append(fields[arg.name])
                    elif isinstance(arg, cp.Const):
                        args.append(constants[arg.name])
                    else:
                        args.append(arg)
                events.append(("call", node.kernel, tuple(args)))

    events.append(("acquire", f"go_c{c}", 1))
    walk(cp.PHASE)
    return events


SMALL_ARGS = ("in", "scratch", "out", "weights")


@pytest.fixture(scope="module")
def recorded(iron):
    """The first split run of a small model, resolved on the double: its Workers' bodies."""
    from npu_random_weights import random_weights

    from npustream.model.dims import WhisperDims
    from npustream.npu.ops.params import PRESETS
    from npustream.npu.ops.tiles import DEFAULT_TILES
    from npustream.npu.plan.buffers import column_weight_names, pack_weights, plan_layouts
    from npustream.npu.plan.plans import column_runs, make_plan
    from npustream.npu.program.runs import column_run

    _double, design = iron
    dims = WhisperDims(80, 200, 128, 2, 1, 51865, 448, 128, 2, 1)
    weights = random_weights(dims)
    plan = make_plan("split", dims, DEFAULT_TILES, PRESETS["phoenix"])
    layouts = plan_layouts(plan)[0]
    blob, table = pack_weights(weights, column_weight_names(plan, 0, weights))
    sizes = {role: b.nbytes // 4 for role, b in layouts.buffers.items()} | {"weights": blob.size // 4}
    run = column_run(plan, 0, list(column_runs(plan, 0)[0]), layouts, table)
    return plan, design.column_program(plan, run, sizes).resolve_program()


def _descriptors():
    flags = _flags(cp.PHASE)
    for values in itertools.product((0, 1), repeat=len(flags)):
        fields = dict.fromkeys(cp.FIELDS, LOOP_COUNT) | dict(zip(flags, values, strict=True))
        yield pytest.param(fields, id="-".join(f"{f}={v}" for f, v in zip(flags, values, strict=True)))


@pytest.mark.parametrize("fields", list(_descriptors()))
def test_core_body_does_what_the_core_program_says(recorded, fields):
    from mlir.iron_core import core_constants

    plan, program = recorded
    constants = core_constants(plan)
    for c, worker in enumerate(program.rt.workers):
        memory = {
            f"desc_c{c}": [fields[name] for name in cp.FIELDS],
            f"count_c{c}": [None] * (2 * len(cp.FIFOS)),
        }
        got = _Recorded(memory)
        got.run(worker.body)
        want = _reference(c, fields, constants, f"scratch_c{c}")
        assert got.events == want, f"core {c}: the recorded body departs from the core program"


def test_one_minus_a_loaded_value_is_the_value_minus_one(iron):
    """What made `range_(1 - flag)` hang: upstream's __rsub__ keeps self on the left."""
    double, _ = iron
    flag = double.Value(("load", "desc", 0))
    run = _Recorded({"desc": [1]})
    assert run.value(1 - flag) == 0 and run.value(flag - 1) == 0
    run.memory["desc"][0] = 0
    assert run.value(1 - flag) == -1  # range_(-1): no trip, where the design needed one


def test_core_ping_pong_chains_alternate(recorded):
    """Each core FIFO's two Bds form the cycle 0 -> 1 -> 0, as IRON lowers Bd.next."""
    _plan, program = recorded
    for td in program.rt.tile_dmas:
        for key, after in td.successors().items():
            assert after == [1, 0], f"{td.tile} {key}: next_bd goes {after}"


def test_bd_next_defaults_as_upstream(iron):
    from doubles.iron.dma import Bd, DmaChannel, successors

    buf = object()
    two = [Bd(buf), Bd(buf)]
    assert successors(DmaChannel(None, 0, two)) == [1, 0]  # None follows the channel, looping
    assert successors(DmaChannel(None, 0, two, loop=False)) == [1, None]
    assert successors(DmaChannel(None, 0, [Bd(buf, next="self"), Bd(buf, next="self")])) == [0, 1]
