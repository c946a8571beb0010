"""Example tests written against the minios pytest plugin (fixtures
``minios_run``, ``machine``, marker ``minios``), as a project using minios
to test its own static binaries would. Here the binaries are the ones
``make -C userland`` builds; MINIOS_SAMPLE_BIN overrides the directory."""
import os
import shutil
from pathlib import Path

import pytest

BIN = Path(os.environ.get("MINIOS_SAMPLE_BIN",
                          Path(__file__).resolve().parents[2] / "userland" / "build" / "glibc"))
pytestmark = pytest.mark.skipif(not (BIN / "hello").exists(),
                                reason=f"no test binaries in {BIN} (make -C userland)")


def test_hello(minios_run):
    r = minios_run(BIN / "hello")
    assert r.status == 0
    assert r.stdout == b"hello, world\n" and r.stderr == b""
    write = r.syscalls("write")[-1]
    assert write["args"] == ["1", '"hello, world\\n"', "13"] and write["result"] == 13
    assert r.syscalls()[-1]["name"] == "exit_group"
    assert r.exits()[-1]["status"] == 0
    assert r.leaked_frames == 0


def test_stdin_is_fed(minios_run):
    data = b"line one\nline two\n" * 100
    r = minios_run(BIN / "stdin_cat", stdin=data)
    assert r.status == 0 and data in r.stdout


def test_args_and_exit_status(minios_run):
    r = minios_run(BIN / "exitcode", "7", trace=None)
    assert r.status == 7 and r.trace == []


@pytest.mark.minios(cow_pte="always")
def test_fork_shares_page_tables(minios_run):
    r = minios_run(BIN / "fork_basic")
    assert r.status == 0
    fork = r.forks()[0]
    assert fork["shared"] > 0 and fork["copied"] == 1     # the stack's table
    assert r.stats["forks"] == 1


@pytest.mark.parametrize("mode", ["flag", "always", "never"])
def test_same_output_in_every_mode(minios_run, mode):
    r = minios_run(BIN / "fork_tree", cow_pte=mode, check=False, trace=None)
    assert r.status == 0
    assert r.stdout == minios_run(BIN / "fork_tree", cow_pte="never", check=False,
                                  trace=None).stdout


def test_cow_pte_write_breaks_tables(minios_run):
    # 8 MiB in 4 PTE tables, shared at fork; the child writes every page.
    r = minios_run(BIN / "fork_bench", "8", "cow-write", "1", check=False)
    assert r.status == 0
    breaks = r.faults("PTE table share broken by copy")
    assert len(breaks) >= 4 and {f["pid"] for f in breaks} >= {2}
    assert r.stats["cow_pte_copy"] >= 4
    # everything is given back once both processes are gone
    assert r.meminfo_after["MemFree"] == r.meminfo_before["MemFree"]
    assert r.meminfo_after["PageTables"] == 0


def test_failing_syscall_is_decoded(minios_run):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox not installed")
    r = minios_run(busybox, "cat", "/no/such/file")
    assert r.status == 1
    opens = r.syscalls("openat")
    assert opens[-1]["errno"] == "ENOENT" and opens[-1]["args"][1] == '"/no/such/file"'


def test_machine_fixture(machine, tmp_path):
    assert machine.kernel.check                      # the invariant checker is on
    out = tmp_path / "out"
    fds = (os.open(os.devnull, os.O_RDONLY), os.open(out, os.O_WRONLY | os.O_CREAT, 0o644),
           os.open(os.devnull, os.O_WRONLY))
    try:
        seen = []
        machine.add_break("exit", action=lambda k, kind, what, task:
                          seen.append(machine.ptdump(task.tid, tables=True)))
        assert machine.run(str(BIN / "hello"), [], env={}, stdio=fds) == 0
    finally:
        for fd in fds:
            os.close(fd)
    assert out.read_bytes() == b"hello, world\n"
    assert "PTE tables" in seen[0]
    assert machine.meminfo()["PageTables"] == 0
