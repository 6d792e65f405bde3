"""Imports inside functions say why: the import graph is read at the top of a module.

An import of project code inside a function hides a dependency from a reader (and from the layers contract's
reading of the module). It is there for a reason or it is not: it defers a heavy library (the DAG files and
`mlops --help` must not load torch), it breaks an import cycle, or a comment beside it says why (e.g. a library
that must not be touched before a server's worker has set it up). Any other import of a constant or a class
belongs at the top of the module; the imports of functions still left inside functions are a debt that may only
shrink (BUDGET).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.helpers import ROOT

# third-party packages whose import costs seconds or starts machinery (what a lazy import may defer)
HEAVY = {"torch", "transformers", "evidently", "great_expectations", "bentoml", "onnxruntime", "onnx", "sklearn",
         "pandas", "numpy", "pyarrow", "airflow", "dvc", "gto", "mlflow", "wandb", "datasets", "scipy", "optimum",
         "accelerate", "matplotlib", "celery", "redis", "psycopg2", "sqlalchemy", "boto3", "tensorboard",
         "prometheus_client", "fastapi", "starlette", "uvicorn"}
BUDGET = 19  # function-level imports of project functions that defer nothing heavy: may only go down


def module_file(module: str) -> Path | None:
    for candidate in (ROOT / f"{module.replace('.', '/')}.py", ROOT / module.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def module_level_imports(path: Path) -> frozenset[str]:
    """What importing the file imports at once: not under TYPE_CHECKING, not inside a function."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}"))
            elif isinstance(node, ast.ClassDef):
                visit(node.body)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                       *(s for h in getattr(node, "handlers", []) for s in h.body)])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return frozenset(found)


@cache
def loads(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(project modules, third-party top-level packages) that importing `module` loads."""
    seen: set[str] = set()
    outside: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages load first
        path = module_file(name)
        for imported in module_level_imports(path) if path else ():
            (todo.append(imported) if imported.split(".")[0] == "mlops" else outside.add(imported.split(".")[0]))
    return frozenset(seen), frozenset(outside)


@cache
def function_level_imports() -> tuple[tuple[str, int, str, tuple[str, ...], bool], ...]:
    """(file, line, why it may be lazy or '', the names it imports, commented) for each project import inside a
    function of the package."""
    found = []
    for path in sorted((ROOT / "mlops").rglob("*.py")):
        relative = path.relative_to(ROOT)
        me = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        _, mine = loads(me)
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlops":
                    targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names
                                              if module_file(f"{node.module}.{a.name}"))]
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "mlops" for a in node.names):
                    targets = names = [a.name for a in node.names]
                else:
                    continue
                modules = set().union(*(loads(t)[0] for t in targets))
                outside = set().union(*(loads(t)[1] for t in targets))
                heavy = sorted((outside - mine) & HEAVY)
                why = f"defers {', '.join(heavy)}" if heavy else "breaks a cycle" if me in modules else ""
                commented = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
                found.append((str(relative), node.lineno, why, tuple(names), commented))
    return tuple(found)


def test_an_import_of_a_constant_or_class_inside_a_function_says_why():
    needless = [f"{path}:{line} imports {', '.join(names)}" for path, line, why, names, commented
                in function_level_imports()
                if not why and not commented and all(name[0].isupper() for name in names)]
    assert not needless, ("these load nothing heavy and break no cycle: import them at the top of the module, or "
                          "say why beside them:\n" + "\n".join(needless))


def test_function_level_imports_that_defer_nothing_only_get_fewer():
    needless = [(path, line) for path, line, why, _, commented in function_level_imports()
                if not why and not commented]
    assert len(needless) <= BUDGET, (f"{len(needless)} function-level project imports defer nothing heavy and break "
                                     f"no cycle (at most {BUDGET}): import at the top of the module, or say why")
    if len(needless) < BUDGET:
        print(f"lower tests/test_imports.py BUDGET to {len(needless)}")


def test_the_check_sees_what_a_lazy_import_defers():
    # given the CLI, whose stage subcommands import their stage inside the command
    lazy = {(path, why) for path, _, why, _, _ in function_level_imports() if path == "mlops/cli_stages.py"}
    # then it reads the stages' ML libraries as what the laziness defers (mlops --help loads none of them)
    assert any("torch" in why or "pandas" in why for _, why in lazy), lazy
