"""Files of any length: OpenAI's seek loop over windows of at most 30 s, reading the file block
by block so memory stays bounded.

Contract:
- Windows are clipped at speech pauses (as OpenAI's `clip_timestamps`, with the clips found by
  silero VAD): a window never decodes across a pause of CLIP_PAUSE_SECONDS or more, and the seek
  jumps over such pauses to just before the next speech. Each window therefore holds one
  stretch of speech, and, when no language is given, is decoded in its own detected language.
- Within a clip the seek advances as OpenAI's transcribe does (see WhisperDecoder._segments).
- Every second of the file is counted once in `Transcript.coverage`: decoded, skipped as
  non-speech, or untranscribed (speech the model gave no text for, or a part that could not be
  read). A read error mid-file keeps what was decoded before it and is reported in `error`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npustream import log
from npustream.asr.audio import N_SAMPLES, SAMPLE_RATE, stream_audio
from npustream.asr.decoder import DecodeOptions, WindowDecode
from npustream.asr.recognizer import Recognizer
from npustream.asr.vad import VoiceActivity
from npustream.errors import AudioError
from npustream.types import Coverage, Segment, Transcript, closed_text

MIN_WINDOW_SAMPLES = 160  # one mel frame: less than this is not worth a window
# Silero VAD speech shorter than this is noise: Whisper would only hallucinate on it, so it
# costs no model work and gives no text.
MIN_SPEECH_SECONDS = 0.1
# A pause this long ends a clip. Sentences inside a paragraph are rarely further apart; a change
# of speaker or language usually is (VAD measures 1.0-1.1 s inside the shared JFK clip, 1.7 s
# at the French/English switch of fr_en_switch.flac).
CLIP_PAUSE_SECONDS = 1.5
CLIP_PAD_SECONDS = 0.5  # audio kept before the first and after the last speech of a clip
PROMPT_RESET_TEMPERATURE = 0.5  # after a high-temperature fallback, stop conditioning on it
# A decode with no timestamp pair over a window longer than this is one long segment; when it
# was conditioned on earlier text it is done again without that prompt (which is what usually
# makes Whisper leave the timestamps out).
UNSEGMENTED_RETRY_SECONDS = 10.0
logger = log.get(__name__)


@dataclass(frozen=True)
class Clip:
    start: float  # seconds: where the window starts (speech onset minus the pad)
    end: float  # where it ends (a long pause, or the end of the audio read so far)


def plan_clip(activity: VoiceActivity, t0: float, t1: float) -> Clip | None:
    """The first stretch of speech in [t0, t1), padded, up to the first long pause; None if the
    VAD hears no speech there (blips shorter than MIN_SPEECH_SECONDS are noise)."""
    regions = [r for r in activity.regions(t0, t1) if r.end - r.start >= MIN_SPEECH_SECONDS]
    if not regions:
        return None
    start = max(t0, regions[0].start - CLIP_PAD_SECONDS)
    end = t1
    for a, b in zip(regions, [*regions[1:], None]):
        gap_end = b.start if b else t1
        if gap_end - a.end >= CLIP_PAUSE_SECONDS:
            end = min(t1, a.end + CLIP_PAD_SECONDS)
            break
    return Clip(start, end)


class _Tally:
    """Samples by where they went; each sample is counted once, when the seek passes it."""

    def __init__(self) -> None:
        self.decoded = self.skipped = self.untranscribed = 0

    def coverage(self, unread_seconds: float) -> Coverage:
        return Coverage(
            decoded=round(self.decoded / SAMPLE_RATE, 3),
            skipped=round(self.skipped / SAMPLE_RATE, 3),
            untranscribed=round(self.untranscribed / SAMPLE_RATE + unread_seconds, 3),
        )


def transcribe_file(
    recognizer: Recognizer,
    path: str | Path,
    *,
    initial_prompt: str | None = None,
    condition_on_previous_text: bool = True,
    vad: bool = True,
    on_progress: Callable[[float, float], None] | None = None,
) -> Transcript:
    blocks, total_seconds = stream_audio(path)
    activity = VoiceActivity() if vad else None
    options = recognizer.options
    prompt_tokens = recognizer.tokenizer.encode(" " + closed_text(initial_prompt)) if initial_prompt else []
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # absolute sample index of buffer[0]; also the seek point
    end_of_file = False
    read_error: str | None = None
    segments: list[Segment] = []
    tally = _Tally()
    prompt_language = options.language  # the language prompt_tokens were read in (None: not known)
    while True:
        while not end_of_file and len(buffer) < N_SAMPLES:
            try:
                block = next(blocks, None)
            except AudioError as exc:  # corrupt past here: caption what came before, then report
                read_error, block = str(exc), None
            if block is None:
                end_of_file = True
            else:
                buffer = np.concatenate([buffer, block])
                if activity:
                    activity.push(block)
        if len(buffer) < MIN_WINDOW_SAMPLES:
            tally.skipped += len(buffer)
            break
        start = buffer_start / SAMPLE_RATE
        length = min(len(buffer), N_SAMPLES)
        result: WindowDecode | None = None
        if activity:
            clip = plan_clip(activity, start, start + length / SAMPLE_RATE)
            if clip is None:
                advance = length
            elif (lead := round((clip.start - start) * SAMPLE_RATE)) >= MIN_WINDOW_SAMPLES:
                advance = lead  # silence before the speech: skip it, then read a full window from there
            else:
                length = max(MIN_WINDOW_SAMPLES, round((clip.end - start) * SAMPLE_RATE))
                result = _decode(recognizer, buffer[:length], start, prompt_tokens, prompt_language, options)
        else:
            result = _decode(recognizer, buffer[:length], start, prompt_tokens, prompt_language, options)
        if result is None:
            tally.skipped += advance
        else:
            advance = result.seek_frames * 160
            if result.segments:
                tally.decoded += advance
                segments.extend(result.segments)
            elif activity and not result.skipped_as_silence:
                tally.untranscribed += advance  # the VAD heard speech, the model wrote nothing
                logger.warning(
                    "no_text_for_speech", start=round(start, 2), seconds=round(advance / SAMPLE_RATE, 2)
                )
            else:
                tally.skipped += advance
            reset = (
                not condition_on_previous_text
                or result.temperature > PROMPT_RESET_TEMPERATURE
                or prompt_language not in (None, result.language)  # no other language's text
            )
            prompt_tokens = [] if reset else prompt_tokens + list(result.tokens)
            prompt_language = result.language
        buffer, buffer_start = buffer[advance:], buffer_start + advance
        if on_progress:
            on_progress(min(buffer_start / SAMPLE_RATE, total_seconds), total_seconds)
    unread = max(0.0, total_seconds - buffer_start / SAMPLE_RATE) if read_error else 0.0
    return Transcript(
        language=_main_language(segments, options.language),
        duration=round(total_seconds, 3),
        segments=tuple(segments),
        coverage=tally.coverage(unread),
        error=read_error,
    )


def _decode(
    recognizer: Recognizer,
    window: np.ndarray,
    start: float,
    prompt_tokens: list[int],
    prompt_language: str | None,
    options: DecodeOptions,
) -> WindowDecode:
    result = recognizer.decode_window(
        window,
        offset=start,
        prompt_tokens=prompt_tokens or None,
        prompt_language=prompt_language,
        options=options,
    )
    long_or_cut = result.duration > UNSEGMENTED_RETRY_SECONDS or result.hit_token_limit
    prompted = bool(prompt_tokens) and prompt_language in (None, result.language)  # (else left out)
    if prompted and not result.timestamped and long_or_cut:
        retry = recognizer.decode_window(window, offset=start, options=options)
        logger.info(
            "decoded_again_without_prompt",
            start=round(start, 2),
            hit_token_limit=result.hit_token_limit,
            timestamped=result.timestamped,
            retry_timestamped=retry.timestamped,
        )
        if retry.segments and (retry.timestamped or not retry.hit_token_limit):
            return retry
    return result


def _main_language(segments: list[Segment], given: str | None) -> str:
    seconds: dict[str, float] = {}
    for s in segments:
        if s.language:
            seconds[s.language] = seconds.get(s.language, 0.0) + s.end - s.start
    return max(seconds, key=seconds.get) if seconds else (given or "en")
