"""Options that several commands take are declared once, in ``atlantis.cli.app``.

The test reads the command modules with ``ast``: an ``Annotated[..., typer.Option(...)]``
written inline in a command's signature declares its flag there; a flag declared inline by
two commands (or by a command and ``app.py``) is a second copy that drifts (other help, other
short name). The few flags that mean different things in different commands are listed,
with why.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import atlantis.cli

CLI = Path(atlantis.cli.__file__).resolve().parent
#: The same flag with another meaning (or type) per command: not one option.
DIFFERENT_MEANINGS = {
    "--delta": "train takes one delta of a sweep, filter a list of them (the sweep)",
    "--split": "ingest's split scheme (zsl/fsl) vs evaluate's split (train/val/test)",
    "--budget": "plan's images of one arm vs demo's images per augmented arm",
    "--root": "a dataset (ingest) vs where the emoji demo data lives (demo, fetch-emoji)",
    "--arm": "attack takes several arms (a list); the others one",
    "--out": "run's folder defaults to runs/<config name>; ingest/demo's is given",
    "--format": "a dataset's layout (ingest) vs the model copies export adds (onnx, torchscript)",
    "--force": "re-run a stage that is up to date vs replace an earlier export in --out",
    "--k": "recall's list of cut-offs K vs how many neighbours a search returns",
    "--seed": "ingest's split seed vs the training seed that picks a model (export, index)",
}


def _flag(param: ast.arg, call: ast.Call) -> str:
    names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return next((n for n in names if n.startswith("--")), "--" + param.arg.replace("_", "-"))


def declarations() -> dict[str, list[str]]:
    """flag -> where it is declared (``module:function`` or ``app.py:AliasName``)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for param in node.args.args:
                    for call in ast.walk(param.annotation) if param.annotation else ():
                        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                                and call.func.attr == "Option"):  # fmt: skip
                            found[_flag(param, call)].append(f"{path.name}:{node.name}")
            elif isinstance(node, ast.Assign) and path.name == "app.py":
                for call in ast.walk(node.value):
                    if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "Option":
                        target = node.targets[0]
                        name = target.id if isinstance(target, ast.Name) else "?"
                        found[_flag(ast.arg(arg=name), call)].append(f"app.py:{name}")
    return found


def test_shared_options_are_declared_once() -> None:
    twice = {flag: where for flag, where in declarations().items()
             if len(where) > 1 and flag not in DIFFERENT_MEANINGS
             and not all(w.startswith("app.py:") for w in where)}  # fmt: skip
    assert not twice, f"declare these once in atlantis/cli/app.py: {twice}"


def test_the_shared_aliases_exist_and_are_used() -> None:
    found = declarations()
    for flag in ("--device", "--json", "--force", "--config", "--set", "--embedder",
                 "--image-size", "--batch-size", "--option", "--llm", "--k", "--distance"):  # fmt: skip
        assert any(w.startswith("app.py:") for w in found[flag]), flag
    sources = "\n".join(p.read_text() for p in CLI.glob("*_cmd.py")) + (CLI / "main.py").read_text()
    for alias in ("DeviceOpt", "JsonOpt", "ArmOpt", "ImageSizeOpt", "BatchSizeOpt", "KOpt",
                  "DistanceOpt", "BackendOptionOpt", "LlmOpt", "FormatOpt", "RootOpt", "OutOpt"):  # fmt: skip
        assert f": {alias}" in sources, alias
