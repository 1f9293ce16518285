"""One dispatched amd/IRON operator step, named as IRON names it: the class and its constructor's
keyword arguments. PREDICTED, not measured: the cost is stock.step_cost's, with the calibrated
parameters unless others are given (npu/predict/calibration.py says what is fitted, and to what).

    predict_step("GEMM", {"M": 1536, "K": 512, "N": 1536, "num_aie_columns": 4,
                          "tile_m": 64, "tile_k": 64, "tile_n": 64})  -> seconds
    design_switch_s()  -> seconds a step pays when its design differs from the previous step's

Arguments the model does not distinguish (b_col_maj, c_col_maj, prio_accuracy, mask_patch_value,
emulate_bf16_mmul_with_bfp16, context, ...) are accepted and ignored: they change no DDR byte count
in these designs, and the published times show no layout effect beyond the run-to-run spread.
"""

from __future__ import annotations

from collections.abc import Mapping

from npustream.npu.ops.params import CALIBRATED_PRESETS, NpuParams
from npustream.npu.predict.stock import StockOp, step_cost

CLASSES = ("GEMM", "LayerNorm", "Softmax", "GELU", "ElementwiseAdd", "Transpose")


def stock_op(cls: str, kwargs: Mapping[str, int | bool]) -> StockOp:
    """The StockOp an IRON operator constructed with `kwargs` dispatches (ValueError if it cannot tile)."""
    k = dict(kwargs)
    cols, channels = int(k.get("num_aie_columns", 1)), int(k.get("num_channels", 1))
    if cls == "GEMM":
        shape, tile = (
            (k["M"], k["K"], k["N"]),
            (k.get("tile_m", 64), k.get("tile_k", 64), k.get("tile_n", 64)),
        )
        return StockOp(cls, "gemm", tuple(map(int, shape)), cols, tuple(map(int, tile)))
    if cls == "Softmax":  # one kernel call per row
        return StockOp(cls, "softmax", (int(k["rows"]) * int(k["cols"]),), cols, (int(k["cols"]),), channels)
    if cls == "Transpose":  # an (m, n) block per kernel call
        elements, tile = int(k["M"]) * int(k["N"]), int(k.get("m", 64)) * int(k.get("n", 64))
        return StockOp(cls, "transpose", (elements,), cols, (tile,), channels)
    operator = {"LayerNorm": "layer_norm", "GELU": "gelu", "ElementwiseAdd": "add"}.get(cls)
    if operator is None:
        raise ValueError(f"no stock-operator model for IRON class {cls!r}; one of {', '.join(CLASSES)}")
    size, tile = int(k["size"]), int(k.get("tile_size", k["size"]))
    return StockOp(cls, operator, (size,), cols, (tile,), 1 if operator == "add" else channels)


def predict_step(cls: str, kwargs: Mapping[str, int | bool], params: NpuParams | None = None) -> float:
    """PREDICTED seconds of one dispatched step of `cls(**kwargs)` in a stream of steps."""
    return step_cost(stock_op(cls, kwargs), params or CALIBRATED_PRESETS["phoenix"]).time_s


def design_switch_s(params: NpuParams | None = None) -> float:
    """PREDICTED (FITTED) seconds of reconfiguring the array for another operator design."""
    return (params or CALIBRATED_PRESETS["phoenix"]).design_switch_s
