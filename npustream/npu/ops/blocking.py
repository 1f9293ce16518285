"""The AIE kernels' tile layouts (kernels/README.md, "Layouts"): a tile in blocks of br x bc
elements, every block row-major, blocks in row-major order. The DMA programs produce and consume
these layouts (npu/program/phases.py); the weights are stored blocked (npu/plan/buffers.py); the DMA simulator
unblocks to call the kernels' portable (row-major) paths.

    A operands (A tile, q, k):           4 x 8 blocks
    B operands (weight tile, v):         8 x 4 blocks
    accumulator-shaped (outputs, residual): 4 x 4 blocks
"""

from __future__ import annotations

import numpy as np

A_BLOCK = (4, 8)
B_BLOCK = (8, 4)
C_BLOCK = (4, 4)


def block(tile: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[rows, cols] -> flat array in (br x bc) blocks."""
    br, bc = shape
    rows, cols = tile.shape
    if rows % br or cols % bc:
        raise ValueError(f"a {rows} x {cols} tile is not whole {br} x {bc} blocks")
    return np.ascontiguousarray(tile.reshape(rows // br, br, cols // bc, bc).swapaxes(1, 2)).reshape(-1)


def unblock(flat: np.ndarray, rows: int, cols: int, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of `block`: flat (br x bc)-blocked data -> [rows, cols]."""
    br, bc = shape
    return np.ascontiguousarray(
        flat[: rows * cols].reshape(rows // br, cols // bc, br, bc).swapaxes(1, 2)
    ).reshape(rows, cols)
