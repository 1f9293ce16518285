"""The control socket's protocol: one JSON object per request, one per reply.

Requests: {"cmd": "status"} or {"cmd": "snapshot"} (at most MAX_REQUEST_BYTES).
Replies: {"v": 1, "ok": true, "cmd": ..., ...} or {"v": 1, "ok": false, "error": "..."}.
The daemon side (a ROUTER socket) is in publisher.py; `request()` is the client side, used by
npustream.client and `npustream status`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from npustream.errors import NpustreamError
from npustream.protocol.messages import SCHEMA_VERSION

COMMANDS = ("status", "snapshot")
MAX_REQUEST_BYTES = 4096  # larger requests get an error reply
MAX_WIRE_BYTES = 64 * 1024  # larger frames make libzmq drop the connection (ZMQ_MAXMSGSIZE)


class DaemonUnreachable(NpustreamError):
    """No daemon answered on the control endpoint."""


def parse_request(body: bytes) -> tuple[str | None, str | None]:
    """(command, None) for a valid request, (None, error message) otherwise."""
    if len(body) > MAX_REQUEST_BYTES:
        return None, f"request of {len(body)} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit"
    try:
        request = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"request is not UTF-8 JSON: {exc}"
    if not isinstance(request, dict):
        return None, f'request must be a JSON object like {{"cmd": "status"}}, got {type(request).__name__}'
    cmd = request.get("cmd")
    if cmd not in COMMANDS:
        return None, f"unknown cmd {cmd!r}; known: {', '.join(COMMANDS)}"
    return cmd, None


def reply(cmd: str | None = None, error: str | None = None, **fields: Any) -> bytes:
    body: dict[str, Any] = {"v": SCHEMA_VERSION, "ok": error is None}
    if error is not None:
        body["error"] = error
    else:
        body["cmd"] = cmd
        body.update(fields)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], bytes | None]:
    """ROUTER frames -> (routing envelope to reply with, request body). A REQ peer sends
    [identity, b"", body]; a DEALER peer may send [identity, body]. Extra frames: no body."""
    if len(frames) >= 3 and frames[1] == b"":
        return frames[:2], (frames[2] if len(frames) == 3 else None)
    if len(frames) == 2:
        return frames[:1], frames[1]
    return frames[:1], None


def request(endpoint: str, cmd: str, timeout: float = 2.0) -> dict[str, Any]:
    """Send one request to a daemon's control socket and return its reply (ok or not)."""
    import zmq

    if endpoint.startswith("ipc://") and not Path(endpoint[6:]).exists():
        raise DaemonUnreachable(
            f"no npustream daemon: control socket {endpoint[6:]} does not exist "
            f"(start one with `npustream run`)"
        )
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    try:
        sock.connect(endpoint)
        sock.send(json.dumps({"cmd": cmd}).encode())
        try:
            raw = sock.recv()
        except zmq.Again:
            raise DaemonUnreachable(
                f"no npustream daemon answered on {endpoint} within {timeout:g} s"
            ) from None
    finally:
        sock.close()
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NpustreamError(f"the daemon on {endpoint} sent a reply that is not JSON: {exc}") from None
    if not isinstance(answer, dict):
        raise NpustreamError(f"the daemon on {endpoint} sent a reply that is not a JSON object")
    return answer
