"""Sample-suite conftest: what an outside project would write.

With minios pip-installed the ``minios`` plugin is loaded by its pytest11
entry point; from a source checkout run ``pytest -p minios.plugin``.

The directory is skipped when the minios suite itself (``pytest tests``)
walks into it: tests/test_debug.py runs it as its own project.
"""
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path, config):
    if Path(str(config.rootpath)).resolve() != HERE:
        return True
    return None
