"""A progress bar on stderr for long work: redrawn in place on a terminal, a line per tenth
otherwise (so logs and CI output stay readable)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: float, unit: str = "s", stream=None):
        self.label, self.total, self.unit = label, max(total, 1e-9), unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_tenth = -1

    def update(self, done: float) -> None:
        share = min(1.0, max(0.0, done / self.total))
        elapsed = time.monotonic() - self.started
        text = f"{self.label} {share:4.0%} {done:.1f}/{self.total:.1f} {self.unit} ({elapsed:.1f} s elapsed)"
        if self.tty:
            bar = "#" * int(share * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {text[len(self.label) + 1 :]}")
            self.stream.flush()
        elif int(share * 10) > self._last_tenth:
            self._last_tenth = int(share * 10)
            self.stream.write(text + "\n")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
