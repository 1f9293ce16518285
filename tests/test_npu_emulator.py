"""The NPU emulator against the float32 numpy oracle (random weights of tiny/base/small shapes)
and, on the shipped base model, against ctranslate2's float32 encoder on the shared audio."""

from __future__ import annotations

import numpy as np
import pytest

from npustream.model import reference
from npustream.model.dims import WhisperDims
from npustream.npu.ops import numerics
from npustream.npu.ops import weights as layout
from npustream.npu.ops.graph import encoder_ops
from npustream.npu.run import emulator

SHAPES = {"tiny": (384, 6, 4), "base": (512, 8, 6), "small": (768, 12, 12)}


def dims_of(size: str, n_ctx: int) -> WhisperDims:
    d, h, layers = SHAPES[size]
    return WhisperDims(80, n_ctx, d, h, layers, 51865, 448, d, h, layers)


def random_weights(dims: WhisperDims, seed: int = 0) -> dict[str, np.ndarray]:
    """Encoder weights with CTranslate2's names and shapes, scaled like a trained model's
    (fan-in-normalised matrices, LayerNorm gains near 1, sinusoidal positions)."""
    rng = np.random.default_rng(seed)
    d, n_mels, f, t = dims.n_audio_state, dims.n_mels, dims.n_ff, dims.n_audio_ctx

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def vec(n, scale=0.1, offset=0.0):
        return (offset + scale * rng.standard_normal(n)).astype(np.float32)

    w = {
        "encoder/conv1/weight": (rng.standard_normal((d, n_mels, 3)) / np.sqrt(3 * n_mels)).astype(
            np.float32
        ),
        "encoder/conv1/bias": vec(d),
        "encoder/conv2/weight": (rng.standard_normal((d, d, 3)) / np.sqrt(3 * d)).astype(np.float32),
        "encoder/conv2/bias": vec(d),
        "encoder/layer_norm/gamma": vec(d, 0.1, 1.0),
        "encoder/layer_norm/beta": vec(d),
    }
    position = np.arange(t)[:, None] / 10000 ** (np.arange(d // 2)[None] / (d // 2 - 1))
    w["encoder/position_encodings/encodings"] = np.concatenate(
        [np.sin(position), np.cos(position)], 1
    ).astype(np.float32)
    for i in range(dims.n_audio_layer):
        p = f"encoder/layer_{i}/"
        qkv_bias = vec(3 * d)
        qkv_bias[d : 2 * d] = 0  # Whisper's key projection has no bias
        w |= {
            p + "self_attention/layer_norm/gamma": vec(d, 0.1, 1.0),
            p + "self_attention/layer_norm/beta": vec(d),
            p + "self_attention/linear_0/weight": mat(3 * d, d),
            p + "self_attention/linear_0/bias": qkv_bias,
            p + "self_attention/linear_1/weight": mat(d, d),
            p + "self_attention/linear_1/bias": vec(d),
            p + "ffn/layer_norm/gamma": vec(d, 0.1, 1.0),
            p + "ffn/layer_norm/beta": vec(d),
            p + "ffn/linear_0/weight": mat(f, d),
            p + "ffn/linear_0/bias": vec(f),
            p + "ffn/linear_1/weight": mat(d, f),
            p + "ffn/linear_1/bias": vec(d),
        }
    return w


def random_mel(dims: WhisperDims, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.2, 0.4, (dims.n_mels, 2 * dims.n_audio_ctx)), -1.0, 1.5).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("size,n_ctx", [("tiny", 1500), ("base", 300), ("small", 300)])
def test_emulator_matches_float32_reference(size, n_ctx):
    """bf16 storage everywhere against float32: every frame's direction within 1e-3, values
    within a few bf16 steps of the output's scale. (Shortened n_ctx keeps the test fast; the
    code paths, including ragged last tiles, are the same as at 1500.)"""
    dims = dims_of(size, n_ctx)
    weights = random_weights(dims)
    mel = random_mel(dims)
    got = emulator.encode_window(mel, layout.from_float32(weights, dims))
    want = reference.reference_encode(weights, mel[None], dims.n_audio_head)[0]
    assert got.shape == want.shape == (n_ctx, dims.n_audio_state)
    np.testing.assert_array_equal(got, numerics.bf16_round(got))  # the kernels' bf16 output
    cos = cosine_rows(got, want)
    assert cos.min() > 0.999, f"min cosine {cos.min():.6f}"
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()
    # and the rounding is really there: bf16 is not float32
    assert np.abs(got - want).max() > 1e-4


def test_run_op_slices_reassemble_the_whole_op():
    """What the split plan does: the same op over row blocks, or attention over head groups."""
    dims = dims_of("tiny", 200)
    weights = layout.from_float32(random_weights(dims), dims)
    acts = {"mel": emulator.prepare_mel(random_mel(dims))}
    ops = encoder_ops(dims)
    for op in ops[: 2 + 7]:  # the stem and the whole first layer
        whole = emulator.run_op(op, acts, weights)
        by_rows = np.concatenate(
            [emulator.run_op(op, acts, weights, rows=slice(s, s + 64)) for s in range(0, op.rows, 64)]
        )
        # row blocks change only how BLAS orders fp32 sums: at most one bf16 step, rarely
        assert by_rows.shape == whole.shape
        assert np.mean(by_rows == whole) > 0.99 and np.allclose(by_rows, whole, rtol=2**-7, atol=1e-3)
        if op.kind == "attention":
            dh = dims.d_head
            by_heads = np.concatenate(
                [emulator.run_op(op, acts, weights, heads=slice(h, h + 2)) for h in range(0, op.heads, 2)],
                axis=1,
            )
            np.testing.assert_array_equal(by_heads, whole)  # heads are independent: identical
            part = emulator.run_op(op, acts, weights, rows=slice(10, 50), heads=slice(1, 3))
            assert part.shape == (40, 2 * dh)
        acts[op.name] = whole


def test_vectorised_attention_equals_the_kernel_tile_loop():
    """emulator.flash_attention (all key tiles at once) against numerics.attn_update tile by tile:
    the same steps, BLAS may order the fp32 sums of q k^T and P.V differently."""
    rng = np.random.default_rng(5)
    t, dh, kv = 300, 64, 32

    def bf(shape, s):
        return numerics.bf16_round((rng.standard_normal(shape) * s).astype(np.float32))

    q, k, v = bf((1, t, dh), 1.5), bf((1, t, dh), 1.5), bf((1, t, dh), 1.0)
    fast = emulator.flash_attention(q, k, v, dh**-0.5, kv)[0]
    state = numerics.attn_init(t, dh)
    for s in range(0, t, kv):
        state = numerics.attn_update(state, q[0], k[0, s : s + kv], v[0, s : s + kv], dh**-0.5)
    tiled = numerics.attn_finish(state)
    assert np.mean(fast == tiled) > 0.99
    # a P element flipping to its other bf16 neighbour moves an output by ~2^-8 * |v|
    assert np.abs(fast - tiled).max() <= 2**-7 * np.abs(v).max()


def test_layout_tiles_round_trip_and_padding():
    tiles = layout.DEFAULT_TILES
    b = np.random.default_rng(2).standard_normal((240, 100)).astype(np.float32)
    tiled = layout.tile_matrix(b, tiles)
    assert tiled.dtype == np.uint16 and tiled.shape == (4, 4, 64, 32)  # 240 -> 256, 100 -> 128
    np.testing.assert_array_equal(tiled[1, 2], numerics.to_bf16_bits(b[64:128, 64:96]))
    assert not tiled[3, :, 48:].any() and not tiled[:, 3, :, 4:].any()  # zero padding
    np.testing.assert_array_equal(layout.untile_matrix(tiled, 240, 100), numerics.bf16_round(b))


def test_bad_window_is_refused():
    dims = dims_of("tiny", 100)
    weights = layout.from_float32(random_weights(dims), dims)
    with pytest.raises(Exception, match=r"\[80, 200\]"):
        emulator.encode_window(np.zeros((80, 3000), np.float32), weights)


def test_layout_cache_converts_once_and_reloads(base_model_dir, tmp_path):
    first = layout.load_npu_weights(base_model_dir, cache_root=tmp_path)
    (entry,) = tmp_path.iterdir()
    assert entry.name.startswith("905e5bf8336bcc62-")  # sha256 of the packaged model.bin
    stamp = (entry / "meta.json").stat().st_mtime_ns
    again = layout.load_npu_weights(base_model_dir, cache_root=tmp_path)
    assert (entry / "meta.json").stat().st_mtime_ns == stamp  # read, not rewritten
    assert isinstance(again.tensors["layer0.qkv.w"], np.memmap)
    for name, value in first.tensors.items():
        np.testing.assert_array_equal(again.tensors[name], value)
    d = first.dims.n_audio_state
    assert first.tensors["layer3.fc1.w"].shape == (d // 64, 4 * d // 32, 64, 32)
    # the model's key projection has no bias: CTranslate2 stores zeros in the fused QKV bias
    assert not first.tensors["layer0.qkv.b"][d : 2 * d].any() and first.tensors["layer0.qkv.b"][:d].any()
    # other tiles: another cache entry
    layout.load_npu_weights(
        base_model_dir, layout.Tiles(matmul_m=32, matmul_n=64, attn_kv_rows=16), cache_root=tmp_path
    )
    assert len(list(tmp_path.iterdir())) == 2


def test_input_noise_floor_tells_a_determined_frame_from_one_the_noise_turns():
    """tools/accuracy.input_noise_floor: a frame whose output direction does not hang on the
    input's last bit keeps cosine ~1; one that amplifies sub-step noise is found out."""
    from tools import accuracy

    audio = np.zeros(320 * 4, np.float32)
    audio[:640] = 0.5  # frames 0, 1: loud; frames 2, 3: digital silence

    def encode(a: np.ndarray) -> np.ndarray:  # per frame: [1, gain * mean]
        means = a.reshape(4, 320).mean(axis=1).astype(np.float64)
        return np.stack([np.ones(4), means * 1e7], axis=1)

    floor = accuracy.input_noise_floor(encode, audio, trials=4)
    assert floor[:2].min() > 0.99999 and floor[2:].max() < 0.99
    np.testing.assert_array_equal(floor, accuracy.input_noise_floor(encode, audio, trials=4))  # seeded


@pytest.mark.slow
def test_base_on_shared_audio_matches_ctranslate2(base_model_dir, audio_dir):
    """npu-emu against ctranslate2's float32 encoder: every speech frame's cosine >= 0.999,
    and the transcripts through npu-emu equal the cpu engine's, both float32 (lj_stream_a: the
    next test)."""
    import ctranslate2

    from npustream.asr.audio import N_SAMPLES, load_audio
    from npustream.asr.features import window_features
    from npustream.asr.recognizer import Recognizer, RecognizerConfig
    from npustream.engines.npu_emu import NpuEmuEngine
    from npustream.transcribe.transcriber import transcribe_file
    from tools import accuracy, wer

    ct2 = ctranslate2.models.Whisper(str(base_model_dir), device="cpu", compute_type="float32")
    engine = NpuEmuEngine(base_model_dir)
    names = ("fr_en_switch.flac", "jfk.flac", "libri_1.flac", "osr_0034_8k.wav")
    speech = []
    for name in names:
        audio = load_audio(audio_dir / name)
        for start in range(0, len(audio), N_SAMPLES):
            mel = window_features(audio[start : start + N_SAMPLES])[None]
            want = np.asarray(ct2.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))[0]
            cos = accuracy.frame_cosines(engine.encode(mel)[0], want)
            speech.append(cos[accuracy.speech_frames(audio[start : start + N_SAMPLES])])
    dist = accuracy.distribution(np.concatenate(speech))
    assert dist["frames"] > 1500 and dist["min"] >= 0.999 and dist["median"] >= 0.9999, dist

    cpu = Recognizer(RecognizerConfig(model_dir=base_model_dir, engine="cpu", compute_type="float32"))
    npu = Recognizer(
        RecognizerConfig(
            model_dir=base_model_dir, engine="npu-emu", npu_design="custom", compute_type="float32"
        )
    )
    assert npu.engine_name == "npu-emu", npu.fallback_reason
    for name in names:
        want = transcribe_file(cpu, audio_dir / name).text
        got = transcribe_file(npu, audio_dir / name).text
        assert wer.normalize(got) == wer.normalize(want), (name, want, got)


@pytest.mark.slow
def test_lj_stream_a_meets_the_contract_where_its_recording_determines_the_reference(
    base_model_dir, audio_dir
):
    """On lj_stream_a a few speech frames move under ctranslate2 float32 itself when the input
    moves by less than its own 16-bit quantization (tools/accuracy.py: measured down to 0.967):
    no other arithmetic can be held to the reference there. Every other speech frame meets
    the contract (cosine >= 0.999; measured min 0.99937), and those frames are few (measured
    19 of 5011)."""
    import ctranslate2

    from npustream.asr.audio import N_SAMPLES, load_audio
    from npustream.asr.features import window_features
    from npustream.engines.npu_emu import NpuEmuEngine
    from tools import accuracy

    ct2 = ctranslate2.models.Whisper(str(base_model_dir), device="cpu", compute_type="float32")
    engine = NpuEmuEngine(base_model_dir)

    def ct2_encode(chunk: np.ndarray) -> np.ndarray:
        mel = ctranslate2.StorageView.from_array(window_features(chunk)[None])
        return np.asarray(ct2.encode(mel, to_cpu=True))[0]

    audio = load_audio(audio_dir / "lj_stream_a.flac")
    design, floor, speech = [], [], []
    for start in range(0, len(audio), N_SAMPLES):
        chunk = audio[start : start + N_SAMPLES]
        want = ct2_encode(chunk)
        design.append(accuracy.frame_cosines(engine.encode(window_features(chunk)[None])[0], want))
        floor.append(accuracy.input_noise_floor(ct2_encode, chunk, seed=start))
        speech.append(accuracy.speech_frames(chunk))
    design, floor, speech = np.concatenate(design), np.concatenate(floor), np.concatenate(speech)
    determined = speech & (floor >= accuracy.DETERMINED)
    assert floor[speech].min() < 0.999  # the reference fails the contract against itself
    assert speech.sum() - determined.sum() <= 0.01 * speech.sum()
    assert design[determined].min() >= 0.999, design[determined].min()


@pytest.mark.slow
def test_lj_stream_a_leaves_0999_in_bf16_storage_whatever_the_kernels(base_model_dir, audio_dir):
    """Why lj_stream_a's undetermined frames fail in bf16 (docs/npu-numerics.md): in its first
    window the float32 reference encoder (equal to ctranslate2 here) with only its weights and
    log-mel rounded to bf16, every operation float32, already leaves speech frames below 0.999
    (measured 0.778, frame 483); with both split into two bf16 pieces (hi + lo) they meet it
    (0.9999999)."""
    import ctranslate2

    from npustream.asr.audio import N_SAMPLES, load_audio
    from npustream.asr.features import window_features
    from npustream.bf16 import bf16_round
    from npustream.model import ct2_reader, reference
    from tools import accuracy

    audio = load_audio(audio_dir / "lj_stream_a.flac")[:N_SAMPLES]
    mel = window_features(audio)
    ct2 = ctranslate2.models.Whisper(str(base_model_dir), device="cpu", compute_type="float32")
    want = np.asarray(ct2.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    speech = accuracy.speech_frames(audio)
    model = ct2_reader.load(base_model_dir)
    weights = ct2_reader.encoder_weights(model)

    def hi_lo(v):
        return bf16_round(v) + bf16_round(v - bf16_round(v))

    def min_speech_cosine(rounding) -> float:
        w = {k: rounding(v) if k.endswith("weight") or "position" in k else v for k, v in weights.items()}
        got = reference.reference_encode(w, rounding(mel)[None], model.dims.n_audio_head)[0]
        return float(accuracy.frame_cosines(got, want)[speech].min())

    assert min_speech_cosine(bf16_round) < 0.9  # measured 0.778
    assert min_speech_cosine(hi_lo) > 0.99999  # measured 0.9999999
