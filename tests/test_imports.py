"""No two modules of the package import each other, not even inside a function.

A two-module circle works only as long as one side defers its import to call time, and it
breaks the day someone hoists that import to the top of the file (or imports the modules in
the other order). Function-level imports count here for that reason: they hide a circle
rather than remove it. The graph is read from the source with ``ast``, so the test needs no
optional dependency and imports nothing it checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import atlantis

SRC = Path(atlantis.__file__).resolve().parent
PACKAGE = "atlantis"


def module_name(path: Path) -> str:
    """``SRC/embed/registry.py`` -> ``atlantis.embed.registry``; a package's ``__init__``
    is the package itself."""
    parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body.

    ``from atlantis.embed import checkpoint_backend`` names the submodule when one exists,
    else the package (``from atlantis.llm import create_llm`` is an import of
    ``atlantis.llm``). Relative imports are resolved against the module's own package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(path, name, known) for name, path in modules.items()}


def two_module_cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if a < b and a in graph.get(b, set()))  # fmt: skip


def test_the_graph_sees_module_and_function_level_imports() -> None:
    """The reader itself: a missed kind of import would make the real check vacuous."""
    graph = import_graph()
    assert "atlantis.errors" in graph["atlantis.config"]  # module level
    assert "atlantis.caption.stage" in graph["atlantis.pipeline.loop"]  # inside a function
    assert "atlantis.llm.registry" in graph["atlantis.llm"]  # package __init__, from-import
    assert two_module_cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [("a", "b")]


def test_no_two_modules_import_each_other() -> None:
    cycles = two_module_cycles(import_graph())
    assert not cycles, "modules that import each other: " + ", ".join(
        f"{a} <-> {b}" for a, b in cycles
    )
