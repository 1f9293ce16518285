"""The prompt's text and a window in another language: fr_en_switch.flac under pink noise at
10 dB SNR, in stereo, where Whisper base reads the French as Japanese. The final text of that
utterance was the next decodes' prompt, and with it the English ("And so my fellow Americans")
was read in katakana, "エンソーマイフェルアメリカ", though the detector said English
(p 0.9-1.0). A window in another language than its prompt's text is decoded without that text
(DecodeOptions.prompt_language; the captioner's side: CommitPolicy.read_in and
test_stream_captioner.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile

from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.asr.recognizer import Recognizer
from npustream.stream.config import StreamConfig

pytestmark = pytest.mark.slow
SNR_DB = 10.0
JAPANESE_READING = "エシラで行って、いっべぇあん"  # what the noisy French was read as
KANA = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power
    return np.fft.irfft(spectrum, n).astype(np.float32)


@pytest.fixture(scope="module")
def noisy(audio_dir, tmp_path_factory) -> np.ndarray:
    """A stereo recording as a laptop's two microphones give it: the speech in both channels
    (0.8 as loud in the second), pink noise at SNR_DB in each, not the same in both (the
    second's is the first's reversed in time); loaded as the daemon loads a file (downmixed)."""
    speech = load_audio(audio_dir / "fr_en_switch.flac")
    noise = pink_noise(len(speech), np.random.default_rng(5))
    power = np.mean(speech[np.abs(speech) > 0.01] ** 2)  # of the speech, not of its pauses
    noise *= np.sqrt(power / np.mean(noise**2) / 10 ** (SNR_DB / 10))
    path = tmp_path_factory.mktemp("noisy") / "fr_en_switch_noisy.wav"
    soundfile.write(
        path, np.stack([speech + noise, 0.8 * speech + noise[::-1]], axis=1), SAMPLE_RATE, "FLOAT"
    )
    return load_audio(path)


@pytest.fixture(scope="module")
def recognizer():
    rec = Recognizer(StreamConfig().recognizer_config())
    yield rec
    rec.close()


def test_a_prompt_in_another_language_is_left_out(recognizer, noisy):
    english = noisy[int(3.99 * SAMPLE_RATE) : int(9.0 * SAMPLE_RATE)]
    kept = recognizer.decode_window(english, prompt=JAPANESE_READING, language="en")
    left_out = recognizer.decode_window(english, prompt=JAPANESE_READING, language="en", prompt_language="ja")
    assert KANA.search(kept.text), kept.text  # the premise: with that prompt, English in katakana
    assert not KANA.search(left_out.text) and "fellow" in left_out.text, left_out.text
    same = recognizer.decode_window(english, prompt="And so,", language="en", prompt_language="en")
    assert "fellow" in same.text  # a prompt in the window's language stays
