"""The package's imports point one way, down the layers written in the README, and never round in a cycle."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "animesis"

# Lowest first; a module may import from its own layer or any layer below it.
LAYERS = [
    {"__init__", "errors", "config", "files", "device", "tensors"},
    {"data"},
    {"synth"},
    {"models"},
    {"losses"},
    {"runs"},
    {"inference", "export"},
    {"metrics"},
    {"training", "annotate", "characters"},
    {"app"},
    {"commands"},
    {"cli", "__main__"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not placed in any layer of tests/test_layers.py")


def imports_of(path: Path) -> set[str]:
    """Every animesis module this file imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "animesis":  # `from animesis import files` (a module) or `__version__`
                found |= {
                    f"animesis.{a.name}"
                    if (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").exists()
                    else "animesis"
                    for a in node.names
                }
            elif node.module.startswith("animesis."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("animesis.")}
    return found


GRAPH = {module_name(p): imports_of(p) for p in sorted(SRC.rglob("*.py"))}


def test_every_module_has_a_layer():
    for module in GRAPH:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    upward = [m for m in GRAPH[module] if layer_of(m) > layer_of(module)]
    assert not upward, f"{module} imports from a higher layer: {sorted(upward)}"


def test_no_import_cycles():
    def resolve(m: str) -> str:
        return m if m in GRAPH else m.rsplit(".", 1)[0]

    edges = {m: {resolve(t) for t in ts if resolve(t) != m} for m, ts in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from animesis.training.loop import train\n")
    assert imports_of(bad) == {"animesis.training.loop"}
    assert layer_of("animesis.training.loop") > layer_of("animesis.inference")
