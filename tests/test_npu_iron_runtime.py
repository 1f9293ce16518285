"""`npu build` and the IRON runtime without the toolchain or an NPU: compile_designs.py under the
recording double of amd/IRON's operator API (and of aiecc's chaining), the manifest it leads to,
the XRT runtime on the pyxrt double (sub-buffers, runs, runlists) against the emulator, failures,
the engine fallback, and the CLI's report of what this machine lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_npu_iron_graph import random_mel, random_weights, small_dims

from doubles import pyxrt_iron
from npustream.engines.npu_iron import IronNpuEngine
from npustream.errors import EngineError
from npustream.npu.iron import compile_designs, emulate, folds, graph, runtime, toolchain


@pytest.fixture
def double_env(repo_root, tmp_path):
    """PYTHONPATH with the recording double of amd/IRON, PATH with the aiecc double, a call log."""
    doubles = repo_root / "tests" / "doubles" / "amd_iron"
    log = tmp_path / "iron-calls.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(doubles),
        "IRON_DOUBLE_LOG": str(log),
        "PATH": f"{doubles / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    return env, log


def build_with_doubles(root, g, env):
    """What `npu build` does after `prepare`, with this interpreter standing in for the venv's."""
    jobs = toolchain.write_jobs(root, g)
    out = root / f"w{g.width}"
    done = subprocess.run(
        [sys.executable, compile_designs.__file__, str(jobs), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    designs = {k: (d["kernel"], os.path.relpath(d["insts"], out)) for k, d in results["designs"].items()}
    runtime.write_manifest(
        out,
        iron_commit=toolchain.IRON_COMMIT,
        width=g.width,
        xclbin=os.path.relpath(results["xclbin"], out),
        designs=designs,
        toolchain={},
    )
    return out, results


def test_compile_designs_constructs_compiles_and_chains_every_design(tmp_path, double_env):
    env, log = double_env
    dims = small_dims()
    g = graph.encoder_graph(dims, 4)
    out, results = build_with_doubles(tmp_path, g, env)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    constructed = [(c["class"], c["params"]) for c in calls if c["event"] == "construct"]
    assert len(constructed) == len(g.operators)
    for (cls, params), op in zip(constructed, g.operators, strict=True):
        assert cls == op.cls and all(params[k] == v for k, v in op.kwargs.items())
    assert sum(c["event"] == "compile" for c in calls) == len(g.operators)
    chain = [c["argv"] for c in calls if c["event"] == "aiecc"]
    assert len(chain) == len(g.operators)
    assert not any(a.startswith("--xclbin-input") for a in chain[0])
    assert all(any(a.startswith("--xclbin-input") for a in argv) for argv in chain[1:])
    xclbin = json.loads((out / compile_designs.CHAINED).read_text())
    assert [k["name"] for k in xclbin["kernels"]] == [f"k{i:02d}" for i in range(len(g.operators))]
    manifest = runtime.load_manifest(out, g)
    assert set(manifest.designs) == {op.key for op in g.operators}


def test_compile_failure_is_reported_not_hidden(tmp_path, double_env):
    env, _ = double_env
    g = graph.encoder_graph(small_dims(), 4)
    env = {**env, "PATH": os.defpath}  # no aiecc: the designs compile, the chaining cannot
    jobs = toolchain.write_jobs(tmp_path, g)
    done = subprocess.run(
        [sys.executable, compile_designs.__file__, str(jobs), str(tmp_path / "w4")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "aiecc" in json.loads((tmp_path / "w4" / "results.json").read_text())["error"]


@pytest.fixture
def built(tmp_path, double_env):
    dims = small_dims()
    g = graph.encoder_graph(dims, 4)
    out, _ = build_with_doubles(tmp_path, g, double_env[0])
    w = random_weights(dims)
    return dims, g, out, w, folds.constants(w, dims)


def make_device(g, out):
    manifest = runtime.load_manifest(out, g)
    kernels = {manifest.designs[op.key].kernel: op for op in g.operators}
    npu = pyxrt_iron.FakeNpu(pyxrt_iron.iron_program(kernels))
    return npu, pyxrt_iron.make_pyxrt(npu), manifest


def test_runtime_on_the_pyxrt_double_equals_the_emulator(built):
    dims, g, out, w, constants = built
    npu, pyxrt, manifest = make_device(g, out)
    (stream,) = runtime.open_streams(pyxrt, g, manifest, constants, 1)
    mel = random_mel(dims)
    want = emulate.Machine(g, constants).run(mel)
    np.testing.assert_array_equal(stream.encode(mel), want)
    assert npu.runs == len(g.npu_steps) and npu.runlists == 2  # before and after the host im2col
    np.testing.assert_array_equal(
        stream.encode(random_mel(dims, 7)), emulate.Machine(g, constants).run(random_mel(dims, 7))
    )
    assert npu.live_contexts == 1


def test_a_failing_step_raises_engine_error(built):
    dims, g, out, w, constants = built
    npu, pyxrt, manifest = make_device(g, out)
    (stream,) = runtime.open_streams(pyxrt, g, manifest, constants, 1)
    npu.fail_next(runs=1)
    with pytest.raises(EngineError, match="ended"):
        stream.encode(random_mel(dims))


def test_throughput_plan_runs_two_streams_at_once(tmp_path, double_env):
    dims = small_dims()
    g = graph.encoder_graph(dims, 2)
    out, _ = build_with_doubles(tmp_path, g, double_env[0])
    constants = folds.constants(random_weights(dims), dims)
    npu, pyxrt, manifest = make_device(g, out)
    streams = runtime.open_streams(pyxrt, g, manifest, constants, 2)
    assert npu.live_contexts == 2
    mels = [random_mel(dims, s) for s in (1, 2)]
    for stream, mel in zip(streams, mels, strict=True):
        np.testing.assert_array_equal(stream.encode(mel), emulate.Machine(g, constants).run(mel))
    with pytest.raises(EngineError, match="hardware contexts"):
        runtime.open_streams(pyxrt, g, manifest, constants, 7)


def test_missing_or_mismatched_build_says_what_to_do(tmp_path, built):
    dims, g, out, w, constants = built
    with pytest.raises(EngineError, match="npustream npu build"):
        runtime.load_manifest(tmp_path / "nothing", g)
    with pytest.raises(EngineError, match="2-column"):
        runtime.load_manifest(out, graph.encoder_graph(dims, 2))


def test_npu_engine_falls_back_here_with_the_reason(base_model_dir):
    from npustream.engines import create_engine

    engine, reason = create_engine("npu", ct2_model=None, model_dir=base_model_dir, design="iron")
    if os.path.exists("/dev/accel/accel0"):
        pytest.skip("this machine has an NPU device node")
    assert engine.name == "cpu"
    assert "/dev/accel/accel0" in reason and "npustream npu build" in reason
    with pytest.raises(EngineError, match="no NPU"):
        IronNpuEngine(base_model_dir)


def test_readiness_names_each_missing_piece(tmp_path):
    nothing = toolchain.readiness(
        which=lambda name: None,
        version_of=lambda path: None,
        reachable=lambda host: "OSError: no route",
        kernel_release="6.8.0-31-generic",
        root=tmp_path,
    )
    missing = {f.name: f for f in nothing if not f.ok}
    assert set(missing) == {"kernel", "git", "python", "network"}
    assert "6.14" in missing["kernel"].fix and "python3.12" in missing["python"].fix
    assert "github.com" in missing["network"].detail and missing["kernel"].needed_for == "run"
    ready = toolchain.readiness(
        which=lambda name: f"/usr/bin/{name}",
        version_of=lambda path: tuple(int(v) for v in path.rpartition("python")[2].split(".")),
        reachable=lambda host: None,
        kernel_release="6.14.0",
        root=tmp_path,
    )
    assert all(f.ok for f in ready)


def test_cli_build_check_and_bench_report_this_machine(repo_root, tmp_path):
    """Run here: the CLI says why it cannot build or run, in words and in the JSON report."""
    env = {**os.environ, "NPUSTREAM_NPU_IRON_ROOT": str(tmp_path), "PYTHONPATH": str(repo_root)}
    root = tmp_path / toolchain.IRON_COMMIT[:12]  # a finished checkout: no network check from a test
    (root / "iron" / ".git").mkdir(parents=True)
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").touch()
    check = subprocess.run(
        [sys.executable, "-m", "npustream", "npu", "build", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1
    assert "MISSING" in check.stdout and "device" in check.stdout and "fix:" in check.stdout
    assert "network: not needed" in check.stdout
    assert "Traceback" not in check.stderr
    report_path = tmp_path / "bench.json"
    bench = subprocess.run(
        [sys.executable, "-m", "npustream", "npu", "bench", "--output", str(report_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bench.returncode == 1 and "Traceback" not in bench.stderr
    report = json.loads(report_path.read_text())
    assert report["ran"] is False and report["iron_commit"] == toolchain.IRON_COMMIT
    assert any(m["name"] == "device" for m in report["missing"])


def test_bench_report_on_the_pyxrt_double(built):
    """The report's structure and bookkeeping (the double's times mean nothing): every design once,
    its step count per window, the calibrated prediction beside each measurement."""
    from npustream.npu.iron import bench, plans

    dims, g, out, w, constants = built
    npu, pyxrt, manifest = make_device(g, out)
    report = bench.run(
        dims, constants, "latency", random_mel(dims), repeats=2, windows=1, pyxrt=pyxrt, build_dir=out
    )
    assert report["ran"] and report["iron_commit"] == toolchain.IRON_COMMIT
    assert [d["design"] for d in report["designs"]] == [op.key for op in g.operators]
    assert sum(d["steps_per_window"] for d in report["designs"]) == len(g.npu_steps)
    for d in report["designs"]:
        assert d["measured"]["runs"] == 2 and d["predicted_ms"] > 0
    predicted = plans.predict(dims, plans.PLANS["latency"])
    assert report["window"]["predicted_ms"] == round(predicted.window_s * 1e3, 3)
    assert report["window"]["measured"]["runs"] == 1
    json.dumps(report)  # attachable as it is
