"""Usage text: a module docstring that shows a shell line continuation must be a raw string,
or Python joins the lines and `--help` prints a run of spaces where the break was."""

import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = sorted(path for package in ("xmcgan_tf", "data_tools", "benchmarks")
                 for path in glob.glob(os.path.join(REPO, package, "**", "*.py"),
                                       recursive=True))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, REPO))
def test_line_continuations_survive_in_module_docstrings(path):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    tree = ast.parse(source)
    if not tree.body or ast.get_docstring(tree, clean=False) is None:
        return
    text = ast.get_source_segment(source, tree.body[0])
    if "\\\n" in text:
        assert text.lstrip().startswith(('r"""', "r'''")), (
            f"{path}: the docstring continues lines with a backslash; make it r\"\"\"...\"\"\"")
        assert "\\\n" in ast.get_docstring(tree, clean=False)
