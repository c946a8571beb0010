"""Copy-on-write PTE tables, end to end: ``cow_ops`` (userland/src/cow_ops.c)
forks through clone3(CLONE_COW_PGTABLE), falling back to fork() where the
flag is refused, so its output must be identical natively and under minios
with every ``--cow-pte`` policy (flag: the flag shares; always: every fork
shares; never: the flag is refused, plain forks).

Its scenarios: writes after fork on one side / the other / both (the first
write is a tight loop right after the fork on pages just written and read, so
a stale writable TLB entry would leak into the other process); chains and
trees of forks; the sharer or the owner exiting first; munmap, mprotect,
mremap, madvise(DONTNEED) and brk on partial ranges on one side; execve, vfork
and threads after a COW fork; MAP_SHARED vs MAP_PRIVATE.
"""
from __future__ import annotations

import functools
import os

import pytest

from conftest import binary, libc_params, native, under_minios

POLICIES = ("flag", "always", "never")
BAD_STDERR = (b"InvariantError", b"internal error", b"Traceback")


def _args(libc: str) -> list[str]:
    """cow_ops's argument: the static hello of the same libc (absolute: the
    guest's working directory is not the repository)."""
    return [os.path.abspath(binary(libc, "hello"))]


@functools.lru_cache(maxsize=None)
def _native(libc: str, with_exec: bool = True):
    status, out, err = native(binary(libc, "cow_ops"), _args(libc) if with_exec else [])
    assert status == 0 and out.endswith(b"all ok\n"), \
        f"cow_ops fails natively ({libc}): {status}\n{out.decode()}\n{err.decode()}"
    return status, out


def _compare(libc: str, opts, with_exec: bool = True, timeout: float = 150):
    n_status, n_out = _native(libc, with_exec)
    m_status, m_out, m_err = under_minios(binary(libc, "cow_ops"),
                                          _args(libc) if with_exec else [],
                                          extra_opts=opts, timeout=timeout)
    for bad in BAD_STDERR:
        assert bad not in m_err, m_err.decode(errors="replace")[-3000:]
    assert m_out == n_out, (
        f"stdout differs ({libc}, {' '.join(opts)})\nnative:\n{n_out.decode()}\n"
        f"minios:\n{m_out.decode(errors='replace')}\n"
        f"minios stderr:\n{m_err.decode(errors='replace')[-3000:]}")
    assert m_status == n_status, m_err.decode(errors="replace")[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("libc", libc_params())
def test_cow_ops_checked(libc, policy):
    """Same output as Linux, with the invariant checker after every syscall
    and fault (~10 s a run)."""
    _compare(libc, ["--check", "--mem", "512M", f"--cow-pte={policy}"])


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("libc", libc_params())
def test_cow_ops_unchecked(libc, policy):
    """Without the checker the CPU runs long stretches with a warm TLB (the
    checker stops it after every syscall): the stale-TLB check of scenario a
    matters most here."""
    _compare(libc, ["--mem", "512M", f"--cow-pte={policy}"])


@pytest.mark.parametrize("libc", libc_params())
def test_cow_ops_without_exec_program(libc):
    """No argv[1]: the execve scenario prints a fixed 'skipped' line."""
    _compare(libc, ["--mem", "512M", "--cow-pte=always"], with_exec=False)
    assert b"e exec: skipped (no program given)\n" in _native(libc, False)[1]


# The Python-API checks run in a subprocess so that a hung guest fails the
# test after a timeout instead of hanging the session.
_API_SCRIPT = r"""
import json, os, sys, tempfile
from minios.machine import Machine
prog, arg, policy, check = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
null = os.open(os.devnull, os.O_RDWR)
m = Machine(mem=512 << 20, cow_pte=policy, check=check)
k = m.kernel
with tempfile.TemporaryFile() as out:
    st = m.run(prog, args=[arg] if arg else [], env={}, stdio=(null, out.fileno(), null))
    out.seek(0)
    text = out.read().decode(errors="replace")
print(json.dumps({"status": st, "stdout": text, "mms": len(k.mms), "nr_free": k.frames.nr_free,
                  "boot_free": k.boot_free, "nr_tables": k.frames.nr_tables,
                  "stats": dict(k.stats)}))
"""


def _api_run(libc: str, policy: str, check: bool, with_exec: bool = True,
             timeout: float = 150) -> dict:
    import json
    import subprocess
    import sys
    from conftest import ROOT
    arg = _args(libc)[0] if with_exec else ""
    try:
        p = subprocess.run([sys.executable, "-c", _API_SCRIPT, binary(libc, "cow_ops"), arg,
                            policy, "1" if check else "0"], cwd=ROOT, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cow_ops ({libc}, {policy}) timed out after {timeout} s")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    for bad in BAD_STDERR:
        assert bad not in p.stderr, p.stderr.decode(errors="replace")[-3000:]
    return json.loads(p.stdout.decode().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("libc", libc_params())
def test_cow_ops_memory_back_at_boot(libc, policy):
    """After the run every frame is free again (nothing leaked by sharing,
    breaking, exec, exit of owners and sharers), and the policy did what it
    says: PTE tables were shared and broken, or never. Python API
    (``Machine(mem=512M, cow_pte=policy, check=...)``), with the invariant
    checker for ``always``."""
    r = _api_run(libc, policy, check=(policy == "always"))
    assert r["status"] == 0, r["stdout"]
    assert r["stdout"].endswith("all ok\n"), r["stdout"]
    assert r["mms"] == 0
    assert r["nr_free"] == r["boot_free"], r
    assert r["nr_tables"] == 0
    stats = r["stats"]
    copies, reuses = stats.get("cow_pte_copy", 0), stats.get("cow_pte_reuse", 0)
    if policy == "never":
        assert copies == 0 and reuses == 0, stats
    else:
        assert copies > 50 and reuses > 10, stats
        # scenario i's forks lend the stack's PMD table; one child exits
        # before anything needs the counts (cow.py, "Lent rows")
        assert stats.get("fork_lent_rows", 0) > stats.get("lent_rows_settled", 0) > 0, stats


@pytest.mark.parametrize("policy", POLICIES)
def test_stale_tlb_write_is_not_visible(policy):
    """Scenario a's first writes after the fork (parent side: before any
    other syscall) must not reach the child's pages: checked by the child's
    checksums, here without the checker (which stops the CPU after every
    syscall), so the CPU runs with a warm TLB."""
    r = _api_run("glibc", policy, check=False, with_exec=False)
    assert r["status"] == 0, r["stdout"]
    for name in ("a1 parent writes", "a2 child writes", "a3 both write",
                 "a4 alternate pages", "a5 read() into shared pages"):
        assert f"{name}: parent ok, child ok\n" in r["stdout"], (policy, r["stdout"])
