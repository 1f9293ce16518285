"""Layer 1 of the NPU stack: the encoder as NPU operations (graph), their tile sizes (tiles) and
the blocked layouts inside a tile (blocking), the numeric contract the kernels and the emulator
share (numerics), the weights in the kernels layout (weights), and the Phoenix hardware facts
(params). Imports nothing from the layers above."""
