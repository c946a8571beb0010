"""README.md's examples run, and the outputs it quotes are current.

Each example ``tools/readme.py`` finds (every ```python block, the plugin
example as a pytest file, every indented ``$ command`` block) is one test:
it must succeed, and a command's output must match the one the README
quotes, numbers masked (``python3 tools/readme.py --update`` regenerates
them). Also: tests/README.md's table names every test file with the kind
marker conftest.py gives it."""
from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from conftest import FILE_KIND, ROOT

_spec = importlib.util.spec_from_file_location("readme_tool", ROOT / "tools" / "readme.py")
readme = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = readme            # dataclasses look their module up
_spec.loader.exec_module(readme)

TEXT = readme.README.read_text()
EXAMPLES = readme.examples(TEXT)
# The tracing example runs the invariant checker after every syscall and
# fault; the plugin example starts a pytest.
SLOW = {"python-2", "pytest-1"}


def test_examples_found():
    kinds = [ex.kind for ex in EXAMPLES]
    assert kinds.count("python") == 2 and kinds.count("pytest") == 1
    assert kinds.count("shell") == 3
    assert all(ex.output for ex in EXAMPLES if ex.kind == "shell")


def test_update_round_trip():
    """Writing back the quoted outputs leaves the README as it is."""
    assert readme.update(TEXT, {ex.line: ex.output for ex in EXAMPLES}) == TEXT


def test_masking():
    """Numbers and blank runs do not count; words and lines do."""
    ex = readme.Example("shell", 1, "true", "fork: 5 tables  (407 us)\nx=0x4f")
    assert readme.stale(ex, "fork: 7 tables (95 us)\nx=0x56") == ""
    assert readme.stale(ex, "fork: 5 tables (407 us)") != ""
    assert readme.stale(ex, "fork: 5 pages (407 us)\nx=0x4f") != ""


@pytest.mark.parametrize("ex", [pytest.param(ex, id=ex.name,
                                             marks=[pytest.mark.slow] if ex.name in SLOW else [])
                                for ex in EXAMPLES])
def test_readme_example(ex):
    status, out = readme.run(ex)
    assert status == 0, f"README line {ex.line}: exit status {status}\n{out[-3000:]}"
    if ex.kind == "shell":
        diff = readme.stale(ex, out)
        assert not diff, (f"README line {ex.line}: the quoted output is stale "
                          f"(python3 tools/readme.py --update)\n{diff}")


def test_tests_readme_table():
    """Every test file is in tests/README.md's table, with its kind."""
    table = dict(re.findall(r"^\| `(test_\w+\.py)` \| `(\w+)` \|",
                            (ROOT / "tests" / "README.md").read_text(), re.M))
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    assert files <= set(table), f"not in tests/README.md: {sorted(files - set(table))}"
    assert files <= set(FILE_KIND), f"not in conftest.FILE_KIND: {sorted(files - set(FILE_KIND))}"
    assert table == FILE_KIND
