"""The streaming peer: whisper_streaming's published policy on faster-whisper, per-word timed.

    PYTHONPATH=.:tests python bench/peer_whisper_streaming.py FILE [--threads N] [--min-chunk 1]

Prints one JSON line: final-word latencies of the computation-aware run (the real clock) and of
the computation-unaware lower bound, the committed text, CPU share and the machine's load.

Algorithm: ufal/whisper_streaming, whisper_online.py (read at commit 4657465b2fe6, not copied):
  - HypothesisBuffer, LocalAgreement-2: a word is committed when two consecutive decodes of the
    growing audio buffer agree on it (the longest common prefix of the last two hypotheses);
    words at or before the last committed time are dropped from a new hypothesis, and a 1-5 word
    n-gram repeating the end of the committed text is removed from its head;
  - OnlineASRProcessor: the audio buffer grows by every chunk; each call decodes all of it with a
    prompt of the last <= 200 characters of committed text that lies before the buffer; when the
    buffer passes 15 s it is cut at the end of the latest Whisper segment that is already
    committed ("segment" trimming, upstream's default);
  - the simulation: a chunk is at least 1 s (--min-chunk-size); computation-aware (upstream's
    default) means the next chunk is all audio that arrived while the previous decode ran, on the
    real clock; computation-unaware (--comp_unaware) stops the clock during decodes, which gives
    the policy's lower bound; the last hypothesis is flushed when the audio ends.
  - FasterWhisperASR backend: beam 5, word timestamps, condition_on_previous_text, no VAD
    (upstream's defaults), language detected on every call (upstream's --lan auto).
Differences from upstream: the model is our CTranslate2 Whisper base directory, loaded with
local_files_only on the CPU with int8 weights (upstream's CPU choice; its code defaults to CUDA
float16) on as many decoder threads as our daemon uses (cores - 1); the audio is our own loader's
16 kHz float32 (upstream uses librosa); a word's latency is the time it was committed minus the
time its end (the model's word timestamp) was spoken, where upstream prints one line per commit.
Upstream's 1 s warm-up decode is kept.
For scale, upstream's README (quoting its paper, Machacek, Dabre, Bojar, IJCNLP-AACL 2023 demo)
reports 3.3 s latency on an unsegmented long-form transcription test set, with its default model
(large-v2) on the paper's hardware; here it is base on one CPU core.

Why not whisperlivekit (0.2.26, the issue's first choice): its wheel's METADATA makes torch>=2.0.0
and torchaudio>=2.0.0 hard requirements (with fastapi, uvicorn, librosa, tiktoken, ...). Here pip
resolves plain torch to 2.14.1, a CUDA build that pulls cuda-toolkit and nvidia-* wheels (cuBLAS
423 MB, cuDNN 553 MB, NCCL 216 MB, ... about 5.5 GB installed); CPU-only builds live on PyTorch's
own index, which this machine cannot reach. One CPU build is on local disk (torch 2.13.0+cpu) and
torchaudio 2.11.1 only asks torch>=2.11, so an install pinned to it may work: not tried. Even
installed, its in-process TestHarness records front-end states (lines with h:mm:ss times and the
committed text), not the time each word was committed, so the per-word metric needs a hook into
its internals; its reading of files other than wav/flac goes through ffmpeg (not installed). Its
local_agreement backend is a descendant of the whisper_streaming code implemented here.

The HypothesisBuffer and OnlineProcessor need only numpy; faster-whisper is imported by
FasterWhisperASR alone (a bench extra, never a runtime dependency of npustream).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000  # Hz, Whisper's
MIN_CHUNK = 1.0  # s, upstream's --min-chunk-size default
TRIM_SECONDS = 15.0  # s, upstream's --buffer_trimming_sec default ("segment" trimming)
PROMPT_CHARS = 200  # upstream's prompt size: committed text before the buffer, in characters
NGRAM_MAX = 5  # words: the longest repeat of committed text removed from a new hypothesis's head
BEAM_SIZE = 5  # upstream FasterWhisperASR's beam


@dataclass(frozen=True)
class Word:
    start: float  # s, in the stream
    end: float  # s, in the stream
    text: str  # as the decoder spelled it, leading space included (faster-whisper's convention)


@dataclass(frozen=True)
class Hypothesis:
    words: list[Word]  # times relative to the decoded buffer's start
    segment_ends: list[float]  # s, relative: where Whisper ended each segment


class ASR(Protocol):
    def transcribe(self, audio: np.ndarray, prompt: str) -> Hypothesis: ...


class HypothesisBuffer:
    """LocalAgreement-2 over successive hypotheses of one growing audio buffer."""

    def __init__(self) -> None:
        self.committed_in_buffer: list[Word] = []  # committed words still inside the audio buffer
        self.previous: list[Word] = []  # the last hypothesis's uncommitted tail
        self.incoming: list[Word] = []
        self.last_committed_end = 0.0  # s

    def insert(self, words: list[Word], offset: float) -> None:
        """Take a new hypothesis (times relative to offset): keep the words after the committed text."""
        shifted = [Word(w.start + offset, w.end + offset, w.text) for w in words]
        self.incoming = [w for w in shifted if w.start > self.last_committed_end - 0.1]
        if not self.incoming or not self.committed_in_buffer:
            return
        if abs(self.incoming[0].start - self.last_committed_end) >= 1:
            return
        # The decoder often repeats the committed words next to the cut: drop the shortest repeat.
        longest = min(len(self.committed_in_buffer), len(self.incoming), NGRAM_MAX)
        for n in range(1, longest + 1):
            committed_tail = [w.text for w in self.committed_in_buffer[-n:]]
            if committed_tail == [w.text for w in self.incoming[:n]]:
                del self.incoming[:n]
                break

    def flush(self) -> list[Word]:
        """Commit the common prefix of the previous and the new hypothesis; return it."""
        agreed = 0
        while (
            agreed < min(len(self.incoming), len(self.previous))
            and self.incoming[agreed].text == self.previous[agreed].text
        ):
            agreed += 1
        commit = self.incoming[:agreed]
        if commit:
            self.last_committed_end = commit[-1].end
        self.previous = self.incoming[agreed:]
        self.incoming = []
        self.committed_in_buffer.extend(commit)
        return commit

    def pop_committed(self, until: float) -> None:
        """Forget committed words that end by `until` (the audio buffer was cut there)."""
        self.committed_in_buffer = [w for w in self.committed_in_buffer if w.end > until]

    def complete(self) -> list[Word]:
        """The uncommitted tail of the last hypothesis."""
        return self.previous


class OnlineProcessor:
    """whisper_streaming's OnlineASRProcessor with segment trimming: audio in, committed words out."""

    def __init__(self, asr: ASR, trim_seconds: float = TRIM_SECONDS) -> None:
        self.asr = asr
        self.trim_seconds = trim_seconds
        self.audio = np.zeros(0, dtype=np.float32)
        self.offset = 0.0  # s: the stream time of the audio buffer's first sample
        self.hypotheses = HypothesisBuffer()
        self.committed: list[Word] = []

    def insert_audio(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, samples.astype(np.float32, copy=False)])

    def prompt(self) -> str:
        """The last <= PROMPT_CHARS characters of committed words before the buffer (whole words)."""
        before = sum(1 for w in self.committed if w.end <= self.offset)
        before = min(before, max(0, len(self.committed) - 1))  # upstream never prompts the last word
        chosen: list[str] = []
        length = 0
        for w in reversed(self.committed[:before]):
            if length >= PROMPT_CHARS:
                break
            chosen.append(w.text)
            length += len(w.text) + 1
        return "".join(reversed(chosen))

    def process(self) -> list[Word]:
        """Decode the whole buffer once; the words this decode committed."""
        hypothesis = self.asr.transcribe(self.audio, self.prompt())
        self.hypotheses.insert(hypothesis.words, self.offset)
        commit = self.hypotheses.flush()
        self.committed.extend(commit)
        if len(self.audio) / SAMPLE_RATE > self.trim_seconds:
            self.trim_at_segment(hypothesis.segment_ends)
        return commit

    def trim_at_segment(self, segment_ends: list[float]) -> None:
        """Cut the buffer at the latest segment end (the last segment excluded) that is committed."""
        if not self.committed:
            return
        cuts = [self.offset + e for e in segment_ends[:-1] if self.offset + e <= self.committed[-1].end]
        if cuts:
            self.cut(max(cuts))

    def cut(self, at: float) -> None:
        self.hypotheses.pop_committed(at)
        self.audio = self.audio[int((at - self.offset) * SAMPLE_RATE) :]
        self.offset = at

    def finish(self) -> list[Word]:
        """The audio has ended: the last hypothesis's uncommitted words, flushed as they are."""
        tail = list(self.hypotheses.complete())
        self.committed.extend(tail)
        return tail


@dataclass
class Run:
    """Each emitted word with the stream time it was emitted at (s from the first sample's arrival)."""

    emitted: list[tuple[float, Word]] = field(default_factory=list)
    decode_seconds: list[float] = field(default_factory=list)  # wall time of each decode
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def latencies(self) -> list[float]:
        return [at - w.end for at, w in self.emitted]

    def text(self) -> str:
        return "".join(w.text for _, w in self.emitted).strip()


def simulate(audio: np.ndarray, asr: ASR, computation_aware: bool, min_chunk: float = MIN_CHUNK) -> Run:
    """Feed audio to a fresh OnlineProcessor as whisper_streaming's simulation does.

    computation_aware: the real clock runs during decodes, so the next chunk is all the audio that
    arrived meanwhile (at least min_chunk). Otherwise the clock stops during decodes: every chunk is
    min_chunk and a word is emitted at the end of the chunk that committed it (the lower bound).
    """
    online, run = OnlineProcessor(asr), Run()
    duration = len(audio) / SAMPLE_RATE
    started, cpu_started = time.monotonic(), time.process_time()

    def clock() -> float:
        return time.monotonic() - started

    sent = 0.0
    while sent < duration:
        if computation_aware:
            time.sleep(max(0.0, sent + min_chunk - clock()))
            until = min(clock(), duration)
        else:
            until = min(sent + min_chunk, duration)
        online.insert_audio(audio[int(sent * SAMPLE_RATE) : int(until * SAMPLE_RATE)])
        sent = until
        decode_started = time.monotonic()
        commit = online.process()
        run.decode_seconds.append(time.monotonic() - decode_started)
        now = clock() if computation_aware else until
        run.emitted += [(now, w) for w in commit]
    now = clock() if computation_aware else duration
    run.emitted += [(now, w) for w in online.finish()]
    run.cpu_seconds, run.wall_seconds = time.process_time() - cpu_started, time.monotonic() - started
    return run


class FasterWhisperASR:
    """A local CTranslate2 Whisper directory through faster-whisper, with upstream's decode options."""

    def __init__(self, model_dir: Path, threads: int, compute_type: str = "int8") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel  # the bench extra: only this class needs it

        self.model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
        )

    def transcribe(self, audio: np.ndarray, prompt: str) -> Hypothesis:
        # An empty prompt is passed too, as upstream does: faster-whisper then prompts with a lone space.
        segments, _info = self.model.transcribe(
            audio, language=None, initial_prompt=prompt, beam_size=BEAM_SIZE, word_timestamps=True,
            condition_on_previous_text=True, vad_filter=False,
        )  # fmt: skip
        segments = list(segments)
        words = [Word(float(w.start), float(w.end), w.word) for s in segments for w in s.words or ()]
        return Hypothesis(words, [float(s.end) for s in segments])


def measure(path: Path, model_dir: Path, threads: int, min_chunk: float = MIN_CHUNK) -> dict:
    """Both runs on one file; the figures bench_stream reports (latencies in s)."""
    from npustream.asr.audio import load_audio

    audio = load_audio(path)
    asr = FasterWhisperASR(model_dir, threads)
    asr.transcribe(audio[:SAMPLE_RATE], "")  # upstream's warm-up: the first decode is the slowest
    load_before = os.getloadavg()[0]
    aware = simulate(audio, asr, computation_aware=True, min_chunk=min_chunk)
    load_after = os.getloadavg()[0]
    bound = simulate(audio, asr, computation_aware=False, min_chunk=min_chunk)
    return {
        "name": f"whisper_streaming LocalAgreement-2, faster-whisper beam {BEAM_SIZE}, {min_chunk:g} s "
        f"chunks, {threads} decoder thread(s)",
        "text": aware.text(),
        "latencies": aware.latencies(),
        "bound": bound.latencies(),
        "bound_text": bound.text(),
        "decodes": len(aware.decode_seconds),
        "decode_seconds_median": statistics.median(aware.decode_seconds),
        "cpu_share": aware.cpu_seconds / aware.wall_seconds,
        "wall_seconds": aware.wall_seconds,
        "duration": len(audio) / SAMPLE_RATE,
        "load": [round(load_before, 2), round(load_after, 2)],
    }


def main() -> int:
    from npustream import log
    from npustream.model.store import resolve_model_dir
    from npustream.stream.config import StreamConfig

    log.configure("warning")  # on stderr: stdout carries the JSON line alone

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the daemon's model")
    parser.add_argument("--threads", type=int, default=StreamConfig().decode_threads, help="the daemon's")
    parser.add_argument("--min-chunk", type=float, default=MIN_CHUNK)
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file}: no such file")
    if importlib.util.find_spec("faster_whisper") is None:
        parser.error("faster-whisper is not installed (the bench extra: pip install -e '.[bench]')")
    model_dir = resolve_model_dir(args.model_dir or StreamConfig().model_dir)
    json.dump(measure(args.file, model_dir, args.threads, args.min_chunk), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
