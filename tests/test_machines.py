"""Two Machines in one Python process share nothing.

A pytest run, a notebook or a user's end-to-end suite boots many machines in
one process; a limit set, a file written or a process started in one guest
must not show in another. (Machine state lives in ``Kernel`` and the objects
it owns; modules hold constants, and facts of the host such as the TSC
calibration.)
"""
from __future__ import annotations

import io
import resource
import shutil
import tempfile

import pytest

from conftest import binary, is_static_elf64
from minios.machine import Machine
from minios.syscalls.table import SYSCALLS
from minios.proc.task import DEFAULT_RLIMITS, RLIM_INFINITY, RLIMIT_NOFILE

BUSYBOX = next((p for p in ("/usr/bin/busybox", "/bin/busybox", shutil.which("busybox") or "")
                if p and is_static_elf64(p)), None)
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="no static busybox (busybox-static)")


def run(m: Machine, *args: str) -> tuple[int, str]:
    """Run ``busybox args`` on ``m``: (status, stdout)."""
    with tempfile.TemporaryFile() as out:
        status = m.run(BUSYBOX, list(args), env={"PATH": "/usr/bin:/bin"},
                       stdio=(0, out.fileno(), 2))
        out.seek(0)
        return status, out.read().decode()


def test_default_rlimits_are_immutable():
    with pytest.raises(TypeError):
        DEFAULT_RLIMITS[RLIMIT_NOFILE] = (1, 1)        # type: ignore[index]


@needs_busybox
def test_rlimit_set_in_one_machine_is_not_seen_in_another():
    a, b = Machine(mem=64 << 20), Machine(mem=64 << 20)
    assert run(a, "sh", "-c", "ulimit -n 77; ulimit -n") == (0, "77\n")
    soft = resource.getrlimit(RLIMIT_NOFILE)[0]
    expect = "unlimited" if soft in (resource.RLIM_INFINITY, RLIM_INFINITY) else str(soft)
    assert run(b, "sh", "-c", "ulimit -n") == (0, expect + "\n")
    assert run(Machine(mem=64 << 20), "sh", "-c", "ulimit -n") == (0, expect + "\n")


@needs_busybox
def test_two_machines_alive_at_once_keep_their_own_state():
    a, b = Machine(mem=64 << 20), Machine(mem=32 << 20)
    # The same guest path in both (/tmp is each machine's own tmpfs); each is pid 1.
    assert run(b, "sh", "-c", "echo b > /tmp/f; cat /tmp/f; echo $$") == (0, "b\n1\n")
    assert run(a, "sh", "-c", "cat /tmp/f 2>/dev/null || echo none; echo $$") == (0, "none\n1\n")
    assert a.kernel.vfs is not b.kernel.vfs
    assert a.meminfo()["MemTotal"] > 60 << 10 > b.meminfo()["MemTotal"]


def test_a_traced_machine_beside_an_untraced_one():
    """Tracing is installed per kernel: the machine beside a traced one
    writes no trace and keeps the plain syscall table."""
    hello = binary("glibc", "hello")
    log = io.StringIO()
    a = Machine(mem=64 << 20, trace="syscall", trace_file=log)
    b_log = io.StringIO()
    b = Machine(mem=64 << 20, trace_file=b_log)
    with tempfile.TemporaryFile() as out:
        assert a.run(hello, stdio=(0, out.fileno(), 2)) == 0
        assert b.run(hello, stdio=(0, out.fileno(), 2)) == 0
        out.seek(0)
        assert out.read() == b"hello, world\n" * 2
    assert "write(1, " in log.getvalue() and b_log.getvalue() == ""
    assert b.kernel.syscalls == SYSCALLS            # no tracer's wrappers
