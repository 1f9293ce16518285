"""Files of any length: sequential 30 s windows that advance by the last complete segment,
as OpenAI's transcribe does, reading the file block by block so memory stays bounded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from npustream.asr.audio import N_SAMPLES, SAMPLE_RATE, stream_audio
from npustream.asr.recognizer import Recognizer
from npustream.asr.vad import VoiceActivity
from npustream.types import Segment, Transcript

MIN_WINDOW_SAMPLES = 160  # one mel frame: less than this is not worth a window
# A window with less speech than this (silero VAD) is noise or silence: Whisper would only
# hallucinate on it, so it costs no model work and gives no text.
MIN_SPEECH_SECONDS = 0.1
PROMPT_RESET_TEMPERATURE = 0.5  # after a high-temperature fallback, stop conditioning on it


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
    prompt_tokens = recognizer.tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # absolute sample index of buffer[0]; also the seek point
    end_of_file = False
    segments: list[Segment] = []
    language = options.language
    while True:
        while not end_of_file and len(buffer) < N_SAMPLES:
            block = next(blocks, None)
            if block is None:
                end_of_file = True
            else:
                buffer = np.concatenate([buffer, block])
                if activity:
                    activity.push(block)
        if len(buffer) < MIN_WINDOW_SAMPLES:
            break
        window = buffer[:N_SAMPLES]
        start = buffer_start / SAMPLE_RATE
        if activity and activity.speech_in(start, start + len(window) / SAMPLE_RATE) < MIN_SPEECH_SECONDS:
            advance = len(window)
        else:
            result = recognizer.decode_window(
                window, offset=start, prompt_tokens=prompt_tokens or None, options=options
            )
            if language is None:  # detected on the first window with speech, then kept for the file
                language = result.language
                options = replace(options, language=language)
            segments.extend(result.segments)
            advance = result.seek_frames * 160
            if condition_on_previous_text:
                reset = result.temperature > PROMPT_RESET_TEMPERATURE
                prompt_tokens = [] if reset else prompt_tokens + list(result.tokens)
        buffer, buffer_start = buffer[advance:], buffer_start + advance
        if on_progress:
            on_progress(min(buffer_start / SAMPLE_RATE, total_seconds), total_seconds)
    return Transcript(language=language or "en", duration=round(total_seconds, 3), segments=tuple(segments))
