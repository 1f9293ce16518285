"""The streaming daemon (`npustream run`), one module per stage:

capture/         audio in: sources (mic, file, stdin, sample), the mic callback and its ring buffer
windows.py       the rolling window of up to 30 s
commit.py        which words are final (local agreement), no word twice, loops cut
guards.py        words must be heard (VAD) and the hypothesis complete to be final
segments.py      segment ids, partial revisions: final words and tails -> caption events
captioner.py     window + VAD + recognizer + commit policy -> caption events (orchestration)
publisher.py     the thread that owns the ZeroMQ sockets (wire format: npustream.protocol)
sdnotify.py      the sd_notify protocol
supervise.py     watchdog and STATUS= timing, status and heartbeat bodies
config.py        options (TOML and flags)
daemon.py        start-up, the loop, shutdown
"""
