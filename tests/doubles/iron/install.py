"""Install the mlir-aie test double (tests only): register it as `aie` and its submodules in
sys.modules, so the design in mlir/ imports it where it would import mlir-aie."""

from __future__ import annotations

import sys
import types

from doubles.iron import base, dialects, dma, module, program


def install() -> None:
    """Register the double as `aie`, `aie.iron`, `aie.iron.device`, `aie.iron.controlflow` and
    `aie.dialects` (`_aie_enum_gen`, `aie`, `aiex`) in sys.modules (tests only, without mlir-aie)."""
    me = base
    exports = {
        "aie": {},
        "aie.dialects": {},
        "aie.iron.controlflow": {"range_": base.range_},
        "aie.dialects._aie_enum_gen": {
            "DMAChannelDir": base.DMAChannelDir,
            "AIETileType": base.AIETileType,
            "LockAction": dialects.LockAction,
        },
        "aie.iron.device": {"NPU1Col1": base.NPU1Col1, "Tile": base.Tile},
        "aie.iron": {
            name: getattr(next(m for m in (dma, program, me) if hasattr(m, name)), name)
            for name in (
                "Acquire",
                "Bd",
                "Buffer",
                "DmaChannel",
                "Flow",
                "Kernel",
                "Lock",
                "Program",
                "Release",
                "Runtime",
                "TileDma",
                "Worker",
                "tile_dma_chain",
            )
        },
    }
    modules = {
        name: types.ModuleType(name, "npustream's test double of mlir-aie (tests/doubles/iron/)")
        for name in exports
    }
    for name, attrs in exports.items():
        modules[name].__dict__.update(attrs)
    modules["aie.dialects.aie"], modules["aie.dialects.aiex"] = dialects.aie_module(), dialects.aiex_module()
    modules["aie.dialects.aiex"].runtime_sequence = module.runtime_sequence
    modules["aie.ir"] = module.ir_module()
    modules["aie"].ir = modules["aie.ir"]
    modules["aie.dialects"].aie, modules["aie.dialects"].aiex = (
        modules["aie.dialects.aie"],
        modules["aie.dialects.aiex"],
    )
    sys.modules.update(modules)
