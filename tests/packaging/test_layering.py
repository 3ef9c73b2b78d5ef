"""The core is below every adapter: no module of ``moesif_core`` imports an adapter or the capture package, by an
import statement or by name (``importlib.import_module``). An adapter starts outgoing capture itself, handing
``moesifpythonrequest.start`` to the core."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import List

import test_wheels

CORE = Path(__file__).resolve().parents[2] / "moesif_core" / "src" / "moesif_core"
#: Every other package of the family (the adapters, the capture package, the collector), from the noxfile's list.
ADAPTERS = set(test_wheels.family()) - {"moesif_core"}


def imported_names(tree: ast.AST) -> List[str]:
    names: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return names


def test_no_core_module_imports_an_adapter() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    assert {"moesifwsgi", "moesifpythonrequest", "moesif_collector"} <= ADAPTERS
    found = {
        f"{path.name}: {name}"
        for path in files
        for name in imported_names(ast.parse(path.read_text()))
        if name.split(".")[0] in ADAPTERS
    }
    assert not found
