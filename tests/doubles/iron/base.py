"""Test double of mlir-aie's Python API (the subset mlir/encoder_column.py uses): NOT mlir-aie.

It records the program instead of building MLIR, and enforces what the real API enforces as far
as the stored mlir-aie source read shows (mlir/README.md says which files, at the pin or not).
Five files: this one (tiles, Buffers, Locks, Kernels, `range_`, and the `.op` handles resolved
objects give the dialect layer); tests/doubles/iron/program.py (Worker, Runtime, Program: what gets
resolved, in which order); tests/doubles/iron/dma.py (IRON's Bd, DmaChannel, TileDma, Flow and the
runtime chain `tile_dma_chain`); tests/doubles/iron/dialects.py (the aie / aiex dialect ops the sequence
emits where IRON's runtime chains stop); tests/doubles/iron/module.py (the resolved module, aie.ir,
and named runtime sequences beside IRON's).

Enforced here, from stored 2026 python/iron/worker.py, buffer.py, kernel.py, lock.py and
helpers/util.py (none stored at the pin) and the pinned dialects/aie.py: Worker takes `tile=` (not
the older `placement=`); Buffer only keywords the design needs (`address=`, in one stored
buffer.py but not at the pin, is refused); an object is usable only once the Program resolved it
(`.op`, indexing a Buffer, calling a Kernel, a Lock's acquire / release / set), and the Program
resolves only what is registered or a leaf of a Worker's fn_args flattened through lists and
tuples (not dicts or other objects); worker verbs only in a Worker body, runtime verbs only in
the sequence body; a write to a `use_write_rtp` Buffer is always `npu_write_rtp` (the dialect
buffer's __setitem__), so only in the sequence, a Python int value at a Python int index of a 1-D
buffer; lock values within 0..63. Values loaded in a core body combine as mlir-aie's ArithValue
(python/extras/dialects/ext/arith.py@1c22e32e: every operator, reflected ones included, is
`_binary_op(self, other)`, so `1 - v` is `v - 1`); `range_(stop)` / `range_(start, stop[, step])`
as python/iron/controlflow.py (scf `_for`, a Python range: no trip when stop <= start).
`install()` puts the double into sys.modules as `aie`, `aie.iron`, ...; only tests do that.
"""

from __future__ import annotations

import enum
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
    and inside the sequence the BD block a dialect-level task is filling (iron_double_dialects);
    `resolved`: what the Program being resolved has resolved so far, in order."""

    body: list | None = None
    sequence: list | None = None
    block: list | None = None
    task: object = None  # the dialect-level task whose region `block` belongs to
    resolved: list | None = None
    iron_sequence: bool = False  # inside IRON's own sequence body (its active_sequence())
    module: object = None  # the module whose context is entered (with module.context: ...)
    insert_before: object = None  # the aie.ir.InsertionPoint in force (module.py)


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

    # As mlir-aie's ArithValue (python/extras/dialects/ext/arith.py): every operator, the
    # reflected ones too, is `_binary_op(self, other, op)` -- `__rsub__` does NOT swap its
    # operands, so `1 - v` builds `v - 1`.
    def __add__(self, other):
        return Value(("add", self, other))

    __radd__ = __add__

    def __sub__(self, other):
        return Value(("sub", self, other))

    __rsub__ = __sub__

    def __mul__(self, other):
        return Value(("mul", self, other))

    __rmul__ = __mul__

    def __and__(self, other):
        return Value(("and", self, other))


@dataclass(frozen=True, eq=False)
class Op:
    """What `.op` gives once resolved: the MLIR op (tile, buffer, lock) or the runtime
    sequence's block argument ("arg"), standing for `owner`."""

    kind: str
    owner: object


class NotResolvedError(Exception):
    pass


class _Resolvable:
    """Resolved by the Program (iron_double_program), once; a Buffer or Lock needs its tile
    resolved first, as the real resolve() takes `self.tile.op`."""

    _resolved = False

    def _op(self, kind: str) -> Op:
        if not self._resolved:
            raise NotResolvedError(
                f"{self!r} is not resolved: the Program resolves only registered objects "
                "and leaves of a Worker's fn_args"
            )
        return Op(kind, self)

    def resolve(self) -> None:
        if self._resolved:
            return
        tile = getattr(self, "tile", None)
        if tile is not None:
            tile.op  # noqa: B018 - the real resolve() builds the op on its tile's op
        elif not isinstance(self, (Tile, Kernel)):
            raise ValueError(f"Cannot resolve {self!r} until it has been placed.")
        self._resolved = True
        if _State.resolved is not None:
            _State.resolved.append(self)


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
    def __init__(self, type=None, initial_value=None, name=None, tile=None, use_write_rtp=False):
        if type is None and initial_value is None:
            raise ValueError("Must provide either type, initial value, or both.")
        self.type, self.name, self.tile, self.use_write_rtp = type, name, tile, use_write_rtp

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

    def _check_resolved(self) -> None:
        if not self._resolved:
            raise AttributeError(f"{self.name}: Cannot index into Buffer before it has been resolved.")

    def __getitem__(self, index):
        self._check_resolved()
        in_body(f"reading {self.name}")
        return Value(("load", self.name, index))

    def __setitem__(self, index, value):
        self._check_resolved()
        if self.use_write_rtp:  # the dialect's buffer.__setitem__: always aiex.npu_write_rtp
            self._write_rtp(index, value)
        else:
            in_body(f"writing {self.name} (not a use_write_rtp buffer)").append(
                ("store", self.name, index, value)
            )

    def _write_rtp(self, index, value) -> None:
        if _State.body is not None:
            raise RuntimeError(
                f"{self.name} is use_write_rtp: its writes are npu_write_rtp, runtime-sequence ops"
            )
        if not (isinstance(index, int) and len(self.shape) == 1):
            raise TypeError(
                f"npu_write_rtp to {self.name}: a Python int index into a 1-D buffer, not {index!r}"
            )
        if not isinstance(value, int) or not -(2**31) <= value < 2**31:
            raise TypeError(f"npu_write_rtp to {self.name}: an i32 Python int value, not {value!r}")
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
        self.op  # noqa: B018 - use_lock(self.op, ...)
        in_body("Lock.acquire").append(("acquire", self.name, value))

    def release(self, value=1):
        self.op  # noqa: B018
        in_body("Lock.release").append(("release", self.name, value))

    def set(self, value):
        self.op  # noqa: B018 - set_lock_value(self.op, value)
        if not 0 <= value <= MAX_LOCK_VALUE:
            raise ValueError(f"aiex.set_lock {self.name}: {value} outside 0..{MAX_LOCK_VALUE}")
        in_sequence("Lock.set").append(("set_lock", self.name, value))


class Kernel(_Resolvable):
    def __init__(self, name: str, object_file_name: str, arg_types=()):
        if not name:
            raise ValueError("Kernel name cannot be empty.")
        self.name, self.object_file_name, self.arg_types = name, object_file_name, list(arg_types)

    def __repr__(self):
        return f"Kernel({self.name})"

    def __call__(self, *args):
        if not self._resolved:
            raise ValueError(f"{self.name}: Kernel must be resolved before it can be called.")
        if len(args) != len(self.arg_types):
            raise ValueError(
                f"Kernel '{self.name}' expects {len(self.arg_types)} argument(s), "
                f"but {len(args)} were provided."
            )
        for arg in args:
            if isinstance(arg, Buffer):
                arg.op  # noqa: B018 - the call passes a Buffer's op
        in_body(f"calling {self.name}").append(("call", self.name, args))


def range_(*args, **kwargs):
    """Python-range arguments, as IRON's range_ (scf `_for(start, stop, step)`): recorded as
    ("for", stop, body, start, step)."""
    if not 1 <= len(args) <= 3 or kwargs:
        raise NotImplementedError("the double records range_(stop) and range_(start, stop[, step]) only")
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    outer = in_body("range_")
    loop: list = []
    outer.append(("for", stop, loop, start, step))
    _State.body.append(loop)
    try:
        yield Value(("iv", id(loop)))
    finally:
        _State.body.pop()
