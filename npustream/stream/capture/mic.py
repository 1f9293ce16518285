"""The microphone, and desktop audio, through sounddevice (PortAudio).

The audio callback runs on PortAudio's thread and only copies the block into a preallocated
ring buffer (ring.py): no locks, no waiting, no buffers allocated per call. Everything else
happens elsewhere: resampling (a mic that only offers 44.1 or 48 kHz) on the daemon's side of
the ring, health checks and reconnection in a supervisor thread.

When the device vanishes (unplugged, audio server restarted) the stream stops calling back.
The supervisor notices, reports `source_lost` (the daemon publishes it and keeps its sockets
and subscribers), retries with backoff and reports `source_restored` when the device is back;
the time it was gone is reported as a gap so caption times stay on the wall clock.

Desktop audio (`server_source`): PortAudio cannot name the sound server's sources; it sees the
whole server as its ALSA device `pulse`. That device records the source libpulse takes as the
default when it opens, which $PULSE_SOURCE sets; so a source of the server (a sink's monitor,
found with soundserver.py) is opened by setting PULSE_SOURCE just around the open. Opens take
one process-wide lock, so a microphone opened at the same moment never sees the variable. The
supervisor also asks the server every FOLLOW_SECONDS which source it should record: when the
default output changes (headphones plugged in) it moves to the new monitor; when the named one
is gone, the source is lost, as an unplugged microphone is (the server would otherwise move the
stream to some other source, perhaps a microphone).

Several sources in one process (`mic+system`): PortAudio is re-initialised to find a device
that came back only when no other stream is open, because that closes every stream.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from npustream import log
from npustream.asr.audio import SAMPLE_RATE, StreamResampler
from npustream.errors import AudioError
from npustream.stream.capture.ring import RingBuffer
from npustream.stream.capture.soundserver import SERVER_DEVICE

logger = log.get(__name__)

STALL_SECONDS = 2.0  # no callback for this long: the device is gone
FIRST_CALLBACK_SECONDS = 5.0  # audio servers can take over a second to deliver the first block
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between reconnection attempts (then the last, forever)
BLOCK_SECONDS = 0.02  # PortAudio block: small enough for low latency, large enough for Python
FOLLOW_SECONDS = 2.0  # how often desktop audio asks the sound server which source to record

# PortAudio opens, its re-initialisation and the PULSE_SOURCE an open reads: one at a time.
_OPEN_LOCK = threading.Lock()
_connections: weakref.WeakSet = weakref.WeakSet()  # every _Connection of this process


@contextlib.contextmanager
def _pulse_source(name: str | None) -> Iterator[None]:
    """PULSE_SOURCE=name while the caller opens a stream (it holds _OPEN_LOCK)."""
    if name is None:
        yield
        return
    before = os.environ.get("PULSE_SOURCE")
    os.environ["PULSE_SOURCE"] = name
    try:
        yield
    finally:
        if before is None:
            del os.environ["PULSE_SOURCE"]
        else:
            os.environ["PULSE_SOURCE"] = before


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise AudioError(
            f"microphone capture needs PortAudio (Debian: apt install libportaudio2): {exc}"
        ) from None
    return sounddevice


class _Connection:
    """One open input stream and the ring its callback fills."""

    def __init__(self, sd, device, rate: int, capture_seconds: float, server_source: str | None):
        self.rate = rate
        self.server_source = server_source  # the sound server's source it records, if named
        self.ring = RingBuffer(int(capture_seconds * rate))
        self.resampler = StreamResampler(rate, SAMPLE_RATE)
        self.overflows = 0  # blocks PortAudio itself reported as overrun
        self.opened = self.last_callback = time.monotonic()
        self.callbacks = 0
        self.closed = False
        self.flushed = False  # the resampler has been given its last input
        self.stream = sd.InputStream(
            device=device,
            channels=1,
            samplerate=rate,
            dtype="float32",
            blocksize=int(rate * BLOCK_SECONDS),
            callback=self._callback,
        )
        self.stream.start()
        _connections.add(self)

    def _callback(self, indata, frames, time_info, status) -> None:
        self.last_callback = time.monotonic()
        self.callbacks += 1
        if status.input_overflow:
            self.overflows += 1
        self.ring.write(indata[:, 0])

    def healthy(self) -> bool:
        now = time.monotonic()
        if self.callbacks == 0:
            return self.stream.active and now - self.opened < FIRST_CALLBACK_SECONDS
        return self.stream.active and now - self.last_callback < STALL_SECONDS

    def close(self) -> None:
        self.closed = True
        try:
            self.stream.abort(ignore_errors=True)
            self.stream.close(ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - a vanished device may fail to close; it is gone anyway
            logger.debug("mic_close_failed", error=str(exc))


class MicSource:
    """`server_source`, when given, names (each time it is called) the sound server's source to
    record: desktop audio. The device is then PortAudio's SERVER_DEVICE."""

    def __init__(
        self,
        device: str | int | None = None,
        *,
        capture_seconds: float = 30.0,
        on_status=None,
        rate: int | None = None,
        server_source: Callable[[], str] | None = None,
        name: str | None = None,
    ):
        self.sd = _sounddevice()
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.server_source = server_source
        self.device = SERVER_DEVICE if server_source else device
        self.what = "desktop audio" if server_source else "microphone"
        self.name = name or (f"mic:{device}" if device is not None else "mic")
        self.capture_seconds = capture_seconds
        self.requested_rate = rate
        self.on_status = on_status or (lambda state, message: None)
        self.lost = False
        self._conns: deque[_Connection] = deque()
        self._carry = np.zeros(0, dtype=np.float32)
        self._lost_seconds = 0.0  # written by the supervisor only
        self._gap_taken = 0.0
        self._dropped_retired = 0.0  # seconds dropped by connections already replaced
        self._dropped_taken = 0.0
        self._stop = threading.Event()
        self._followed = time.monotonic()  # when the server was last asked which source to record
        self._thread = threading.Thread(target=self._supervise, name="npustream-mic", daemon=True)

    def _pick_rate(self) -> int:
        """16 kHz if the device takes it (no resampling); else its own default rate."""
        if self.requested_rate:
            return self.requested_rate
        try:
            self.sd.check_input_settings(
                device=self.device, channels=1, samplerate=SAMPLE_RATE, dtype="float32"
            )
            return SAMPLE_RATE
        except Exception:  # noqa: BLE001 - PortAudioError or ValueError: this rate is not offered
            info = self.sd.query_devices(self.device, kind="input")
            return int(info["default_samplerate"])

    def _open(self, reinitialise: bool = False) -> _Connection:
        """A new connection; with `reinitialise`, PortAudio first lists devices afresh (to find
        one that came back), unless another stream of this process is open."""
        target = self.server_source() if self.server_source else None  # AudioError: not there
        with _OPEN_LOCK:
            if reinitialise and not any(c.stream.active for c in list(_connections) if not c.closed):
                # sounddevice has no public call for this
                self.sd._terminate()
                self.sd._initialize()
            with _pulse_source(target):
                rate = self._pick_rate()
                conn = _Connection(self.sd, self.device, rate, self.capture_seconds, target)
        logger.info(
            "mic_opened",
            source=self.name,
            device=str(self.device),
            server_source=target,
            rate=rate,
            resampled=rate != SAMPLE_RATE,
        )
        return conn

    def start(self) -> None:
        try:
            self._conns.append(self._open())
        except Exception as exc:  # noqa: BLE001 - ValueError, PortAudioError: one clear line
            if isinstance(exc, AudioError):
                raise
            what = (
                self.name
                if self.server_source
                else (f"microphone {self.device if self.device is not None else '(default)'}")
            )
            raise AudioError(f"cannot open {what}: {exc}") from None
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.25):
            conn = self._conns[-1]
            moved = self._moved(conn)
            if moved and self._switch(conn, moved):
                continue
            if conn.healthy() and moved is None:
                continue
            lost_at = time.monotonic()
            conn.close()
            self.lost = True
            logger.warning("source_lost", source=self.name)
            self.on_status("source_lost", f"{self.what} {self.name} stopped delivering audio; retrying")
            attempt = 0
            while not self._stop.wait(BACKOFF[min(attempt, len(BACKOFF) - 1)]):
                attempt += 1
                try:
                    # PortAudio lists devices once per initialisation: start over to see a
                    # device that was plugged back in.
                    self._conns.append(self._open(reinitialise=True))
                except Exception as exc:  # noqa: BLE001 - still gone; try again later
                    logger.info("mic_retry_failed", attempt=attempt, error=str(exc))
                    continue
                self._lost_seconds += time.monotonic() - lost_at
                self.lost = False
                logger.info("source_restored", source=self.name, attempts=attempt)
                self.on_status("source_restored", f"{self.what} {self.name} is back after {attempt} attempts")
                break

    def _moved(self, conn: _Connection) -> str | None:
        """For desktop audio, every FOLLOW_SECONDS: the source to record now if it is not the
        one recorded ("" when the server has none to offer), else None."""
        now = time.monotonic()
        if self.server_source is None or now - self._followed < FOLLOW_SECONDS:
            return None
        self._followed = now
        try:
            target = self.server_source()
        except AudioError as exc:
            logger.info("server_source_gone", source=self.name, error=str(exc))
            return ""
        return target if target != conn.server_source else None

    def _switch(self, conn: _Connection, target: str) -> bool:
        """Record `target`, the source the server now names, instead of `conn`'s: the new stream
        is opened before the old one is closed, so nothing goes unrecorded. False when it cannot
        be opened (then `conn` is treated as lost and retried with backoff)."""
        try:
            new = self._open()
        except Exception as exc:  # noqa: BLE001 - PortAudioError, AudioError: the lost path retries
            logger.info("server_source_move_failed", source=self.name, error=str(exc))
            return False
        conn.close()  # read() drains its ring before it takes from the new one
        self._conns.append(new)
        logger.info("server_source_moved", source=self.name, to=target)
        return True

    def read(self, max_samples: int) -> np.ndarray:
        """Resampled audio that has arrived, oldest connection first (up to max_samples)."""
        parts = [self._carry]
        have = len(self._carry)
        while self._conns and have < max_samples:
            conn = self._conns[0]
            raw = conn.ring.read(int((max_samples - have) * conn.rate / SAMPLE_RATE) + 1)
            last = conn.closed and conn.ring.available() == 0
            if not conn.flushed:
                block = conn.resampler.process(raw, last=last)
                conn.flushed = last
                parts.append(block)
                have += len(block)
            if last and len(self._conns) > 1:
                self._dropped_retired += conn.ring.dropped / conn.rate
                self._conns.popleft()
                continue
            break
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._carry = out[max_samples:].copy()
        return out[:max_samples]

    def dropped_seconds(self) -> float:
        """Audio overwritten in the capture ring before the daemon read it (all connections)."""
        return self._dropped_retired + sum(c.ring.dropped / c.rate for c in list(self._conns))

    def take_gap(self) -> float:
        """Seconds lost since the last call: ring overflow (oldest audio dropped) plus the time
        the device was gone."""
        dropped, lost = self.dropped_seconds(), self._lost_seconds
        gap = (dropped - self._dropped_taken) + (lost - self._gap_taken)
        self._dropped_taken, self._gap_taken = dropped, lost
        return gap

    @property
    def ended(self) -> bool:
        return False  # a microphone never ends; a lost one is retried

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        for conn in self._conns:
            conn.close()
