"""Layer 3 of the NPU stack: a plan as programs. The compute tiles' loop nest (core), the
instruction-stream vocabulary and its sequencer (column), what the op kinds share (phases), the
ops as phases (matmul, attention, layernorm), and a plan's XRT runs built from them (runs).
The DMA simulator (tests/tools) executes these programs and mlir/ expresses them in IRON."""
