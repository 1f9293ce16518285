"""The streaming daemon (`npustream run`), one module per stage:

sources.py, mic.py, ring.py  audio in (file, stdin, sample; microphone via a lock-free ring)
vad.py                       silero voice activity, pauses, utterance ends
windows.py                   the rolling window of up to 30 s
commit.py                    which words are final (LocalAgreement-2), no word twice, loops cut
guards.py                    words must be heard (VAD) and the hypothesis complete to be final
captioner.py                 window + VAD + recognizer + commit policy -> caption events
messages.py, publisher.py    the wire format; the thread that owns the ZeroMQ sockets
control.py                   the control socket's requests and replies
render.py                    captions for people (`subscribe`, `--echo`)
config.py, daemon.py         options (TOML and flags); start-up, the loop, shutdown
"""
