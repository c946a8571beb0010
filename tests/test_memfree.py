"""The Python API, and no leaks: after a program has run (and every process
it forked has exited and been reaped) every frame is free again."""
from __future__ import annotations

import os

import pytest

from conftest import ENV, binary, libc_params
from minios.machine import Machine, MachineError

MEM = 256 << 20


def run_quiet(name: str, libc: str = "glibc", args=(), cow_pte: str = "flag",
              check: bool = False, fds=None) -> tuple[Machine, int]:
    m = Machine(mem=MEM, cow_pte=cow_pte, check=check)
    status = m.run(binary(libc, name), list(args), env=dict(ENV), stdio=fds)
    return m, status


def assert_all_free(m: Machine) -> None:
    k = m.kernel
    assert k.frames.nr_free == k.boot_free, \
        f"{k.boot_free - k.frames.nr_free} frames leaked"
    assert k.frames.nr_tables == 0
    info = m.meminfo()
    assert info["MemFree"] == info["MemTotal"]
    assert info["AnonPages"] == info["Mapped"] == info["PageTables"] == 0


@pytest.mark.parametrize("libc", libc_params())
@pytest.mark.parametrize("cow_pte", ["never", "always", "flag"])
def test_fork_tree_frees_everything(devnull_fds, cow_pte, libc):
    m, status = run_quiet("fork_tree", libc, cow_pte=cow_pte, fds=devnull_fds)
    assert status == 0
    assert m.kernel.stats["forks"] == 14
    assert_all_free(m)


@pytest.mark.parametrize("name,args,expect", [
    ("hello", [], 0),
    ("malloc_churn", [], 0),
    ("mmap_ops", [], 0),
    ("page_touch", ["3000"], 0),
    ("shared_vs_private", [], 0),
    ("pipe_chain", [], 0),
    ("wait_status", [], 0),
    ("vfork_exit", [], 0),
    ("threads_mutex", [], 0),
    ("sighandler", [], 0),
    ("segv_handler", [], 0),
    ("clone3_flags", [], 0),
    ("segv", [], 139),           # killed: its memory must still come back
    ("exitcode", ["9"], 9),
])
@pytest.mark.parametrize("cow_pte", ["never", "always"])
def test_no_leak(devnull_fds, name, args, expect, cow_pte):
    m, status = run_quiet(name, args=args, cow_pte=cow_pte, fds=devnull_fds)
    assert status == expect
    assert_all_free(m)


def test_fork_tree_cow_pte_shares_tables(devnull_fds):
    """With COW PTE fork only the stack's PTE table is copied at fork time
    (both sides write it at once); without, every table is."""
    m, _ = run_quiet("fork_basic", cow_pte="always", fds=devnull_fds)
    assert m.kernel.last_fork["shared"] > 0 and m.kernel.last_fork["copied"] == 1
    m, _ = run_quiet("fork_basic", cow_pte="never", fds=devnull_fds)
    assert m.kernel.last_fork["shared"] == 0 and m.kernel.last_fork["copied"] > 1


def test_run_captures_stdout(tmp_path, devnull_fds):
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        m = Machine(mem=MEM)
        status = m.run(binary("glibc", "echo_args"), ["a", "b c"], env={"MINIOS_TEST_VAR": "v"},
                       stdio=(devnull_fds[0], fd, devnull_fds[2]))
    finally:
        os.close(fd)
    assert status == 3
    prog = binary("glibc", "echo_args")
    assert out.read_text() == (f"argc=3\nargv[0]={prog}\nargv[1]=a\nargv[2]=b c\n"
                               "MINIOS_TEST_VAR=v\n")


def test_meminfo_at_boot():
    m = Machine(mem=MEM)
    info = m.meminfo()
    for key in ("MemTotal", "MemFree", "AnonPages", "Mapped", "PageTables"):
        assert key in info
    assert 0 < info["MemTotal"] <= MEM >> 10
    assert info["MemFree"] == m.kernel.boot_free * 4


def test_machine_error_missing(tmp_path):
    m = Machine(mem=MEM)
    with pytest.raises(MachineError) as e:
        m.run(str(tmp_path / "nope"))
    assert e.value.status == 127


def test_machine_error_not_elf(tmp_path, devnull_fds):
    p = tmp_path / "text"
    p.write_text("not a program\n")
    m = Machine(mem=MEM)
    with pytest.raises(MachineError) as e:
        m.run(str(p), stdio=devnull_fds)
    assert e.value.status == 2
    assert "\n" not in str(e.value)
    # A failed exec leaves nothing behind.
    assert m.kernel.frames.nr_free == m.kernel.boot_free


def test_run_twice_raises(devnull_fds):
    """A Machine runs one program; a second run is an error, not a silent 0."""
    m = Machine(mem=MEM)
    assert m.run(binary("glibc", "exitcode"), ["3"], env=dict(ENV), stdio=devnull_fds) == 3
    with pytest.raises(RuntimeError, match="already run a program"):
        m.run(binary("glibc", "exitcode"), ["0"], env=dict(ENV), stdio=devnull_fds)
    assert m.kernel.frames.nr_free == m.kernel.boot_free


def test_run_after_failed_start(tmp_path, devnull_fds):
    """A program that could not start does not use the machine up."""
    m = Machine(mem=MEM)
    with pytest.raises(MachineError):
        m.run(str(tmp_path / "nope"))
    assert m.run(binary("glibc", "exitcode"), ["5"], env=dict(ENV), stdio=devnull_fds) == 5


def test_checked_run(devnull_fds):
    pytest.importorskip("minios.mm.check")
    m, status = run_quiet("fork_basic", cow_pte="always", check=True, fds=devnull_fds)
    assert status == 0
    assert_all_free(m)
