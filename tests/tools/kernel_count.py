"""The counter behind npustream/npu/ops/kernel_costs.py: per-call cycles and per-kernel program
bytes of the AIE kernels, counted from the kernels' own source (the NPU_AIE vector paths of
kernels/*.cc and the helpers of npu_aie.h). tests/test_kernel_costs.py recounts and fails when
the committed table and the code disagree;

    PYTHONPATH=tests python -m tools.kernel_count > npustream/npu/ops/kernel_costs_table.py

writes the table anew. Method (docs/npu-numerics.md, "Kernel costs"):

- The AIE path of each entry point is walked as written: a `for (int32_t v = A; v < B; v += S)`
  (or `v++`) loop multiplies its body by its trip count, evaluated with the call's arguments (the
  plan's tile sizes) and the function's `const int32_t` locals; an `if (flag)` whose condition
  evaluates (a call argument such as `gelu`, `bias`, `residual`) is counted when true; a call to
  a helper of npu_aie.h (or a function of the same file) counts the helper's body at that site.
- Operations are counted by kind: `mmul` (an `X.mac` / `X.mul` of an aie::mmul 4x8x4: one
  instruction, 128 bf16 MACs), `vector` (aie::add / sub / mul / mac / max / min / select / ge /
  transpose / to_fixed / to_float / reduce_max / reduce_add, accumulator to_vector / from_vector:
  16 lanes), `lookup` (`fetch` of an aie::parallel_lookup: 16 lanes through a 4-way banked table),
  `load` (aie::load_v), `store` (aie::store_v), `scalar` (a scalar soft-float step: npu::
  max_f32 / exp_lut / round_bf16 / rsqrt and fp32 divisions) and `lane` (one lane written or read
  by the scalar unit, `v[e]`).
- Cycles of a straight run of code (a loop body without its inner loops, or a function's body
  outside its loops) = max(mmul + vector + LOOKUP_CYCLES x lookup, ceil(load / 2), store)
  + SOFT_FLOAT_CYCLES x scalar + lane: one vector instruction, two loads and one store per cycle
  (AIE2's VLIW slots) with the loop fully software-pipelined, no loop overhead. A model of the
  code as written, not a measurement: the compiler's schedule decides the real figure.
- Program memory (per core: every core links every kernel, the glue and the core program): each
  counted operation is one instruction of INSTRUCTION_BYTES, counted once per place it appears
  in the source with helpers expanded at each call site (they are inline), a software-pipelined
  loop (AIE_PREPARE_FOR_PIPELINING) PIPELINE_COPIES times (prologue, kernel, epilogue), plus
  FUNCTION_BYTES per function and LOOP_BYTES per loop, plus compiler-rt's soft-float routines
  (SOFT_FLOAT_LIB_BYTES) and the glue and core program (GLUE_BYTES_PER_CALL per kernel call
  site, CORE_BYTES_PER_NODE per core-program node). An estimate with stated constants, settled
  only by the linked core ELF's .text (aiecc --get-core-elfs).

"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from npustream.npu.ops.kernel_costs import (
    FUNCTION_BYTES,
    INSTRUCTION_BYTES,
    LOOKUP_CYCLES,
    LOOP_BYTES,
    PIPELINE_COPIES,
    SOFT_FLOAT_CYCLES,
)

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
HELPERS = "npu_aie.h"

KINDS = ("mmul", "vector", "lookup", "load", "store", "scalar", "lane")
_PATTERNS = {
    "mmul": r"(?<!aie)(?<!:)\b\w+\.(?:mac|mul)\(",
    "vector": r"aie::(?:add|sub|mul|mac|max|min|select|ge|transpose|to_fixed|to_float|reduce_max|"
    r"reduce_add)\b|\.(?:template )?to_vector<|\.from_vector\(",
    "lookup": r"\.fetch\(",
    "load": r"aie::load_v<",
    "store": r"aie::store_v\(",
    "scalar": r"npu::(?:max_f32|exp_lut|round_bf16|rsqrt)\(|/ float\(|1\.0f / |/ scale\b",
    "lane": r"\b\w+\[e\]",
}
_FOR = re.compile(
    r"for\s*\(\s*(?:int32_t|int)\s+(\w+)\s*=\s*([^;]+);\s*\1\s*<\s*([^;]+);\s*"
    r"(?:\1\s*\+=\s*([^)]+)|\1\+\+)\s*\)"
)


@dataclass
class Count:
    """Operations by kind, and the cycles they take (see the module docstring)."""

    ops: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    cycles: float = 0.0

    def add(self, other: Count, times: float = 1.0) -> None:
        for kind in KINDS:
            self.ops[kind] += times * other.ops[kind]
        self.cycles += times * other.cycles


def _strip(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"^\s*#[^\n]*$", "", text, flags=re.M)


def _aie_region(text: str) -> str:
    """The NPU_AIE part: from `#if NPU_AIE` to its `#else` / `#endif` (the vector path)."""
    start = text.index("#if NPU_AIE")
    depth, pos = 0, start
    for match in re.finditer(r"^\s*#\s*(if|ifdef|ifndef|else|elif|endif)\b", text[start:], flags=re.M):
        word = match.group(1)
        if word.startswith("if"):
            depth += 1
        elif word == "endif":
            depth -= 1
        if depth == 0 or (depth == 1 and word == "else"):
            pos = start + match.start()
            break
    return text[start:pos]


def _block(text: str, open_at: int) -> int:
    """Index just past the brace block opening at text[open_at] == '{'."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError("unbalanced braces")


def _functions(text: str) -> dict[str, str]:
    """name -> body of each function defined in `text` (an AIE region, comments stripped)."""
    out = {}
    for match in re.finditer(r"\b(\w+)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*(?:const\s*)?\{", text):
        name = match.group(1)
        if name in ("for", "if", "while", "switch", "namespace") or name.startswith("AIE_"):
            continue
        end = _block(text, match.end() - 1)
        out[name] = text[match.end() : end - 1]
    return out


def _statement_end(text: str, pos: int) -> int:
    """End of the statement starting at pos: a brace block, a nested for / if, or up to ';'."""
    while True:  # whitespace and loop-pragma macros (AIE_PREPARE_FOR_PIPELINING, ...)
        while text[pos].isspace():
            pos += 1
        macro = re.match(r"AIE_\w+(?:\([^()]*\))?", text[pos:])
        if not macro:
            break
        pos += macro.end()
    if text[pos] == "{":
        return _block(text, pos)
    m = re.match(r"(for|if)\s*\(", text[pos:])
    if m:
        close = _paren_end(text, pos + m.end() - 1)
        return _statement_end(text, close)
    return text.index(";", pos) + 1


def _paren_end(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError("unbalanced parentheses")


def _eval(expr: str, env: dict[str, int]) -> int:
    expr = re.sub(r"\bfloat\(([^()]*)\)", r"(\1)", expr.strip())
    return eval(expr.replace("/", "//"), {"__builtins__": {}}, dict(env))  # C integer division


class _Counter:
    def __init__(self, functions: dict[str, str]):
        self.functions = functions

    def run(self, body: str, env: dict[str, int], static: bool = False) -> Count:
        """Count `body`: dynamically (loops times their trips) or statically (program size)."""
        total, flat, pos = Count(), [], 0
        env = dict(env)
        for m in re.finditer(r"const\s+int32_t\s+([^;]+);", body):  # the function's constants
            for name, expr in re.findall(r"(\w+)\s*=\s*([^,]+)", m.group(1)):
                try:
                    env[name] = _eval(expr, env)
                except Exception:  # noqa: BLE001 - a run-time value, not a trip count
                    pass
        while True:
            m = re.search(r"\b(for|if)\s*\(", body[pos:])
            if not m:
                flat.append(body[pos:])
                break
            start = pos + m.start()
            flat.append(body[pos:start])
            head_end = _paren_end(body, pos + m.end() - 1)
            end = _statement_end(body, head_end)
            inner = body[head_end:end]
            if m.group(1) == "for":
                loop = _FOR.match(body[start:head_end])
                if loop is None:
                    raise ValueError(f"kernel_cost cannot read this loop header: {body[start:head_end]!r}")
                var, first, last, step = loop.groups()
                pipelined = "AIE_PREPARE_FOR_PIPELINING" in body[max(0, start - 80) : start]
                if static:
                    part = self.run(inner, env, static=True)
                    total.add(part, PIPELINE_COPIES if pipelined else 1)
                    total.ops["loops"] = total.ops.get("loops", 0) + 1
                else:
                    lo, hi, st = _eval(first, env), _eval(last, env), _eval(step or "1", env)
                    trips = max(0, math.ceil((hi - lo) / st))
                    total.add(self.run(inner, env | {var: lo}), trips)
            else:
                cond = body[pos + m.end() : head_end - 1]
                try:
                    taken = bool(_eval(cond, env))
                except Exception:  # noqa: BLE001 - unknown at count time: counted as taken
                    taken = True
                if taken or static:
                    total.add(self.run(inner, env, static))
            pos = end
        total.add(self._straight("".join(flat), static))
        return total

    def _straight(self, code: str, static: bool) -> Count:
        count = Count()
        for kind, pattern in _PATTERNS.items():
            count.ops[kind] = float(len(re.findall(pattern, code)))
        for name, body in self.functions.items():
            calls = len(re.findall(rf"(?<![\w.:]){name}\(", code)) + len(re.findall(rf"aie2::{name}\(", code))
            if calls:
                count.add(self.run(body, {}, static), calls)
        own = count.ops
        count.cycles = (
            max(
                own["mmul"] + own["vector"] + LOOKUP_CYCLES * own["lookup"],
                math.ceil(own["load"] / 2),
                own["store"],
            )
            + SOFT_FLOAT_CYCLES * own["scalar"]
            + own["lane"]
        )
        return count


@cache
def _sources(kernels_dir: Path = KERNELS_DIR) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(helpers of npu_aie.h, per kernel file its AIE-region functions)."""
    helpers = _functions(_strip(_aie_region((kernels_dir / HELPERS).read_text())))
    files = {}
    for path in sorted(kernels_dir.glob("*.cc")):
        text = path.read_text()
        if "#if NPU_AIE" in text:
            files[path.name] = _functions(_strip(_aie_region(text)))
    return helpers, files


def _entry(name: str, kernels_dir: Path) -> tuple[str, dict[str, str]]:
    helpers, files = _sources(kernels_dir)
    for functions in files.values():
        if name in functions:
            local = {k: v for k, v in functions.items() if not k.startswith("npu_")}
            return functions[name], helpers | local
    raise KeyError(f"no AIE path defines {name}")


def kernel_calls(tiles, d_model: int, d_head: int) -> dict[str, tuple[str, dict[str, int]]]:
    """The kernel calls the column program makes, by row of the cost table: (entry point, its
    arguments at these tile sizes). A matmul output tile is zero + K/k acc + one out call."""
    m, k, n = tiles.matmul_m, tiles.matmul_k, tiles.matmul_n
    mq, nk = tiles.attn_q_rows, tiles.attn_kv_rows
    out = {"m": m, "n": n, "bias": 1, "residual": 0, "gelu": 0}
    return {
        "matmul_zero": ("npu_matmul_zero", {"m": m, "n": n}),
        "matmul_acc": ("npu_matmul_acc", {"m": m, "k": k, "n": n}),
        "matmul_out": ("npu_matmul_out", out),
        "matmul_out_residual": ("npu_matmul_out", out | {"residual": 1}),
        "matmul_out_gelu": ("npu_matmul_out", out | {"gelu": 1}),
        "matmul_out_gelu_residual": ("npu_matmul_out", out | {"gelu": 1, "residual": 1}),
        "layernorm": ("npu_layernorm", {"rows": tiles.layernorm_rows, "d": d_model}),
        "attn_update": ("npu_attn_update", {"mq": mq, "nk": nk, "nk_valid": nk, "dh": d_head}),
        "attn_finish": ("npu_attn_finish", {"mq": mq, "dh": d_head}),
        "gelu": ("npu_gelu_bf16", {"n": tiles.gelu_elems}),
    }


def count_call(entry: str, args: dict[str, int], kernels_dir: Path = KERNELS_DIR) -> Count:
    body, functions = _entry(entry, kernels_dir)
    return _Counter(functions).run(body, args)


def count_table(
    tiles, d_model: int, d_head: int, kernels_dir: Path = KERNELS_DIR
) -> dict[str, dict[str, int]]:
    """Per kernel call: cycles and operations by kind, as the source reads now."""
    table = {}
    for row, (entry, args) in kernel_calls(tiles, d_model, d_head).items():
        c = count_call(entry, args, kernels_dir)
        table[row] = {"cycles": math.ceil(c.cycles)} | {kind: int(c.ops[kind]) for kind in KINDS}
    return table


def file_program_bytes(kernels_dir: Path = KERNELS_DIR) -> dict[str, int]:
    """Program bytes of each kernel file's AIE entry points: every counted operation once per place
    in the source (helpers expanded where called: they are inline), a software-pipelined loop
    PIPELINE_COPIES times, plus each function's and each loop's overhead."""
    helpers, files = _sources(kernels_dir)
    out = {}
    for name, functions in files.items():
        local = {k: v for k, v in functions.items() if not k.startswith("npu_")}
        nbytes = 0
        for fname, body in functions.items():
            if fname.startswith("npu_"):
                c = _Counter(helpers | local).run(body, {}, static=True)
                ops = sum(c.ops[kind] for kind in KINDS)
                nbytes += int(ops * INSTRUCTION_BYTES + c.ops.get("loops", 0) * LOOP_BYTES + FUNCTION_BYTES)
        out[name] = nbytes
    return out


def table_module(kernels_dir: Path = KERNELS_DIR) -> str:
    """npustream/npu/ops/kernel_costs_table.py as the source counts now (default tiles, Whisper
    base: d_model 512, d_head 64)."""
    from npustream.npu.ops.tiles import DEFAULT_TILES

    d_model, d_head = 512, 64
    calls = count_table(DEFAULT_TILES, d_model, d_head, kernels_dir)
    rows = "\n".join(f"    {row!r}: {values!r}," for row, values in calls.items())
    files = "\n".join(f"    {name!r}: {nbytes}," for name, nbytes in file_program_bytes(kernels_dir).items())
    tiles = {f: getattr(DEFAULT_TILES, f) for f in DEFAULT_TILES.__dataclass_fields__}
    return (
        '"""Generated by `PYTHONPATH=tests python -m tools.kernel_count` from kernels/: per kernel call,\n'
        "predicted cycles and the operations counted by kind; per kernel file, predicted program bytes.\n"
        'Do not edit: tests/test_kernel_costs.py recounts the source and compares (kernel_costs.py)."""\n\n'
        f"COUNTED_AT = {{'tiles': {tiles!r}, 'dims': ({d_model}, {d_head})}}\n\n"
        f"CALLS = {{\n{rows}\n}}\n\nPROGRAM_BYTES_BY_FILE = {{\n{files}\n}}\n"
    )


if __name__ == "__main__":
    print(table_module(), end="")
