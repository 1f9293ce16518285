"""Model weights: the packaged Whisper base assembled into a cache, and a numpy reader of
CTranslate2's model.bin."""
