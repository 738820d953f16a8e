"""The import direction of STYLE.md, checked on the source (no module is imported):

    ground ← layers ← networks ← models ← {training, evaluation, export} ← serving ← entry points

`losses` import only the ground floor and are imported from `models` on; `data` and `text`
import only the ground floor. Nothing in xmcgan_tf imports `data_tools`; only the entry points,
`gin_config` and `training/train_lib.py` import gin.
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "xmcgan_tf")

GROUND = {"console", "cli", "paths", "files", "run_dir", "grids", "progress", "gin_config"}
ENTRY_POINTS = {"train", "evaluate", "generate", "ablate", "pretrain_encoder",
                "train_evaluator", "export.__main__", "serving.server", "serving.client"}
# What each package may import besides itself and the ground floor.
ALLOWED = {
    "layers": set(),
    "losses": set(),
    "data": set(),
    "text": set(),
    "networks": {"layers"},
    "models": {"networks", "layers", "losses"},
    "training": {"models", "networks", "layers", "losses", "data"},
    "evaluation": {"models", "networks", "layers", "losses", "data", "text"},
    "export": {"models", "networks", "layers", "data", "text"},
    "serving": {"export"},
}
GIN_USERS = {"gin_config", "training.train_lib"}


def _modules():
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                yield relative.removesuffix(".__init__"), path


def _imports(path):
    """Internal targets ('layers', 'console', ...), and whether gin / data_tools are imported."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    targets, others = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "xmcgan_tf":
                names = [f"xmcgan_tf.{a.name}" for a in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "xmcgan_tf" and len(parts) > 1:
                targets.add(parts[1])
            elif parts[0] in ("gin", "data_tools"):
                others.add(parts[0])
    return targets, others


@pytest.mark.parametrize("module, path", sorted(_modules()), ids=lambda v: str(v))
def test_imports_flow_one_way(module, path):
    targets, others = _imports(path)
    if module in ENTRY_POINTS or module in ("", "__main__"):
        assert "data_tools" not in others
        return
    package = module.split(".")[0]
    assert "data_tools" not in others, f"{module} imports data_tools"
    if "gin" in others:
        assert module in GIN_USERS, f"{module} imports gin (only entry points do)"
    if package in GROUND or "." not in module and package not in ALLOWED:
        allowed = GROUND
    else:
        allowed = GROUND | ALLOWED[package] | {package}
    assert targets <= allowed, (f"{module} imports {sorted(targets - allowed)}; "
                                f"{package} may import only {sorted(allowed)}")
