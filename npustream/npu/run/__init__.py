"""Layer 5 of the NPU stack: running a plan. One executor drives every backend (executor): the
emulator (emulator, the kernels' numerics on the CPU) and the NPU through pyxrt (xrt), which loads
what a build wrote (manifest)."""
