"""Record the word-timed hypotheses Whisper base gives the daemon's captioner on a shared file,
for the captioner tests to replay without the model (tests/test_stream_captioner.py).

The captioner runs at the daemon's defaults on the virtual clock of stream_replay.py, once per
schedule: decodes that cost nothing, the same with 2 s of silence after the file, and decodes
that cost DECODE_SECONDS each (the windows a real-time daemon on one core asks for). Every
window any of them asked for is stored with its hypothesis, keyed "start-end" in seconds.

    PYTHONPATH=tests python -m tools.record_hypotheses jfk.flac tests/data/jfk_stream_hypotheses.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from npustream import log
from npustream.asr.audio import SAMPLE_RATE, load_audio
from npustream.asr.recognizer import Recognizer, RecognizerConfig
from npustream.stream.captioner import Captioner
from npustream.stream.config import StreamConfig
from tools.stream_replay import BLOCK_SECONDS, FixedCost, replay

AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "audio"
DECODE_SECONDS = 0.45  # about one decode of a streaming window on one core of this machine
PAD_SECONDS = 2.0


def window_key(offset: float, samples: int) -> str:
    return f"{offset:.2f}-{offset + samples / SAMPLE_RATE:.2f}"


class Recording:
    """A recognizer that keeps every window's hypothesis."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer, self.hypotheses = recognizer, {}

    def __getattr__(self, name):
        return getattr(self.recognizer, name)

    def decode_window(
        self, audio, *, offset=0.0, prompt=None, full_context_retry=True, language=None, prompt_language=None
    ):
        result = self.recognizer.decode_window(
            audio, offset=offset, prompt=prompt, full_context_retry=full_context_retry, language=language
        )
        self.hypotheses[window_key(offset, len(audio))] = {
            "unreliable": result.unreliable,
            "silence": result.skipped_as_silence,
            "language": result.language,
            "segments": [[[w.start, w.end, w.word, w.probability] for w in s.words] for s in result.segments],
        }
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a file in shared/audio")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    log.configure("warning")
    cfg = StreamConfig(source="sample")
    recording = Recording(
        Recognizer(
            RecognizerConfig(language=cfg.language, beam_size=cfg.beam_size, threads=1, word_timestamps=True,
                             context=cfg.context, fallback=False)
        )
    )  # fmt: skip
    audio = load_audio(AUDIO / args.file)
    padded = np.concatenate([audio, np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.float32)])
    for samples, clock in ((audio, None), (padded, None), (audio, FixedCost(recording, DECODE_SECONDS))):
        events = replay(samples, Captioner(clock or recording, cfg), clock=clock)
        print(" ".join(e.text for _, e in events if e.kind == "final" and e.text))
    document = {
        "file": args.file,
        "block_seconds": BLOCK_SECONDS,
        "decode_seconds": DECODE_SECONDS,
        "config": "StreamConfig defaults; decodes free (the file alone and followed by 2 s of silence) "
        f"and costing {DECODE_SECONDS} s each",
        "hypotheses": recording.hypotheses,
    }
    args.out.write_text(json.dumps(document, indent=0))
    print(f"{len(recording.hypotheses)} hypotheses -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
