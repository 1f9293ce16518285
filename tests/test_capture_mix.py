"""Mixing inputs (`mic+system`) and matching their levels, on real speech from the shared audio
and on inputs whose delivery the test controls: neither input waits for the other, a lost one is
filled with silence and named, and only the time when every input is lost is a gap."""

from __future__ import annotations

import time

import numpy as np
import pytest

from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.errors import AudioError
from npustream.stream import config
from npustream.stream.capture.interface import mix_inputs
from npustream.stream.capture.mix import (
    LEVEL_BLOCK,
    LEVEL_TARGET_RMS,
    MAX_SKEW_SECONDS,
    PEAK_LIMIT,
    LevelMatcher,
    MixSource,
)
from npustream.stream.capture.sources import open_source

SKEW = int(MAX_SKEW_SECONDS * SAMPLE_RATE)


class HandFedInput:
    """A live input that has exactly what the test gave it; lost and restored as a microphone's
    supervisor reports it (through the status callback the mix gave it)."""

    def __init__(self, name: str, report):
        self.name, self.report = name, report
        self.pending = np.zeros(0, np.float32)
        self.started = self.closed = False
        self.ended = False

    def give(self, samples: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, samples.astype(np.float32)])

    def start(self) -> None:
        self.started = True

    def read(self, max_samples: int) -> np.ndarray:
        out, self.pending = self.pending[:max_samples], self.pending[max_samples:]
        return out

    def take_gap(self) -> float:
        return 0.0

    def close(self) -> None:
        self.closed = True


def mix_of(*names: str):
    inputs, statuses = {}, []

    def open_input(spec, report):
        inputs[spec] = HandFedInput(spec, report)
        return inputs[spec]

    mix = MixSource(
        list(names), open_input, on_status=lambda state, message: statuses.append((state, message))
    )
    mix.start()
    return mix, inputs, statuses


def speech_level_db(x: np.ndarray, speech: np.ndarray) -> float:
    """RMS level of x over the 100 ms blocks where `speech` is within 30 dB of its loudest."""

    def blocks(y):
        return np.sqrt(
            np.mean(
                np.square(y[: len(y) // LEVEL_BLOCK * LEVEL_BLOCK], dtype=np.float64).reshape(
                    -1, LEVEL_BLOCK
                ),
                axis=1,
            )
        )

    reference = blocks(speech)
    loud = reference > reference.max() * 10 ** (-30 / 20)
    return float(20 * np.log10(np.sqrt(np.mean(blocks(x)[loud] ** 2))))


@pytest.mark.parametrize("name", ["osr_0034_8k.wav", "jfk.flac"])
def test_level_matcher_brings_a_quiet_and_a_loud_input_to_one_level(audio_dir, name):
    speech = load_audio(audio_dir / name)
    settle = 3 * SAMPLE_RATE  # the first seconds set the level
    levels = {}
    for scale in (0.05, 0.9):  # 25 dB apart, as a quiet microphone and a loud video
        matcher = LevelMatcher()
        chunks = [matcher.process(speech[i : i + 320] * scale) for i in range(0, len(speech), 320)]
        out = np.concatenate(chunks)
        levels[scale] = speech_level_db(out[settle:], speech[settle:])
        assert np.abs(out).max() <= PEAK_LIMIT + 1e-6  # turned down, never clipped
    print(
        f"{name}: speech at 0.05 -> {levels[0.05]:.1f} dBFS, at 0.9 -> {levels[0.9]:.1f} dBFS "
        f"(target RMS {20 * np.log10(LEVEL_TARGET_RMS):.1f} dBFS)"
    )
    assert abs(levels[0.05] - levels[0.9]) < 1.5


def test_level_matcher_leaves_silence_alone():
    matcher = LevelMatcher()
    hiss = np.random.default_rng(0).normal(0, 0.0005, 5 * SAMPLE_RATE).astype(np.float32)  # -66 dBFS
    out = matcher.process(hiss)
    assert matcher.level is None and matcher.gain == 1.0
    np.testing.assert_array_equal(out, hiss)


def test_inputs_are_added_sample_for_sample(audio_dir):
    mix, inputs, _ = mix_of("mic", "system")
    a = load_audio(audio_dir / "libri_1.flac")[: 2 * SAMPLE_RATE]
    b = load_audio(audio_dir / "jfk.flac")[: 2 * SAMPLE_RATE]
    inputs["mic"].give(a)
    inputs["system"].give(b)
    out = mix.read(10 * SAMPLE_RATE)
    expected_gains = [LevelMatcher(), LevelMatcher()]
    expected = expected_gains[0].process(a) + expected_gains[1].process(b)
    np.testing.assert_allclose(out, np.clip(expected, -1, 1), atol=1e-6)
    assert mix.silence_filled == {"mic": 0.0, "system": 0.0}


def test_neither_input_waits_for_the_other():
    mix, inputs, _ = mix_of("mic", "system")
    inputs["system"].give(np.full(SAMPLE_RATE, 0.0005, np.float32))  # 1 s, under the level floor
    first = mix.read(10 * SAMPLE_RATE)
    assert len(first) == SAMPLE_RATE - SKEW  # the mic is waited for MAX_SKEW_SECONDS, no longer
    assert mix.silence_filled["mic"] == pytest.approx((SAMPLE_RATE - SKEW) / SAMPLE_RATE)
    inputs["mic"].give(np.full(SKEW, 0.0003, np.float32))  # the mic catches up
    second = mix.read(10 * SAMPLE_RATE)
    assert len(second) == SKEW
    np.testing.assert_allclose(second, 0.0008, rtol=1e-5)  # both, from here on, added
    assert mix.read(10 * SAMPLE_RATE).size == 0  # nothing is invented: no input has more


def test_a_lost_input_is_named_and_the_other_goes_on():
    mix, inputs, statuses = mix_of("mic", "system")
    inputs["mic"].report("source_lost", "microphone mic stopped delivering audio; retrying")
    assert mix.input_states() == {"mic": "lost", "system": "running"} and mix.state == "running"
    assert statuses[-1][0] == "source_lost" and statuses[-1][1].startswith("mic: ")
    assert "captioning system alone" in statuses[-1][1]
    inputs["system"].give(np.full(SKEW // 2, 0.001, np.float32))
    assert len(mix.read(SAMPLE_RATE)) == SKEW // 2  # a lost input is not waited for at all
    assert mix.take_gap() == 0.0  # the mix went on: no gap

    inputs["system"].report("source_lost", "desktop audio system stopped delivering audio; retrying")
    assert mix.state == "lost" and "no input is left" in statuses[-1][1]
    mix.read(SAMPLE_RATE)
    time.sleep(0.3)
    inputs["mic"].report("source_restored", "microphone mic is back after 1 attempts")
    mix.read(SAMPLE_RATE)
    assert mix.input_states() == {"mic": "running", "system": "lost"} and mix.state == "running"
    assert 0.3 <= mix.take_gap() < 1.0  # only the time when both were gone
    assert mix.take_gap() == 0.0


def test_close_closes_every_input():
    mix, inputs, _ = mix_of("mic", "system")
    mix.close()
    assert all(i.started and i.closed for i in inputs.values())


@pytest.mark.parametrize(
    ("spec", "inputs"),
    [
        ("mic+system", ["mic", "system"]),
        ("mic:2+system:tv", ["mic:2", "system:tv"]),
        ("mic+system:a+system:b", ["mic", "system:a", "system:b"]),
        ("mic+mic", None),  # the same input twice
        ("mic+stdin", None),  # only live inputs mix
        ("file:a+b.wav", None),  # a file whose name has a +
        ("system", None),
    ],
)
def test_how_a_mix_is_spelled(spec, inputs):
    assert mix_inputs(spec) == inputs
    valid = inputs is not None or spec.startswith("file:") or spec == "system"
    assert config._source_ok(spec) == valid
    if inputs is None and "+" in spec and not spec.startswith("file:"):
        with pytest.raises(AudioError, match="mixes different live inputs"):
            open_source(spec)
