"""The package declares what it imports: `pip install -e .` alone gives a working `avemo`.

Every top-level module that a file under src/avemo imports (read with ast, so nothing is
executed) is either the standard library, avemo itself, or provided by a distribution that
pyproject.toml lists in [project] dependencies. A module imported only inside a
``try: ... except ImportError`` may instead come from an optional-dependencies extra.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "avemo"


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    name = re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _optional_lines(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside a try block that catches ImportError."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = " ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
        if "ImportError" not in caught and "ModuleNotFoundError" not in caught:
            continue
        for inner in node.body:
            for sub in ast.walk(inner):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    lines.add(sub.lineno)
    return lines


def imported_modules(root: Path = SRC, base: Path = REPO) -> dict[str, dict[str, set[str]]]:
    """Top-level module -> {"required"|"optional": files that import it} (absolute imports)."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        optional = _optional_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            kind = "optional" if node.lineno in optional else "required"
            for name in names:
                top = name.split(".")[0]
                entry = found.setdefault(top, {"required": set(), "optional": set()})
                entry[kind].add(str(path.relative_to(base)))
    return found


def third_party(found: dict[str, dict[str, set[str]]]) -> dict[str, dict[str, set[str]]]:
    return {m: f for m, f in found.items() if m not in sys.stdlib_module_names and m != "avemo"}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_runtime_import_is_a_declared_dependency(project: dict) -> None:
    declared = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project.get("optional-dependencies", {}).values()
              for r in reqs}
    owners = md.packages_distributions()
    missing = []
    for module, files in sorted(third_party(imported_modules()).items()):
        dists = {_name(d) for d in owners.get(module, [])}
        if not dists:
            missing.append(f"{module} (no installed distribution provides it; imported by "
                           f"{sorted(files['required'] | files['optional'])})")
            continue
        allowed = declared | (extras if not files["required"] else set())
        if not dists & allowed:
            where = sorted(files["required"] or files["optional"])
            missing.append(f"{module} from {sorted(dists)} (imported by {where})")
    assert not missing, ("imported by src/avemo but not declared in pyproject.toml "
                         "[project] dependencies: " + "; ".join(missing))


def test_the_scan_sees_known_imports_and_skips_the_standard_library() -> None:
    # The check must be able to fail: the scan finds the heavy imports it is there for.
    found = third_party(imported_modules())
    assert {"torch", "numpy", "yaml", "dvclive", "PIL", "threadpoolctl"} <= set(found)
    assert not {"os", "json", "pathlib", "avemo"} & set(found)


def test_an_undeclared_import_is_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("import os\nimport numpy as np\ntry:\n    import yaml\n"
                              "except ImportError:\n    yaml = None\n", encoding="utf-8")
    found = third_party(imported_modules(pkg, base=tmp_path))
    assert found["numpy"]["required"] == {"pkg/m.py"}
    assert found["yaml"] == {"required": set(), "optional": {"pkg/m.py"}}
    assert "os" not in found


def test_requirement_names_are_normalised() -> None:
    assert _name("opencv-python-headless<5") == "opencv-python-headless"
    assert _name("PyYAML") == "pyyaml"
    assert _name("snakemake>=9,<10") == "snakemake"
    assert _name("scikit_learn[extra] ; python_version>'3'") == "scikit-learn"


def test_pyproject_names_its_licence_and_entry_point(project: dict) -> None:
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert project["scripts"]["avemo"] == "avemo.cli:main"
    assert "MIT" in str(project.get("license", ""))
