"""A sample suite using the minios pytest plugin (a package, so its conftest
does not shadow tests/conftest.py)."""
