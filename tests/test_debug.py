"""Break hooks and the debug helpers (minios/debug.py), ``minios ptdump``,
and the pytest plugin's sample suite.

The COW-PTE scenario throughout: ``fork_bench 8 cow-write 1`` maps 8 MiB
(4 whole PTE tables), touches it, forks with clone3(CLONE_COW_PGTABLE) and
the child writes every page: its first write below each shared table breaks
the share (the table is copied).
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

from conftest import ENV, ROOT, TIMEOUT, binary, minios_cmd
from minios import debug
from minios.machine import Machine

FORK_BENCH = binary("glibc", "fork_bench")
COW_WRITE = ["8", "cow-write", "1"]
SHARED2 = re.compile(r"-> PTE table (0x[0-9a-f]+): COW-shared, share count 2, owner pid 1")


def devnull_stdio():
    return (os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY),
            os.open(os.devnull, os.O_WRONLY))


def close_all(fds):
    for fd in fds:
        os.close(fd)


def cli(*argv, stdin: bytes = b"", env=None):
    e = dict(ENV)
    e.update(env or {})
    p = subprocess.run(minios_cmd(*argv), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, cwd=ROOT, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


# ------------------------------------------------- a scripted debugger

def test_break_fault_walk_shows_shared_pmd(monkeypatch):
    """``--break fault`` with a scripted debugger (sys.breakpointhook): at
    the child's first write into the 8 MiB region the walk shows the PMD
    entry COW-shared with share count 2; at the next stop the same address
    walks to a private table of the child's own."""
    records = []

    def debugger():                       # what pdb would be: the stop's frame locals
        f = sys._getframe(1)
        L = f.f_locals
        assert {"walk", "ptdump", "regs", "disas", "mm", "k", "task", "what"} <= set(L)
        task, addr = L["task"], L["addr"]
        if records and records[-1]["after"] is None:
            prev = records[-1]
            prev["after"] = debug.walk(L["k"], prev["addr"], prev["pid"])
        if task.tid == 2 and 0x7ffff7600000 <= addr < 0x7ffff7e00000 and len(records) < 2:
            records.append({"addr": addr, "pid": task.tid, "walk": debug.walk(L["k"], addr),
                            "ptdump": debug.ptdump(L["k"], all=True, tables=True),
                            "regs": debug.regs(L["k"]), "disas": debug.disas(L["k"], n=3),
                            "after": None})

    monkeypatch.setattr(sys, "breakpointhook", debugger)
    m = Machine(mem=512 << 20)
    m.add_break("fault")
    fds = devnull_stdio()
    try:
        assert m.run(FORK_BENCH, COW_WRITE, env=dict(ENV), stdio=fds) == 0
    finally:
        close_all(fds)
    first = records[0]
    assert first["addr"] == 0x7ffff7600000
    m2 = SHARED2.search(first["walk"])
    assert m2, first["walk"]
    assert re.search(r"PMD\[\s*\d+\] @0x[0-9a-f]+ = 0x[0-9a-f]+  P -- US A - -- -- COW",
                     first["walk"]), first["walk"]
    assert "a write here: break the PTE table share by copy (2 sharers), then COW copy" \
        in first["walk"]
    assert "COW-shared x2 at PTE, owner pid 1" in first["ptdump"]
    assert "(pid 2, running)" in first["regs"]
    assert first["disas"].startswith("=> 0x")
    # after the break: the child has a private copy, the parent keeps the old table
    after = first["after"]
    assert "private (share count 1), owner pid 2" in after, after
    assert m2.group(1) not in after.split("-> PTE table ")[1].split(":")[0]
    assert "a write here: no fault (writable)" in after
    assert m.kernel.stats["cow_pte_copy"] >= 4


def test_pdb_session_on_cow_pte_break():
    """Real pdb, driven through stdin, as a user would type it."""
    cmds = b"walk()\nptdump(tables=True)\nmm()\nwalk(0x7ffff7600000, pid=1)\nnobreak()\nc\n"
    st, out, err = cli("run", "--break", "fault:cow-pte,pid=2", FORK_BENCH, *COW_WRITE,
                       stdin=cmds, env={"PYTHONBREAKPOINT": ""})
    assert st == 0, err
    assert "minios: break on page fault at 0x7fffffffe378 in pid 2" in err or \
        "minios: break on page fault at" in err
    assert "(Pdb)" in out and "-> pass    # <- minios break" in out
    assert "COW-shared, share count" in out and "owner pid" in out
    assert "[stack]" in out                               # mm()
    assert "every break removed" in out
    assert out.count("minios: break") == 0 and err.count("minios: break on") == 1
    assert "child_write_us=" in out                       # the program ran to the end


def test_pythonbreakpoint_is_respected(tmp_path):
    """PYTHONBREAKPOINT=module.function replaces pdb; minios.debug.session
    gives it the helpers."""
    (tmp_path / "mydbg.py").write_text(
        "import minios.debug as d\n"
        "def hook():\n"
        "    s = d.session\n"
        "    with open(%r, 'a') as f:\n"
        "        f.write(f'{s.kind} {s.what} pid {s.task.tid}\\n')\n"
        "        f.write(d.ptdump(s.k, all=True, tables=True) + '\\n')\n" % str(tmp_path / "log"))
    st, out, err = cli("run", "--break", "fork", "--break", "exit", FORK_BENCH, "4", "cow", "1",
                       env={"PYTHONBREAKPOINT": "mydbg.hook",
                            "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert st == 0, err
    log = (tmp_path / "log").read_text()
    assert log.count("fork ") == 1 and log.count("exit ") == 2
    assert "COW-shared x2 at PUD, owner pid 1" in log.split("exit ")[0], log


def test_quit_stops_the_machine():
    st, out, err = cli("run", "--break", "syscall:write", binary("glibc", "hello"),
                       stdin=b"regs()\nq\n", env={"PYTHONBREAKPOINT": ""})
    assert st == 130, err
    assert "hello, world" not in out                      # stopped before the write
    assert re.search(r"rip [0-9a-f]{16}  eflags", out)
    assert "Traceback" not in err and "internal error" not in err


def test_break_specs():
    b = debug.parse_break("fault@0x1000-0x3000")
    assert (b.kind, b.lo, b.hi) == ("fault", 0x1000, 0x3000)
    b = debug.parse_break("fault@0x1234")
    assert (b.lo, b.hi) == (0x1000, 0x2000)
    b = debug.parse_break("fault:cow-pte,pid=2")
    assert (b.filter, b.pid) == ("cow-pte", 2)
    assert debug.parse_break("syscall:openat").filter == "openat"
    assert debug.parse_break("syscall:1").filter == "write"
    assert debug.parse_break("signal:SEGV").extra["signo"] == 11
    assert debug.parse_break("signal:SIGUSR1").extra["signo"] == 10
    for bad in ("pagefault", "syscall:nosuch", "signal:SIGNOPE", "fault@zz", "fault@5-1",
                "exit:x", "syscall@1-2", "fault,tid=3", "fault:dirty"):
        with pytest.raises(debug.BreakSpecError):
            debug.parse_break(bad)
    st, out, err = cli("run", "--break", "syscall:nosuch", binary("glibc", "hello"))
    assert st == 2 and "minios: --break syscall:nosuch: minios has no syscall 'nosuch'" in err


def test_break_actions_on_every_kind():
    """Custom actions (no debugger): syscall, signal, fork, exit and a fault
    range each fire where they should, with the kernel state at that point."""
    seen = []
    m = Machine(mem=256 << 20)
    act = (lambda k, kind, what, task:
           seen.append((kind, what if kind != "fork" else what.tid, task.tid)))
    for spec in ("syscall:kill", "signal:SIGUSR2", "fork", "exit",
                 "fault@0x400000-0x401000"):
        m.add_break(spec, action=act)
    fds = devnull_stdio()
    try:
        assert m.run(binary("glibc", "sighandler"), [], env=dict(ENV), stdio=fds) == 0
    finally:
        close_all(fds)
    kinds = [s[0] for s in seen]
    assert kinds.count("syscall") >= 3
    assert all(s[1] == "kill" for s in seen if s[0] == "syscall")
    assert ("signal", 12, 1) in seen and ("signal", 10, 1) not in seen
    assert ("exit", 0, 1) in seen and "fork" not in kinds
    faults = [s[1] for s in seen if s[0] == "fault"]
    assert faults and all(0x400000 <= a < 0x401000 for a in faults)


def test_helpers_at_exit():
    """walk/ptdump/regs/disas/vmas/ps on a live process (at its exit)."""
    out = {}

    def at_exit(k, kind, what, task):
        out["walk"] = debug.walk(k, 0x401000)
        out["ptdump"] = debug.ptdump(k)
        out["tables"] = debug.ptdump(k, tables=True)
        out["regs"] = debug.regs(k)
        out["disas"] = debug.disas(k, n=4)
        out["vmas"] = debug.vmas(k)
        out["ps"] = debug.ps(k)
        out["miss"] = debug.walk(k, 0x10000000)
        out["mem"] = debug.read_memory(k, 0x400000, 4)
    m = Machine(mem=256 << 20)
    m.add_break("exit", action=at_exit)
    fds = devnull_stdio()
    try:
        assert m.run(binary("glibc", "hello"), [], env=dict(ENV), stdio=fds) == 0
    finally:
        close_all(fds)
    assert re.search(r"PTE\[  1\] @0x[0-9a-f]+ = 0x[0-9a-f]+  P -- US A - -- --\n"
                     r"\s+-> page 0x[0-9a-f]+ \(file, refcount 1, mapcount 1\)", out["walk"]), \
        out["walk"]
    assert "r-xp" in out["walk"] and "a write here: SIGSEGV (no writable VMA)" in out["walk"]
    assert re.search(r"^0x0000000000401000-0x[0-9a-f]{16} +\d+K USR ro x  pte  \[table 0x[0-9a-f]+ "
                     r"private\]$", out["ptdump"], re.M), out["ptdump"]
    assert out["ptdump"].startswith("---[ pid 1 (hello): pgd 0x")
    assert re.search(r"^0x0000000000400000-0x0000000000600000 +2M table", out["tables"], re.M)
    assert out["regs"].splitlines()[0].startswith("rax ")
    assert out["disas"].startswith("=> 0x") and "syscall" in out["disas"]
    assert "[stack]" in out["vmas"] and "[heap]" in out["vmas"]
    assert out["ps"].splitlines()[1].split()[:4] == ["1", "1", "0", "R"]
    assert "(not present)" in out["miss"] and "VMA: none" in out["miss"]
    assert out["mem"] == b"\x7fELF"


# ------------------------------------------------------ minios ptdump

def test_ptdump_command_at_fork():
    st, out, err = cli("ptdump", "--at", "fork", "--tables", FORK_BENCH, "8", "cow", "1")
    assert st == 0, err
    assert "=== #1: fork, child pid 2 in pid 1 ===" in out
    parent, child = out.split("---[ pid 2")[0], out.split("---[ pid 2")[1]
    # every table is shared but the stack's, which fork copies: both write it at once
    # (the program's, the mapping's four, the vDSO's above them, the stack's)
    assert "7 PTE tables (6 COW-shared)" in parent and "7 PTE tables (6 COW-shared)" in child
    assert re.search(r"^0x00007fffffe00000-0x0000800000000000 .* private$", child, re.M), out
    assert re.search(r"10M 5 tables 0x[0-9a-f]+\.\.0x[0-9a-f]+ +2049 pages  COW-shared x2 at (PUD|PMD|PTE), "
                     r"owner pid 1", child), out
    assert "rss 2" in child.splitlines()[0]          # its stack; the parent owns the rest


def test_ptdump_command_default_is_each_exit():
    st, out, err = cli("ptdump", FORK_BENCH, *COW_WRITE)
    assert st == 0, err
    heads = re.findall(r"^=== #\d+: exit \(exited with 0\) in pid (\d+) ===$", out, re.M)
    assert heads == ["2", "1"], out
    child = out.split("=== #2")[0]
    assert "0x00007ffff7600000-" in child and "private]" in child
    assert st == 0 and "fork_write_us=" in out


def test_ptdump_command_bad_spec():
    st, out, err = cli("ptdump", "--at", "bogus", binary("glibc", "hello"))
    assert st == 2 and "minios: --at bogus: unknown event" in err


# ------------------------------------------------------ pytest plugin

def _plugin_installed() -> bool:
    return any(ep.value == "minios.plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))


def test_sample_suite_with_the_plugin():
    """tests/sample_suite is a separate pytest project using the plugin's
    fixtures; run it as a user would."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
           str(ROOT / "tests" / "sample_suite")]
    if not _plugin_installed():
        cmd[3:3] = ["-p", "minios.plugin"]   # a source checkout: no entry point
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                       env=env, timeout=TIMEOUT)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert re.search(r"\b10 passed\b", out), out


def test_plugin_run_result(tmp_path):
    """The plugin's run helper, called directly."""
    from minios.plugin import run_program
    r = run_program(binary("glibc", "fileio"), check=False)
    assert r.status == 0 and b"write ok\n" in r.stdout
    w = r.syscalls("write")[0]
    assert w["args"] == ["1", '"write ok\\n"', "9"] and w["result"] == 9
    assert r.faults("demand-zero") and r.faults("file page")
    assert r.meminfo_before["MemFree"] == r.meminfo_after["MemFree"] and r.leaked_frames == 0
    assert r.stats["page_faults"] == len(r.faults())
