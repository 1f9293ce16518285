"""`npustream transcribe FILE`: timestamped text from an audio file, on stdout."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("txt", "srt", "vtt", "json")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that runs the model shares (transcribe, run)."""
    from npustream.engines import ENGINE_NAMES

    parser.add_argument("--engine", choices=ENGINE_NAMES, default="cpu", help="encoder engine (default: cpu)")
    parser.add_argument(
        "--model-dir",
        default=None,
        help="a CTranslate2 Whisper model directory (default: the packaged Whisper base)",
    )
    parser.add_argument(
        "--compute-type",
        default="int8",
        choices=("int8", "float32"),
        help="ctranslate2 compute type for the decoder and the cpu encoder",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--language", default=None, help="language code, e.g. en (default: detect)")
    parser.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    parser.add_argument("--beam-size", type=int, default=5, help="1 for greedy search")


def register(sub) -> None:
    parser = sub.add_parser("transcribe", help="transcribe an audio file")
    parser.add_argument("file", help="wav, flac, ogg or mp3")
    parser.add_argument("--format", choices=FORMATS, default="txt")
    parser.add_argument("--word-timestamps", action="store_true")
    parser.add_argument(
        "--prompt",
        "--initial-prompt",
        dest="prompt",
        default=None,
        metavar="TEXT",
        help="text to condition the first window on (OpenAI's initial_prompt), e.g. the "
        "topic and its vocabulary spelled as they should be",
    )
    parser.add_argument(
        "--hotwords",
        default=None,
        metavar='"A, B"',
        help="terms to prefer in every window (faster-whisper's hotwords), e.g. product names",
    )
    parser.add_argument(
        "--no-vad",
        dest="vad",
        action="store_false",
        help="decode windows that silero VAD hears no speech in (default: skip them)",
    )
    add_model_options(parser)
    parser.set_defaults(handler=handle, default_log_level="warning")


def handle(args: argparse.Namespace) -> int:
    from npustream.asr.audio import stream_audio
    from npustream.asr.recognizer import Recognizer, RecognizerConfig
    from npustream.progress import Progress
    from npustream.transcribe.formats import render
    from npustream.transcribe.transcriber import transcribe_file

    stream_audio(args.file)  # fail on unusable audio before the model loads
    recognizer = Recognizer(
        RecognizerConfig(
            model_dir=args.model_dir,
            engine=args.engine,
            compute_type=args.compute_type,
            threads=args.threads,
            language=args.language,
            task=args.task,
            beam_size=args.beam_size,
            word_timestamps=args.word_timestamps,
            hotwords=args.hotwords,
        )
    )
    progress = None

    def on_progress(done: float, total: float) -> None:
        nonlocal progress
        if total > 30.0:  # longer than one window
            progress = progress or Progress("transcribing", total)
            progress.update(done)

    transcript = transcribe_file(
        recognizer, args.file, initial_prompt=args.prompt, vad=args.vad, on_progress=on_progress
    )
    if progress:
        progress.close()
    sys.stdout.write(render(transcript, args.format))
    return 0
