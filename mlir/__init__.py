"""The per-column NPU design in IRON (mlir-aie's Python API) and its build: see README.md."""
