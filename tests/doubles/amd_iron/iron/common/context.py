"""TEST DOUBLE of iron.common.context.AIEContext: only build_dir is used."""

from pathlib import Path


class AIEContext:
    def __init__(self):
        self.build_dir = Path.cwd() / "build"
