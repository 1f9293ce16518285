"""`npustream web` in a real browser (headless Chromium through selenium) and over plain HTTP.

- test_markup_stays_text_and_a_restarted_daemon_is_followed: a daemon without a model (the
  real Publisher, tests/caption_source.py) sends captions that look like markup; the page and
  the overlay show them as text, the overlay takes its options from the URL, the page says
  "reconnecting" when the daemon stops and goes on with the next daemon; /events is the
  schema's JSON; the downloads are valid SubRip and text.
- test_real_daemon_captions_in_the_page_and_overlay: the real daemon plays the shared JFK clip;
  the page and the overlay show its words. Screenshots: out/test-artifacts/ (docs/ has copies).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import srt
from caption_source import CaptionSource
from web_harness import WebServer, chromium, screenshot, wait_until

from npustream.protocol.schema import caption_schema
from tools.wer import normalize, wer

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = jsonschema.Draft202012Validator(caption_schema())


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def text_of(driver, selector: str) -> str:
    return driver.execute_script(f"return document.querySelector({json.dumps(selector)}).textContent")


def read_sse(url: str, count: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
    """The first `count` events of an SSE stream as (event name, JSON body)."""
    events, name, response = [], "message", urllib.request.urlopen(url, timeout=timeout)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    while len(events) < count:
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            name = "message"
    response.close()
    return events


def test_markup_stays_text_and_a_restarted_daemon_is_followed(tmp_path, browser):
    pub, ctl = f"ipc://{tmp_path}/captions.sock", f"ipc://{tmp_path}/control.sock"
    source = CaptionSource(pub, ctl).start()
    web = WebServer(tmp_path, pub, ctl)
    try:
        assert web.url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(web.url, timeout=10)
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]

        browser.get(web.url)
        wait_until(lambda: text_of(browser, "#state") == "live", 15, "the page connects")
        source.final("hello from the first daemon", 0.2, 1.0)
        source.final("<b>x</b>", 1.2, 1.6)
        source.partial("<script>document.title='owned'</script> still open", 1.7, 2.0)
        wait_until(lambda: "still open" in text_of(browser, "#transcript"), 10, "the partial shows")
        rows = [r.text for r in browser.find_elements("css selector", "#transcript .utterance")]
        assert any(r.endswith("hello from the first daemon") for r in rows), rows
        assert any(r.endswith("<b>x</b>") for r in rows), rows  # the tags are visible text
        assert browser.find_elements("css selector", "#transcript b, #transcript script") == []
        assert browser.title == "npustream: live captions"
        assert browser.find_element("css selector", "#transcript .open .partial").text.startswith("<script>")
        screenshot(browser, "web-markup-as-text.png")

        # /events: the session so far, as the ZeroMQ schema's JSON, after the connection state.
        events = read_sse(web.url + "events", 4)
        assert events[0] == (
            "connection",
            {"state": "connected", "message": f"receiving captions from {pub}"},
        )
        for name, body in events[1:]:
            assert name == "message"
            VALIDATOR.validate(body)
        assert [b["text"] for _, b in events[1:]] == [
            "hello from the first daemon",
            "<b>x</b>",
            "<script>document.title='owned'</script> still open",
        ]

        # The overlay: options from the URL, the same captions as text.
        browser.get(
            web.url + "overlay?lines=1&size=30&color=yellow&bg=rgba(0,0,255,0.5)&position=top"
            "&font=serif&align=left&partials=0&clear=2"
        )
        wait_until(lambda: "<b>x</b>" in text_of(browser, "#captions"), 10, "the overlay shows the caption")
        assert browser.find_elements("css selector", "#captions b, #captions script") == []
        style = browser.execute_script(
            "const s = getComputedStyle(document.getElementById('box'));"
            "return [s.fontSize, s.color, s.backgroundColor, s.textAlign, s.fontFamily,"
            " getComputedStyle(document.getElementById('lines')).height,"
            " getComputedStyle(document.body).justifyContent,"
            " getComputedStyle(document.body).backgroundColor]"
        )
        assert style == [
            "30px",
            "rgb(255, 255, 0)",
            "rgba(0, 0, 255, 0.5)",
            "left",
            "serif",
            "37.5px",
            "flex-start",
            "rgba(0, 0, 0, 0)",
        ], style
        assert "still open" not in text_of(browser, "#captions")  # partials=0: finals only
        wait_until(  # clear=2: two seconds without captions empty the box
            lambda: browser.execute_script("return document.getElementById('box').className") == "empty",
            10,
            "the overlay clears",
        )

        # The daemon stops: the page says so; the next daemon's captions follow the old ones.
        browser.get(web.url)
        wait_until(lambda: "<b>x</b>" in text_of(browser, "#transcript"), 10, "the page replays the session")
        source.stop()
        wait_until(lambda: text_of(browser, "#state") == "reconnecting…", 10, "the page says reconnecting")
        screenshot(browser, "web-reconnecting.png")
        source = CaptionSource(pub, ctl).start()
        wait_until(lambda: text_of(browser, "#state") == "live", 15, "the page reconnects")
        source.final("and this is the second daemon", 0.3, 1.1)
        wait_until(
            lambda: "the second daemon" in text_of(browser, "#transcript"), 10, "the new captions show"
        )
        assert "hello from the first daemon" in text_of(browser, "#transcript")

        # Downloads: the whole session, valid SubRip (srt's strict parser) and text.
        subtitles = urllib.request.urlopen(web.url + "transcript.srt", timeout=10)
        assert subtitles.headers["Content-Disposition"].startswith('attachment; filename="npustream-')
        cues = list(srt.parse(subtitles.read().decode(), ignore_errors=False))
        assert [c.content for c in cues] == [
            "hello from the first daemon",
            "<b>x</b>",
            "and this is the second daemon",
        ]
        assert cues[0].start.total_seconds() == pytest.approx(0.2)
        assert cues[2].start > cues[1].end  # the second daemon continues the timeline
        text = urllib.request.urlopen(web.url + "transcript.txt", timeout=10).read().decode()
        assert text == "hello from the first daemon\n<b>x</b>\nand this is the second daemon\n"
    finally:
        source.stop()
        assert web.stop() == 0


@pytest.mark.slow
def test_real_daemon_captions_in_the_page_and_overlay(tmp_path, browser, audio_dir, transcripts):
    from daemon_harness import Daemon

    # The page and the overlay are open before the daemon starts: it speaks the 11 s clip from
    # READY on and exits at its end, and in a loaded CI run a web server and a browser started
    # after READY once came up after that (nothing left to show for 90 s).
    pub, ctl = f"ipc://{tmp_path}/daemon/captions.sock", f"ipc://{tmp_path}/daemon/control.sock"
    daemon, web = None, WebServer(tmp_path, pub, ctl)
    try:
        browser.get(web.url)
        overlay = chromium()
        try:
            overlay.execute_cdp_cmd(
                "Emulation.setDefaultBackgroundColorOverride", {"color": {"r": 0, "g": 0, "b": 0, "a": 0}}
            )  # OBS sees through it
            overlay.get(web.url + "overlay")
            daemon = Daemon(
                tmp_path / "daemon", ["--source", f"file:{audio_dir / 'jfk.flac'}", "--language", "en"]
            )
            assert (daemon.pub, daemon.ctl) == (pub, ctl)
            daemon.wait_ready()
            page_finals = (
                "return Array.from(document.querySelectorAll('#transcript .final'))"
                ".map(e => e.textContent).join(' ')"
            )
            wait_until(
                lambda: "what your country can do for you" in normalize(browser.execute_script(page_finals)),
                90,
                "the page shows the clip's first sentence",
            )
            screenshot(browser, "web-page.png")  # (while the daemon still speaks: the README's picture)
            wait_until(
                lambda: normalize(text_of(overlay, "#captions")).endswith("for your country"),
                30,
                "the overlay shows the clip's last words",
            )
            shot = screenshot(overlay, "web-overlay.png")
        finally:
            overlay.quit()
        wait_until(
            lambda: normalize(browser.execute_script(page_finals)).endswith("for your country"),
            30,
            "the page shows the clip's last words",
        )
        assert wer(transcripts["jfk.flac"]["text"], browser.execute_script(page_finals)) <= 0.05
        from PIL import Image

        pixels = Image.open(shot)
        assert pixels.mode == "RGBA" and pixels.getpixel((5, 5))[3] == 0  # transparent around the box
    finally:
        web.stop()
        if daemon is not None:
            daemon.stop()
            daemon.close()


def test_options_come_from_the_daemons_config_and_flags(tmp_path):
    from npustream.errors import ConfigError
    from npustream.stream import config as stream_config
    from npustream.web import DEFAULT_LISTEN, options

    path = tmp_path / "config.toml"
    path.write_text('pub = "tcp://127.0.0.1:5556"\nhotwords = "Grafana"\n[web]\nlisten = "127.0.0.1:9000"\n')
    assert stream_config.build(path).hotwords == "Grafana"  # the daemon reads the same file, less [web]
    assert options.load(str(path), None, None, None) == options.WebOptions(
        listen="127.0.0.1:9000", endpoint="tcp://127.0.0.1:5556", ctl=None
    )
    assert options.load(str(path), "[::1]:0", None, "ipc:///x").listen == "[::1]:0"
    assert options.load(None, None, None, None).listen == DEFAULT_LISTEN == "127.0.0.1:8765"
    path.write_text("[web]\nport = 80\n")
    with pytest.raises(ConfigError, match="unknown key 'port' in \\[web\\]"):
        options.load(str(path), None, None, None)


def test_a_bad_listen_address_is_one_error_line():
    proc = subprocess.run(
        [sys.executable, "-m", "npustream", "web", "--listen", "8765"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "npustream: error: --listen must be HOST:PORT (e.g. 127.0.0.1:8765), got '8765'"
    ]


def test_serving_beyond_loopback_is_said_in_the_log(tmp_path):
    web = WebServer(
        tmp_path, f"ipc://{tmp_path}/none.sock", f"ipc://{tmp_path}/none-ctl.sock", "--listen", "0.0.0.0:0"
    )
    try:
        assert web.url.startswith("http://0.0.0.0:")
        page = urllib.request.urlopen(web.url.replace("0.0.0.0", "127.0.0.1") + "overlay", timeout=10)
        assert page.status == 200
    finally:
        assert web.stop() == 0
    events = [json.loads(line) for line in web.log_path.read_text().splitlines() if line.startswith("{")]
    warning = next(e for e in events if e["event"] == "listening_beyond_loopback")
    assert warning["level"] == "warning" and warning["host"] == "0.0.0.0"
