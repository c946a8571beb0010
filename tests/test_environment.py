"""The guest's argv and environment are exactly what the caller gave: the
whole environment, not only MINIOS_TEST_VAR (which echo_args checks). Uses a
small static program compiled here."""
from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ENV, native, under_minios

SRC = r"""
#include <stdio.h>
extern char **environ;
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        printf("arg %s\n", argv[i]);
    for (char **e = environ; *e; e++)
        printf("env %s\n", *e);
    return 0;
}
"""


@pytest.fixture(scope="module")
def printenv(scratch_root):
    d = scratch_root / "printenv"              # not /tmp: the guest's /tmp is its own
    d.mkdir()
    (d / "printenv.c").write_text(SRC)
    out = d / "printenv"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(d / "printenv.c")], check=True)
    return str(out)


def test_cli_environment_exact(printenv):
    n = native(printenv, ["a", "b c"])
    m = under_minios(printenv, ["a", "b c"])
    assert m[1] == n[1]


def test_cli_environment_with_locale(printenv):
    """With LANG set Python does not touch the environment: exact match."""
    env = dict(ENV, LANG="C.UTF-8")
    n = native(printenv, ["a"], env=env)
    m = under_minios(printenv, ["a"], env=env)
    assert (m[0], m[1]) == (n[0], n[1])
    assert b"env MINIOS_TEST_VAR=hello\n" in m[1]


def test_cli_big_argv_and_env(printenv):
    args = [f"arg{i}" for i in range(2000)] + ["", "sp ace", "x" * 100_000]
    env = dict(ENV, LANG="C.UTF-8", BIG="y" * 100_000, EMPTY="")
    n = native(printenv, args, env=env)
    m = under_minios(printenv, args, env=env)
    assert (m[0], m[1]) == (n[0], n[1])


def test_api_environment_exact(printenv, tmp_path, devnull_fds):
    from minios.machine import Machine
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    env = {"A": "1", "B": "two words", "EMPTY": ""}
    try:
        status = Machine(mem=256 << 20).run(printenv, ["x"], env=env,
                                            stdio=(devnull_fds[0], fd, devnull_fds[2]))
    finally:
        os.close(fd)
    assert status == 0
    assert out.read_text() == "arg x\nenv A=1\nenv B=two words\nenv EMPTY=\n"
