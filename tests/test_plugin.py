"""The pytest plugin under pytest-xdist: ``tests/sample_suite`` (a user's
end-to-end suite, its own pytest project; tests/test_debug.py runs it on
one core) run with ``-n 2``, with the plugin found by its ``minios``
entry point (pip-installed) and with ``-p minios.plugin`` (a source
checkout). Each worker boots its own machines; nothing is shared."""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, TIMEOUT

pytestmark = pytest.mark.slow


def _plugin_installed() -> bool:
    return any(ep.value == "minios.plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


@pytest.mark.parametrize("load", ["entry_point", "dash_p"])
def test_sample_suite_under_xdist(load):
    pytest.importorskip("xdist")
    if load == "entry_point" and not _plugin_installed():
        pytest.skip("minios is not pip-installed: no pytest11 entry point")
    plugin = ["-p", "no:minios", "-p", "minios.plugin"] if load == "dash_p" else []
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin, "-n", "2",
           str(ROOT / "tests" / "sample_suite")]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                       env=env, timeout=TIMEOUT)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert re.search(r"\b10 passed\b", out), out
