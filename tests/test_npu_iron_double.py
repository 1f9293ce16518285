"""The recording test double of mlir-aie's Python API (npustream/npu/iron_double*.py) refuses
what the real API refuses, the mismatches a review of the design found among them:
Runtime.start, Worker(placement=), Buffer(address=), Flow(name=), resolve_program(placer=),
Kernels and Buffers a Worker was not given, RTP writes at a non-int index."""

from __future__ import annotations

import numpy as np
import pytest


def test_double_enforces_the_api(iron):
    double, _ = iron
    from doubles.iron import dialects, dma, program

    shim, mem, core = double.Tile(0, 0), double.Tile(0, 1), double.Tile(0, 2)
    ring, stray = (
        double.Buffer(tile=mem, type=_words(64), name="ring"),
        double.Buffer(tile=core, type=_words(8)),
    )
    prod, cons = double.Lock(mem, name="prod"), double.Lock(mem, name="cons")
    s2mm = double.DMAChannelDir.S2MM
    with pytest.raises(RuntimeError, match="inside the function passed to Runtime"):
        dma.tile_dma_chain(mem, s2mm, 0, [dma.Bd(ring, length=8)])
    with pytest.raises(double.NotResolvedError, match="not resolved"):
        ring.op  # noqa: B018 - only what the Program resolves has an op
    for thing in (shim, mem, core, ring, stray, prod, cons):
        thing._resolved = True
    double._State.sequence, double._State.iron_sequence = [], True  # as inside IRON's sequence body
    try:
        with pytest.raises(ValueError, match="buffer on Tile"):
            dma.tile_dma_chain(mem, s2mm, 0, [dma.Bd(stray, length=8)])
        with pytest.raises(ValueError, match="sets iteration"):
            dma.tile_dma_chain(mem, s2mm, 0, [dma.Bd(ring, iteration=(2, 8, 0))])
        with pytest.raises(ValueError, match="6 S2MM channels, not channel 6"):
            dma.tile_dma_chain(mem, s2mm, 6, [dma.Bd(ring, length=8)])
        with pytest.raises(ValueError, match="not in channel 1's half"):
            dma.tile_dma_chain(mem, double.DMAChannelDir.MM2S, 1, [dma.Bd(ring, length=8, bd_id=3)])

        def task(tile, bd, locks=(), token=True):
            handle = dialects.dma_configure_task(tile.op, s2mm, 0, issue_token=token, repeat_count=0)
            with dialects.bds(handle) as blocks, blocks[0]:
                for lock, action in locks:
                    dialects.use_lock(lock.op, action, value=1)
                bd()
                dialects.EndOp()
            dialects.dma_start_task(handle)
            return handle

        with pytest.raises(RuntimeError, match="outside a BD block"):
            dialects.dma_bd(ring.op, offset=0, transfer_len=8)
        with pytest.raises(ValueError, match=r"size must be in \[1, 64\]"):
            task(mem, lambda: dialects.dma_bd(ring.op, transfer_len=8, bd_id=0, iteration=(65, 8, 0)))
        with pytest.raises(ValueError, match="more than 3 dimensions"):
            task(
                mem,
                lambda: dialects.dma_bd(
                    ring.op, sizes=[1, 1, 2, 4], strides=[0, 0, 4, 1], transfer_len=8, iteration=(2, 8, 0)
                ),
            )
        with pytest.raises(ValueError, match="only be referred to on shim tiles"):
            task(mem, lambda: dialects.dma_bd(program.RuntimeData(0, _words(64)).op, transfer_len=8))
        with pytest.raises(ValueError, match="does not match"):
            task(mem, lambda: dialects.dma_bd(ring.op, sizes=[2, 4], strides=[8, 1], transfer_len=16))
        with pytest.raises(ValueError, match="outside 0..15"):
            task(
                shim, lambda: dialects.dma_bd(program.RuntimeData(0, _words(64)).op, transfer_len=8, bd_id=16)
            )
        with pytest.raises(ValueError, match="an acquire before the BD and a release after it"):
            task(
                mem,
                lambda: dialects.dma_bd(ring.op, transfer_len=8),
                locks=[(prod, dialects.LockAction.Release)],
            )
        untokened = task(mem, lambda: dialects.dma_bd(ring.op, transfer_len=8), token=False)
        with pytest.raises(ValueError, match="not configured to issue a token"):
            dialects.dma_await_task(untokened)
        done = task(mem, lambda: dialects.dma_bd(ring.op, transfer_len=8, bd_id=1, iteration=(4, 16, 3)))
        dialects.dma_await_task(done)
        with pytest.raises(RuntimeError, match="no start left to await"):
            dialects.dma_await_task(done)
    finally:
        double._State.sequence = double._State.block = double._State.task = None
        double._State.iron_sequence = False
    with pytest.raises(ValueError, match="2 MM2S channels"):
        dma.TileDma(core, [dma.DmaChannel(double.DMAChannelDir.MM2S, 2, [dma.Bd(stray)])])


def test_double_refuses_the_old_and_unconfirmed_keywords(iron):
    double, _ = iron
    from doubles.iron import dma, program

    core, mem = double.Tile(0, 2, double.AIETileType.CoreTile), double.Tile(0, 1, double.AIETileType.MemTile)
    with pytest.raises(TypeError, match="placement"):
        program.Worker(lambda: None, [], placement=core)  # the 2024-25 keyword; the 2026 Worker takes tile=
    with pytest.raises(ValueError, match="compute tile"):
        program.Worker(lambda: None, [], tile=mem)
    with pytest.raises(TypeError, match="address"):
        double.Buffer(tile=mem, type=_words(8), address=0)
    with pytest.raises(TypeError, match="name"):
        dma.Flow(mem, core, src_channel=0, dst_channel=0, name="f")  # not in flow.py at the pin
    rt = program.Runtime(lambda: None, [])
    assert not hasattr(rt, "start")  # workers go to Program(..., workers=[...])
    with pytest.raises(TypeError, match="placer"):
        program.Program(double.NPU1Col1(), rt).resolve_program(placer=None)


def _program(double, body, fn_args, sequence=lambda *args: None, registered=()):
    """A one-Worker program on core (0, 2); `registered`: Buffers given to rt.add_buffer."""
    from doubles.iron import program

    core = double.Tile(0, 2, double.AIETileType.CoreTile)
    rt = program.Runtime(sequence, [_words(8)])
    for buffer in registered:
        rt.add_buffer(buffer)
    worker = program.Worker(body, fn_args(core), tile=core, while_true=False)
    return program.Program(double.NPU1Col1(), rt, workers=[worker])


def test_double_resolves_only_what_a_worker_is_given(iron):
    double, _ = iron
    kernel = double.Kernel("k", "k.o", [np.int32])
    with pytest.raises(ValueError, match="Kernel must be resolved"):  # a dict is not flattened
        _program(double, lambda ks: ks["k"](1), lambda core: [{"k": kernel}]).resolve_program()
    loose = double.Buffer(type=_words(8), name="loose", tile=double.Tile(0, 2))
    with pytest.raises(AttributeError, match="before it has been resolved"):  # only rt.add_buffer'd
        _program(double, lambda: loose[0], lambda core: []).resolve_program()
    lock = double.Lock(double.Tile(0, 2), name="go")
    with pytest.raises(double.NotResolvedError):
        _program(double, lambda: lock.acquire(1), lambda core: []).resolve_program()

    seen = []

    def body(k, nested):
        count, _rtp = nested[0]
        k(count)
        count[0] = 0

    def fn_args(core):
        seen.extend(
            [
                double.Buffer(type=_words(8), name="count", tile=core),
                double.Buffer(type=_words(2), name="rtp", tile=core, use_write_rtp=True),
            ]
        )
        return [kernel, (seen,)]  # nested lists and tuples are flattened

    def sequence(arg):
        assert recorded_body(), "the Workers' bodies are built before the sequence body"
        seen[1][1] = 7

    program = _program(double, body, fn_args, sequence)

    def recorded_body():
        return program.workers[0].body

    recorded = program.resolve_program()
    assert recorded.sequence == [("rtp_write", "rtp", 1, 7)]
    assert {b.name for b in recorded.rt.buffers} == {"count", "rtp"}


def test_double_enforces_rtp_writes(iron):
    double, _ = iron

    def fn_args(core):
        return [double.Buffer(type=_words(4), name="desc", tile=core, use_write_rtp=True)]

    for index, value, error in (
        (np.int64(1), 1, "Python int index"),
        (1, np.int32(1), "Python int value"),
        (1, 2**31, "i32"),
    ):
        workers = []

        def sequence(arg, index=index, value=value, workers=workers):
            workers[0].fn_args[0][index] = value

        program = _program(double, lambda desc: None, fn_args, sequence)
        workers += program.workers
        with pytest.raises(TypeError, match=error):
            program.resolve_program()
    with pytest.raises(RuntimeError, match="runtime-sequence ops"):  # npu_write_rtp inside a core
        _program(double, lambda desc: desc.__setitem__(0, 1), fn_args).resolve_program()


def _words(n):
    return np.ndarray[(n,), np.dtype[np.int32]]
