"""One window of audio -> timed words: decoding and resampling (audio), log-mel (features), voice
activity (vad), Whisper tokens (tokenizer), beam search with fallback (decoder), word timing
(words), and the recognizer that runs an engine and the decoder on a window. Imports engines/
and model/ below it; nothing here knows about streaming or files."""
