"""The IRON operator graph and its host folds: the wiring computes Whisper's encoder exactly in
float32 (random weights against the numpy reference encoder, which unfolded), each fold's algebra
on its own, the canonical shapes, and the pinned operator signatures (the recording double)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from npustream.model import reference
from npustream.model.dims import WhisperDims
from npustream.npu.iron import emulate, folds, graph, plans

BASE = WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)


def small_dims(n_ctx: int = 200) -> WhisperDims:
    return WhisperDims(80, n_ctx, 128, 2, 2, 51865, 448, 128, 2, 2)


def random_weights(dims: WhisperDims, seed: int = 0) -> dict[str, np.ndarray]:
    """CTranslate2-named encoder weights scaled like a trained model's (gains near 1, nonzero
    shifts and biases, so every fold has something to move)."""
    rng = np.random.default_rng(seed)
    d, m, f, t = dims.n_audio_state, dims.n_mels, dims.n_ff, dims.n_audio_ctx

    def normal(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {
        "encoder/conv1/weight": normal(d, m, 3, scale=(3 * m) ** -0.5),
        "encoder/conv1/bias": normal(d, scale=0.1),
        "encoder/conv2/weight": normal(d, d, 3, scale=(3 * d) ** -0.5),
        "encoder/conv2/bias": normal(d, scale=0.1),
        "encoder/position_encodings/encodings": normal(t, d, scale=0.3),
        "encoder/layer_norm/gamma": 1 + normal(d, scale=0.2),
        "encoder/layer_norm/beta": normal(d, scale=0.2),
    }
    for i in range(dims.n_audio_layer):
        p = f"encoder/layer_{i}/"
        qkv_b = normal(3 * d, scale=0.2)
        qkv_b[d : 2 * d] = 0  # Whisper's key projection has no bias
        w |= {
            p + "self_attention/layer_norm/gamma": 1 + normal(d, scale=0.2),
            p + "self_attention/layer_norm/beta": normal(d, scale=0.2),
            p + "self_attention/linear_0/weight": normal(3 * d, d, scale=2 * d**-0.5),
            p + "self_attention/linear_0/bias": qkv_b,
            p + "self_attention/linear_1/weight": normal(d, d, scale=d**-0.5),
            p + "self_attention/linear_1/bias": normal(d, scale=0.1),
            p + "ffn/layer_norm/gamma": 1 + normal(d, scale=0.2),
            p + "ffn/layer_norm/beta": normal(d, scale=0.2),
            p + "ffn/linear_0/weight": normal(f, d, scale=d**-0.5),
            p + "ffn/linear_0/bias": normal(f, scale=0.1),
            p + "ffn/linear_1/weight": normal(d, f, scale=f**-0.5),
            p + "ffn/linear_1/bias": normal(d, scale=0.1),
        }
    return w


def random_mel(dims: WhisperDims, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.2, 0.4, (dims.n_mels, 2 * dims.n_audio_ctx)), -1, 1.5).astype(np.float32)


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_canonical_graph_shapes_and_counts():
    g = graph.encoder_graph(BASE, 4)
    assert graph.padded_positions(1500) == 1536
    assert len(g.npu_steps) == 7 + 6 * 38 + 1 == 236  # stem, 6 layers, final LayerNorm
    assert len(g.operators) == 17
    assert [s.host for s in g.steps if s.op is None] == ["im2col_conv1", "im2col_conv2", "final_affine"]
    kinds = {op.cls for op in g.operators}
    assert kinds == {"GEMM", "ElementwiseAdd", "GELU", "LayerNorm", "Softmax", "Transpose"}
    softmax = next(op for op in g.operators if op.cls == "Softmax").kwargs
    assert softmax["rows"] == 8 * 1536 and softmax["cols"] == 1536 and softmax["mask_patch_value"] == 1500
    gemms = {(o.kwargs["M"], o.kwargs["K"], o.kwargs["N"]) for o in g.operators if o.cls == "GEMM"}
    assert gemms == {
        (3072, 256, 512),
        (1536, 1536, 512),
        (1536, 512, 1536),
        (1536, 64, 1536),
        (1536, 1536, 64),
        (512, 512, 1536),
        (1536, 512, 2048),
        (1536, 2048, 512),
    }
    for width in (4, 2, 1):
        gw = graph.encoder_graph(BASE, width)
        for step in gw.npu_steps:
            assert step.op.columns == width
            for view, shape in zip(step.args, graph.operand_shapes(step.op), strict=True):
                assert view.size == int(np.prod(shape)), step.name
                assert view.offset + view.size <= gw.buffers[view.buffer], step.name


@pytest.mark.parametrize("n_ctx", [200, 256])
def test_folded_graph_in_float32_is_the_encoder(n_ctx):
    """No roundings: the graph with the folds, padding, mask, layouts and host steps equals the
    unfolded reference encoder to float32 precision (ragged 200 -> 256 rows and exact 256)."""
    dims = small_dims(n_ctx)
    w, mel = random_weights(dims), random_mel(dims)
    got = emulate.Machine(graph.encoder_graph(dims, 2), folds.constants(w, dims), exact=True).run(mel)
    want = reference.reference_encode(w, mel[None], dims.n_audio_head)[0]
    assert got.shape == want.shape == (n_ctx, dims.n_audio_state)
    assert cosines(got, want).min() > 0.99999
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()


def test_folded_graph_with_iron_numerics_stays_close():
    dims = small_dims()
    w, mel = random_weights(dims), random_mel(dims)
    got = emulate.Machine(graph.encoder_graph(dims, 4), folds.constants(w, dims)).run(mel)
    want = reference.reference_encode(w, mel[None], dims.n_audio_head)[0]
    c = cosines(got, want)
    assert c.min() > 0.99 and np.median(c) > 0.998
    assert np.abs(got - want).max() > 1e-3  # the kernels' roundings are really there


def test_layernorm_fold_algebra():
    rng = np.random.default_rng(3)
    x = rng.normal(0.3, 2, (16, 64))
    g, beta = 1 + 0.3 * rng.standard_normal(64), 0.5 * rng.standard_normal(64)
    w, b = rng.standard_normal((96, 64)), rng.standard_normal(96)
    unit = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(
        unit @ (w * g[None, :]).T + (b + w @ beta), (unit * g + beta) @ w.T + b, atol=1e-10
    )


def test_key_bias_drop_and_value_bias_move_are_exact():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((12, 8)) for _ in range(3))
    c_k, c_v = rng.standard_normal(8), rng.standard_normal(8)
    w_o, b_o = rng.standard_normal((8, 8)), rng.standard_normal(8)

    def attend(q, k, v):
        s = q @ k.T
        p = np.exp(s - s.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)) @ v

    full = attend(q, k + c_k, v + c_v) @ w_o.T + b_o
    folded = attend(q, k, v) @ w_o.T + (b_o + w_o @ c_v)
    np.testing.assert_allclose(folded, full, atol=1e-10)


def test_attention_scale_fold_is_exact_in_bf16():
    from npustream.bf16 import bf16_round

    w = bf16_round(np.random.default_rng(5).standard_normal(1000).astype(np.float32))
    np.testing.assert_array_equal(bf16_round(w / np.float32(8)), w / np.float32(8))  # 64**-0.5 = 2**-3


def test_plans_fit_phoenix_and_are_predicted_step_by_step_by_the_calibrated_model():
    from npustream.npu.ops import params as npu_params
    from npustream.npu.predict import stock

    calibrated = npu_params.preset("phoenix", calibrated=True)
    latency = plans.predict(BASE, plans.PLANS["latency"])
    throughput = plans.predict(BASE, plans.PLANS["throughput"])
    for pred in (latency, throughput):
        assert pred.plan.contexts <= plans.MAX_CONTEXTS and pred.steps == 236 and pred.designs == 17
        g = plans.graph_for(BASE, pred.plan)
        steps = [stock.step_cost(plans.stock_op(s.name, s.op), calibrated).time_s for s in g.npu_steps]
        assert pred.window_s == pytest.approx(sum(steps) + pred.switches * calibrated.design_switch_s)
        assert pred.window_s > pred.steps * calibrated.dispatch_s  # every step pays the calibrated floor
    assert throughput.windows_per_s == pytest.approx(2 / throughput.window_s)
    assert latency.window_s < throughput.window_s  # 4 columns per window beat 2
    assert plans.choose([latency, throughput], "latency") is latency


def test_every_design_is_accepted_by_the_pinned_operator_signatures(repo_root, monkeypatch):
    """The recording double reproduces the pinned classes' constructors: each design of both
    plans constructs (unknown keywords or untileable shapes raise)."""
    monkeypatch.syspath_prepend(str(repo_root / "tests" / "doubles" / "amd_iron"))
    for name in [m for m in sys.modules if m == "iron" or m.startswith("iron.")]:
        monkeypatch.delitem(sys.modules, name)
    context = importlib.import_module("iron.common.context").AIEContext()
    for p in plans.PLANS.values():
        for op in plans.graph_for(BASE, p).operators:
            cls = getattr(importlib.import_module(op.module), op.cls)
            made = cls(**op.kwargs, context=context)
            assert all(made.params[k] == v for k, v in op.kwargs.items())
