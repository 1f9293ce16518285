"""A failing NPU falls back to the CPU and keeps the audio: the window it failed on is
re-encoded on the CPU, and the text comes out as if nothing had happened."""

from __future__ import annotations

import pytest

from doubles import pyxrt as dbl
from doubles.pyxrt_build import emulated_program, write_stand_in_build
from npustream.asr.audio import load_audio
from npustream.asr.recognizer import Recognizer, RecognizerConfig
from npustream.npu.ops.params import CALIBRATED_PRESETS
from npustream.npu.ops.weights import load_npu_weights
from npustream.npu.predict.scheduler import choose
from npustream.npu.run.manifest import load_manifest
from tools.wer import wer


@pytest.mark.slow
def test_npu_failing_mid_stream_falls_back_without_losing_the_window(tmp_path, audio_dir, transcripts):
    from npustream.engines.npu import NpuEngine

    recognizer = Recognizer(RecognizerConfig(engine="npu", language="en"))
    assert recognizer.engine_name == "cpu" and "accel0" in recognizer.fallback_reason  # no NPU here

    # Put the real `npu` engine, on the pyxrt test double, in the recognizer's hands.
    weights = load_npu_weights(recognizer.model_dir)
    plan = choose(
        weights.dims, weights.tiles, CALIBRATED_PRESETS["phoenix"], plan="pipeline"
    ).plan  # as the engine
    write_stand_in_build(tmp_path, plan, weights)
    device = dbl.FakeNpu(emulated_program(load_manifest(tmp_path)))
    recognizer.engine = NpuEngine(
        recognizer.model_dir,
        plan="pipeline",
        build_dir=tmp_path,
        pyxrt=dbl.make_pyxrt(device),
        device_node=None,
    )
    recognizer.fallback_reason = None
    audio = load_audio(audio_dir / "libri_1.flac")
    reference = transcripts["libri_1.flac"]["text"]

    assert wer(reference, recognizer.decode_window(audio).text) <= 0.05
    assert recognizer.engine_name == "npu"

    device.fail_next(dbl.ert_cmd_state.ERT_CMD_STATE_ERROR)
    result = recognizer.decode_window(audio)
    assert recognizer.engine_name == "cpu"
    assert "npu failed mid-stream" in recognizer.fallback_reason
    assert "ERT_CMD_STATE_ERROR" in recognizer.fallback_reason
    assert wer(reference, result.text) <= 0.05  # the failed window was not lost
    recognizer.close()
