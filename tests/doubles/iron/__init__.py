"""A recording test double of mlir-aie's Python API (NOT mlir-aie): base (tiles, buffers, locks,
kernels, range_), program (Worker, Runtime, Program), dma (explicit DMAs and runtime chains),
dialects (the aie/aiex ops), install (registers it as `aie` in sys.modules)."""
