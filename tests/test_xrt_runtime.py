"""The XRT runtime against the pyxrt TEST DOUBLE (tests/doubles/pyxrt.py): it obeys the
protocol the real stack needs, and the double catches the violations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from npu_random_weights import TINY, random_mels, random_weights

from doubles import pyxrt as dbl
from doubles.pyxrt_build import emulated_program, write_stand_in_build
from npustream.errors import EngineError
from npustream.npu.ops.params import CALIBRATED_PRESETS, PRESETS
from npustream.npu.ops.tiles import DEFAULT_TILES
from npustream.npu.plan.plans import column_runs, make_plan
from npustream.npu.run.emulator import encode_window
from npustream.npu.run.executor import EmulatorBackend, Executor
from npustream.npu.run.manifest import load_manifest
from npustream.npu.run.xrt import XrtBackend

PHOENIX = PRESETS["phoenix"]
# The double runs every NPU run on the emulator: a base pipeline stage took over the runtime's 10 s
# default on this 2-core VM under load 7-8 (main too); hangs are tested with 300 ms below.
EMULATED_RUN_MS = 120_000
TO, FROM = dbl.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, dbl.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE


@pytest.fixture(scope="module")
def tiny_weights():
    return random_weights(TINY)


def _device(build, **kwargs):
    npu = dbl.FakeNpu(emulated_program(load_manifest(build)), **kwargs)
    return npu, dbl.make_pyxrt(npu)


@pytest.fixture
def pipeline_build(tmp_path, tiny_weights):
    plan = make_plan("pipeline", TINY, DEFAULT_TILES, PHOENIX)
    write_stand_in_build(tmp_path, plan, tiny_weights)
    return plan, tmp_path


def test_runtime_computes_the_encoder_and_keeps_its_buffers(pipeline_build, tiny_weights):
    plan, build = pipeline_build
    npu, pyxrt = _device(build)
    executor = Executor(plan, XrtBackend(plan, tiny_weights, build, pyxrt=pyxrt, timeout_ms=EMULATED_RUN_MS))
    try:
        assert npu.live_contexts == 4  # one per column
        runs = sum(len(column_runs(plan, c)) for c in range(4))
        assert runs == 4  # the pipeline: one run per column and window, covering all its ops
        # every bo synced to the device once at start-up: the instruction streams, each column's
        # weights, and the executor's buffers (zeroed: the DMA reads their padding rows)
        startup_syncs = npu.bos_created
        assert npu.syncs[TO] == startup_syncs and npu.runs == 0
        mels = random_mels(2)
        outputs = executor.encode(mels)
        for out, mel in zip(outputs, mels, strict=True):
            np.testing.assert_array_equal(out, encode_window(mel, tiny_weights))
        bos = npu.bos_created
        executor.encode(mels[:1])
        assert npu.bos_created == bos  # allocated once, reused (ping-pong) for every window
        assert npu.runs == 3 * runs
        assert npu.syncs[TO] == startup_syncs + 3 and npu.syncs[FROM] == 3  # one window in, one out
    finally:
        executor.close()


def test_split_plan_runs_four_contexts_on_shared_buffers(tmp_path, tiny_weights):
    plan = make_plan("split", TINY, DEFAULT_TILES, PHOENIX)
    write_stand_in_build(tmp_path, plan, tiny_weights)
    npu, pyxrt = _device(tmp_path)
    mel = random_mels(1, seed=7)
    on_npu = Executor(plan, XrtBackend(plan, tiny_weights, tmp_path, pyxrt=pyxrt, timeout_ms=EMULATED_RUN_MS))
    on_cpu = Executor(plan, EmulatorBackend(tiny_weights))
    try:
        np.testing.assert_array_equal(on_npu.encode(mel)[0], on_cpu.encode(mel)[0])
    finally:
        on_npu.close()
        on_cpu.close()
    # 4 x ops instruction streams, 1 shared weights, the zeroed buffers: once each; then 1 input
    assert npu.syncs[TO] == npu.bos_created + 1 and npu.bos_created == 4 * len(plan.ops) + 1 + 5


@pytest.mark.parametrize("fault", ["error", "hang"])
def test_a_failed_or_hung_run_raises_engine_error(pipeline_build, tiny_weights, fault):
    plan, build = pipeline_build
    npu, pyxrt = _device(build)
    executor = Executor(plan, XrtBackend(plan, tiny_weights, build, pyxrt=pyxrt, timeout_ms=300))
    if fault == "error":
        npu.fail_next(dbl.ert_cmd_state.ERT_CMD_STATE_ERROR)
        match = "ended in ERT_CMD_STATE_ERROR"
    else:
        npu.hang_next()
        match = "did not complete within 300 ms"
    first, last = plan.columns[0][0].op.name, plan.columns[0][-1].op.name
    with pytest.raises(
        EngineError, match=f"NPU column 0 failed: NPU run of {first} .. {last} on column 0 {match}"
    ):
        executor.encode(random_mels(1))
    executor.close()


def test_context_limit_and_missing_kernel(pipeline_build, tiny_weights):
    plan, build = pipeline_build
    _, pyxrt = _device(build, max_contexts=3)
    with pytest.raises(EngineError, match="cannot open the NPU: no free hardware context: 3 in use"):
        XrtBackend(plan, tiny_weights, build, pyxrt=pyxrt)
    xclbin = json.loads((build / "encoder_column.xclbin").read_text())
    xclbin["kernels"][0]["name"] = "OTHER"
    (build / "encoder_column.xclbin").write_text(json.dumps(xclbin))
    with pytest.raises(EngineError, match="has no kernel MLIR_AIE"):
        XrtBackend(plan, tiny_weights, build, pyxrt=_device(build)[1])


def test_build_must_exist_and_match_the_plan(tmp_path, pipeline_build, tiny_weights):
    plan, build = pipeline_build
    with pytest.raises(EngineError, match=r"no built NPU design .*manifest.json missing.*mlir.build"):
        XrtBackend(plan, tiny_weights, tmp_path / "nothing", pyxrt=_device(build)[1])
    split = make_plan("split", TINY, DEFAULT_TILES, PHOENIX)
    with pytest.raises(EngineError, match="the NPU build is for plan 'pipeline', this run needs 'split'"):
        XrtBackend(split, tiny_weights, build, pyxrt=_device(build)[1])
    (build / "insts" / "c1_r000.bin").unlink()
    with pytest.raises(EngineError, match="insts/c1_r000.bin is missing"):
        XrtBackend(plan, tiny_weights, build, pyxrt=_device(build)[1])


def _kernel_setup(build):
    npu, x = _device(build)
    device = x.device(0)
    xclbin = x.xclbin(str(build / "encoder_column.xclbin"))
    device.register_xclbin(xclbin)
    kernel = x.kernel(x.hw_context(device, xclbin.get_uuid()), "MLIR_AIE")
    words = np.fromfile(build / "insts" / "c0_r000.bin", np.uint32)
    insts = x.bo(device, words.nbytes, x.bo.cacheable, kernel.group_id(1))
    insts.write(words, 0)
    insts.sync(TO)
    data = [x.bo(device, 1 << 22, x.bo.host_only, kernel.group_id(3 + i)) for i in range(4)]
    return npu, x, device, kernel, insts, words.size, data


def test_the_double_catches_protocol_violations(pipeline_build):
    _, build = pipeline_build
    npu, x, device, kernel, insts, n, data = _kernel_setup(build)
    with pytest.raises(RuntimeError, match="load_axlf: Operation not supported"):
        device.load_xclbin(x.xclbin(str(build / "encoder_column.xclbin")))
    with pytest.raises(dbl.ProtocolError, match="has not registered"):
        x.hw_context(x.device(0), x.xclbin(str(build / "encoder_column.xclbin")).get_uuid())
    with pytest.raises(dbl.ProtocolError, match="the xclbin declares 7"):
        kernel(3, insts, n, *data, data[0])  # more buffers than declared
    with pytest.raises(dbl.ProtocolError, match="instruction count"):
        kernel(3, insts, n + 1, *data)
    wrong_group = x.bo(device, 64, x.bo.host_only, kernel.group_id(1))
    with pytest.raises(dbl.ProtocolError, match="argument 3 must be a host_only bo of group_id"):
        kernel(3, insts, n, wrong_group, *data[1:])
    with pytest.raises(RuntimeError, match="not a buffer argument"):
        kernel.group_id(2)
    data[0].write(np.ones(16, np.uint8), 0)  # written, not synced
    with pytest.raises(dbl.ProtocolError, match="not synced TO_DEVICE"):
        kernel(3, insts, n, *data)
    data[0].sync(TO)
    npu.hang_next()
    run = kernel(3, insts, n, *data)
    assert run.wait(100) == dbl.ert_cmd_state.ERT_CMD_STATE_TIMEOUT
    with pytest.raises(dbl.ProtocolError, match="while a run that uses it has not completed"):
        data[2].write(np.zeros(4, np.uint8), 0)


def test_the_double_refuses_stale_reads_and_runs_asynchronously(pipeline_build):
    _, build = pipeline_build
    npu, _, _, kernel, insts, n, data = _kernel_setup(build)
    npu.program = lambda name, words, bufs: bufs[2].device.__setitem__(slice(0, 4), 7)  # the device writes
    run = kernel(3, insts, n, *data)
    assert run.state() in (
        dbl.ert_cmd_state.ERT_CMD_STATE_QUEUED,
        dbl.ert_cmd_state.ERT_CMD_STATE_RUNNING,
        dbl.ert_cmd_state.ERT_CMD_STATE_COMPLETED,
    )
    assert run.wait(5000) == dbl.ert_cmd_state.ERT_CMD_STATE_COMPLETED
    with pytest.raises(dbl.ProtocolError, match="without sync"):
        data[2].read(4, 0)
    data[2].sync(FROM, 4, 0)
    assert data[2].read(4, 0).tolist() == [7, 7, 7, 7]
    with pytest.raises(dbl.ProtocolError, match="without sync"):
        data[2].read(8, 0)  # only 4 bytes were synced back


def test_npu_engine_says_why_it_cannot_run(tmp_path):
    from npustream.engines.npu import NpuEngine

    with pytest.raises(EngineError, match="no NPU: /nonexistent/accel0 does not exist"):
        NpuEngine(tmp_path, device_node="/nonexistent/accel0")
    node = tmp_path / "accel0"  # a device node that exists, on a machine without pyxrt
    node.touch()
    try:
        import pyxrt  # noqa: F401

        pytest.skip("pyxrt is installed here; the missing-pyxrt reason cannot be shown")
    except ImportError:
        pass
    with pytest.raises(EngineError, match="pyxrt is not importable"):
        NpuEngine(tmp_path, device_node=str(node))


@pytest.mark.slow
def test_npu_engine_on_the_double_matches_npu_emu(tmp_path, base_model_dir, jfk_mel):
    """The whole `npu` engine (base model, scheduler's plan, XRT runtime) on the test double."""
    from npustream.engines.npu import NpuEngine
    from npustream.engines.npu_emu import NpuEmuEngine
    from npustream.npu.ops.weights import load_npu_weights
    from npustream.npu.predict.scheduler import choose

    emu = NpuEmuEngine(base_model_dir)
    weights = load_npu_weights(base_model_dir)
    plan = choose(
        weights.dims, weights.tiles, CALIBRATED_PRESETS["phoenix"], plan="pipeline"
    ).plan  # as the engine
    with pytest.raises(EngineError, match="no built NPU design"):
        NpuEngine(base_model_dir, plan="pipeline", build_dir=tmp_path, pyxrt=object(), device_node=None)
    write_stand_in_build(tmp_path, plan, weights)
    npu, pyxrt = _device(tmp_path)
    engine = NpuEngine(
        base_model_dir,
        plan="pipeline",
        build_dir=tmp_path,
        pyxrt=pyxrt,
        device_node=None,
        timeout_ms=EMULATED_RUN_MS,
    )
    try:
        np.testing.assert_array_equal(engine.encode(jfk_mel[None]), emu.encode(jfk_mel[None]))
        npu.fail_next(dbl.ert_cmd_state.ERT_CMD_STATE_ABORT)
        with pytest.raises(EngineError, match="ERT_CMD_STATE_ABORT"):
            engine.encode(jfk_mel[None])
        with pytest.raises(EngineError, match="stopped after an earlier failure"):
            engine.encode(jfk_mel[None])
    finally:
        engine.close()
