"""Whisper's tokenizer over the model directory's tokenizer.json: special tokens, prompts,
and the split of text tokens into words (for word timestamps)."""

from __future__ import annotations

import string
from functools import cached_property
from pathlib import Path

import tokenizers

# Languages written without spaces: words are split on unicode boundaries instead.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
SECONDS_PER_TIMESTAMP = 0.02  # <|0.00|>, <|0.02|>, ...: one step per encoder frame (two mel frames)


class WhisperTokenizer:
    def __init__(
        self, model_dir: Path, *, multilingual: bool, task: str = "transcribe", language: str | None = None
    ):
        self.hf = tokenizers.Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.multilingual = multilingual
        self.task = task
        self.language = language if multilingual else "en"

    def _id(self, token: str) -> int:
        token_id = self.hf.token_to_id(token)
        if token_id is None:
            raise KeyError(f"token {token!r} is not in this model's vocabulary")
        return token_id

    @cached_property
    def eot(self) -> int:
        return self._id("<|endoftext|>")

    @cached_property
    def sot(self) -> int:
        return self._id("<|startoftranscript|>")

    @cached_property
    def sot_prev(self) -> int:
        return self._id("<|startofprev|>")

    @cached_property
    def no_timestamps(self) -> int:
        return self._id("<|notimestamps|>")

    @cached_property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1  # <|0.00|>

    @cached_property
    def task_token(self) -> int:
        return self._id(f"<|{self.task}|>")

    @cached_property
    def language_codes(self) -> tuple[str, ...]:
        """Language codes the vocabulary knows, in token order."""
        codes = []
        for token_id in range(self.sot + 1, self.sot + 120):
            token = self.hf.id_to_token(token_id) or ""
            code = token[2:-2]
            if not (token.startswith("<|") and token.endswith("|>")) or code in ("translate", "transcribe"):
                break
            codes.append(code)
        return tuple(codes)

    def language_token(self, language: str) -> int:
        if language not in self.language_codes:
            raise ValueError(f"unknown language {language!r}; known: {', '.join(self.language_codes)}")
        return self._id(f"<|{language}|>")

    def sot_sequence(self, language: str | None) -> list[int]:
        """<|startoftranscript|> [<|lang|> <|task|>] as the decoder's forced prefix."""
        if not self.multilingual:
            return [self.sot]
        return [self.sot, self.language_token(language or "en"), self.task_token]

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, token_ids: list[int]) -> str:
        """Text tokens only; timestamps and specials are dropped."""
        return self.hf.decode([t for t in token_ids if t < self.eot])

    def decode_with_timestamps(self, token_ids: list[int]) -> str:
        return self.hf.decode(token_ids, skip_special_tokens=False)

    def split_to_word_tokens(self, token_ids: list[int], language: str) -> tuple[list[str], list[list[int]]]:
        if language in NO_SPACE_LANGUAGES:
            return self._split_on_unicode(token_ids)
        return self._split_on_spaces(token_ids)

    def _split_on_unicode(self, token_ids: list[int]) -> tuple[list[str], list[list[int]]]:
        # A word ends where the tokens so far decode to whole characters (no U+FFFD left over),
        # unless the replacement character is really in the text.
        full = self.decode_with_timestamps(token_ids)
        words: list[str] = []
        word_tokens: list[list[int]] = []
        current: list[int] = []
        offset = 0
        for token in token_ids:
            current.append(token)
            decoded = self.decode_with_timestamps(current)
            bad = decoded.find("\ufffd")
            if bad < 0 or (offset + bad < len(full) and full[offset + bad] == "\ufffd"):
                words.append(decoded)
                word_tokens.append(current)
                offset += len(decoded)
                current = []
        return words, word_tokens

    def _split_on_spaces(self, token_ids: list[int]) -> tuple[list[str], list[list[int]]]:
        # A new word starts at a token that begins with a space, or at punctuation, or after
        # a special token; subword pieces join the word before them.
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for piece, tokens in zip(*self._split_on_unicode(token_ids)):
            special = tokens[0] >= self.eot
            starts_word = piece.startswith(" ")
            punctuation = piece.strip() in string.punctuation
            if special or starts_word or punctuation or not words:
                words.append(piece)
                word_tokens.append(list(tokens))
            else:
                words[-1] += piece
                word_tokens[-1].extend(tokens)
        return words, word_tokens
