"""The numpy model.bin reader and the float32 reference encoder, against CTranslate2 itself."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from npustream.bf16 import to_bf16_bits
from npustream.errors import ModelError
from npustream.model import ct2_reader, store
from npustream.model.reference import conv_stem, layer_norm, reference_encode

ctranslate2 = pytest.importorskip("ctranslate2")

# shared/ sits beside the repository, here and in CI.
JFK_REF = Path(__file__).resolve().parents[2] / "shared/reference/jfk_whisper_ref.npz"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return store.ensure_packaged_model(tmp_path_factory.mktemp("cache") / "wb", progress=False)


@pytest.fixture(scope="module")
def base(base_dir) -> ct2_reader.Ct2Model:
    return ct2_reader.load(base_dir)


@pytest.fixture(scope="module")
def mel() -> np.ndarray:
    return np.load(JFK_REF)["mel30"][None].astype(np.float32)  # [1, 80, 3000]


def ct2_encode(model_dir: Path, mel: np.ndarray) -> np.ndarray:
    whisper = ctranslate2.models.Whisper(str(model_dir), compute_type="float32", intra_threads=2)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))
    return np.asarray(whisper.encode(features, to_cpu=True))


def frame_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_round_trip_all_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((2, 3)).astype(np.float32)
    arrays = {
        "enc/f32": rng.standard_normal((3, 4)).astype(np.float32),
        "enc/f16": rng.standard_normal(5).astype(np.float16),
        "enc/bf16": to_bf16_bits(values),
        "enc/weight": rng.integers(-127, 128, (4, 3, 2), dtype=np.int8),
        "enc/weight_scale": np.array([1.0, 2.0, 0.5, 127.0], np.float32),
        "enc/i16": np.array([-32768, 0, 32767], np.int16),
        "enc/i32": np.array([[-(2**31), 1], [2, 2**31 - 1]], np.int32),
        "enc/num_heads": np.array(8, np.int16),
        "enc/pre_norm": np.array(1, np.int8),
        "enc/eps": np.array(1e-5, np.float32),
        "enc/empty": np.zeros((0, 3), np.float32),
    }
    aliases = {"dec/projection/weight": "enc/weight"}
    path = tmp_path / "model.bin"
    ct2_reader.write_model_bin(
        path, arrays, spec_name="TestSpec", spec_revision=7, aliases=aliases, dtypes={"enc/bf16": "bfloat16"}
    )
    model = ct2_reader.read_model_bin(path)

    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "TestSpec", 7)
    assert model.dims is None and model.aliases == aliases
    assert list(model.arrays) == list(arrays)
    for name, value in arrays.items():
        assert model.arrays[name].dtype == value.dtype and model.arrays[name].shape == value.shape
        assert np.array_equal(model.arrays[name], value), name
    assert model.dtype("enc/bf16") == "bfloat16" and model.dtype("enc/f16") == "float16"
    assert model.scalar("enc/num_heads") == 8 and model.scalar("enc/pre_norm") == 1
    assert model.scalar("enc/eps") == np.float32(1e-5)
    # An alias also names the target's scale, as in CTranslate2's loader.
    assert model.resolve("dec/projection/weight_scale") == "enc/weight_scale"
    assert np.array_equal(
        model.float32("dec/projection/weight"),
        arrays["enc/weight"] / arrays["enc/weight_scale"][:, None, None],
    )
    assert np.abs(model.float32("enc/bf16") - values).max() <= np.abs(values).max() * 2**-8
    assert np.array_equal(model.float32("enc/f16"), arrays["enc/f16"].astype(np.float32))

    again = tmp_path / "again.bin"
    ct2_reader.write_model_bin(
        again, model.arrays, spec_name="TestSpec", spec_revision=7, aliases=model.aliases, dtypes=model.dtypes
    )
    assert again.read_bytes() == path.read_bytes()


def test_bad_files_fail_clearly(tmp_path):
    path = tmp_path / "model.bin"
    ct2_reader.write_model_bin(path, {"w": np.ones((64, 64), np.float32)}, spec_name="S")
    full = path.read_bytes()
    path.write_bytes(full[:-1000])
    with pytest.raises(ModelError, match="truncated"):
        ct2_reader.read_model_bin(path)
    path.write_bytes(b"PK\x03\x04" + full[4:])
    with pytest.raises(ModelError, match="binary version"):
        ct2_reader.read_model_bin(path)
    path.write_bytes(full + b"junk")
    with pytest.raises(ModelError, match="4 unexpected bytes"):
        ct2_reader.read_model_bin(path)
    with pytest.raises(ModelError, match="cannot read"):
        ct2_reader.read_model_bin(tmp_path / "absent.bin")


def test_real_base_model(base, base_dir):
    assert (base.binary_version, base.spec_name, base.spec_revision) == (6, "WhisperSpec", 3)
    d = base.dims
    assert (
        d.n_mels,
        d.n_audio_ctx,
        d.n_audio_state,
        d.n_audio_head,
        d.n_audio_layer,
        d.n_vocab,
        d.n_text_ctx,
        d.n_text_state,
        d.n_text_head,
        d.n_text_layer,
    ) == (80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
    assert base.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert base.config["alignment_heads"][0] == [3, 1]
    # Every array is a view into one read-only mapping of model.bin: nothing copied.
    for name, array in base.arrays.items():
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        assert isinstance(root, np.memmap) and Path(root.filename) == base_dir / "model.bin"
        assert root.nbytes == store.MODEL_BIN_SIZE, name
        assert np.shares_memory(array, root) and not array.flags.writeable, name
    # The fused [q; k; v] bias stores zeros for the key, which has no bias in Whisper.
    for i in range(d.n_audio_layer):
        qkv_bias = base[f"encoder/layer_{i}/self_attention/linear_0/bias"]
        assert not qkv_bias[512:1024].any() and qkv_bias[:512].any() and qkv_bias[1024:].any()


def test_reference_encoder_matches_ctranslate2(base, base_dir, mel):
    weights = ct2_reader.encoder_weights(base)
    assert all(w.dtype == np.float32 for w in weights.values())
    ours = reference_encode(weights, mel, base.dims.n_audio_head)
    theirs = ct2_encode(base_dir, mel)
    assert ours.shape == theirs.shape == (1, 1500, 512) and ours.dtype == np.float32
    max_abs = float(np.abs(ours - theirs).max())
    cosine = frame_cosine(ours[0], theirs[0])
    print(
        f"base encoder vs ctranslate2 float32: max abs {max_abs:.3g} "
        f"(output max {np.abs(theirs).max():.3g}), min frame cosine {cosine.min():.8f}"
    )
    assert max_abs < 5e-3  # measured 5.0e-4
    assert cosine.min() > 0.99999  # measured 0.99999976


def derived_model(base, base_dir, out_dir, convert) -> Path:
    """The base model cut to one encoder and one decoder layer, encoder tensors rewritten by
    convert(name, float32) -> (array, ctranslate2 dtype or None): a small file CTranslate2 loads."""
    out_dir.mkdir()
    for name in ("config.json", "vocabulary.json"):
        shutil.copy(base_dir / name, out_dir)
    arrays, dtypes = {}, {}
    for name, value in base.arrays.items():
        layer = re.match(r"(en|de)coder/layer_(\d+)/", name)
        if layer and int(layer.group(2)) > 0:
            continue
        if name.startswith("encoder/") and value.ndim > 0:
            for new_name, (array, dtype) in convert(name, value.astype(np.float32)).items():
                arrays[new_name] = array
                if dtype:
                    dtypes[new_name] = dtype
        else:
            arrays[name] = value
    ct2_reader.write_model_bin(
        out_dir / "model.bin",
        arrays,
        spec_name=base.spec_name,
        spec_revision=base.spec_revision,
        aliases=base.aliases,
        dtypes=dtypes,
    )
    return out_dir


def test_conv_stem_in_bfloat16(base, base_dir, mel, tmp_path):
    """Layer 0 and the positions zeroed: CTranslate2 then returns layer_norm(conv stem)."""

    def bf16_stem_only(name, value):
        if name.startswith("encoder/layer_0/") and "layer_norm" not in name or "position" in name:
            value = np.zeros_like(value)
        return {name: (to_bf16_bits(value), "bfloat16")}

    model_dir = derived_model(base, base_dir, tmp_path / "stem", bf16_stem_only)
    model = ct2_reader.load(model_dir)
    assert model.dims.n_audio_layer == 1 and model.dtype("encoder/conv2/weight") == "bfloat16"
    w = ct2_reader.encoder_weights(model)
    gamma, beta = w["encoder/layer_norm/gamma"], w["encoder/layer_norm/beta"]
    ours = layer_norm(conv_stem(w, mel), gamma, beta)
    theirs = ct2_encode(model_dir, mel)
    max_abs = float(np.abs(ours - theirs).max())
    print(f"conv stem (bfloat16 weights): max abs {max_abs:.3g}")
    assert max_abs < 1e-4  # measured 8.6e-6


def test_int8_dequantisation_matches_ctranslate2(base, base_dir, mel, tmp_path):
    """int8 weights with per-row scales, quantised as CTranslate2's converter does."""

    def int8_weights(name, value):
        if not name.endswith("weight"):
            return {name: (value, None)}
        rows = value.reshape(value.shape[0], -1)
        scale = (127.0 / np.abs(rows).max(axis=1)).astype(np.float32)
        quantised = np.rint(rows * scale[:, None]).astype(np.int8).reshape(value.shape)
        return {name: (quantised, None), name + "_scale": (scale, None)}

    model_dir = derived_model(base, base_dir, tmp_path / "int8", int8_weights)
    model = ct2_reader.load(model_dir)
    assert model.dtype("encoder/layer_0/ffn/linear_0/weight") == "int8"
    ours = reference_encode(ct2_reader.encoder_weights(model), mel, model.dims.n_audio_head)
    theirs = ct2_encode(model_dir, mel)
    max_abs = float(np.abs(ours - theirs).max())
    print(f"one int8 layer vs ctranslate2: max abs {max_abs:.3g}")
    assert max_abs < 2e-4  # measured 1.7e-5
