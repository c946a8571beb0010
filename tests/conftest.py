"""Shared fixtures and helpers for the minios test suite.

* ``userland`` (session, autouse): builds the static test programs once with
  ``make -C userland``; musl tests are skipped when ``musl-gcc`` is missing.
* ``native(binary, args, stdin=b"")`` and ``under_minios(binary, args,
  extra_opts=[], stdin=b"")`` run a program as a subprocess and return
  ``(status, stdout, stderr)``, the status as a shell reports it (128 + signal
  when killed). Both get the same fixed environment ``ENV`` unless a test
  passes another ``env`` (to both).

Tests import the helpers directly: ``from conftest import native, under_minios``.

Every test gets one kind marker (``unit``, ``e2e``, ``differential``,
``busybox``, ``gdb``; registered in pyproject.toml): its file's, from
``FILE_KIND`` below, unless the test carries a kind marker of its own. Tests
that take more than a few seconds also carry ``slow``. tests/README.md has
the table; ``-m unit`` etc. select a part of the suite.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USERLAND = ROOT / "userland"
BUILD = USERLAND / "build"
LIBCS = ("glibc", "musl")
TIMEOUT = 120

# The environment both sides see (the guest gets minios's own environment).
ENV = {"PATH": "/usr/bin:/bin", "MINIOS_TEST_VAR": "hello"}

HAVE_MUSL = shutil.which("musl-gcc") is not None

KINDS = ("unit", "e2e", "differential", "busybox", "gdb")

# Each test file's kind (tests/README.md's table says the same; a test there
# checks it). Tests of another kind in a file carry their own marker.
FILE_KIND = {
    "test_badinput.py": "e2e",
    "test_busybox.py": "busybox",
    "test_check.py": "unit",
    "test_layers.py": "unit",
    "test_gdb_packets.py": "unit",
    "test_escape.py": "e2e",
    "test_fault_result.py": "unit",
    "test_machines.py": "busybox",
    "test_cli.py": "e2e",
    "test_cow.py": "differential",
    "test_cow_demo.py": "e2e",
    "test_cow_model.py": "unit",
    "test_cpu.py": "e2e",
    "test_debug.py": "e2e",
    "test_differential.py": "differential",
    "test_environment.py": "differential",
    "test_frames_pgtable.py": "unit",
    "test_gdb.py": "gdb",
    "test_memfree.py": "e2e",
    "test_oom.py": "unit",
    "test_plugin.py": "e2e",
    "test_preemption.py": "differential",
    "test_readme.py": "e2e",
    "test_syscall_table.py": "unit",
    "test_trace.py": "differential",
    "test_vdso.py": "e2e",
    "test_vfs.py": "differential",
}

# Slow tests (more than ~5 s on a loaded 2-core host) in files other helpers
# own, by node id prefix; the other files mark theirs with @pytest.mark.slow.
SLOW = ("tests/test_debug.py::test_sample_suite_with_the_plugin",)


def pytest_collection_modifyitems(config, items):
    """Give each test its file's kind marker unless it has one of its own,
    and ``slow`` to the tests in ``SLOW``."""
    for item in items:
        if not any(item.get_closest_marker(k) for k in KINDS):
            kind = FILE_KIND.get(item.path.name)
            if kind is not None:
                item.add_marker(kind)
        if item.nodeid.startswith(SLOW):
            item.add_marker("slow")


def program_names() -> list[str]:
    """Every program the userland Makefile builds (one per src/*.c), which is
    what ``userland/build/glibc`` lists once built. Known at collection time,
    before the build."""
    names = {p.stem for p in (USERLAND / "src").glob("*.c")}
    if (BUILD / "glibc").is_dir():
        names |= {p.name for p in (BUILD / "glibc").iterdir() if p.is_file()}
    return sorted(names)


def binary(libc: str, name: str) -> str:
    return str(BUILD / libc / name)


def libc_params():
    """``libc`` parameters, musl marked skip without musl-gcc."""
    return [pytest.param("glibc", id="glibc"),
            pytest.param("musl", id="musl",
                         marks=pytest.mark.skipif(not HAVE_MUSL, reason="musl-gcc not installed"))]


def _status(rc: int) -> int:
    """subprocess return code -> status as a shell reports it."""
    return 128 - rc if rc < 0 else rc


def _run(cmd: list[str], stdin: bytes, timeout: float = TIMEOUT,
         env: dict | None = None) -> tuple[int, bytes, bytes]:
    kw = {"input": stdin} if stdin else {"stdin": subprocess.DEVNULL}
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(ENV if env is None else env),
                           cwd=ROOT, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n"
                    f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
    return _status(p.returncode), p.stdout, p.stderr


def native(binary: str, args=(), stdin: bytes = b"", env: dict | None = None,
           timeout: float = TIMEOUT) -> tuple[int, bytes, bytes]:
    """Run ``binary`` on the host."""
    return _run([str(binary), *map(str, args)], stdin, timeout, env)


def minios_cmd(*argv: str) -> list[str]:
    """``python3 -m minios ARGV...`` with this interpreter (run from the repo
    root, so it works installed or not)."""
    return [sys.executable, "-m", "minios", *map(str, argv)]


def under_minios(binary: str, args=(), extra_opts=(), stdin: bytes = b"",
                 env: dict | None = None, timeout: float = TIMEOUT) -> tuple[int, bytes, bytes]:
    """Run ``binary`` with ``python3 -m minios run [extra_opts] binary args``.
    ``env`` (default ``ENV``) is minios's environment, which it passes on to
    the guest; give native() the same one."""
    return _run(minios_cmd("run", *extra_opts, str(binary), *map(str, args)), stdin, timeout,
                env)


@pytest.fixture(scope="session", autouse=True)
def userland():
    """Build the userland programs once per session."""
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.exit("make and gcc are needed to build userland/", returncode=3)
    # Under pytest-xdist every worker runs this: one make at a time, the
    # others then find everything built.
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / ".userland.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = subprocess.run(["make", "-C", str(USERLAND)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=600)
    if p.returncode != 0:
        pytest.exit("make -C userland failed:\n" + p.stdout.decode(errors="replace"),
                    returncode=3)
    return BUILD


@pytest.fixture(scope="session")
def scratch_root():
    """A scratch directory the guest can see. Not under /tmp: minios mounts
    its own tmpfs on the guest's /tmp, so host /tmp files are invisible to
    guests. Lives in the repository's (git-ignored) build/ directory."""
    import tempfile
    (ROOT / "build").mkdir(exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="test-scratch-", dir=ROOT / "build"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def scratch(scratch_root, request):
    """A fresh directory per test, visible to guests (see ``scratch_root``)."""
    import re
    import tempfile
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    return Path(tempfile.mkdtemp(prefix=name + "-", dir=scratch_root))


@pytest.fixture
def devnull_fds():
    """Three host fds on /dev/null (stdin, stdout, stderr) for Machine.run."""
    fds = (os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY),
           os.open(os.devnull, os.O_WRONLY))
    yield fds
    for fd in fds:
        os.close(fd)


def is_static_elf64(path) -> bool:
    """An x86-64 ELF executable without PT_INTERP (what minios can run)."""
    import struct
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    if data[:5] != b"\x7fELF\x02" or len(data) < 64:
        return False
    machine, = struct.unpack_from("<H", data, 18)
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    if machine != 62:
        return False
    for i in range(phnum):
        if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3:    # PT_INTERP
            return False
    return True
