"""Layer 2 of the NPU stack: what goes where. One column's buffers and dataflows (design), the
cost of an op share on a column (cost, the timing model), which column runs which share (plans),
and the byte layouts of every buffer a plan uses (buffers). Imports npu.ops only."""
