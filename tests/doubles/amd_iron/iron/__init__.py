"""TEST DOUBLE of amd/IRON's operator API as npustream's build calls it (pinned commit in
npustream/npu/iron/toolchain.py). It compiles nothing: each operator records its construction
and compile() in $IRON_DOUBLE_LOG (JSON lines) and writes stand-in artifacts into its context's
build_dir (design.mlir, a pyxrt-test-double xclbin, an instruction stream), so the build's
bookkeeping and the runtime can be tested without the toolchain.

Constructor signatures reproduce the pinned commit's as read with the search tools (see
docs/npu-iron.md): GEMM, LayerNorm, Softmax, GELU from iron/applications/whisper_small at the pin;
ElementwiseAdd and Transpose from the stored versions nearest to it. An unknown keyword raises
TypeError as the real classes do.
"""
