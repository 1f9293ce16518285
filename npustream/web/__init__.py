"""`npustream web`: the caption stream for browsers and OBS (aiohttp).

    follow.py   a thread that follows the daemon with npustream.client (snapshot, gaps,
                restarts) and says when it is not heard from ("reconnecting")
    session.py  what the pages need: this session's finals, the open partial, the state
    server.py   the HTTP routes: / (transcript page), /overlay (lower third), /events (SSE),
                /transcript.srt and /transcript.txt (downloads)
    static/     the pages; caption text only ever goes into the DOM as text (textContent)

It depends on the protocol layer and the client only, never on the daemon's code.
"""

DEFAULT_LISTEN = "127.0.0.1:8765"  # loopback: other machines only when --listen says so
