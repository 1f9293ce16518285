"""The wire format: multipart ZeroMQ messages [topic, payload], payload UTF-8 JSON.

Every payload carries the schema version "v", the message "type" (its topic), the daemon's
"stream_id" (new each run), "seq" (one more than the previous message of this stream, across
all topics, so a subscriber that sees a jump knows how many it missed) and "time" (wall-clock
seconds since the epoch when published). npustream/protocol/captions.schema.json (schema.py) is the
machine-readable form of this module; tests validate real traffic against it.

Versions: "v" is the major version, SCHEMA_VERSION; it changes only when a change would break a
client that follows the rules below, and decode() refuses any other. The schema document
carries the full version (SCHEMA_DOCUMENT_VERSION, its "title"): a minor step only adds
optional fields. Clients keep working across minor steps by ignoring fields they do not know
(the schema allows them on every message) and by treating a field a newer schema added as
optional (an older daemon does not send it).
  1.0  the first stream
  1.1  captions carry "language" and "language_probability" (of the decode their words come
       from; the probability is 1.0 when the language was set, not detected)
  1.2  a final's text may start with a mark (types.MARKS), the punctuation of the word before
       it (the daemon holds a sentence's mark until the speech after the word told it): a
       reader joins it without a space (types.join_text); the word list then starts with the
       mark as a word of no duration. A 1.1 client shows "for you ." instead of "for you."
"""

from __future__ import annotations

import json
import time
from typing import Any

from npustream.types import CaptionEvent

SCHEMA_VERSION = 1  # "v" on the wire: the major version
SCHEMA_DOCUMENT_VERSION = "1.2"  # captions.schema.json's version (major.minor)
PARTIAL = "caption.partial"
FINAL = "caption.final"
STATUS = "status"
HEARTBEAT = "heartbeat"
TOPICS = (PARTIAL, FINAL, STATUS, HEARTBEAT)
MAX_PAYLOAD_BYTES = 1 << 20  # a subscriber refuses anything larger (a 30 s window's words are ~10 kB)


def caption_body(event: CaptionEvent, stream_start: float, with_words: bool) -> dict[str, Any]:
    """Topic-specific fields of a caption. Times are seconds from the stream start;
    `stream_start` is that start as wall-clock time, so start + stream_start is wall time."""
    words = event.words
    body: dict[str, Any] = {
        "segment_id": event.segment_id,
        "text": event.text,
        "start": round(words[0].start, 3) if words else None,
        "end": round(words[-1].end, 3) if words else None,
        "stream_start": stream_start,
        "language": event.language,
        "language_probability": (
            None if event.language_probability is None else round(event.language_probability, 4)
        ),
    }
    if event.kind == "partial":
        body["revision"] = event.revision
    else:
        body["segment_end"] = event.segment_end
    if with_words:
        body["words"] = [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(w.probability, 4),
            }
            for w in words
        ]
    return body


def topic_of(event: CaptionEvent) -> str:
    return FINAL if event.kind == "final" else PARTIAL


def encode(topic: str, body: dict[str, Any], stream_id: str, seq: int) -> tuple[list[bytes], dict[str, Any]]:
    """The frames to send and the full message (as a dict, for snapshots and echo)."""
    message = {
        "v": SCHEMA_VERSION,
        "type": topic,
        "stream_id": stream_id,
        "seq": seq,
        "time": round(time.time(), 6),
        **body,
    }
    payload = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return [topic.encode("ascii"), payload], message


def decode(frames: list[bytes]) -> dict[str, Any]:
    """Parse a received message; ValueError for anything that is not one of ours."""
    if len(frames) != 2:
        raise ValueError(f"expected 2 frames [topic, payload], got {len(frames)}")
    topic, payload = frames
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        topic_str = topic.decode("ascii")
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError("payload is not a JSON object")
    if message.get("v") != SCHEMA_VERSION:
        raise ValueError(f"schema version {message.get('v')!r}, this client speaks {SCHEMA_VERSION}")
    if message.get("type") != topic_str or topic_str not in TOPICS:
        raise ValueError(f"topic {topic_str!r} does not match payload type {message.get('type')!r}")
    if not isinstance(message.get("seq"), int) or not isinstance(message.get("stream_id"), str):
        raise ValueError("payload lacks an integer seq or a stream_id")
    return message
