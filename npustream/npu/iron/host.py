"""The host steps between NPU steps of the IRON graph (graph.Step.host), shared by the emulator
and the XRT runtime so both compute the same values.

  im2col_conv1   log-mel [n_mels, frames] -> [2T, 256] rows of three frames (conv1, stride 1)
  im2col_conv2   GELU(conv1) [2T, d] -> [T, 3d] rows of three frames (conv2, stride 2)
  final_affine   unit LayerNorm [T, d] -> rows [:n_ctx] * gamma + beta, float32

The im2col copies are on the host because the stock GEMM reads a dense row-major A; AMD's
whisper_small app does the same (docs/npu-iron.md).
"""

from __future__ import annotations

import numpy as np


def im2col(x: np.ndarray, stride: int, rows: int, width: int) -> np.ndarray:
    """time-major x [T, C], zero-padded by one frame at both ends -> [rows, width], zero-filled:
    row t holds frames stride*t - 1, stride*t, stride*t + 1, each frame's C channels in order."""
    t_in, c = x.shape
    padded = np.zeros((t_in + 2, c), np.float32)
    padded[1:-1] = x
    t_out = (t_in - 1) // stride + 1
    out = np.zeros((rows, width), np.float32)
    taps = np.arange(t_out)[:, None] * stride + np.arange(3)[None, :]
    out[:t_out, : 3 * c] = padded[taps].reshape(t_out, 3 * c)
    return out


def im2col_conv1(mel: np.ndarray, rows: int, width: int) -> np.ndarray:
    return im2col(np.asarray(mel, np.float32).T, 1, rows, width)


def im2col_conv2(conv1: np.ndarray, n_frames: int, rows: int, width: int) -> np.ndarray:
    return im2col(np.asarray(conv1, np.float32)[:n_frames], 2, rows, width)


def final_affine(unit: np.ndarray, gamma: np.ndarray, beta: np.ndarray, n_ctx: int) -> np.ndarray:
    return (np.asarray(unit, np.float32)[:n_ctx] * gamma + beta).astype(np.float32)
