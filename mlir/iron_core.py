"""The cores' program (npustream/npu/program/core.py) as an IRON Worker body: the tiny IR's
nodes become Lock acquires and releases, counter updates, range_ loops and Kernel calls on the
glue of column_glue.cc. The building blocks stay visible: core_program.PHASE is the matmul,
attention and LayerNorm loop nests in that order, each driven by its descriptor fields.

Everything a core body touches is its Worker's fn_args (`worker_args`), flat lists and tuples of
Locks, Buffers and Kernels: IRON resolves exactly those leaves (and the registered objects) before
the bodies are built, so a Kernel or Buffer reached any other way would be unresolved.

A core keeps, per FIFO, an acquire and a release count in a small buffer (L1 is not cleared);
the object a Held argument names is (release count + k) mod 2 of the FIFO's two objects.
`If(flag, then, orelse)` is two loops: `range_(flag)` and `range_(flag, 1)` (1 - flag trips) -- no
arithmetic on the loaded flag: mlir-aie's `__rsub__` does not swap its operands, so `1 - flag`
would build `flag - 1` and the `orelse` loop would never run (issue 14). The descriptor's flags
are 0 or 1 (column_matmul / column_attention / column_layernorm write them so).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from aie.iron.controlflow import range_

from npustream.npu.plan.design import layernorm_rows
from npustream.npu.program import core as cp


def worker_args(column, core: int) -> list:
    """The fn_args of core `core`'s Worker, in core_body's parameter order."""
    return [
        column.go[core],
        [column.fifo_locks[core][f] for f in cp.FIFOS],
        [column.fifos[core][f] for f in cp.FIFOS],
        column.scratch[core],
        column.descriptors[core],
        column.counters[core],
        [column.kernels[name] for name in cp.GLUE],
    ]


@dataclass
class Core:
    """One core's objects, by the names the core program uses."""

    go: object  # Lock
    fifo_locks: dict  # FIFO -> (prod, cons) Lock pair
    fifos: dict  # FIFO -> its two-object Buffer
    scratch: object
    descriptor: object  # the runtime parameters (core_program.FIELDS)
    counters: object  # per FIFO an acquire and a release count
    kernels: dict  # glue entry point -> Kernel


def core_constants(plan) -> dict[str, int]:
    """The design constants a core program Const names."""
    return {"nk": plan.tiles.attn_kv_rows, "r_out": layernorm_rows(plan.dims, plan.tiles)[1]}


def core_body(plan):
    constants = core_constants(plan)

    def body(go, fifo_locks, fifos, scratch, descriptor, counters, kernels):
        core = Core(
            go,
            dict(zip(cp.FIFOS, fifo_locks, strict=True)),
            dict(zip(cp.FIFOS, fifos, strict=True)),
            scratch,
            descriptor,
            counters,
            dict(zip(cp.GLUE, kernels, strict=True)),
        )
        program = CoreProgram(core, constants)
        for slot in range(2 * len(cp.FIFOS)):
            counters[slot] = 0
        for _ in range_(sys.maxsize):  # one phase per turn: the sequence releases "go" after the descriptor
            go.acquire(1)
            program.fields = {name: descriptor[i] for i, name in enumerate(cp.FIELDS)}
            program.nodes(cp.PHASE)

    return body


class CoreProgram:
    def __init__(self, core: Core, constants: dict[str, int]):
        self.core, self.constants = core, constants
        self.fields = {}

    def _lock(self, fifo: str, acquire: bool):
        prod, cons = self.core.fifo_locks[fifo]
        inbound = fifo != "out"
        return cons if inbound == acquire else prod

    def _bump(self, fifo: str, which: str) -> None:
        slot = 2 * cp.FIFOS.index(fifo) + (0 if which == "acq" else 1)
        counters = self.core.counters
        counters[slot] = counters[slot] + 1

    def _held(self, arg: cp.Held):
        released = self.core.counters[2 * cp.FIFOS.index(arg.fifo) + 1]
        return (released + arg.k) & 1

    def _count(self, count):
        return count if isinstance(count, int) else self.fields[count]

    def nodes(self, nodes) -> None:
        for node in nodes:
            if isinstance(node, cp.Acquire):
                self._lock(node.fifo, True).acquire(1)
                self._bump(node.fifo, "acq")
            elif isinstance(node, cp.Release):
                self._lock(node.fifo, False).release(1)
                self._bump(node.fifo, "rel")
            elif isinstance(node, cp.Skip):
                self.loop(node.count, (cp.Acquire(node.fifo), cp.Release(node.fifo)))
            elif isinstance(node, cp.Loop):
                self.loop(node.count, node.body)
            elif isinstance(node, cp.If):
                flag = self.fields[node.flag]
                for _ in range_(flag):
                    self.nodes(node.then)
                if node.orelse:
                    for _ in range_(flag, 1):
                        self.nodes(node.orelse)
            elif isinstance(node, cp.Call):
                self.call(node)
            else:
                raise NotImplementedError(f"core program node {node!r} has no IRON form")

    def loop(self, count, body) -> None:
        for _ in range_(self._count(count)):
            self.nodes(body)

    def call(self, node: cp.Call) -> None:
        args = [self.core.scratch]
        for arg in node.args:
            if isinstance(arg, cp.Held):
                args += [self.core.fifos[arg.fifo], self._held(arg)]
            elif isinstance(arg, cp.Field):
                args.append(self.fields[arg.name])
            elif isinstance(arg, cp.Const):
                args.append(self.constants[arg.name])
            else:
                args.append(arg)
        self.core.kernels[node.kernel](*args)
