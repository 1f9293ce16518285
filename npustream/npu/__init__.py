"""The NPU stack: the encoder as NPU operations (graph), the numeric contract shared by kernels
and emulator (numerics), tile sizes (tiles), the emulator engine, the plans, scheduler, timing
model, resource checker and the XRT runtime. Separate from the streaming daemon."""
