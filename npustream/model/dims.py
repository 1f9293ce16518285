"""Whisper model dimensions, read from the weights (never assumed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int  # 80 (128 for large-v3)
    n_audio_ctx: int  # 1500 encoder positions per 30 s window
    n_audio_state: int  # d_model: 384 tiny, 512 base, 768 small, 1024 medium, 1280 large
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int  # 448
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    @property
    def d_head(self) -> int:
        return self.n_audio_state // self.n_audio_head

    @property
    def n_ff(self) -> int:
        return 4 * self.n_audio_state

    @property
    def multilingual(self) -> bool:
        return self.n_vocab >= 51865


# Published Whisper encoder shapes (d_model, heads, layers), for planning without a model file.
PUBLISHED_SHAPES = {
    "tiny": (384, 6, 4),
    "base": (512, 8, 6),
    "small": (768, 12, 12),
    "medium": (1024, 16, 24),
    "large": (1280, 20, 32),
}
