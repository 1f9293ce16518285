"""The per-column NPU design as MLIR text (aie / aiex dialects of the pinned mlir-aie, README.md).

Everything comes from the pure-Python description that the tests check without the toolchain:
- npustream/npu/column_design.py: the buffers (core FIFOs, mem-tile rings), channels, flows
- npustream/npu/core_program.py: the cores' program, printed here as scf / aie.use_lock / func.call
- npustream/npu/column_program.py (+ column_ops.py): one XRT run's runtime sequence, printed as
  aiex.npu.rtp_write / aiex.set_lock / aiex.dma_configure_task / dma_start_task / dma_await_task

One module per run: the same device (so aiecc's xclbin is the same for every run of every plan)
with that run's runtime sequence. Text rather than the IRON Python API: the runtime-programmed
mem-tile and core-side DMAs with locks are below what IRON's ObjectFifo exposes, and text
keeps the design independent of the Python bindings' changes between releases.
"""

from __future__ import annotations

from npustream.npu import core_program as cp
from npustream.npu.column_design import (
    FIFO_SLOTS,
    MEM_MM2S,
    MEM_S2MM,
    core_buffers,
    layernorm_rows,
    memtile_bytes,
    memtile_locks,
)
from npustream.npu.column_program import (
    WORD,
    Await,
    ColumnRun,
    Push,
    SetLock,
    WriteDescriptor,
)
from npustream.npu.dma_sim import FLOWS

ARGS = ("in", "scratch", "out", "weights")  # the runtime sequence's (and the XRT kernel's) buffers
OBJECT = "column_kernels.o"


class Emitter:
    def __init__(self, plan):
        self.plan = plan
        self.cb = core_buffers(plan.dims, plan.tiles)
        self.lines: list[str] = []
        self.count = 0

    def fresh(self, stem: str = "v") -> str:
        self.count += 1
        return f"%{stem}{self.count}"

    def emit(self, line: str, depth: int) -> None:
        self.lines.append("  " * depth + line)

    def memref(self, what: str) -> str:
        words = {"in0": self.cb.in0, "in1": self.cb.in1, "out": self.cb.out}[what] * FIFO_SLOTS // WORD
        return f"memref<{words}xi32>"

    @property
    def scratch_type(self) -> str:
        return f"memref<{self.cb.scratch // 4}xf32>"

    # --- the device: tiles, buffers, locks, flows, core-side DMAs, cores --------------------

    def device(self, run: ColumnRun, sizes: dict[str, int]) -> str:
        e = self.emit
        e("module {", 0)
        e("aie.device(npu1_1col) {", 1)
        for name, params in cp.GLUE.items():
            types = [self.scratch_type if p == "scratch" else self.memref(p) if p in cp.FIFOS else "i32"
                     for p in params]
            e(f'func.func private @{name}({", ".join(types)}) attributes {{link_with = "{OBJECT}"}}', 2)
        e("%shim = aie.tile(0, 0)", 2)
        e("%mem = aie.tile(0, 1)", 2)
        for c in range(4):
            e(f"%core{c} = aie.tile(0, {2 + c})", 2)
        e(f'%ring = aie.buffer(%mem) {{sym_name = "ring", address = 0 : i32}} : memref<{memtile_bytes(self.plan.dims, self.plan.tiles) // WORD}xi32>', 2)
        for i, lock in enumerate(memtile_locks(self.plan.dims, self.plan.tiles)):  # set per phase
            name = lock.replace(".", "_")
            e(f'%{name} = aie.lock(%mem, {i}) {{init = 0 : i32, sym_name = "{name}"}}', 2)
        for c in range(4):
            for fifo in cp.FIFOS:
                e(f'%{fifo}_c{c} = aie.buffer(%core{c}) {{sym_name = "{fifo}_c{c}"}} : {self.memref(fifo)}', 2)
            e(f'%scratch_c{c} = aie.buffer(%core{c}) {{sym_name = "scratch_c{c}"}} : {self.scratch_type}', 2)
            e(f'%desc_c{c} = aie.buffer(%core{c}) {{sym_name = "desc_c{c}"}} : memref<{len(cp.FIELDS)}xi32>', 2)
            e(f'%count_c{c} = aie.buffer(%core{c}) {{sym_name = "count_c{c}"}} : memref<{2 * len(cp.FIFOS)}xi32>', 2)
            for i, fifo in enumerate(cp.FIFOS):
                prod, cons = (FIFO_SLOTS, 0)
                e(f'%{fifo}_prod_c{c} = aie.lock(%core{c}, {2 * i}) {{init = {prod} : i32, sym_name = "{fifo}_prod_c{c}"}}', 2)
                e(f'%{fifo}_cons_c{c} = aie.lock(%core{c}, {2 * i + 1}) {{init = {cons} : i32, sym_name = "{fifo}_cons_c{c}"}}', 2)
            e(f'%go_c{c} = aie.lock(%core{c}, {2 * len(cp.FIFOS)}) {{init = 0 : i32, sym_name = "go_c{c}"}}', 2)
        for (src, channel), dests in FLOWS.items():  # a source with several destinations: a broadcast
            for dst, dchannel in dests:
                e(f"aie.flow({self._port(src, channel, True)}, {self._port(dst, dchannel, False)})", 2)
        for c in range(4):
            self._core_dma(c)
        for c in range(4):
            self._core(c)
        self._sequence(run, sizes)
        e("}", 1)
        e("}", 0)
        return "\n".join(self.lines) + "\n"

    @staticmethod
    def _port(tile: str, channel: str, source: bool) -> str:
        if tile == "shim":
            index = ("a", "b").index(channel) if source else ("o",).index(channel)
            return f"%shim, DMA : {index}"
        if tile == "mem":
            index = MEM_MM2S.index(channel) if source else MEM_S2MM.index(channel)
            return f"%mem, DMA : {index}"
        index = {"in0": 0, "in1": 1, "out": 0}[channel]
        return f"%{tile}, DMA : {index}"

    def _core_dma(self, c: int) -> None:
        """Static ping-pong BDs: object after object into (out of) the FIFO's two halves."""
        e = self.emit
        e(f"%dma_c{c} = aie.mem(%core{c}) {{", 2)
        channels = [("in0", "S2MM", 0), ("in1", "S2MM", 1), ("out", "MM2S", 0)]
        for i, (fifo, direction, channel) in enumerate(channels):
            words = getattr(self.cb, fifo) // WORD
            take, give = (f"%{fifo}_prod_c{c}", f"%{fifo}_cons_c{c}")[:: 1 if direction == "S2MM" else -1]
            first, second, after = f"^{fifo}0", f"^{fifo}1", f"^next{i}"
            e(f"%s{i} = aie.dma_start({direction}, {channel}, {first}, {after})", 3)
            for block, offset, nxt in ((first, 0, second), (second, words, first)):
                e(f"{block}:", 2)
                e(f"aie.use_lock({take}, AcquireGreaterEqual, 1)", 3)
                e(f"aie.dma_bd(%{fifo}_c{c} : {self.memref(fifo)} offset = {offset} len = {words})", 3)
                e(f"aie.use_lock({give}, Release, 1)", 3)
                e(f"aie.next_bd {nxt}", 3)
            e(f"{after}:", 2)
        e("aie.end", 3)
        e("}", 2)

    # --- the cores ------------------------------------------------------------------------

    def _core(self, c: int) -> None:
        e = self.emit
        e(f"%program_c{c} = aie.core(%core{c}) {{", 2)
        d = 3
        zero, one, forever = self.fresh("c"), self.fresh("c"), self.fresh("c")
        e(f"{zero} = arith.constant 0 : index", d)
        e(f"{one} = arith.constant 1 : index", d)
        e(f"{forever} = arith.constant 9223372036854775807 : index", d)
        self.consts = {"zero": zero, "one": one}
        self.core = c
        nought = self._i32(0, d)
        for slot in range(2 * len(cp.FIFOS)):  # the FIFO counters start at 0 (L1 is not cleared)
            idx = self.fresh("c")
            e(f"{idx} = arith.constant {slot} : index", d)
            e(f"memref.store {nought}, %count_c{c}[{idx}] : memref<{2 * len(cp.FIFOS)}xi32>", d)
        phase = self.fresh("phase")
        e(f"scf.for {phase} = {zero} to {forever} step {one} {{", d)
        e(f"aie.use_lock(%go_c{c}, AcquireGreaterEqual, 1)", d + 1)
        self.fields = {}
        for i, name in enumerate(cp.FIELDS):
            idx, val, ix = self.fresh("c"), self.fresh("f"), self.fresh("n")
            e(f"{idx} = arith.constant {i} : index", d + 1)
            e(f"{val} = memref.load %desc_c{c}[{idx}] : memref<{len(cp.FIELDS)}xi32>", d + 1)
            e(f"{ix} = arith.index_cast {val} : i32 to index", d + 1)
            self.fields[name] = (val, ix)
        self._nodes(cp.PHASE, d + 1)
        e("}", d)
        e("aie.end", d)
        e("}", 2)

    def _i32(self, value: int, depth: int) -> str:
        name = self.fresh("k")
        self.emit(f"{name} = arith.constant {value} : i32", depth)
        return name

    def _counter(self, fifo: str, which: str, depth: int) -> tuple[str, str]:
        """(index constant, loaded value) of a FIFO's acquire ("acq") or release ("rel") count."""
        slot = 2 * cp.FIFOS.index(fifo) + (0 if which == "acq" else 1)
        idx, val = self.fresh("c"), self.fresh("cnt")
        self.emit(f"{idx} = arith.constant {slot} : index", depth)
        self.emit(f"{val} = memref.load %count_c{self.core}[{idx}] : memref<{2 * len(cp.FIFOS)}xi32>", depth)
        return idx, val

    def _bump(self, fifo: str, which: str, depth: int) -> None:
        idx, val = self._counter(fifo, which, depth)
        new, one = self.fresh("cnt"), self._i32(1, depth)
        self.emit(f"{new} = arith.addi {val}, {one} : i32", depth)
        self.emit(f"memref.store {new}, %count_c{self.core}[{idx}] : memref<{2 * len(cp.FIFOS)}xi32>", depth)

    def _lock(self, fifo: str, acquire: bool) -> str:
        inbound = fifo != "out"
        role = "cons" if inbound == acquire else "prod"
        return f"%{fifo}_{role}_c{self.core}"

    def _nodes(self, nodes, depth: int) -> None:
        e = self.emit
        for node in nodes:
            if isinstance(node, cp.Acquire):
                e(f"aie.use_lock({self._lock(node.fifo, True)}, AcquireGreaterEqual, 1)", depth)
                self._bump(node.fifo, "acq", depth)
            elif isinstance(node, cp.Release):
                e(f"aie.use_lock({self._lock(node.fifo, False)}, Release, 1)", depth)
                self._bump(node.fifo, "rel", depth)
            elif isinstance(node, cp.Skip):
                self._loop(node.count, (cp.Acquire(node.fifo), cp.Release(node.fifo)), depth)
            elif isinstance(node, cp.Loop):
                self._loop(node.count, node.body, depth)
            elif isinstance(node, cp.If):
                flag, zero = self.fields[node.flag][0], self._i32(0, depth)
                cond = self.fresh("b")
                e(f"{cond} = arith.cmpi ne, {flag}, {zero} : i32", depth)
                e(f"scf.if {cond} {{", depth)
                self._nodes(node.then, depth + 1)
                if node.orelse:
                    e("} else {", depth)
                    self._nodes(node.orelse, depth + 1)
                e("}", depth)
            else:
                self._call(node, depth)

    def _loop(self, count, body, depth: int) -> None:
        if isinstance(count, int):
            bound = self.fresh("c")
            self.emit(f"{bound} = arith.constant {count} : index", depth)
        else:
            bound = self.fields[count][1]
        i = self.fresh("i")
        self.emit(f"scf.for {i} = {self.consts['zero']} to {bound} step {self.consts['one']} {{", depth)
        self._nodes(body, depth + 1)
        self.emit("}", depth)

    def _call(self, node: cp.Call, depth: int) -> None:
        values, types = [f"%scratch_c{self.core}"], [self.scratch_type]
        for arg in node.args:
            if isinstance(arg, cp.Held):
                _, rel = self._counter(arg.fifo, "rel", depth)
                k, one = self._i32(arg.k, depth), self._i32(1, depth)
                held, index = self.fresh("h"), self.fresh("h")
                self.emit(f"{held} = arith.addi {rel}, {k} : i32", depth)
                self.emit(f"{index} = arith.andi {held}, {one} : i32", depth)
                values += [f"%{arg.fifo}_c{self.core}", index]
                types += [self.memref(arg.fifo), "i32"]
            elif isinstance(arg, cp.Field):
                values.append(self.fields[arg.name][0])
                types.append("i32")
            else:
                value = arg if isinstance(arg, int) else self._constant(arg.name)
                values.append(self._i32(value, depth))
                types.append("i32")
        self.emit(f"func.call @{node.kernel}({', '.join(values)}) : ({', '.join(types)}) -> ()", depth)

    def _constant(self, name: str) -> int:
        t, dims = self.plan.tiles, self.plan.dims
        return {"nk": t.attn_kv_rows, "r_out": layernorm_rows(dims, t)[1]}[name]

    # --- the runtime sequence -------------------------------------------------------------

    def _sequence(self, run: ColumnRun, sizes: dict[str, int]) -> None:
        e, d = self.emit, 2
        args = ", ".join(f"%{a}: memref<{max(sizes[a], 1)}xi32>" for a in ARGS)
        e(f"aie.runtime_sequence @sequence({args}) {{", d)
        handles: dict[int, str] = {}
        for op in run.ops:
            if isinstance(op, SetLock):
                ring, role = op.lock.split(".")
                lock = f"%{ring}_{role}" if not ring.startswith("core") else f"%go_c{ring[4:]}"
                e(f"aiex.set_lock({lock}, {op.value})", d + 1)
            elif isinstance(op, WriteDescriptor):
                for i, value in enumerate(op.values):
                    e(f"aiex.npu.rtp_write(@desc_c{op.core}, {i}, {value})", d + 1)
            elif isinstance(op, Push):
                handles[op.task] = self._task(run.tasks[op.task], op.bd_ids, sizes, d + 1)
                e(f"aiex.dma_start_task({handles[op.task]})", d + 1)
            elif isinstance(op, Await):
                e(f"aiex.dma_await_task({handles.pop(op.task)})", d + 1)
        e("}", d)

    def _task(self, task, bd_ids, sizes: dict[str, int], depth: int) -> str:
        e = self.emit
        handle = self.fresh("task")
        tile = "%shim" if task.tile == "shim" else "%mem"
        e(f"{handle} = aiex.dma_configure_task({tile}, {task.direction}, {task.channel_index}) {{", depth)
        ring_words = memtile_bytes(self.plan.dims, self.plan.tiles) // WORD
        for i, (bd, bd_id) in enumerate(zip(task.bds, bd_ids)):
            if i:
                e(f"^bd{i}:", depth)
            if bd.acquire:
                e(f"aie.use_lock(%{bd.acquire.lock.replace('.', '_')}, AcquireGreaterEqual, {bd.acquire.value})",
                  depth + 1)
            buffer, words = ("%ring", ring_words) if bd.buffer == "mem" else (f"%{bd.buffer}", sizes[bd.buffer])
            pattern = "" if len(bd.sizes) == 1 and bd.strides == (1,) else \
                f" sizes = {list(bd.sizes)} strides = {list(bd.strides)}"
            attrs = [f"bd_id = {bd_id} : i32"]
            size, stride, current = bd.iteration
            if size > 1:
                attrs.append(f"iteration = #aie.bd_iteration<size = {size}, stride = {stride}, current = {current}>")
            e(f"aie.dma_bd({buffer} : memref<{words}xi32> offset = {bd.offset} len = {bd.length}{pattern}) "
              f"{{{', '.join(attrs)}}}", depth + 1)
            if bd.release:
                e(f"aie.use_lock(%{bd.release.lock.replace('.', '_')}, Release, {bd.release.value})", depth + 1)
            e(f"aie.next_bd ^bd{i + 1}" if i + 1 < len(task.bds) else "aie.end", depth + 1)
        e(f"}} {{issue_token = true, repeat_count = {task.repeat} : i32}}", depth)
        return handle


def run_module(plan, run: ColumnRun, sizes: dict[str, int]) -> str:
    """The MLIR of one run: the column device and the run's runtime sequence. `sizes`: words of
    each runtime buffer (ARGS)."""
    return Emitter(plan).device(run, sizes)
