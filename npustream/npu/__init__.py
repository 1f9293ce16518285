"""The NPU stack, a ladder of layers; each imports only the layers below it (a test checks):

    run/      the executor and its backends: emulator (CPU), xrt (pyxrt), the build manifest
    predict/  predictions: event simulation, scheduler, resource check, Gantt chart
    program/  a plan as programs: core loop nest, instruction streams, op phases, XRT runs
    plan/     what goes where: column design, cost model, plans, buffer layouts
    ops/      the encoder as NPU operations, tiles, numerics, weights, Phoenix facts

engines/npu.py and engines/npu_emu.py put it behind the engine interface; mlir/ (outside the
package) expresses program/ in IRON; tests/tools and tests/doubles check it."""
