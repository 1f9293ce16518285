"""bfloat16 storage: round-to-nearest-even from float32, and the 16-bit patterns both ways.

One implementation for the model reader (bf16 weights in model.bin) and the NPU numerics
contract (bf16 activations and weights), which the AIE kernels reproduce bit for bit."""

from __future__ import annotations

import numpy as np


def bf16_round(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bf16 value (RNE), returned as float32.

    Adding 0x7FFF plus the lowest kept bit to the fp32 bits, then clearing the low 16 bits, is
    RNE; it also carries finite values past bf16's largest into inf, as RNE should. NaN is kept
    a quiet NaN with its sign (the add could otherwise carry a NaN's payload into inf or -0).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    r = u >> np.uint32(16)
    r &= np.uint32(1)
    r += np.uint32(0x7FFF)
    r += u
    r &= np.uint32(0xFFFF0000)
    if not np.isfinite(x).all():
        nan = np.isnan(x)
        r[nan] = (u[nan] & np.uint32(0xFFFF0000)) | np.uint32(0x00400000)
    return r.view(np.float32)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> uint16 bf16 bit patterns (RNE, as bf16_round)."""
    return (bf16_round(x).view(np.uint32) >> np.uint32(16)).astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    """uint16 bf16 bit patterns -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
