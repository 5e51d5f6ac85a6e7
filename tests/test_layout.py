"""The layout rules that import-linter cannot check: no private name crosses a module,
and the root of ``indexer/`` stays small (the layers live in its packages)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*REPO.glob("indexer/**/*.py"), *REPO.glob("db/*.py"), REPO / "cli.py",
                  *REPO.glob("tests/*.py"), *REPO.glob("bench/*.py")])


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_names(tree: ast.AST) -> set[str]:
    """Local names bound to photoqa modules (``from indexer import decode``, ``import db.store``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names
                      if a.name.split(".")[0] in ("indexer", "db")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("indexer", "db"):
            base = REPO / node.module.replace(".", "/")
            names |= {a.asname or a.name for a in node.names
                      if (base / f"{a.name}.py").exists() or (base / a.name).is_dir()}
    return names


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    modules = _module_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("indexer", "db"):
            found += [f"{path.name}:{node.lineno} imports {node.module}.{a.name}"
                      for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) \
                and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.append(f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module():
    found = [use for path in SOURCES for use in private_uses(path)]
    assert found == []


def test_the_checker_sees_a_private_import(tmp_path):
    planted = tmp_path / "x.py"
    planted.write_text("from indexer.pipeline.run import _hidden\nfrom indexer import decode\ndecode._secret()\n")
    assert len(private_uses(planted)) == 2


def test_indexer_root_holds_at_most_six_modules():
    modules = sorted(p.name for p in (REPO / "indexer").glob("*.py"))
    assert len(modules) <= 6, modules
