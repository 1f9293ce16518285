"""The daemon's parts on their own: ring buffer, window, commit policy, config, control
protocol, wire messages, caption rendering. Fast; real data, no model."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from npustream.errors import ConfigError
from npustream.protocol import control, endpoints, messages
from npustream.render import CaptionPrinter, TranscriptWriter
from npustream.stream import config
from npustream.stream.capture.ring import RingBuffer
from npustream.stream.commit import CommitPolicy, cut_repetition
from npustream.stream.windows import AudioWindow
from npustream.types import MARKS, CaptionEvent, Word, join_text


def words(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    return [Word(start + i * step, start + (i + 1) * step, " " + w, 0.9) for i, w in enumerate(text.split())]


def texts(ws) -> str:
    return "".join(w.word for w in ws).strip()


# -- ring buffer ---------------------------------------------------------------------------
def test_ring_wraps_and_keeps_order():
    ring = RingBuffer(10)
    ring.write(np.arange(7, dtype=np.float32))
    assert ring.read(5).tolist() == [0, 1, 2, 3, 4]
    ring.write(np.arange(7, 13, dtype=np.float32))  # wraps past the end of storage
    assert ring.read().tolist() == [5, 6, 7, 8, 9, 10, 11, 12]
    assert ring.dropped == 0


def test_ring_overflow_drops_the_oldest_and_counts_it():
    ring = RingBuffer(8)
    ring.write(np.arange(5, dtype=np.float32))
    ring.write(np.arange(5, 12, dtype=np.float32))  # 12 written, room for 8: 0..3 are lost
    assert ring.read().tolist() == list(range(4, 12))
    assert ring.dropped == 4
    ring.write(np.arange(100, 130, dtype=np.float32))  # one write larger than the ring
    assert ring.read().tolist() == list(range(122, 130))
    assert ring.dropped == 4 + 22


def test_ring_concurrent_producer_never_splices_audio():
    """A producer thread writes a ramp as fast as it can into a small ring while the
    consumer reads: every block read must be a contiguous piece of the ramp, and what was
    read plus what was dropped must account for every sample written."""
    ring, total = RingBuffer(4096), 256 * 8000
    done = threading.Event()

    def produce():
        for start in range(0, total, 256):
            ring.write(np.arange(start, start + 256, dtype=np.float32))
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    got, last = 0, -1.0
    while not (done.is_set() and ring.available() == 0):
        block = ring.read(1000)
        if len(block):
            assert np.all(np.diff(block) == 1), "a read mixed audio from two laps of the ring"
            assert block[0] > last
            last = float(block[-1])
            got += len(block)
    thread.join()
    assert got + ring.dropped == total
    assert last == total - 1


# -- window ------------------------------------------------------------------------------
def test_window_times_follow_samples_through_trims_and_gaps():
    w = AudioWindow(10.0)
    w.append(np.arange(16000 * 3, dtype=np.float32))
    w.trim_to(1.25)
    assert (w.start, w.end) == (1.25, 3.0)
    assert w.audio()[0] == 20000  # the sample at 1.25 s is now first
    w.jump(2.0)  # 2 s never arrived
    assert (w.start, w.end, w.duration) == (5.0, 5.0, 0.0)
    with pytest.raises(ValueError, match="overflow"):
        w.append(np.zeros(w.room() + 1, dtype=np.float32))


# -- commit policy ------------------------------------------------------------------------
def test_local_agreement_commits_the_common_prefix_only():
    policy = CommitPolicy()
    first = policy.agree(words("a gold ring will"), [])
    assert first.final == [] and texts(first.tail) == "a gold ring will"
    second = policy.agree(words("a gold ring will please most"), words("a gold ring will"))
    assert texts(second.final) == "a gold ring will" and texts(second.tail) == "please most"
    # The third decode revises the tail: only what two hypotheses share becomes final.
    third = policy.agree(words("a gold ring will please mostly any"), words("a gold ring will please most"))
    assert texts(third.final) == "please" and texts(third.tail) == "mostly any"


def test_no_word_is_final_twice_even_when_timestamps_drift():
    policy = CommitPolicy()
    policy.commit_all(words("she saw a cat", 0.0))
    # The same audio decoded again, every timestamp 0.3 s later, plus one new word.
    again = policy.commit_all(words("she saw a cat in", 0.3))
    assert texts(again.final) == "in"
    assert again.final[0].start >= 2.0  # final times never go back


def test_an_echo_of_a_final_sentence_is_not_final_again():
    policy = CommitPolicy()
    policy.commit_all(words("a severe storm tore down the barn. she called his name many times.", 0.0))
    # The next window starts after it; Whisper repeats the prompt's last sentence as if new.
    echo = words("she called his name many times. when you hear the bell", 7.5)
    assert texts(policy.commit_all(echo).final) == "when you hear the bell"
    # Two consecutive hypotheses agreeing on the echo do not make it final either.
    policy = CommitPolicy()
    policy.commit_all(words("a severe storm tore down the barn. she called his name many times.", 0.0))
    before = words("she called his name many times. come", 14.0)
    assert (
        texts(policy.agree(words("she called his name many times. come quickly", 14.0), before).final)
        == "come"
    )


def test_a_word_said_again_is_pending_but_an_echo_of_it_is_not():
    # A call: "Hello?" is final; the next reading has it in place and then the other voice's
    # "Hello?" (sure of it): pending. Prompted with "Hello? Hello?", Whisper base read a third
    # "Hello?" of no length (p 0.35) after the two in place: an echo.
    policy = CommitPolicy()
    policy.commit_all([Word(6.54, 6.92, " Hello?", 0.8)])
    again = [Word(6.54, 6.92, " Hello?", 0.8), Word(7.3, 7.82, " Hello?", 0.9), Word(8.32, 8.44, " Oh,", 0.6)]
    assert texts(policy.pending(again)) == "Hello? Oh,"
    assert texts(policy.commit_first(again, 1).final) == "Hello?"
    echo = [
        Word(7.44, 7.84, " Hello?", 0.52),
        Word(8.08, 8.08, " Hello?", 0.35),
        Word(8.3, 8.48, " Oh,", 0.8),
    ]
    assert texts(policy.pending(echo)) == "Oh,"
    # Without the final word read in place, a repeat of it is the final word moved later.
    moved = [Word(7.9, 8.3, " Hello?", 0.9), Word(8.32, 8.44, " Oh,", 0.6)]
    assert texts(policy.pending(moved)) == "Oh,"


def test_a_final_word_heard_again_as_another_word_is_not_final_twice():
    # `make run` once read "asked ask not": "asked" became final, then the decode that heard
    # "what your country" read the same audio as "ask", aligned a little later.
    policy = CommitPolicy()
    policy.commit_all([Word(2.9, 3.3, " Americans", 0.9), Word(3.3, 3.62, " asked", 0.4)])
    again = [Word(2.9, 3.3, " Americans", 0.9), Word(3.36, 4.1, " ask", 0.5), Word(4.1, 4.38, " not", 0.8)]
    assert texts(policy.commit_all(again).final) == "not"
    # A new word right after the final one keeps its place, however its start is aligned.
    policy = CommitPolicy()
    policy.commit_all([Word(1.9, 2.24, " Americans", 0.9)])
    assert texts(policy.commit_all([Word(2.2, 3.8, " ask", 0.5)]).final) == "ask"


def test_commit_at_a_pause_keeps_words_on_their_side():
    policy = CommitPolicy()
    # A pause from 1.5 to 2.2 s: "two." runs into it, "three" reaches back into it.
    hyp = [Word(0.0, 0.4, " one", 0.9), Word(0.4, 1.7, " two.", 0.9), Word(1.6, 2.6, " three", 0.9)]
    commit = policy.commit_before(hyp, 2.2)
    assert texts(commit.final) == "one two." and texts(commit.tail) == "three"


def test_repetition_loops_are_cut():
    looped = words("the storm the storm the storm the storm tore")
    assert texts(cut_repetition(looped)) == "the storm"
    assert texts(cut_repetition(words("no no no"))) == "no no no"  # people say that
    assert texts(cut_repetition(words("no no no no no"))) == "no"
    assert texts(cut_repetition(words("a gold ring will please"))) == "a gold ring will please"
    echo = "ask not what your country can do for you ask not what your country can do for you ask what"
    assert texts(cut_repetition(words(echo))) == "ask not what your country can do for you"
    assert (
        texts(cut_repetition(words("I said no I said no"))) == "I said no I said no"
    )  # short: twice is speech


def test_prompt_is_final_text_already_out_of_the_window():
    policy = CommitPolicy()
    policy.commit_all(words("a gold ring will please most any girl", 0.0))
    assert policy.prompt(before=2.0) == "a gold ring will"
    assert policy.prompt(before=0.0) is None


def test_prompt_keeps_only_the_newest_language_of_final_text():
    policy = CommitPolicy()
    policy.commit_all(words("et c'est la dictée", 0.0))
    policy.read_in("fr", 0.0)
    policy.read_in("fr", 1.0)  # the same language: nothing leaves
    assert policy.prompt(before=10.0) == "et c'est la dictée" and policy.language == "fr"
    policy.commit_all(words("and so my fellow", 4.0))
    policy.read_in("en", 4.0)
    assert policy.prompt(before=10.0) == "and so my fellow" and policy.language == "en"
    assert policy.prompt(before=3.0) is None  # the French text is out, the English not yet final


def test_initial_prompt_leads_until_final_text_pushes_it_out():
    policy = CommitPolicy("  Kubernetes,   Grafana. ")
    assert policy.prompt(before=0.0) == "Kubernetes, Grafana."
    policy.commit_all(words("a gold ring will please most any girl", 0.0))
    assert policy.prompt(before=2.0) == "Kubernetes, Grafana. a gold ring will"
    policy.commit_all(words(" ".join(["word"] * 60), 5.0))
    assert "Kubernetes" not in policy.prompt(before=100.0)  # 200 characters of final text later
    # an open list is closed: Whisper would go on from it into the audio (closed_text())
    assert CommitPolicy("Kubernetes, Grafana").prompt(before=0.0) == "Kubernetes, Grafana."
    assert CommitPolicy("Is it Grafana?").prompt(before=0.0) == "Is it Grafana?"


def test_decoder_prompt_puts_hotwords_closed_before_the_newest_previous_text(base_model_dir):
    from npustream.asr.decoder import MAX_PROMPT_TOKENS, WhisperDecoder
    from npustream.asr.tokenizer import WhisperTokenizer

    tokenizer = WhisperTokenizer(base_model_dir, multilingual=True)
    decoder = WhisperDecoder(None, tokenizer)  # prompt() needs only the tokenizer
    # closed with a full stop: Whisper would read on from an open list into the audio (closed_text())
    hot = tokenizer.encode(" Kubernetes, Grafana.")
    previous = list(range(1000, 1300))  # 300 text tokens of earlier windows
    assert decoder.prompt(None, None) == []
    assert decoder.prompt(previous, None) == [tokenizer.sot_prev] + previous[-MAX_PROMPT_TOKENS:]
    assert decoder.prompt(None, " Kubernetes,  Grafana ") == [tokenizer.sot_prev] + hot
    assert decoder.prompt(None, "Kubernetes, Grafana.") == [tokenizer.sot_prev] + hot
    assert decoder.prompt(None, "Grafana?") == [tokenizer.sot_prev] + tokenizer.encode(" Grafana?")
    both = decoder.prompt(previous, "Kubernetes, Grafana")
    assert both == [tokenizer.sot_prev] + hot + previous[-(MAX_PROMPT_TOKENS - len(hot)) :]
    assert len(both) == 1 + MAX_PROMPT_TOKENS


# -- config -------------------------------------------------------------------------------
def test_config_file_and_flags(tmp_path):
    path = tmp_path / "npustream.toml"
    path.write_text('source = "file:/x.wav"\nhop = 0.5\nlanguage = "en"\nwords = false\n')
    cfg = config.build(path, {"hop": 2.0, "engine": None})
    assert (cfg.source, cfg.hop, cfg.language, cfg.words, cfg.engine) == (
        "file:/x.wav",
        2.0,
        "en",
        False,
        "cpu",
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("hopp = 1.0\n", "unknown key 'hopp'"),
        ('hop = "fast"\n', "key 'hop' must be a number"),
        ("beam_size = 2.5\n", "key 'beam_size' must be an integer"),
        ("endpoint_ms = 5\n", "key 'endpoint_ms' must be milliseconds from 100 to 10000"),
        ('engine = "gpu"\n', "key 'engine' must be one of cpu, npu, npu-emu"),
        ('source = "microphone"\n', "key 'source' must be mic"),
        ('pub = "udp://x"\n', "key 'pub' must be an ipc://"),
        ("hop = [1\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        config.build(path)
    assert str(path) in str(err.value)


def test_config_cross_checks_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.build(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="--speed"):
        config.build(None, {"speed": 0.0})
    with pytest.raises(ConfigError, match="speed applies to file"):
        config.build(None, {"source": "mic", "speed": 2.0})
    with pytest.raises(ConfigError, match="different endpoints"):
        config.build(None, {"pub": "tcp://127.0.0.1:5000", "ctl": "tcp://127.0.0.1:5000"})


def test_default_endpoints_follow_xdg_runtime_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert endpoints.default_pub() == f"ipc://{tmp_path}/npustream/captions.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert endpoints.default_ctl().startswith("ipc:///tmp/npustream-")


# -- control protocol and wire messages ---------------------------------------------------
@pytest.mark.parametrize(
    "body, error",
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"status", "not UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"cmd": "reboot"}', "unknown cmd 'reboot'"),
        (b'{"cmd": "status", "pad": "' + b"x" * 5000 + b'"}', "exceeds the 4096-byte limit"),
    ],
)
def test_control_rejects_malformed_requests(body, error):
    cmd, message = control.parse_request(body)
    assert cmd is None and error in message
    assert json.loads(control.reply(error=message)) == {"v": 1, "ok": False, "error": message}


def test_control_envelopes_and_valid_request():
    assert control.parse_request(b'{"cmd": "snapshot"}') == ("snapshot", None)
    assert control.split_envelope([b"id", b"", b"{}"]) == ([b"id", b""], b"{}")
    assert control.split_envelope([b"id", b"{}"]) == ([b"id"], b"{}")
    assert control.split_envelope([b"id", b"", b"a", b"b"]) == ([b"id", b""], None)


def test_messages_round_trip_and_reject_foreign_payloads():
    event = CaptionEvent("final", 3, tuple(words("hello there", 1.0)), segment_end=True)
    frames, message = messages.encode(
        messages.FINAL, messages.caption_body(event, 1700000000.0, True), "abc", 7
    )
    decoded = messages.decode(frames)
    assert decoded == message
    assert (decoded["text"], decoded["start"], decoded["end"], decoded["seq"]) == ("hello there", 1.0, 2.0, 7)
    for bad in (
        [b"caption.final"],
        [b"caption.final", b"{not json"],
        [b"status", frames[1]],
        [b"caption.final", b'{"v": 2, "type": "caption.final", "seq": 1, "stream_id": "x"}'],
    ):
        with pytest.raises(ValueError):
            messages.decode(bad)


def test_text_printer_rewrites_the_open_line_and_scrolls_finals():
    out = io.StringIO()
    printer = CaptionPrinter(out, "text", live=True)
    printer.handle({"type": "caption.partial", "text": "a gold"})
    printer.handle({"type": "caption.final", "text": "a gold ring", "segment_end": False})
    printer.handle({"type": "caption.partial", "text": "will"})
    printer.handle({"type": "caption.final", "text": "will please.", "segment_end": True})
    screen = out.getvalue()
    assert screen.endswith("\r\x1b[Ka gold ring will please.\n")
    assert "\x1b[2mwill\x1b[0m" in screen  # the partial is dimmed
    piped = io.StringIO()
    printer = CaptionPrinter(piped, "text", live=False)
    for m in (
        {"type": "caption.partial", "text": "x"},
        {"type": "caption.final", "text": "one", "segment_end": False},
        {"type": "caption.final", "text": "two.", "segment_end": True},
    ):
        printer.handle(m)
    assert piped.getvalue() == "one two.\n"


def test_a_final_that_starts_with_a_mark_continues_the_word_before_it(tmp_path):
    """A sentence's mark held until the next words (stream/captioner.py) arrives at the start of
    a later final: every reader joins it without a space, subtitle cues included."""
    assert join_text("for you", ", ask what") == "for you, ask what"
    assert (
        join_text("for you", ".") == "for you." and join_text("a", "b") == "a b" and join_text("", ".") == "."
    )
    script = (Path(messages.__file__).parents[1] / "web" / "static" / "captions.js").read_text()
    assert f'const MARKS = "{MARKS}";' in script  # the web page's rule is the same
    stream = [
        {"type": "caption.final", "text": "for you", "start": 6.8, "end": 7.4, "segment_end": False},
        {"type": "caption.final", "text": ".", "start": 7.4, "end": 7.4, "segment_end": True},
        {"type": "caption.final", "text": "Ask what", "start": 8.2, "end": 8.8, "segment_end": False},
        {"type": "caption.final", "text": ", you", "start": 8.8, "end": 9.0, "segment_end": True},
    ]
    piped = io.StringIO()
    printer = CaptionPrinter(piped, "text", live=False)
    for m in stream:
        printer.handle(m)
    assert piped.getvalue() == "for you.\nAsk what, you\n"
    for fmt, expected in (("txt", "for you.\nAsk what, you\n"), ("srt", None)):
        out = io.StringIO()
        writer = TranscriptWriter(out, fmt)
        for m in stream:
            writer.handle(
                {**m, "stream_id": "s", "segment_id": 0 if m["start"] < 8 else 1, "stream_start": 0.0}
            )
        writer.close()
        if expected:
            assert out.getvalue() == expected
        else:
            cues = out.getvalue().strip().split("\n\n")
            assert [c.splitlines()[-1] for c in cues] == ["for you.", "Ask what,", "you"]


def test_the_bundled_sample_is_found_as_package_data():
    from npustream.stream.capture.sources import SAMPLE_PATH, open_source

    assert SAMPLE_PATH.is_file() and SAMPLE_PATH.stat().st_size > 100_000
    source = open_source("sample", speed=0.0)
    assert source.name == "sample"
    source.close()
