"""The double's shared behaviour: record, and write stand-in artifacts on compile()."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DOUBLE_XCLBIN = "npustream-pyxrt-test-double-xclbin"


class RecordedOperator:
    cls = ""
    n_buffers = 2

    def __init__(self, context=None, **params):
        self.params, self.context = params, context
        self._log("construct")

    def _log(self, event: str) -> None:
        path = os.environ.get("IRON_DOUBLE_LOG")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"event": event, "class": self.cls, "params": self.params}) + "\n")

    def compile(self) -> None:
        build = Path(self.context.build_dir)
        build.mkdir(parents=True, exist_ok=True)
        key = json.dumps([self.cls, sorted(self.params.items())])
        (build / "design.mlir").write_text(f"// test double of {key}\n")
        uid = hashlib.sha256(key.encode()).hexdigest()[:32]
        (build / "final.xclbin").write_text(
            json.dumps(
                {
                    "format": DOUBLE_XCLBIN,
                    "uuid": uid,
                    "kernels": [{"name": "MLIR_AIE", "num_args": 3 + self.n_buffers}],
                }
            )
        )
        words = [0x0600_0000 + len(key), *[b for b in key.encode()[:60]]]
        (build / "insts.bin").write_bytes(b"".join(int(w).to_bytes(4, "little") for w in words))
        self._log("compile")
