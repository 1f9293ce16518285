"""`npustream subscribe --format srt|vtt|txt|json --output FILE`: live transcript files.

One caption source (the real Publisher without a model, tests/caption_source.py) and four
subscribe processes, one per format. After every final caption each file is read back with a
real parser (srt's strict parser, webvtt-py) and must hold exactly the finals so far: valid
at every moment, partials never written. Then a subscriber is killed with SIGKILL mid-stream
(its file stays valid), and the daemon is replaced by another (--follow: the next stream's
captions continue the timeline).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import srt
import webvtt
from caption_source import CaptionSource

FINALS = [
    ("Hello there.", 0.5, 1.4),
    ("This line has <b>markup</b> & an arrow --> in it.", 2.0, 4.2),
    ("Third caption.", 5.0, 5.8),
]
PARTIALS = ["Hello th", "This line has", "Third"]


def start_subscriber(pub: str, ctl: str, fmt: str, path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "npustream",
            "subscribe",
            "--endpoint",
            pub,
            "--ctl",
            ctl,
            "--format",
            fmt,
            "--output",
            str(path),
            "--follow",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def srt_texts(path: Path) -> list[str]:
    return [c.content for c in srt.parse(path.read_text(encoding="utf-8"), ignore_errors=False)]


def vtt_texts(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    captions = webvtt.from_string(text, strict=True)
    blocks = [b for b in text.split("\n\n")[1:] if b.strip()]
    assert len(captions) == len(blocks), f"a cue webvtt-py could not parse: {text!r}"
    return [c.text for c in captions]


def txt_texts(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def json_texts(path: Path) -> list[str]:
    messages = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {m["type"] for m in messages} <= {"caption.final", "status"}
    return [m["text"] for m in messages if m["type"] == "caption.final"]


READERS = {"srt": srt_texts, "vtt": vtt_texts, "txt": txt_texts, "json": json_texts}
# What each format shows of a caption's text: vtt escapes markup, srt and txt take "-->" out.
SHOWN = {
    "srt": lambda t: t.replace("-->", "->"),
    "txt": lambda t: t.replace("-->", "->"),
    "vtt": lambda t: t.replace("-->", "->").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    "json": lambda t: t,
}


def wait_for(read, path: Path, count: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    texts: list[str] = []
    while time.monotonic() < deadline:
        if path.exists():
            texts = read(path)
            if len(texts) >= count:
                return texts
        time.sleep(0.05)
    raise AssertionError(f"{path.name}: {count} captions expected within {timeout:g} s, have {texts!r}")


def finish(proc: subprocess.Popen) -> str:
    try:
        return proc.communicate(timeout=20)[1].decode()
    except subprocess.TimeoutExpired:
        proc.kill()
        return "ignored SIGINT for 20 s: " + proc.communicate()[1].decode()


def test_live_transcript_files_are_valid_after_every_caption(tmp_path):
    pub, ctl = f"ipc://{tmp_path}/captions.sock", f"ipc://{tmp_path}/control.sock"
    source = CaptionSource(pub, ctl).start()
    paths = {fmt: tmp_path / f"live.{fmt}" for fmt in READERS}
    procs = {fmt: start_subscriber(pub, ctl, fmt, path) for fmt, path in paths.items()}
    try:
        for n, ((text, start, end), partial) in enumerate(zip(FINALS, PARTIALS), start=1):
            source.partial(partial, start, start + 0.3)
            source.final(text, start, end)
            for fmt, path in paths.items():
                got = wait_for(READERS[fmt], path, n)
                assert got == [SHOWN[fmt](t) for t, _, _ in FINALS[:n]], fmt
        for fmt, path in paths.items():  # partials never reach a file
            assert "Hello th\n" not in path.read_text() and "This line has\n" not in path.read_text(), fmt
        cues = list(srt.parse(paths["srt"].read_text()))
        assert [(c.start.total_seconds(), c.end.total_seconds()) for c in cues] == [
            (s, e) for _, s, e in FINALS
        ]

        # SIGKILL: no chance to close anything; what was written stays valid.
        procs["srt"].send_signal(signal.SIGKILL)
        procs["srt"].wait(10)
        assert srt_texts(paths["srt"]) == [SHOWN["srt"](t) for t, _, _ in FINALS]

        # A restarted daemon: the same files go on, later on the same timeline.
        first_start = source.stream_start
        source.stop()
        time.sleep(0.5)
        source = CaptionSource(pub, ctl, stream_start=first_start + 10.0).start()  # 10 s later
        source.final("After the restart.", 0.2, 0.9)
        for fmt in ("vtt", "txt", "json"):
            assert wait_for(READERS[fmt], paths[fmt], len(FINALS) + 1)[-1] == "After the restart.", fmt
        last = list(webvtt.from_string(paths["vtt"].read_text(), strict=True))[-1]
        assert (last.start, last.end) == ("00:00:10.200", "00:00:10.900")
    finally:
        source.stop()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        errors = {fmt: finish(proc) for fmt, proc in procs.items()}
    for fmt in ("vtt", "txt", "json"):
        assert procs[fmt].returncode == 0, errors[fmt]
    assert paths["txt"].read_text().endswith("After the restart.\n")


def test_an_existing_transcript_is_never_overwritten(tmp_path):
    path = tmp_path / "keep.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\nkeep me\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "npustream",
            "subscribe",
            "--format",
            "srt",
            "--output",
            str(path),
            "--endpoint",
            f"ipc://{tmp_path}/none.sock",
            "--ctl",
            f"ipc://{tmp_path}/none-ctl.sock",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"npustream: error: {path} exists and is not empty: name a new file "
        "(a transcript is never overwritten)"
    ]
    assert path.read_text() == "1\n00:00:00,000 --> 00:00:01,000\nkeep me\n"


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_no_daemon_is_one_error_line_and_no_file(tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "npustream",
            "subscribe",
            "--format",
            fmt,
            "--output",
            str(path),
            "--timeout",
            "0.5",
            "--endpoint",
            f"ipc://{tmp_path}/none.sock",
            "--ctl",
            f"ipc://{tmp_path}/none-ctl.sock",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no npustream daemon" in proc.stderr
    assert not path.exists()
