"""The executor with the emulator backend: ping-pong buffers, real pipelining across worker
threads, and output bit-identical to the emulator engine."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from npu_random_weights import TINY, random_mels, random_weights

from npustream.errors import EngineError
from npustream.npu.ops import numerics
from npustream.npu.ops.params import PRESETS
from npustream.npu.ops.tiles import DEFAULT_TILES
from npustream.npu.plan.plans import make_plan
from npustream.npu.run.emulator import encode_window, prepare_mel, run_op
from npustream.npu.run.executor import EmulatorBackend, Executor, Failure, PingPong

PHOENIX = PRESETS["phoenix"]


@pytest.fixture(scope="module")
def tiny_weights():
    return random_weights(TINY)


def test_ping_pong_alternates_and_bounds_the_producer():
    failure = Failure()
    channel = PingPong(("ping", "pong"), "test", failure)
    assert channel.acquire_produce() == 0
    channel.release_produce(0, tag=10)
    assert channel.acquire_produce() == 1
    channel.release_produce(1, tag=11)
    assert channel.acquire_produce(block=False) is None  # both slots full: a third must wait
    assert channel.acquire_consume() == (0, 10)
    channel.release_consume(0)
    assert channel.acquire_produce(block=False) == 0  # ping is free again, pong still full
    assert channel.acquire_consume() == (1, 11)


def test_ping_pong_wait_gives_up_on_a_failure_elsewhere():
    failure = Failure()
    channel = PingPong(("ping", "pong"), "test", failure)
    threading.Timer(0.2, failure.set, args=("column 2", RuntimeError("run ended in ERROR"))).start()
    start = time.monotonic()
    with pytest.raises(EngineError, match="NPU column 2 failed: run ended in ERROR"):
        channel.acquire_consume()  # nothing will ever arrive
    assert time.monotonic() - start < 2


def test_pipeline_streams_windows_bit_identical_to_the_emulator(tiny_weights):
    mels = random_mels(3)
    reference = [encode_window(m, tiny_weights) for m in mels]
    executor = Executor(make_plan("pipeline", TINY, DEFAULT_TILES, PHOENIX), EmulatorBackend(tiny_weights))
    try:
        outputs = executor.encode(mels)
    finally:
        executor.close()
    for out, ref in zip(outputs, reference, strict=True):
        assert out.dtype == np.float32 and out.shape == (1500, 384)
        np.testing.assert_array_equal(out, ref)
    # the columns really overlapped: column k on window w while column k+1 on window w-1
    spans = {(c, w): (s, e) for c, w, s, e in executor.trace}
    assert len(spans) == 4 * 3
    assert any(
        spans[(c, w)][0] < spans[(c + 1, w - 1)][1] and spans[(c + 1, w - 1)][0] < spans[(c, w)][1]
        for c in range(3)
        for w in (1, 2)
    )
    for c in range(4):  # in order, never two windows at once in one column
        assert spans[(c, 0)][1] <= spans[(c, 1)][0] and spans[(c, 1)][1] <= spans[(c, 2)][0]
    for c in range(1, 4):
        assert all(spans[(c - 1, w)][1] <= spans[(c, w)][0] for w in range(3))


def _split_reference(plan, mel, weights) -> np.ndarray:
    """The split plan's arithmetic done one share at a time, in order, on one thread."""
    acts = {"mel": prepare_mel(mel)}
    for i, op in enumerate(plan.ops):
        out = None
        for tasks in plan.columns:
            part = run_op(op, acts, weights, rows=tasks[i].rows, heads=tasks[i].heads)
            if out is None:
                out = np.zeros(
                    (op.rows, part.shape[1] if tasks[i].heads is None else weights.dims.n_audio_state),
                    np.float32,
                )
            if tasks[i].heads is None:
                out[tasks[i].rows] = part
            else:
                dh = weights.dims.d_head
                out[:, tasks[i].heads.start * dh : tasks[i].heads.stop * dh] = part
        acts[op.name] = out
    return acts[plan.ops[-1].name]


def test_split_runs_every_share_in_place(tiny_weights):
    """Bit-identical to the same shares computed one by one. (Against the whole-op emulator the
    split differs where numpy's BLAS sums a row subset in another order: docs/npu-scheduler.md.)"""
    plan = make_plan("split", TINY, DEFAULT_TILES, PHOENIX)
    mels = random_mels(1, seed=5)
    executor = Executor(plan, EmulatorBackend(tiny_weights))
    try:
        outputs = executor.encode(mels)
    finally:
        executor.close()
    for out, mel in zip(outputs, mels, strict=True):
        np.testing.assert_array_equal(out, _split_reference(plan, mel, tiny_weights))
        whole = encode_window(mel, tiny_weights)
        cosine = (out * whole).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(whole, axis=1)
        assert cosine.min() > 0.9999  # measured 0.99998: one-ulp sum-order differences, propagated
    assert sorted(c for c, w, _, _ in executor.trace) == [0, 1, 2, 3]  # every column took part


@pytest.mark.slow
def test_base_model_pipeline_matches_the_npu_emu_engine(base_model_dir, jfk_mel):
    from npustream.engines.npu_emu import NpuEmuEngine

    engine = NpuEmuEngine(base_model_dir)
    reference = engine.encode(jfk_mel[None])[0]
    executor = Executor(
        make_plan("pipeline", engine.dims, DEFAULT_TILES, PHOENIX), EmulatorBackend(engine.weights)
    )
    try:
        (out,) = executor.encode([jfk_mel])
    finally:
        executor.close()
    np.testing.assert_array_equal(out, reference)
    assert numerics.bf16_round(out).tobytes() == out.tobytes()  # bf16 values, as stored
