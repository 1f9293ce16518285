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
from npustream.types import Segment, closed_text

HOP_SECONDS = 0.01  # one mel frame
MEL_FRAMES_PER_TIMESTAMP = 2
N_TEXT_CTX = 448  # tokens the Whisper decoder attends to: prompt, start tokens and output together
MAX_PROMPT_TOKENS = N_TEXT_CTX // 2 - 1  # OpenAI's cut: the older half is dropped


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
    max_new_tokens: int = N_TEXT_CTX // 2  # OpenAI's sample_len; the daemon caps it by the window's length
    # Terms to prefer (faster-whisper's `hotwords`): prompt text put before the previous text of
    # every window, so the decoder has seen their spelling. None: no terms.
    hotwords: str | None = None
    # The language the prompt's previous text was read in (None: not known). A window decoded in
    # another language goes without that text: Whisper goes on in the prompt's language and script
    # ("And so my fellow Americans" read as "エンソーマイフェルアメリカ" after noisy French read
    # as Japanese) and OpenAI's transcribe drops it only from the next window on.
    prompt_language: str | None = None


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
    # The kept segments' tokens with their timestamps: what the next window is conditioned on,
    # as OpenAI's transcribe does (a prompt without timestamps invites output without them).
    tokens: tuple[int, ...]
    duration: float  # seconds of real audio in the window
    fell_short: bool = False  # even the last temperature tried missed the quality thresholds
    hit_token_limit: bool = False  # the decode was cut at its token budget, not ended by the model
    # It had a pair of consecutive timestamps; without one its text is a single segment over the window.
    timestamped: bool = True

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def unreliable(self) -> bool:
        """Text to decode again rather than trust: it missed the quality thresholds, or it says
        a phrase twice back to back."""
        return self.fell_short or repeats_a_phrase(self.text)


@dataclass(frozen=True)
class Attempt:
    """One generate() at one temperature, best candidate."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    hit_token_limit: bool


@dataclass(frozen=True)
class Split:
    segments: tuple[Segment, ...]
    seek_frames: int
    kept_tokens: tuple[int, ...]  # the segments' tokens, timestamps included
    timestamped: bool  # the decode had a pair of consecutive timestamps


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
        same_language = options.prompt_language in (None, language)
        prompt = self.prompt(prompt_tokens if same_language else None, options.hotwords)
        attempt = self._generate_with_fallback(encoded, prompt + sot_sequence, options)
        silent = (
            options.no_speech_threshold is not None
            and attempt.no_speech_prob > options.no_speech_threshold
            and (options.log_prob_threshold is None or attempt.avg_logprob < options.log_prob_threshold)
        )
        if silent:
            return WindowDecode(
                language,
                language_prob,
                (),
                attempt.no_speech_prob,
                attempt.avg_logprob,
                attempt.temperature,
                True,
                content_frames,
                (),
                content_frames * HOP_SECONDS,
            )
        split = self._segments(attempt, content_frames, offset, language)
        segments = split.segments
        if options.word_timestamps and segments:
            segments = align_words(
                self.model, self.tokenizer, encoded, sot_sequence, segments, content_frames, offset, language
            )
            segments = tuple(s for s in segments if s.words)
        return WindowDecode(
            language,
            language_prob,
            segments,
            attempt.no_speech_prob,
            attempt.avg_logprob,
            attempt.temperature,
            False,
            split.seek_frames,
            split.kept_tokens,
            content_frames * HOP_SECONDS,
            falls_short(attempt.avg_logprob, attempt.no_speech_prob, attempt.compression_ratio, options),
            attempt.hit_token_limit,
            split.timestamped,
        )

    def prompt(self, prompt_tokens: list[int] | None, hotwords: str | None) -> list[int]:
        """<|startofprev|> hotwords, then the newest previous text, MAX_PROMPT_TOKENS in all
        (faster-whisper's order); nothing when there is neither."""
        hot = self.tokenizer.encode(" " + closed_text(hotwords))[:MAX_PROMPT_TOKENS] if hotwords else []
        room = MAX_PROMPT_TOKENS - len(hot)
        previous = list(prompt_tokens or [])[-room:] if room else []
        return [self.tokenizer.sot_prev, *hot, *previous] if hot or previous else []

    def _generate_with_fallback(self, encoded, prompt: list[int], options: DecodeOptions) -> Attempt:
        max_initial = int(round(options.max_initial_timestamp / SECONDS_PER_TIMESTAMP))
        # ctranslate2 counts the prompt in max_length and lets a decode write
        # min(max_length / 2, max_length - start_step) new tokens (src/models/whisper.cc): pick the
        # max_length that allows `budget`, OpenAI's 224 at most (fewer only past a 224-token prompt).
        start_step = len(prompt) - 1
        budget = min(options.max_new_tokens, N_TEXT_CTX // 2, N_TEXT_CTX - start_step)
        max_length = min(N_TEXT_CTX, max(2 * budget, start_step + budget))
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
                max_length=max_length,
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
            # ctranslate2 returns no end token: a decode as long as its budget was cut, not ended.
            attempt = Attempt(
                tokens, avg_logprob, float(result.no_speech_prob), temperature, ratio, len(tokens) >= budget
            )
            if not falls_short(avg_logprob, attempt.no_speech_prob, ratio, options):
                break
        return attempt

    def _segments(self, attempt: Attempt, content_frames: int, offset: float, language: str) -> Split:
        """Split tokens at pairs of consecutive timestamps and find the seek advance, as OpenAI's
        transcribe does: a window ending on a single timestamp has no speech after it (the whole
        window is consumed); otherwise the unfinished piece after the last pair is dropped and the
        seek goes to that pair, so the next window decodes it again. A window with no pair at all
        is one segment up to its last timestamp (or its end) and is consumed whole."""
        tokens, tb = attempt.tokens, self.tokenizer.timestamp_begin
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
                    no_speech_prob=attempt.no_speech_prob,
                    avg_logprob=attempt.avg_logprob,
                    compression_ratio=attempt.compression_ratio,
                    temperature=attempt.temperature,
                    language=language,
                )
            )
        kept = tuple(t for _, _, piece in pieces for t in piece)
        return Split(tuple(segments), max(1, min(seek_frames, content_frames)), kept, bool(cuts))
