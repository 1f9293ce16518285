"""The Whisper encoder as a sequence of amd/IRON operator calls (a graph of steps over buffers).

One graph serves everything that needs the encoder's operator structure: `npu build` compiles
each distinct `Operator` once, the runtime dispatches the steps in order, `npu bench` times them,
the plans count and place them, and the emulator runs them with the kernels' numerics
(npu/iron/emulate.py), so the wiring the NPU would run is the wiring the accuracy tests check.

A step names an operator of the pinned amd/IRON (class, keyword arguments) and the contiguous
buffer regions (`View`s) it reads and writes, in the operator's argument order. Host steps (the
two im2col copies and the final LayerNorm's affine) run on the CPU between NPU steps.

Canonical window, Whisper base (d 512, 8 heads of 64, ff 2048, 6 layers); T = 1536 (1500 padded
to the GEMM's row granularity, 4 rows x tile_m 64 = 256; padded_positions):
  stem   host im2col(mel) [3072, 256]; GEMM 3072x256x512; Add bias; GELU;
         host im2col(stride 2) [1536, 1536]; GEMM 1536x1536x512; Add bias; GELU; Add positions
  layer  LayerNorm; GEMM 1536x512x1536 c_col_maj -> [Q;K;V]^T [1536, 1536]; Add Q bias on Q^T;
         per head: Transpose Q_h^T [64, 1536] -> Q_h [1536, 64]; GEMM 1536x64x1536 Q_h K_h^T
         (B = K_h^T, a row block of the transposed QKV) -> S_h; one Softmax over all heads'
         rows (12288 x 1536, keys >= 1500 masked); per head GEMM 1536x1536x64 P_h V_h with
         b_col_maj (V_h^T is the row block) and c_col_maj -> O_h^T, a row block of O^T [512, 1536];
         GEMM 512x512x1536 W_o O^T with c_col_maj -> Y [1536, 512]; Add bias; Add residual;
         LayerNorm; GEMM 1536x512x2048; Add bias; GELU; GEMM 1536x2048x512; Add bias; Add residual
  final  LayerNorm; host: rows [:1500] * gamma + beta in float32
"""

from __future__ import annotations

from dataclasses import dataclass

from npustream.model.dims import WhisperDims

ROW_BLOCK = 256  # a GEMM's M must be a multiple of 4 rows x tile_m 64
CONV1_K = 256  # conv1's im2col width 3 * 80 = 240, padded to a multiple of tile_k (as AMD's app)
TILE = 64  # GEMM tile_m / tile_k / tile_n unless a shape needs less
ELEMENTWISE_TILE = 2048  # elements per kernel call of Add and GELU (the size AMD's CI measured)
WIDTHS = (1, 2, 4)  # npu1 partitions an operator design can use (NPU1Col1, NPU1Col2, NPU1)

# The pinned amd/IRON's operator classes: module, class, the order of the callable's buffers.
CLASSES = {
    "GEMM": ("iron.operators.gemm.op", ("A", "B", "C")),
    "LayerNorm": ("iron.operators.layer_norm.op", ("input", "output")),
    "Softmax": ("iron.operators.softmax.op", ("input", "output")),
    "GELU": ("iron.operators.gelu.op", ("input", "output")),
    "ElementwiseAdd": ("iron.operators.elementwise_add.op", ("a", "b", "output")),
    "Transpose": ("iron.operators.transpose.op", ("input", "output")),
}


@dataclass(frozen=True)
class Operator:
    """One operator design: a class of the pinned amd/IRON and its constructor's arguments."""

    cls: str
    params: tuple[tuple[str, int | bool], ...]

    @property
    def kwargs(self) -> dict[str, int | bool]:
        return dict(self.params)

    @property
    def module(self) -> str:
        return CLASSES[self.cls][0]

    @property
    def columns(self) -> int:
        return int(self.kwargs["num_aie_columns"])

    @property
    def key(self) -> str:
        """A file-name-safe name, unique per design (the build's directory for it)."""
        short = {
            "num_aie_columns": "c",
            "num_channels": "ch",
            "prio_accuracy": "prio",
            "b_col_maj": "bcm",
            "c_col_maj": "ccm",
            "emulate_bf16_mmul_with_bfp16": "bfp16",
            "mask_patch_value": "valid",
        }
        parts = []
        for name, value in self.params:
            label = short.get(name, name)
            if isinstance(value, bool):
                if value:
                    parts.append(label)
            else:
                parts.append(f"{label}{value}")
        return "-".join([self.cls.lower(), *parts])


def _op(cls: str, **params: int | bool) -> Operator:
    return Operator(cls, tuple(sorted(params.items())))


@dataclass(frozen=True)
class View:
    """`shape` elements (bf16) of buffer `buffer`, contiguous from element `offset`."""

    buffer: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Step:
    name: str  # "layer3.pv.h5"
    op: Operator | None  # None: a host step
    args: tuple[View, ...]  # the operator's buffers in call order (inputs, then the output)
    host: str = ""  # host steps: "im2col_conv1" | "im2col_conv2" | "final_affine"
    layer: int = -1  # -1 stem, 0.. encoder layers, n_layer the final LayerNorm


@dataclass(frozen=True)
class Graph:
    dims: WhisperDims
    width: int  # columns of every operator design (1, 2 or 4)
    steps: tuple[Step, ...]
    buffers: dict[str, int]  # name -> elements (bf16 unless named in FLOAT32_BUFFERS)
    constants: frozenset[str]  # buffers written once at load time (folded weights, biases)

    @property
    def operators(self) -> list[Operator]:
        """The distinct designs, in first-use order: what `npu build` compiles."""
        seen: dict[Operator, None] = {}
        for step in self.steps:
            if step.op is not None:
                seen.setdefault(step.op)
        return list(seen)

    @property
    def npu_steps(self) -> list[Step]:
        return [s for s in self.steps if s.op is not None]


INPUT = "mel"  # float32 [n_mels, 2 * n_ctx], written by the host
OUTPUT = "out"  # float32 [n_ctx, d], read by the host
# float32 buffers only the host touches: never on the device
HOST_BUFFERS = frozenset((INPUT, OUTPUT, "final.gamma", "final.beta"))


def padded_positions(n_ctx: int) -> int:
    """Encoder positions padded to the GEMM's row granularity: 1500 -> 1536."""
    return -(-n_ctx // ROW_BLOCK) * ROW_BLOCK


def _gemm(
    m: int,
    k: int,
    n: int,
    width: int,
    *,
    b_col_maj: bool = False,
    c_col_maj: bool = False,
    prio_accuracy: bool = True,
) -> Operator:
    # the widest tiles that divide: M over the 4 rows of cores, N over the columns (multiples of
    # 2 x the bf16 mmul's r = t = 4)
    tile_m = next((tm for tm in (TILE, 32, 16, 8) if m % (4 * tm) == 0), 0)
    tile_n = next((tn for tn in (TILE, 32, 16, 8) if n % (tn * width) == 0), 0)
    if k % TILE or not tile_m or not tile_n:
        raise ValueError(f"GEMM {m}x{k}x{n} does not tile on {width} columns")
    return _op(
        "GEMM",
        M=m,
        K=k,
        N=n,
        num_aie_columns=width,
        tile_m=tile_m,
        tile_k=TILE,
        tile_n=tile_n,
        b_col_maj=b_col_maj,
        c_col_maj=c_col_maj,
        prio_accuracy=prio_accuracy,
        emulate_bf16_mmul_with_bfp16=False,
    )


def _add(size: int, width: int) -> Operator:
    return _op("ElementwiseAdd", size=size, tile_size=ELEMENTWISE_TILE, num_aie_columns=width)


def _gelu(size: int, width: int) -> Operator:
    return _op("GELU", size=size, tile_size=ELEMENTWISE_TILE, num_aie_columns=width, num_channels=1)


def _layernorm(rows: int, d: int, width: int) -> Operator:
    return _op("LayerNorm", size=rows * d, tile_size=d, num_aie_columns=width, num_channels=1)


def encoder_graph(dims: WhisperDims, width: int = 4, *, prio_accuracy: bool = True) -> Graph:
    """The steps of one window on operator designs `width` columns wide."""
    if width not in WIDTHS:
        raise ValueError(f"an npu1 design is 1, 2 or 4 columns wide, not {width}")
    d, heads, dh, ff = dims.n_audio_state, dims.n_audio_head, dims.d_head, dims.n_ff
    n_ctx = dims.n_audio_ctx
    t = padded_positions(n_ctx)
    frames = 2 * t
    buffers: dict[str, int] = {}
    constants: set[str] = set()
    steps: list[Step] = []

    def buf(name: str, *shape: int, const: bool = False) -> View:
        size = 1
        for s in shape:
            size *= s
        buffers[name] = size
        if const:
            constants.add(name)
        return View(name, 0, tuple(shape))

    def part(whole: View, row0: int, rows: int) -> View:  # rows row0.. of a 2-d view
        cols = whole.shape[1]
        return View(whole.buffer, whole.offset + row0 * cols, (rows, cols))

    def gemm(name: str, a: View, b: View, c: View, op: Operator, layer: int) -> None:
        steps.append(Step(name, op, (a, b, c), layer=layer))

    gp = {"prio_accuracy": prio_accuracy}
    mel = buf(INPUT, dims.n_mels, 2 * n_ctx)
    cols1 = buf("stem.cols1", frames, CONV1_K)
    steps.append(Step("stem.im2col1", None, (mel, cols1), host="im2col_conv1"))
    conv1 = buf("stem.conv1", frames, d)
    gemm(
        "stem.conv1",
        cols1,
        buf("w.conv1", CONV1_K, d, const=True),
        conv1,
        _gemm(frames, CONV1_K, d, width, **gp),
        -1,
    )
    steps.append(
        Step(
            "stem.conv1.bias",
            _add(frames * d, width),
            (conv1, buf("b.conv1", frames, d, const=True), conv1),
            layer=-1,
        )
    )
    steps.append(Step("stem.gelu1", _gelu(frames * d, width), (conv1, conv1), layer=-1))
    cols2 = buf("stem.cols2", t, 3 * d)
    steps.append(Step("stem.im2col2", None, (conv1, cols2), host="im2col_conv2"))
    x = buf("x", t, d)
    gemm("stem.conv2", cols2, buf("w.conv2", 3 * d, d, const=True), x, _gemm(t, 3 * d, d, width, **gp), -1)
    steps.append(
        Step("stem.conv2.bias", _add(t * d, width), (x, buf("b.conv2", t, d, const=True), x), layer=-1)
    )
    steps.append(Step("stem.gelu2", _gelu(t * d, width), (x, x), layer=-1))
    steps.append(
        Step("stem.positions", _add(t * d, width), (x, buf("positions", t, d, const=True), x), layer=-1)
    )

    ln = buf("ln", t, d)
    qkv_t = buf("qkv_t", 3 * d, t)  # [Q; K; V]^T
    buf("q", heads, t, dh)  # per head Q_h [t, dh]: the transposes write, the Q K^T GEMMs read
    scores = buf("scores", heads * t, t)
    o_t = buf("o_t", d, t)
    y = buf("y", t, d)
    hidden = buf("hidden", t, ff)
    for i in range(dims.n_audio_layer):
        p = f"layer{i}."
        steps.append(Step(p + "ln1", _layernorm(t, d, width), (x, ln), layer=i))
        gemm(
            p + "qkv",
            ln,
            buf(p + "w.qkv", d, 3 * d, const=True),
            qkv_t,
            _gemm(t, d, 3 * d, width, c_col_maj=True, **gp),
            i,
        )
        q_t = part(qkv_t, 0, d)
        steps.append(
            Step(p + "q.bias", _add(d * t, width), (q_t, buf(p + "b.q", d, t, const=True), q_t), layer=i)
        )
        for h in range(heads):
            q_h = View("q", h * t * dh, (t, dh))
            steps.append(
                Step(
                    f"{p}q.transpose.h{h}",
                    _op("Transpose", M=dh, N=t, num_aie_columns=width, num_channels=1, m=dh, n=TILE, s=8),
                    (part(qkv_t, h * dh, dh), q_h),
                    layer=i,
                )
            )
            gemm(
                f"{p}qk.h{h}",
                q_h,
                part(qkv_t, d + h * dh, dh),
                part(scores, h * t, t),
                _gemm(t, dh, t, width, **gp),
                i,
            )
        steps.append(
            Step(
                p + "softmax",
                _op(
                    "Softmax",
                    rows=heads * t,
                    cols=t,
                    num_aie_columns=width,
                    num_channels=1,
                    mask_patch_value=n_ctx,
                ),
                (scores, scores),
                layer=i,
            )
        )
        for h in range(heads):
            gemm(
                f"{p}pv.h{h}",
                part(scores, h * t, t),
                part(qkv_t, 2 * d + h * dh, dh),
                part(o_t, h * dh, dh),
                _gemm(t, t, dh, width, b_col_maj=True, c_col_maj=True, **gp),
                i,
            )
        gemm(
            p + "out",
            buf(p + "w.out", d, d, const=True),
            o_t,
            y,
            _gemm(d, d, t, width, c_col_maj=True, **gp),
            i,
        )
        steps.append(
            Step(p + "out.bias", _add(t * d, width), (y, buf(p + "b.out", t, d, const=True), y), layer=i)
        )
        steps.append(Step(p + "attn.residual", _add(t * d, width), (x, y, x), layer=i))
        steps.append(Step(p + "ln2", _layernorm(t, d, width), (x, ln), layer=i))
        gemm(p + "fc1", ln, buf(p + "w.fc1", d, ff, const=True), hidden, _gemm(t, d, ff, width, **gp), i)
        steps.append(
            Step(
                p + "fc1.bias",
                _add(t * ff, width),
                (hidden, buf(p + "b.fc1", t, ff, const=True), hidden),
                layer=i,
            )
        )
        steps.append(Step(p + "gelu", _gelu(t * ff, width), (hidden, hidden), layer=i))
        gemm(p + "fc2", hidden, buf(p + "w.fc2", ff, d, const=True), y, _gemm(t, ff, d, width, **gp), i)
        steps.append(
            Step(p + "fc2.bias", _add(t * d, width), (y, buf(p + "b.fc2", t, d, const=True), y), layer=i)
        )
        steps.append(Step(p + "mlp.residual", _add(t * d, width), (x, y, x), layer=i))
    final = dims.n_audio_layer
    steps.append(Step("final.ln", _layernorm(t, d, width), (x, ln), layer=final))
    steps.append(
        Step(
            "final.affine",
            None,
            (ln, buf("final.gamma", d, const=True), buf("final.beta", d, const=True), buf(OUTPUT, n_ctx, d)),
            host="final_affine",
            layer=final,
        )
    )
    return Graph(dims, width, tuple(steps), buffers, frozenset(constants))


def operand_shapes(op: Operator) -> tuple[tuple[int, ...], ...]:
    """The shapes of an operator's buffers in call order, as its design lays them out."""
    kw = op.kwargs
    if op.cls == "GEMM":
        m, k, n = kw["M"], kw["K"], kw["N"]
        return ((m, k), (n, k) if kw["b_col_maj"] else (k, n), (n, m) if kw["c_col_maj"] else (m, n))
    if op.cls == "ElementwiseAdd":
        return ((kw["size"],),) * 3
    if op.cls in ("GELU", "LayerNorm"):
        return ((kw["size"],),) * 2
    if op.cls == "Softmax":
        return ((kw["rows"] * kw["cols"],),) * 2
    if op.cls == "Transpose":
        return ((kw["M"], kw["N"]), (kw["N"], kw["M"]))
    raise ValueError(f"unknown operator class {op.cls}")
