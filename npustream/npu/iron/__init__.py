"""The Whisper encoder composed from amd/IRON operators (docs/npu-iron.md): numerics, graph,
folds, emulator, XRT runtime, build toolchain, plans, benchmark."""
