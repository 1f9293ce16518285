"""Test double of mlir-aie's Python API (the subset mlir/encoder_column.py uses): NOT mlir-aie.

It records the program instead of building MLIR, and enforces what the real API enforces as far
as its source at the pinned commit (mlir/README.md) shows. Three files: this one (tiles,
Buffers, Locks, Kernels, Workers, `range_`, Runtime, Program, and the `.op` handles resolved
objects give the dialect layer); iron_double_dma.py (IRON's Bd, DmaChannel, TileDma, Flow and
the runtime chain `tile_dma_chain`); iron_double_dialects.py (the aie / aiex dialect ops the
sequence emits where IRON's runtime chains stop).

Enforced here: keyword names, runtime verbs only inside the sequence body, worker verbs only
inside a Worker body, lock values within 0..63, `.op` only on objects the Program resolves.
`install()` puts the double into sys.modules as `aie`, `aie.iron`, ...; only tests do that.
"""

from __future__ import annotations

import enum
import sys
import types
from dataclasses import dataclass

MAX_LOCK_VALUE = 63
CHANNELS = {"ShimNOCTile": (2, 2), "MemTile": (6, 6), "CoreTile": (2, 2)}  # (S2MM, MM2S)


class DMAChannelDir(enum.IntEnum):
    MM2S = 0
    S2MM = 1


class AIETileType(enum.IntEnum):
    CoreTile = 0
    MemTile = 1
    ShimNOCTile = 2


class _State:
    """What is being built: a Worker body (its op list stack), the sequence body (its op list),
    and inside the sequence the BD block a dialect-level task is filling (iron_double_dialects)."""

    body: list | None = None
    sequence: list | None = None
    block: list | None = None
    task: object = None  # the dialect-level task whose region `block` belongs to


def in_body(what: str) -> list:
    if _State.body is None:
        raise RuntimeError(f"{what} may only be used inside a Worker body")
    return _State.body[-1]


def in_sequence(what: str) -> list:
    if _State.sequence is None:
        raise RuntimeError(f"{what} may only be used inside the function passed to Runtime(...)")
    if _State.block is not None:
        raise RuntimeError(f"{what} inside a BD block: a DMA task's blocks hold BD ops only")
    return _State.sequence


@dataclass(frozen=True)
class Value:
    """A core-side SSA value: an expression over loads and constants."""

    expr: tuple

    def __add__(self, other):
        return Value(("add", self, other))

    def __and__(self, other):
        return Value(("and", self, other))

    def __rsub__(self, other):
        return Value(("sub", other, self))


@dataclass(frozen=True, eq=False)
class Op:
    """What `.op` gives once resolved: the MLIR op (tile, buffer, lock) or the runtime
    sequence's block argument ("arg"), standing for `owner`."""

    kind: str
    owner: object


class _Resolvable:
    _resolved = False

    def _op(self, kind: str) -> Op:
        if not self._resolved:
            raise RuntimeError(f"{self!r} is not resolved: register it with the Runtime (NotResolvedError)")
        return Op(kind, self)


class Tile(_Resolvable):
    def __init__(self, col: int, row: int, tile_type: AIETileType | None = None):
        self.col, self.row, self.tile_type = col, row, tile_type

    @property
    def kind(self) -> str:
        return NPU1Col1.rows[self.row]

    @property
    def op(self) -> Op:
        return self._op("tile")

    def __repr__(self):
        return f"Tile({self.col}, {self.row})"


class NPU1Col1:
    """One column of Phoenix (npu1): shim row 0, mem tile row 1, compute rows 2-5."""

    rows = types.MappingProxyType({0: "ShimNOCTile", 1: "MemTile", **dict.fromkeys(range(2, 6), "CoreTile")})


def type_shape(t) -> tuple:
    return t.__args__[0]


def type_itemsize(t) -> int:
    import numpy as np

    return np.dtype(t.__args__[1].__args__[0]).itemsize


class Buffer(_Resolvable):
    def __init__(self, type=None, initial_value=None, name=None, tile=None, use_write_rtp=False, address=None,
                 mem_bank=None):
        if type is None and initial_value is None:
            raise ValueError("Must provide either type, initial value, or both.")
        self.type, self.name, self.tile, self.use_write_rtp, self.address = type, name, tile, use_write_rtp, address

    @property
    def shape(self):
        return type_shape(self.type)

    @property
    def nbytes(self) -> int:
        return int(self.shape[0]) * type_itemsize(self.type)

    @property
    def op(self) -> Op:
        return self._op("buffer")

    def __repr__(self):
        return f"Buffer({self.name})"

    def __getitem__(self, index):
        in_body(f"reading {self.name}")
        return Value(("load", self.name, index))

    def __setitem__(self, index, value):
        if _State.body is not None:
            _State.body[-1].append(("store", self.name, index, value))
            return
        if not self.use_write_rtp:
            raise RuntimeError(f"{self.name}: the runtime sequence writes only use_write_rtp buffers")
        in_sequence(f"writing {self.name}").append(("rtp_write", self.name, index, value))


class Lock(_Resolvable):
    def __init__(self, tile, lock_id=None, init=0, name=None):
        if not 0 <= init <= MAX_LOCK_VALUE:
            raise ValueError(f"lock {name}: init {init} outside 0..{MAX_LOCK_VALUE}")
        self.tile, self.lock_id, self.init, self.name = tile, lock_id, init, name

    @property
    def op(self) -> Op:
        return self._op("lock")

    def __repr__(self):
        return f"Lock({self.name})"

    def acquire(self, value=1):
        in_body("Lock.acquire").append(("acquire", self.name, value))

    def release(self, value=1):
        in_body("Lock.release").append(("release", self.name, value))

    def set(self, value):
        if not 0 <= value <= MAX_LOCK_VALUE:
            raise ValueError(f"aiex.set_lock {self.name}: {value} outside 0..{MAX_LOCK_VALUE}")
        in_sequence("Lock.set").append(("set_lock", self.name, value))


class Kernel:
    def __init__(self, name: str, bin_name: str, arg_types=()):
        self.name, self.bin_name, self.arg_types = name, bin_name, list(arg_types)

    def __call__(self, *args):
        if len(args) != len(self.arg_types):
            raise TypeError(f"{self.name} takes {len(self.arg_types)} arguments, got {len(args)}")
        in_body(f"calling {self.name}").append(("call", self.name, args))


class Worker:
    def __init__(self, core_fn, fn_args=(), placement=None, while_true=True, stack_size=None):
        self.core_fn, self.fn_args, self.tile, self.while_true = core_fn, list(fn_args), placement, while_true
        self.body: list | None = None


def range_(*args, **kwargs):
    if len(args) != 1:
        raise NotImplementedError("the double records range_(stop) only")
    outer = in_body("range_")
    loop: list = []
    outer.append(("for", args[0], loop))
    _State.body.append(loop)
    try:
        yield Value(("iv", id(loop)))
    finally:
        _State.body.pop()


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
    def __init__(self, seq_fn, fn_args=None, *, name=None, strict_task_groups=True, implicit_configure=True):
        self.seq_fn, self.fn_args = seq_fn, list(fn_args or [])
        self.flows, self.locks, self.tile_dmas, self.buffers, self.workers = [], [], [], [], []

    def add_flow(self, flow):
        self.flows.append(flow)

    def add_lock(self, lock):
        self.locks.append(lock)

    def add_tile_dma(self, tile_dma):
        self.tile_dmas.append(tile_dma)

    def add_buffer(self, buffer):
        self.buffers.append(buffer)

    def start(self, *workers):
        in_sequence("Runtime.start")
        self.workers += workers

    def _resolve_registered(self) -> None:
        """What the Program resolves before the sequence body runs: the registered objects and
        their tiles (a dialect op can then take their `.op`)."""
        tiles = [t for f in self.flows for t in (f.src, *f.dsts)] + [td.tile for td in self.tile_dmas]
        for thing in [*self.buffers, *self.locks, *tiles, *(x.tile for x in (*self.buffers, *self.locks))]:
            thing._resolved = True


class Program:
    def __init__(self, device, rt: Runtime):
        self.device, self.rt = device, rt

    def resolve_program(self, placer=None) -> Recorded:
        self.rt._resolve_registered()
        ops: list = []
        _State.sequence = ops
        try:
            self.rt.seq_fn(*[RuntimeData(i, t) for i, t in enumerate(self.rt.fn_args)])
        finally:
            _State.sequence = _State.block = _State.task = None
        for worker in self.rt.workers:
            worker.body = []
            _State.body = [worker.body]
            try:
                worker.core_fn(*worker.fn_args)
            finally:
                _State.body = None
        return Recorded(self.device, self.rt, ops)


@dataclass
class Recorded:
    """What resolve_program would have turned into MLIR: the registrations and the sequence."""

    device: object
    rt: Runtime
    sequence: list

    def __str__(self) -> str:
        return (f"// npustream's iron_double record, NOT MLIR: {len(self.sequence)} sequence ops, "
                f"{len(self.rt.workers)} workers\n")


def install() -> None:
    """Register the double as `aie`, `aie.iron`, `aie.iron.device`, `aie.iron.controlflow` and
    `aie.dialects` (`_aie_enum_gen`, `aie`, `aiex`) in sys.modules (tests only, without mlir-aie)."""
    from npustream.npu import iron_double_dialects as dialects
    from npustream.npu import iron_double_dma as dma

    me = sys.modules[__name__]
    exports = {"aie": {}, "aie.dialects": {}, "aie.iron.controlflow": {"range_": range_},
               "aie.dialects._aie_enum_gen": {"DMAChannelDir": DMAChannelDir, "AIETileType": AIETileType,
                                              "LockAction": dialects.LockAction},
               "aie.iron.device": {"NPU1Col1": NPU1Col1, "Tile": Tile},
               "aie.iron": {name: getattr(dma if hasattr(dma, name) else me, name) for name in (
                   "Acquire", "Bd", "Buffer", "DmaChannel", "Flow", "Kernel", "Lock", "Program", "Release", "Runtime",
                   "TileDma", "Worker", "tile_dma_chain")}}
    modules = {name: types.ModuleType(name, "npustream's test double of mlir-aie (npustream/npu/iron_double.py)")
               for name in exports}
    for name, attrs in exports.items():
        modules[name].__dict__.update(attrs)
    modules["aie.dialects.aie"], modules["aie.dialects.aiex"] = dialects.aie_module(), dialects.aiex_module()
    modules["aie.dialects"].aie, modules["aie.dialects"].aiex = modules["aie.dialects.aie"], modules["aie.dialects.aiex"]
    sys.modules.update(modules)
