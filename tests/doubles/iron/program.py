"""Test double (NOT mlir-aie), part 2 of 4 (tests/doubles/iron/base.py has the overview): IRON's Worker,
Runtime and Program, what the Program resolves and in which order.

The callback-style `Runtime(seq_fn, fn_args)` of 2026 (python/iron/runtime/runtime.py as stored:
no `start`; workers are not started from the sequence) with the registrations the programming
guide's section-2g lists for explicit designs (`add_flow`, `add_lock`, `add_tile_dma`, and
`add_buffer` for "a Buffer that only the sequence body touches": the guide only, neither
stored runtime.py read has it). `Program(device, rt, workers=[...])` and
`resolve_program(device_name="main")` as in the stored python/iron/program.py that takes
workers, in its order: the tiles of every
Worker, fn_args leaf, Flow, TileDma and Lock (and, assumed, of every add_buffer Buffer); the
registered Locks; the TileDmas' Buffers; the add_buffer Buffers (assumed here: the sequence's
tasks take their `.op`); every leaf of every Worker's flattened fn_args; the Worker bodies; the
TileDma programs (their Locks must be resolved by then); the sequence body last. Nothing else is
resolved, so a Kernel or Buffer a body uses but no Worker was given fails when used.
"""

from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass, field
from typing import get_origin

import numpy as np

from doubles.iron.base import AIETileType, Buffer, Lock, Op, _State, range_
from doubles.iron.module import SequenceOp, StringAttr, device_op


def flatten_fn_args(args):
    """The leaves of fn_args, through nested lists and tuples only (helpers/util.py)."""
    for arg in args:
        if isinstance(arg, (list, tuple)):
            yield from flatten_fn_args(arg)
        else:
            yield arg


class Worker:
    def __init__(self, core_fn, fn_args=None, tile=None, while_true=True, stack_size=None):
        if tile is None:
            raise NotImplementedError("the double records placed Workers only (tile=...)")
        if tile.tile_type is not None and tile.tile_type != AIETileType.CoreTile:
            raise ValueError(f"Worker requires a compute tile, but got tile_type={tile.tile_type}")
        self.core_fn, self.fn_args, self.tile, self.while_true = core_fn, fn_args or [], tile, while_true
        self.body: list | None = None

    @property
    def flat_fn_args(self) -> list:
        return list(flatten_fn_args(self.fn_args))

    def record(self) -> None:
        """What Worker.resolve emits: the core, core_fn(*fn_args) (unflattened) in an scf.for of
        sys.maxsize trips, or of 1 with while_true=False."""
        self.body = []
        _State.body = [self.body]
        try:
            for _ in range_(sys.maxsize if self.while_true else 1):
                self.core_fn(*self.fn_args)
        finally:
            _State.body = None


class RuntimeData:
    """A runtime buffer as the sequence body sees it; `.op` is its block argument."""

    def __init__(self, index: int, type_):
        self.index, self.type = index, type_

    @property
    def op(self) -> Op:
        if _State.sequence is None:
            raise RuntimeError("RuntimeData.op exists only while the sequence body runs")
        return Op("arg", self)


class Runtime:
    def __init__(self, seq_fn, fn_args=None, *, strict_task_groups=True):
        self.seq_fn, self.fn_args = seq_fn, list(fn_args or [])
        self.flows, self.locks, self.tile_dmas, self.buffers = [], [], [], []

    def add_flow(self, flow):
        self.flows.append(flow)

    def add_lock(self, lock):
        self.locks.append(lock)

    def add_tile_dma(self, tile_dma):
        self.tile_dmas.append(tile_dma)

    def add_buffer(self, buffer):
        self.buffers.append(buffer)


@dataclass
class ResolvedDesign:
    """Everything the Program resolved (what the module would declare), in resolution order;
    named `rt` in Recorded because npustream/npu/predict/resources.py reads it under that name."""

    buffers: list = field(default_factory=list)
    locks: list = field(default_factory=list)
    flows: list = field(default_factory=list)
    tile_dmas: list = field(default_factory=list)
    workers: list = field(default_factory=list)


@dataclass
class Recorded:
    """What resolve_program would have turned into MLIR: the resolved device, IRON's sequence
    (`sequence`, its ops) and the module as mlir/encoder_column.py walks it (`body`, `context`:
    tests/doubles/iron/module.py), where further named sequences can be added."""

    device: object
    rt: ResolvedDesign
    sequence: list
    body: object = None

    @property
    @contextlib.contextmanager
    def context(self):
        outer, _State.module = _State.module, self
        try:
            yield
        finally:
            _State.module = outer

    def sequences(self) -> dict[str, list]:
        """sym_name -> recorded ops of every runtime sequence of the device, in module order."""
        (device,) = self.body.operations
        return {s.sym_name: s.ops for s in device.sequences()}

    def __str__(self) -> str:
        (device,) = self.body.operations
        listing = ", ".join(f"@{s.sym_name} ({len(s.ops)} ops)" for s in device.sequences())
        return (
            f"// npustream's iron_double record, NOT MLIR: device @{device.attributes['sym_name'].value}, "
            f"{len(self.rt.workers)} workers, {len(device.sequences())} runtime sequences: {listing}\n"
        )


def _body_args(fn_args) -> list:
    """A type entry is a runtime input (a block argument, numbered in order); any other object
    passes through unchanged."""
    args, block_args = [], 0
    for arg in fn_args:
        if isinstance(arg, type) or get_origin(arg) is np.ndarray:
            args.append(RuntimeData(block_args, arg))
            block_args += 1
        else:
            args.append(arg)
    return args


class Program:
    def __init__(self, device, rt: Runtime, workers=None):
        self.device, self.rt, self.workers = device, rt, list(workers or [])
        for worker in self.workers:
            if not isinstance(worker, Worker):
                raise TypeError(f"Program workers must be Workers, not {worker!r}")

    def resolve_program(self, device_name="main") -> Recorded:
        rt, resolved = self.rt, []
        leaves = [arg for worker in self.workers for arg in worker.flat_fn_args]
        tiles = [w.tile for w in self.workers] + [a.tile for a in leaves if isinstance(a, (Buffer, Lock))]
        tiles += [t for f in rt.flows for t in (f.src, *f.dsts)] + [td.tile for td in rt.tile_dmas]
        tiles += [lock.tile for lock in rt.locks] + [b.tile for b in rt.buffers]
        _State.resolved = resolved
        try:
            for tile in tiles:
                tile.resolve()
            for thing in [
                *rt.locks,
                *(bd.buffer for td in rt.tile_dmas for ch in td.channels for bd in ch.bds),
                *rt.buffers,
                *(a for a in leaves if hasattr(a, "resolve")),
            ]:
                thing.resolve()
            for worker in self.workers:
                worker.record()
            for tile_dma in rt.tile_dmas:
                tile_dma.resolve()
            ops: list = []
            _State.sequence, _State.iron_sequence = ops, True
            rt.seq_fn(*_body_args(rt.fn_args))
        finally:
            _State.sequence = _State.block = _State.task = _State.resolved = None
            _State.iron_sequence = False
        design = ResolvedDesign(
            [x for x in resolved if isinstance(x, Buffer)],
            [x for x in resolved if isinstance(x, Lock)],
            rt.flows,
            rt.tile_dmas,
            self.workers,
        )
        # IRON's sequence: aiex.runtime_sequence on its function `sequence`, so named after it
        types_ = [a for a in rt.fn_args if isinstance(a, type) or get_origin(a) is np.ndarray]
        iron_sequence = SequenceOp({"sym_name": StringAttr("sequence")}, types_, ops)
        body = types.SimpleNamespace(operations=[device_op(device_name, iron_sequence)])
        return Recorded(self.device, design, ops, body)
