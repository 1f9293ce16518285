"""File mode: a whole file -> segments in sequential 30 s windows (transcriber), written as
txt/srt/vtt/json (formats). Built on asr/."""
