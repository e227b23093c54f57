"""The package code a CLI command runs, from the import graph (transitively).

Snakemake's "code" rerun-trigger sees only a rule's shell string, never the package it calls.
Each rule therefore carries ``digest(command)`` as a param, and the generated dvc.yaml lists
``files(command)`` as the stage's deps: both come from here, so an edit to any module a stage
imports (directly, lazily inside a function, or through a package ``__init__``) reruns exactly
the stages that run it, in Snakemake and DVC alike, and an edit elsewhere reruns nothing.

The graph is read with ``ast`` (nothing is imported), starting from the command's handler in
``cli.py``. A model's own code is imported by name through the registry (``"module:attr"``), so
a job that builds a model (its command reaches ``avemo.registry``) also depends on that model's
module and what it imports: editing ``models/cnn5.py`` reruns the cnn5 jobs only.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name  # "avemo"
CLI = f"{PACKAGE}.cli"


def _module_file(module: str, root: Path) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for f in (root / rel / "__init__.py", (root / rel).with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(nodes: list[ast.stmt], module: str, is_package: bool, root: Path) -> set[str]:
    """Package modules imported anywhere in ``nodes`` (function bodies included)."""
    found: set[str] = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            if target is None:
                continue
            found.add(target)
            # `from pkg import sub`: sub may be a module
            found |= {f"{target}.{a.name}" for a in node.names
                      if _module_file(f"{target}.{a.name}", root) is not None}
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _closure(start: set[str], root: Path) -> set[Path]:
    seen: set[str] = set()
    todo = list(start)
    files: set[Path] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        f = _module_file(module, root)
        if f is None:
            continue
        files.add(f)
        if module == CLI:  # its imports are per command: files() gives the command's own
            continue
        stat = f.stat()
        todo += _file_imports(f, module, root, (stat.st_mtime_ns, stat.st_size))
    return files


@cache
def _file_imports(f: Path, module: str, root: Path, stamp: tuple[int, int]) -> frozenset[str]:
    """``_imports`` of a whole file, parsed once per version (``stamp``: mtime and size): every
    job's digest walks the same modules, and Snakemake computes one per job when it builds the
    DAG (parsing each file per job cost about 10 s of every ``snakemake`` start on the demo)."""
    tree = _parse(f, stamp)
    return frozenset(_imports(tree.body, module, f.name == "__init__.py", root))


@cache
def _parse(f: Path, stamp: tuple[int, int]) -> ast.Module:
    return ast.parse(f.read_text(encoding="utf-8"), filename=str(f))


def _handler(command: str, tree: ast.Module) -> ast.FunctionDef:
    """The function ``build_parser`` registers for ``command`` (``add("train", _train, ...)``)."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == command
                and isinstance(node.args[1], ast.Name)):
            name = node.args[1].id
            for fn in tree.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == name:
                    return fn
    raise KeyError(f"cli.py registers no subcommand {command!r}")


@cache
def files(command: str, model: str | None = None, root: Path = PACKAGE_DIR) -> tuple[Path, ...]:
    """Every package file ``avemo <command>`` may execute for ``model`` (a job's ``model``
    wildcard, or None), sorted."""
    cli = root / "cli.py"
    stat = cli.stat()
    tree = _parse(cli, (stat.st_mtime_ns, stat.st_size))
    module_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    start = _imports([*module_level, _handler(command, tree)], CLI, False, root)
    found = _closure({CLI, *start}, root)
    if model is not None and root / "registry.py" in found:
        from .registry import get

        found |= _closure({get(model).factory.partition(":")[0]}, root)
    return tuple(sorted(found))


@cache
def digest(command: str, model: str | None = None, root: Path = PACKAGE_DIR) -> str:
    """A digest of the contents of ``files(command, model)`` (decided by content: a fresh
    clone or ``dvc pull`` hashes the same)."""
    h = hashlib.sha256()
    for f in files(command, model, root):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def command_of(shell: str) -> str | None:
    """The avemo subcommand a rule's shell command runs (``avemo train ...`` -> ``train``)."""
    words = shell.split()
    for i, w in enumerate(words[:-1]):
        if w == PACKAGE:
            return words[i + 1]
    return None
