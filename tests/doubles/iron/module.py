"""Test double (NOT mlir-aie), part 5 of 5 (tests/doubles/iron/base.py has the overview): the
resolved module as far as mlir/encoder_column.py walks it, `aie.ir`'s InsertionPoint, Location and
StringAttr, and the dialect's `aiex.runtime_sequence` decorator, to put several named runtime
sequences into the device IRON resolved.

From the pinned sources: `aiex.runtime_sequence(*inputs, sym_name=None)`
(python/dialects/aiex.py@4fb79094) names the sequence `sym_name`, or else the decorated function's
`__name__`, converts numpy array types to memrefs and calls the function with the entry block's
arguments (raw values, not IRON RuntimeData); IRON's Program (python/iron/program.py@e5562efc)
resolves one device, `@main` by default, and its Runtime one sequence through that decorator on a
function named `sequence` (python/iron/runtime/runtime.py@0429335f, _sequence.py@54444e7b), so
it is `@sequence`. IRON's `tile_dma_chain` (python/iron/runtime/tiledmatask.py@4fb79094) calls
`active_sequence()`: it works only inside that one IRON sequence body (tests/doubles/iron/dma.py
enforces it through `_State.iron_sequence`), while the dialect ops work in any sequence. A device
may not hold two symbols of one name (MLIR's symbol table verifier); here that is refused when the
second sequence is created. `aie.ir.InsertionPoint(op)` inserts before `op`.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass, field
from typing import get_origin

import numpy as np

from doubles.iron.base import Op, _State

SEQUENCE_OP = "aie.runtime_sequence"


@dataclass(frozen=True)
class StringAttr:
    value: str

    @staticmethod
    def get(value: str) -> StringAttr:
        if _State.module is None:
            raise RuntimeError("StringAttr.get needs an MLIR context (with module.context: ...)")
        return StringAttr(str(value))


@dataclass(eq=False)
class SequenceOp:
    """`aie.runtime_sequence`: its sym_name attribute, argument types and the recorded ops."""

    attributes: dict
    arg_types: list
    ops: list
    name: str = SEQUENCE_OP

    @property
    def operation(self) -> SequenceOp:
        return self

    @property
    def sym_name(self) -> str:
        return self.attributes["sym_name"].value


@dataclass(eq=False)
class Block:
    operations: list = field(default_factory=list)


@dataclass(eq=False)
class Region:
    blocks: list


@dataclass(eq=False)
class DeviceOp:
    """`aie.device(npu1_1col) @name`; its block lists the runtime sequences (the double records
    the rest of the device in Recorded.rt)."""

    attributes: dict
    regions: list
    name: str = "aie.device"

    @property
    def operation(self) -> DeviceOp:
        return self

    def sequences(self) -> list[SequenceOp]:
        return [op for op in self.regions[0].blocks[0].operations if op.name == SEQUENCE_OP]


def device_op(name: str, first: SequenceOp) -> DeviceOp:
    return DeviceOp({"sym_name": StringAttr(name)}, [Region([Block([first])])])


class InsertionPoint:
    """Before `op` (a runtime sequence of the module's device)."""

    def __init__(self, op):
        if _State.module is None:
            raise RuntimeError("InsertionPoint outside an MLIR context")
        (device,) = _State.module.body.operations
        if op not in device.regions[0].blocks[0].operations:
            raise ValueError("the double inserts only before an op of the device's block")
        self.op, self.device = op, device

    def __enter__(self):
        self._outer = _State.insert_before
        _State.insert_before = self
        return self

    def __exit__(self, *exc):
        _State.insert_before = self._outer
        return False


class Location:
    @staticmethod
    @contextlib.contextmanager
    def unknown():
        if _State.module is None:
            raise RuntimeError("Location.unknown() outside an MLIR context")
        yield


def _memref(t):
    if get_origin(t) is not np.ndarray:
        raise TypeError(f"runtime_sequence: a numpy array type, not {t!r}")
    return t


def runtime_sequence(*inputs, sym_name=None, context=None):
    """aiex.runtime_sequence as pinned: a decorator that builds the op and runs the body once."""

    def decorator(f):
        point = _State.insert_before
        if point is None or _State.sequence is not None:
            raise RuntimeError("runtime_sequence needs an insertion point in a device block")
        name = sym_name if sym_name else f.__name__
        if name in {s.sym_name for s in point.device.sequences()}:
            raise ValueError(f"redefinition of symbol named '{name}' in the device")
        from doubles.iron.program import RuntimeData

        types_ = [_memref(t) for t in inputs]
        op = SequenceOp({"sym_name": StringAttr(name)}, types_, [])
        _State.sequence = op.ops
        try:
            f(*[Op("arg", RuntimeData(i, t)) for i, t in enumerate(types_)])
        finally:
            _State.sequence = _State.block = _State.task = None
        block = point.device.regions[0].blocks[0].operations
        block.insert(block.index(point.op), op)

    return decorator


def ir_module() -> types.ModuleType:
    module = types.ModuleType("aie.ir", "npustream's test double of aie.ir (tests/doubles/iron/module.py)")
    module.InsertionPoint, module.Location, module.StringAttr = InsertionPoint, Location, StringAttr
    return module
