"""Imports run one way: data -> encoders -> models -> training -> api -> cli (design of the package).

Every ``import hiere.X`` in ``src/hiere`` (at module level or inside a function) must name a module of the
same layer or a lower one, and no two modules import each other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
LAYERS = [  # lowest first; a module may import its own layer and those below it
    ("errors", "io", "rows", "memory", "config", "arguments", "data", "metrics", "resources"),
    ("encoders", "evidence", "text", "losses"),
    ("models", "tasks"),
    ("training",),
    ("api", "extract", "build_ds"),
    ("cli", "serve", "scale", "scale_ray", "demo", "__main__", "__init__"),
]


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def module_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted((SOURCE / "hiere").rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hiere."):
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.startswith("hiere."))
        graph[module] = targets
    return graph


def test_every_import_goes_down_the_layers():
    upward = [(module, target) for module, targets in module_imports().items()
              for target in targets if layer(target) > layer(module if module != "hiere" else "hiere.__init__")]
    assert upward == []


def test_no_import_cycle():
    graph = module_imports()
    known = set(graph)
    edges = {module: {t for t in targets if t in known and t != module} for module, targets in graph.items()}
    # the registry imports its model modules lazily by name; a package importing its own submodules is not a cycle
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1 and not module.startswith(target + "."):
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


def test_no_task_branch_outside_the_tasks_package():
    """Code outside ``hiere.tasks`` asks the task (``hiere.tasks.Task``) instead of testing its name."""
    import re

    pattern = re.compile(r"""task\s*[!=]=\s*["'](doc|bag)["']|["'](doc|bag)["']\s*[!=]=\s*\S*task""")
    found = [f"{path.relative_to(SOURCE)}:{number}" for path in sorted((SOURCE / "hiere").rglob("*.py"))
             if "tasks" not in path.relative_to(SOURCE / "hiere").parts
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []
