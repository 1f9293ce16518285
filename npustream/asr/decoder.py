"""Text decoding on the CPU from encoder output, with ctranslate2's Whisper decoder.

One 30 s window at a time: generate with temperature fallback (as OpenAI's transcribe does),
turn timestamp tokens into segments, optionally align words with the model's alignment heads.
The encoder output can come from any engine (cpu, npu-emu, npu): ctranslate2's generate and
align accept encoded features of shape [1, 1500, d_model].
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import ctranslate2
import numpy as np

from npustream.asr.tokenizer import SECONDS_PER_TIMESTAMP, WhisperTokenizer
from npustream.asr.words import align_words
from npustream.types import Segment

HOP_SECONDS = 0.01  # one mel frame
MEL_FRAMES_PER_TIMESTAMP = 2
MAX_PROMPT_TOKENS = 223  # OpenAI: n_text_ctx // 2 - 1


@dataclass(frozen=True)
class DecodeOptions:
    task: str = "transcribe"
    language: str | None = None  # None: detected per window (multilingual models)
    beam_size: int = 5  # 1: greedy
    best_of: int = 5  # candidates when sampling at temperature > 0
    patience: float = 1.0
    length_penalty: float = 1.0
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    word_timestamps: bool = False
    max_initial_timestamp: float = 1.0
    max_new_tokens: int = 224


@dataclass(frozen=True)
class WindowDecode:
    language: str
    language_probability: float
    segments: tuple[Segment, ...]  # absolute times (offset added)
    no_speech_prob: float
    avg_logprob: float
    temperature: float
    skipped_as_silence: bool
    seek_frames: int  # mel frames of this window the text accounts for (OpenAI's seek advance)
    tokens: tuple[int, ...]  # all text tokens decoded (prompt material for the next window)
    duration: float  # seconds of real audio in the window
    fell_short: bool = False  # even the last temperature tried missed the quality thresholds

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def unreliable(self) -> bool:
        """Text to decode again rather than trust: it missed the quality thresholds, or it says
        a phrase twice back to back."""
        return self.fell_short or repeats_a_phrase(self.text)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def repeats_a_phrase(text: str) -> bool:
    """A phrase of two or more words said twice back to back ("Come quickly. Come quickly."):
    how Whisper tends to fill a short encoder context; people rarely do it."""
    words = [w for w in (re.sub(r"[^\w\s]", "", t.lower()) for t in text.split()) if w]
    return any(
        words[i : i + n] == words[i + n : i + 2 * n]
        for n in range(2, len(words) // 2 + 1)
        for i in range(len(words) - 2 * n + 1)
    )


def falls_short(avg_logprob: float, no_speech_prob: float, ratio: float, options: DecodeOptions) -> bool:
    """OpenAI's test for decoding again at the next temperature: too repetitive or too unlikely,
    unless the window is silence (then the low probability is expected)."""
    too_repetitive = (
        options.compression_ratio_threshold is not None and ratio > options.compression_ratio_threshold
    )
    too_unlikely = options.log_prob_threshold is not None and avg_logprob < options.log_prob_threshold
    silent = (
        options.no_speech_threshold is not None
        and no_speech_prob > options.no_speech_threshold
        and too_unlikely
    )
    return (too_repetitive or too_unlikely) and not silent


class WhisperDecoder:
    def __init__(self, model: ctranslate2.models.Whisper, tokenizer: WhisperTokenizer):
        self.model = model
        self.tokenizer = tokenizer

    def detect_language(self, encoded: ctranslate2.StorageView) -> tuple[str, float]:
        token, prob = self.model.detect_language(encoded)[0][0]
        return token[2:-2], float(prob)

    def decode(
        self,
        encoder_output: np.ndarray,
        *,
        content_frames: int,
        offset: float,
        prompt_tokens: list[int] | None,
        options: DecodeOptions,
    ) -> WindowDecode:
        """Decode one window. `content_frames`: mel frames of real audio in it (<= 3000)."""
        encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoder_output, dtype=np.float32))
        language, language_prob = options.language or "en", 1.0
        if self.tokenizer.multilingual and options.language is None:
            language, language_prob = self.detect_language(encoded)
        sot_sequence = self.tokenizer.sot_sequence(language)
        prompt = []
        if prompt_tokens:
            prompt = [self.tokenizer.sot_prev] + list(prompt_tokens)[-MAX_PROMPT_TOKENS:]
        best = self._generate_with_fallback(encoded, prompt + sot_sequence, options)
        tokens, avg_logprob, no_speech_prob, temperature, ratio = best
        silent = (
            options.no_speech_threshold is not None
            and no_speech_prob > options.no_speech_threshold
            and (options.log_prob_threshold is None or avg_logprob < options.log_prob_threshold)
        )
        if silent:
            return WindowDecode(
                language,
                language_prob,
                (),
                no_speech_prob,
                avg_logprob,
                temperature,
                True,
                content_frames,
                (),
                content_frames * HOP_SECONDS,
            )
        segments, seek_frames = self._segments(
            tokens, content_frames, offset, no_speech_prob, avg_logprob, temperature, ratio
        )
        if options.word_timestamps and segments:
            segments = align_words(
                self.model, self.tokenizer, encoded, sot_sequence, segments, content_frames, offset, language
            )
            segments = tuple(s for s in segments if s.words)
        text_tokens = tuple(t for t in tokens if t < self.tokenizer.eot)
        return WindowDecode(
            language,
            language_prob,
            segments,
            no_speech_prob,
            avg_logprob,
            temperature,
            False,
            seek_frames,
            text_tokens,
            content_frames * HOP_SECONDS,
            falls_short(avg_logprob, no_speech_prob, ratio, options),
        )

    def _generate_with_fallback(self, encoded, prompt: list[int], options: DecodeOptions):
        max_initial = int(round(options.max_initial_timestamp / SECONDS_PER_TIMESTAMP))
        attempt = None
        for temperature in options.temperatures:
            if temperature > 0:
                search = dict(
                    beam_size=1,
                    num_hypotheses=options.best_of,
                    sampling_topk=0,
                    sampling_temperature=temperature,
                )
            else:
                search = dict(beam_size=options.beam_size, patience=options.patience, num_hypotheses=1)
            result = self.model.generate(
                encoded,
                [prompt],
                length_penalty=options.length_penalty,
                # ctranslate2 counts the prompt (previous text and start tokens) in max_length.
                max_length=len(prompt) + options.max_new_tokens,
                return_scores=True,
                return_no_speech_prob=True,
                max_initial_timestamp_index=max_initial,
                suppress_blank=True,
                suppress_tokens=[-1],
                **search,
            )[0]
            candidates = []
            for tokens, score in zip(result.sequences_ids, result.scores):
                # ctranslate2's score is the length-normalised log-probability; OpenAI's
                # avg_logprob divides the summed log-probability by length + 1 (the end token).
                n = len(tokens)
                avg_logprob = score * (n**options.length_penalty) / (n + 1)
                candidates.append((avg_logprob, list(tokens)))
            avg_logprob, tokens = max(candidates, key=lambda c: c[0])
            ratio = compression_ratio(self.tokenizer.decode(tokens))
            attempt = (tokens, avg_logprob, float(result.no_speech_prob), temperature, ratio)
            if not falls_short(avg_logprob, attempt[2], ratio, options):
                break
        return attempt

    def _segments(
        self,
        tokens: list[int],
        content_frames: int,
        offset: float,
        no_speech_prob: float,
        avg_logprob: float,
        temperature: float,
        ratio: float,
    ) -> tuple[tuple[Segment, ...], int]:
        """Split tokens at pairs of consecutive timestamps, as OpenAI's transcribe does."""
        tb = self.tokenizer.timestamp_begin
        window_end = offset + content_frames * HOP_SECONDS
        is_ts = [t >= tb for t in tokens]
        single_timestamp_ending = len(tokens) >= 2 and is_ts[-2:] == [False, True]
        cuts = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
        pieces: list[tuple[float, float, list[int]]] = []
        if cuts:
            if single_timestamp_ending:
                cuts.append(len(tokens))
            last = 0
            for cut in cuts:
                piece = tokens[last:cut]
                start = (piece[0] - tb) * SECONDS_PER_TIMESTAMP if piece[0] >= tb else 0.0
                end = (piece[-1] - tb) * SECONDS_PER_TIMESTAMP if piece[-1] >= tb else start
                pieces.append((start, end, piece))
                last = cut
            if single_timestamp_ending:
                seek_frames = content_frames
            else:
                seek_frames = (tokens[last - 1] - tb) * MEL_FRAMES_PER_TIMESTAMP
        else:
            duration = content_frames * HOP_SECONDS
            stamps = [t for t in tokens if t >= tb]
            if stamps and stamps[-1] != tb:
                duration = (stamps[-1] - tb) * SECONDS_PER_TIMESTAMP
            pieces.append((0.0, duration, tokens))
            seek_frames = content_frames
        segments = []
        for start, end, piece in pieces:
            text = self.tokenizer.decode(piece)
            start, end = offset + start, min(offset + end, window_end)
            if not text.strip() or end <= start:
                continue
            segments.append(
                Segment(
                    start=round(start, 3),
                    end=round(end, 3),
                    text=text,
                    tokens=tuple(t for t in piece if t < self.tokenizer.eot),
                    no_speech_prob=no_speech_prob,
                    avg_logprob=avg_logprob,
                    compression_ratio=ratio,
                    temperature=temperature,
                )
            )
        return tuple(segments), max(1, min(seek_frames, content_frames))
