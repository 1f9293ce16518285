"""`npustream run`: the streaming daemon.

Start-up: open the source (a bad file fails here, before the model loads), load and warm the
recognizer, bind the sockets, then tell systemd READY=1 and start capturing.

The processing loop (this thread) reads whatever audio has arrived, feeds the VAD and the
window, and runs an update when one is due. An update decodes the latest audio: hops that
passed while the engine was busy are skipped and counted, never queued. The publishing
thread (publisher.py) owns the sockets, so heartbeats and control replies go out while the
engine works. SIGINT/SIGTERM: the current update finishes, capture stops, the audio not yet
final is decoded once more as the end of a file is (so the last words are not left as the
partial of a shorter window) and published final, the sockets close, exit 0.

One daemon per endpoint: start-up is refused when a live process serves either ipc endpoint
(the control socket or the caption socket alone).
"""

from __future__ import annotations

import signal
import sys
import time
import uuid
from typing import Any

import numpy as np

from npustream import log
from npustream.errors import AudioError, NpustreamError
from npustream.protocol import control
from npustream.protocol.messages import STATUS, caption_body, topic_of
from npustream.render import CaptionPrinter
from npustream.stream.captioner import Captioner
from npustream.stream.capture.sources import Source, open_source
from npustream.stream.config import StreamConfig
from npustream.stream.latency import FinalLatency
from npustream.stream.publisher import Publisher, serving
from npustream.stream.sdnotify import Notifier
from npustream.stream.supervise import LoopCounters, StallClock, Supervisor, heartbeat_body, status_body
from npustream.types import CaptionEvent

logger = log.get(__name__)

IDLE_POLL = 0.02  # s between looks at the source when no audio is waiting


class Daemon:
    def __init__(self, cfg: StreamConfig):
        self.cfg = cfg
        self.stream_id = uuid.uuid4().hex[:16]
        self.counters = LoopCounters(latency=FinalLatency(cfg.speed))
        self.stall_clock = StallClock(self.counters, self._stalled)
        self._stop_signals = 0
        self._audio_arrived = time.monotonic()  # when the newest sample in the window arrived
        self.source: Source | None = None
        self.recognizer = None
        self.captioner: Captioner | None = None
        self.publisher: Publisher | None = None
        self.printer = CaptionPrinter(sys.stdout) if cfg.echo else None

    # -- start-up ---------------------------------------------------------------------------
    def run(self) -> int:
        self.notifier = Notifier.from_env()
        self._refuse_second_daemon()
        self.source = open_source(
            self.cfg.source,
            speed=self.cfg.speed,
            rate=self.cfg.rate,
            capture_seconds=self.cfg.capture_seconds,
            on_status=self._source_status,
        )
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._load_model()
            self.publisher = Publisher(
                self.cfg.pub_endpoint,
                self.cfg.ctl_endpoint,
                stream_id=self.stream_id,
                sndhwm=self.cfg.sndhwm,
                heartbeat=self.cfg.heartbeat,
                snapshot_finals=self.cfg.snapshot_finals,
                status=self.status,
                heartbeat_body=self.heartbeat,
            )
            self.publisher.start()
            return self._serve()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _refuse_second_daemon(self) -> None:
        """A live listener on either ipc endpoint: refuse (binding would take its socket file
        over). A stale file is replaced on bind; a tcp port in use fails to bind by itself."""
        pid = None
        if self.cfg.ctl_endpoint.startswith("ipc://"):
            try:  # a daemon that answers says who it is (and is not probed as a hang-up)
                pid = control.request(self.cfg.ctl_endpoint, "status", timeout=0.5).get("pid")
            except NpustreamError:
                pass
        for endpoint in (self.cfg.ctl_endpoint, self.cfg.pub_endpoint):
            if (pid and endpoint == self.cfg.ctl_endpoint) or serving(endpoint):
                who = f"another npustream daemon (pid {pid})" if pid else "another process"
                raise NpustreamError(f"{who} is already serving {endpoint}; stop it or pass --pub/--ctl")

    def _load_model(self) -> None:
        from npustream.asr.recognizer import Recognizer

        self.notifier.status("loading model")
        self.recognizer = Recognizer(self.cfg.recognizer_config())
        t0 = time.perf_counter()
        self.recognizer.warm_up()
        logger.info(
            "engine_warm", engine=self.recognizer.engine_name, seconds=round(time.perf_counter() - t0, 2)
        )
        self.captioner = Captioner(self.recognizer, self.cfg)

    def _serve(self) -> int:
        if self._stop_signals:
            logger.info("stopped_before_start")
            return 0
        ready = f"captioning {self.source.name} on the {self.recognizer.engine_name} engine"
        self.counters.stream_start = time.time()
        self.source.start()  # a microphone that cannot open fails here, before READY=1
        self.stall_clock.start()
        self.notifier.ready(ready)
        self.counters.source_state = "running"
        self._publish_status("running", ready)
        logger.info(
            "daemon_ready",
            source=self.source.name,
            engine=self.recognizer.engine_name,
            pub=self.cfg.pub_endpoint,
            ctl=self.cfg.ctl_endpoint,
            stream_id=self.stream_id,
        )
        ended = self._loop()
        if ended:
            self._emit(self.captioner.finish(decode=True))
            self.counters.source_state = "ended"
            seconds, unread = self.counters.stream_time, self.captioner.guard.speech_unread
            self._publish_status(
                "source_ended",
                f"{self.source.name} ended after {seconds:.1f} s of audio "
                f"({unread:.1f} s of its speech without words)",
            )
            logger.info(
                "source_ended", source=self.source.name, seconds=round(seconds, 2), speech_unread=unread
            )
            error = getattr(self.source, "error", None)
            if error:
                raise AudioError(f"{self.source.name} failed after {seconds:.1f} s of audio: {error}")
            if self.counters.samples_in == 0:
                raise AudioError(f"{self.source.name} ended before any audio arrived")
        else:
            self.source.close()  # stop capture first; the update in progress has finished
            self._take(self.source.read(self.captioner.room()))  # what was captured before that
            self._emit(self.captioner.finish(decode=True))
            self.counters.source_state = "stopped"
            self._publish_status("stopping", "stopped by signal")
        return 0

    # -- the processing loop ----------------------------------------------------------------
    def _loop(self) -> bool:
        """Run until the source ends (True) or a signal asks to stop (False)."""
        source, captioner, counters = self.source, self.captioner, self.counters
        supervisor = Supervisor(self.notifier, self._status_line)
        while not self._stop_signals:
            supervisor.tick(time.monotonic())
            gap = source.take_gap()
            if gap > 0:
                logger.warning("audio_gap", seconds=round(gap, 3), source=source.name)
                self._emit(captioner.gap(gap))
            chunk = source.read(captioner.room())
            self._take(chunk)
            if captioner.due():
                decodes = captioner.stats.decodes
                events = captioner.update()
                if captioner.stats.decodes != decodes:  # lag: newest decoded audio -> its result
                    counters.lag = time.monotonic() - self._audio_arrived
                self._emit(events)
            elif source.ended:
                return True
            elif not len(chunk):
                time.sleep(IDLE_POLL)
        return False

    def _take(self, chunk: np.ndarray) -> None:
        if len(chunk):
            self.captioner.push(chunk)
            self.counters.samples_in += len(chunk)
            self._audio_arrived = time.monotonic()
            self.counters.latency.arrived(self.captioner.window.end, self._audio_arrived)

    def _emit(self, events: list[CaptionEvent]) -> None:
        if not events:
            return
        batch = []
        for event in events:
            body = caption_body(event, self.counters.stream_start, self.cfg.words)
            batch.append((topic_of(event), body))
            if event.kind == "final":
                self.counters.finals += 1
                self.counters.latency.published(event.words, time.monotonic())
            else:
                self.counters.partials += 1
            if self.printer:
                self.printer.handle({"type": topic_of(event), **body})
        self.publisher.submit(batch)

    # -- status ------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self._stop_signals += 1
        if self._stop_signals > 1:
            raise KeyboardInterrupt  # a second signal: stop now
        logger.info("stopping", signal=signal.Signals(signum).name)

    def _source_status(self, state: str, message: str) -> None:
        """From a live source's supervisor thread: lost / restored. A mix reports each input's;
        it is lost only when every input is (its `state`)."""
        lost = state == "source_lost" and getattr(self.source, "state", "lost") == "lost"
        self.counters.source_state = "lost" if lost else "running"
        if self.publisher:
            self._publish_status(state, message)
        self.notifier.status(message)

    def _publish_status(self, state: str, message: str) -> None:
        self.publisher.submit(
            [
                (
                    STATUS,
                    {
                        "state": state,
                        "message": message,
                        "source": self.source.name,
                        "engine": self.recognizer.engine_name if self.recognizer else None,
                        "stream_start": self.counters.stream_start,
                    },
                )
            ]
        )

    def _status_line(self) -> str:
        c = self.counters
        return (
            f"{self.recognizer.engine_name} engine, lag {c.lag:.2f} s, {c.finals} finals, "
            f"{self.captioner.stats.skipped} windows skipped, source {c.source_state}"
            + (f", stalled {c.capture_stalled:.1f} s" if c.capture_stalled else "")
        )

    def _stalled(self, seconds: float) -> None:
        """From the stall clock's thread, after the process could run again."""
        logger.warning(
            "capture_stalled",
            seconds=round(seconds, 3),
            total=round(self.counters.capture_stalled, 3),
            note="the process stood still: audio a microphone delivered meanwhile was not captured",
        )

    def heartbeat(self) -> dict[str, Any]:
        """Called from the publishing thread."""
        return heartbeat_body(self.counters)

    def status(self) -> dict[str, Any]:
        """Called from the publishing thread."""
        return status_body(
            self.counters, self.cfg, self.recognizer, self.captioner, self.source, self.publisher
        )

    def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        self.stall_clock.stop()
        if self.source is not None:
            self.source.close()
        if self.printer:
            self.printer.close()
        if self.publisher is not None:
            self.publisher.stop()
        if self.recognizer is not None:
            self.recognizer.close()
        logger.info("daemon_stopped", finals=self.counters.finals, partials=self.counters.partials)
