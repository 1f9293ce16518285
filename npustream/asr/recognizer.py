"""Audio window in, timed text out: features -> encoder engine -> decoder.

The one place that owns the model: the ctranslate2 Whisper (decoder, and encoder for the
`cpu` engine), the tokenizer, and the chosen encoder engine with its fallback to the CPU.
Used by `npustream transcribe` (files) and by the streaming daemon (rolling windows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from npustream import log
from npustream.asr.audio import N_FRAMES, N_SAMPLES, SAMPLE_RATE, validate_pcm
from npustream.asr.decoder import DecodeOptions, WhisperDecoder, WindowDecode
from npustream.asr.features import window_features
from npustream.asr.tokenizer import WhisperTokenizer
from npustream.engines import create_engine
from npustream.engines.cpu import CpuEngine

# A window whose loudest sample is below -60 dBFS holds no speech a person could hear: Whisper
# would only hallucinate on it ("you"), so it costs no engine work and gives no text.
SILENCE_PEAK = 10 ** (-60 / 20)
CONTEXTS = ("full", "fit")
# "fit": the encoder sees the window's audio plus 3 s of padding, at least 12 s in all, rounded
# up to whole seconds, instead of Whisper's full 30 s. The encoder's cost is about proportional
# to its input, so most streaming windows encode in 40 % of the time. Whisper was trained on
# padded 30 s windows; on a shorter context it is less sure of itself and tends to say a phrase
# over and over to fill it, the more so the shorter the context (on the shared 8 kHz speech,
# 13 of 30 decodes at 4-8 s, 1 of 49 at >= 15 s; streaming all shared files at 12 s: 8 of 447
# decodes, at 10 s: 24 of 473). A decode that falls short (OpenAI's fallback test) or says a
# phrase twice back to back is done again on the full context, where temperature fallback
# applies as usual.
FIT_PAD_FRAMES = 300
FIT_STEP_FRAMES = 100
FIT_MIN_FRAMES = 1200
# A window's decode generates at most MIN_NEW_TOKENS plus this many tokens per second of audio:
# fast speech is about 4 words a second, 1.3 tokens a word, plus a pair of timestamps per
# segment. Only a decode that loops reaches the cap (the loop is cut anyway); uncapped it would
# run on to max_new_tokens (224): seconds of decoding for a short streaming window.
MAX_TOKENS_PER_SECOND = 12
MIN_NEW_TOKENS = 16
logger = log.get(__name__)


def fitted_frames(content_frames: int) -> int:
    """Mel frames of a "fit" encoder context for a window with this much audio (even, <= 3000)."""
    frames = -(-(content_frames + FIT_PAD_FRAMES) // FIT_STEP_FRAMES) * FIT_STEP_FRAMES
    return min(N_FRAMES, max(FIT_MIN_FRAMES, frames))


@dataclass(frozen=True)
class RecognizerConfig:
    model_dir: Path | str | None = None  # None: the packaged Whisper base
    engine: str = "cpu"  # cpu | npu-emu | npu
    npu_design: str = "iron"  # the NPU engines' design: iron (amd/IRON operators) | custom
    compute_type: str = "int8"  # ctranslate2 compute type for the decoder (and the cpu encoder)
    threads: int = 0  # 0: ctranslate2's default (all cores)
    language: str | None = None  # None: detect
    task: str = "transcribe"  # or translate
    beam_size: int = 5
    word_timestamps: bool = False
    context: str = (
        "full"  # encoder context: "full" (Whisper's 30 s) or "fit" (audio + 3 s, >= 12 s; cpu engine)
    )
    fallback: bool = True  # OpenAI's temperature fallback; off, a decode is one pass at temperature 0
    hotwords: str | None = None  # terms to prefer, e.g. "Kubernetes, Grafana" (DecodeOptions.hotwords)


class Recognizer:
    def __init__(self, config: RecognizerConfig = RecognizerConfig()):
        import ctranslate2

        from npustream.model.store import resolve_model_dir

        self.config = config
        self.model_dir = resolve_model_dir(config.model_dir)
        self.ct2 = ctranslate2.models.Whisper(
            str(self.model_dir), device="cpu", compute_type=config.compute_type, intra_threads=config.threads
        )
        self.n_mels = self.ct2.n_mels
        self.tokenizer = WhisperTokenizer(
            self.model_dir, multilingual=self.ct2.is_multilingual, task=config.task, language=config.language
        )
        self.decoder = WhisperDecoder(self.ct2, self.tokenizer)
        self.engine, self.fallback_reason = create_engine(
            config.engine, ct2_model=self.ct2, model_dir=self.model_dir, design=config.npu_design
        )
        if config.context not in CONTEXTS:
            raise ValueError(f"encoder context must be one of {', '.join(CONTEXTS)}, not {config.context!r}")
        self.options = DecodeOptions(
            task=config.task,
            language=config.language,
            beam_size=config.beam_size,
            best_of=max(1, config.beam_size),
            word_timestamps=config.word_timestamps,
            hotwords=config.hotwords or None,
        )
        if not config.fallback:
            self.options = replace(self.options, temperatures=(0.0,))
        self.context_retries = 0  # "fit" decodes that fell short and were done again on the full context
        logger.info(
            "recognizer_ready",
            model_dir=str(self.model_dir),
            engine=self.engine.name,
            requested_engine=config.engine,
            fallback_reason=self.fallback_reason,
            compute_type=config.compute_type,
        )

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """Encoder output for one window; a failing accelerator falls back to the CPU and
        the same window is encoded again, so no audio is lost."""
        try:
            return self.engine.encode(mel[None])
        except Exception as exc:  # noqa: BLE001 - any engine failure, the audio must survive it
            if isinstance(self.engine, CpuEngine):
                raise
            self.fallback_reason = f"{self.engine.name} failed mid-stream: {exc}"
            logger.error("engine_failed", engine=self.engine.name, error=str(exc), fallback="cpu")
            self.engine = CpuEngine(self.ct2)
            return self.engine.encode(mel[None])

    def warm_up(self) -> None:
        """Decode once before the audio arrives: the first decode allocates and tunes. On
        noise (silence may short-cut). With fitted contexts, a full one is encoded as well:
        overflow, closing and retry decodes use it, and its buffers (a 30 s window's attention
        scores alone are 72 MiB) allocated now, before the stream's threads allocate around
        them, leave less of the heap to grow in pieces in the first minutes (the peak resident
        memory of tests/test_stream_soak.py, over the daemon's at READY: 98-212 MiB in 8 runs
        without this, 57-130 MiB in 7 with it, over a READY 35-40 MiB higher; the 60-minute
        bench/bench_soak.py still peaks higher in its second half, with it or without)."""
        noise = np.random.default_rng(0).normal(0, 0.05, SAMPLE_RATE).astype(np.float32)
        self.decode_window(noise)
        if self.config.context == "fit" and self.engine.any_length:
            self.encode(window_features(noise, n_mels=self.n_mels, frames=N_FRAMES))

    def decode_window(
        self,
        audio: np.ndarray,
        *,
        offset: float = 0.0,
        prompt: str | None = None,
        prompt_tokens: list[int] | None = None,
        options: DecodeOptions | None = None,
        full_context_retry: bool = True,
        language: str | None = None,
        prompt_language: str | None = None,
    ) -> WindowDecode:
        """Up to 30 s of 16 kHz mono float32 starting `offset` seconds into the stream.
        full_context_retry=False: an unreliable "fit" decode is returned as it is (the caller
        will decode this audio again anyway) instead of being done again on the full context.
        language: decode in this language without detecting it (None: the options' language).
        prompt_language: the language the prompt's text was read in (None: not known); a window
        in another language is decoded without that text (WhisperDecoder.decode)."""
        validate_pcm(audio)
        if len(audio) > N_SAMPLES:
            raise ValueError(f"a window holds at most {N_SAMPLES / SAMPLE_RATE:.0f} s of audio")
        content_frames = max(1, min(3000, len(audio) // 160))
        options = options or self.options
        if language:
            options = replace(options, language=language)
        cap = MIN_NEW_TOKENS + int(MAX_TOKENS_PER_SECOND * content_frames / 100)
        if cap < options.max_new_tokens:
            options = replace(options, max_new_tokens=cap)
        if len(audio) == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
            return WindowDecode(
                options.language or "en",
                0.0,
                (),
                1.0,
                0.0,
                0.0,
                True,
                content_frames,
                (),
                content_frames / 100.0,
            )
        if prompt and prompt_tokens is None:
            prompt_tokens = self.tokenizer.encode(" " + prompt.strip())
        frames = (
            fitted_frames(content_frames)
            if self.config.context == "fit" and self.engine.any_length
            else N_FRAMES
        )
        if prompt_tokens:
            options = replace(options, prompt_language=prompt_language)
        if frames < N_FRAMES:
            fit_options = replace(options, temperatures=options.temperatures[:1])
            result = self._decode(audio, frames, content_frames, offset, prompt_tokens, fit_options)
            if not result.unreliable or not full_context_retry:
                return result
            self.context_retries += 1
            logger.debug("context_retry", frames=frames, fell_short=result.fell_short, text=result.text)
        return self._decode(audio, N_FRAMES, content_frames, offset, prompt_tokens, options)

    def _decode(
        self,
        audio: np.ndarray,
        frames: int,
        content_frames: int,
        offset: float,
        prompt_tokens: list[int] | None,
        options: DecodeOptions,
    ) -> WindowDecode:
        mel = window_features(audio, n_mels=self.n_mels, frames=frames)
        return self.decoder.decode(
            self.encode(mel),
            content_frames=content_frames,
            offset=offset,
            prompt_tokens=prompt_tokens,
            options=options,
        )

    def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if close:
            close()
        self.ct2 = None
