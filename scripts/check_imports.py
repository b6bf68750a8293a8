"""Import hygiene of the application packages, from their source (an AST walk: nothing is
imported, so no settings or database are needed).

Reports
- import cycles among module-level imports (each strongly connected component of the graph
  "module → the modules it imports when it is first imported", packages' __init__ included),
  and the cycles that imports inside functions hide (the same graph with those imports added);
- imports of these packages' own modules inside functions or methods (the usual way a cycle is
  hidden), except those allowed below with their reason;
- private names (a leading underscore) of one module used by another: `from m import _name`, or
  `m._name` where m names one of these modules. Imports under `if TYPE_CHECKING:` never
  run and are skipped; a function's lazy import of a third-party library (torch in a web
  process) is not reported.

Usage: python scripts/check_imports.py [--root DIR] [package ...]   (default: labeling inference webapp)
Exit status 1 when anything is reported.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("labeling", "inference", "webapp")

# (module, function): why an import inside that function is right.
ALLOWED_IN_FUNCTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported
    line: int
    function: str | None  # the enclosing function, None at module level


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(packages: list[str], root: Path) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module named by `from <base> import ...` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import of one file that names a module of the checked packages (one row per module
    named; the packages it imports first, a and a.b for a.b.c, are graph edges only), with the
    function it sits in (qualified: Class.method, outer.inner)."""
    found: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = _base(module, path, node)
        # `from package import name`: the submodule when it is one, else the package itself.
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]

    def visit(node: ast.AST, scope: tuple[str, ...], function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:  # only the `else:` branch runs
                    visit(other, scope, function)
                continue
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = (*scope, child.name)
                visit(child, inner, ".".join(inner))
                continue
            if isinstance(child, ast.ClassDef):
                visit(child, (*scope, child.name), function)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in dict.fromkeys(targets(child)):
                    if target in known and target != module:
                        found.append(Import(module, target, child.lineno, function))
            visit(child, scope, function)

    visit(ast.parse(path.read_text(), filename=str(path)), (), None)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(module: str, path: Path, known: set[str]) -> list[str]:
    """Private names of other modules that this file imports or reads as `module._name`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bound: dict[str, str] = {}  # a local name → the module of ours it names
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and alias.asname:
                    bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path, node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    bound[alias.asname or alias.name] = target
                elif base in known and base != module and _private(alias.name):
                    found.append(f"{node.lineno}: imports {alias.name} from {base}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and bound[node.value.id] != module
            and _private(node.attr)
        ):
            found.append(f"{node.lineno}: uses {bound[node.value.id]}.{node.attr}")
    return found


def parents(name: str) -> list[str]:
    """The packages Python imports before a module: a and a.b for a.b.c."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def check(packages: list[str], root: Path = ROOT) -> list[str]:
    """The problems found, one line each (empty: none)."""
    modules = modules_of(packages, root)
    known = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    every: dict[str, set[str]] = {name: set() for name in modules}  # function imports included
    problems = []
    for name, path in modules.items():
        for imp in imports_of(name, path, known):
            edges = {p for p in [*parents(imp.target), imp.target] if p in known and p != name}
            every[name].update(edges)
            if imp.function is None:
                graph[name].update(edges)
            elif (name, imp.function) not in ALLOWED_IN_FUNCTIONS:
                where = path.relative_to(root)
                problems.append(f"{where}:{imp.line}: import of {imp.target} inside {imp.function}()")
        where = path.relative_to(root)
        problems.extend(f"{where}:{use} (private to that module)" for use in private_uses(name, path, known))
    found = cycles(graph)
    for component in found:
        problems.append(f"import cycle: {' ↔ '.join(component)}")
    for component in cycles(every):
        if not any(set(component) <= set(other) for other in found):
            problems.append(f"import cycle hidden by imports inside functions: {' ↔ '.join(component)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", default=list(PACKAGES))
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder holding the packages")
    args = parser.parse_args(argv)
    problems = check(args.packages, args.root)
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s) in {', '.join(args.packages)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
