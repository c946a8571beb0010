"""Time-slice preemption: tasks that run without making syscalls.

Small static programs compiled here (into a scratch directory the guest can
see). Natively their output is fully determined; under minios, preemption
must neither starve a runnable task nor disturb the preempted one."""
from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ENV, ROOT, minios_cmd, native

ATOMIC = r"""
#include <stdio.h>
#include <pthread.h>
#define NT 4
#define N 300000
static volatile long atomic_ctr, plain_ctr;
static void *w(void *a)
{
    for (int i = 0; i < N; i++)
        __atomic_fetch_add(&atomic_ctr, 1, __ATOMIC_SEQ_CST);
    return 0;
}
int main(void)
{
    pthread_t t[NT];
    for (int i = 0; i < NT; i++) pthread_create(&t[i], 0, w, 0);
    for (int i = 0; i < NT; i++) pthread_join(t[i], 0);
    printf("atomic %ld (expected %d)\n", atomic_ctr, NT * N);
    return atomic_ctr != NT * N;
}
"""

# Two processes doing non-idempotent arithmetic, both preempted.
SPIN_RESULT = r"""
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile unsigned long x, cnt;
int main(void)
{
    pid_t pid = fork();
    x = pid == 0 ? 1 : 2;
    sched_yield();
    for (long i = 0; i < 3000000; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        cnt++;
    }
    if (pid == 0) {
        printf("child x=%lx cnt=%lu\n", x, cnt);
        return 0;
    }
    int st;
    waitpid(pid, &st, 0);
    printf("parent x=%lx cnt=%lu\n", x, cnt);
    return 0;
}
"""

# The same with a memory read-modify-write instruction (not atomic, one
# thread per process): each must run exactly 3000000 times.
RMW = r"""
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static unsigned long cnt;
int main(void)
{
    pid_t pid = fork();
    sched_yield();
    for (long i = 0; i < 3000000; i++)
        __asm__ volatile("addq $1, %0" : "+m"(cnt));
    printf("%s cnt=%lu\n", pid ? "parent" : "child", cnt);
    if (pid)
        wait(0);
    return 0;
}
"""

# The parent forks and spins without a syscall; the child must still run.
STARVE = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int main(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        printf("child ran\n");
        fflush(stdout);
        kill(getppid(), SIGTERM);
        return 0;
    }
    for (volatile unsigned long i = 0; i < 40000000000UL; i++)
        ;
    printf("parent was never preempted\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def progs(scratch_root):
    d = scratch_root / "preempt"
    d.mkdir()
    out = {}
    for name, src in (("atomic", ATOMIC), ("spin_result", SPIN_RESULT), ("rmw", RMW),
                      ("starve", STARVE)):
        (d / f"{name}.c").write_text(src)
        subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(d / name),
                        str(d / f"{name}.c")], check=True)
        out[name] = str(d / name)
    return out


def run_api(path: str, slice_insns: int, monkeypatch) -> tuple[int, bytes]:
    """Run under a Machine in this process with a short instruction slice,
    so that preemption happens hundreds of times."""
    import minios.kernel
    from minios.machine import Machine
    monkeypatch.setattr(minios.kernel, "SLICE_US", slice_insns)
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        status = Machine(mem=256 << 20).run(path, [], env=dict(ENV), stdio=(null, w, null))
    finally:
        os.close(w)
        os.close(null)
    with os.fdopen(r, "rb") as f:
        return status, f.read()


def test_preempted_arithmetic_is_exact(progs, monkeypatch):
    n = native(progs["spin_result"])
    m = run_api(progs["spin_result"], 20_000, monkeypatch)
    assert m == (n[0], n[1])


REPLAY_BUG = (
    "kernel/emu bug: after a time-slice stop (emu/cpu.py CPU.run: the watchdog thread "
    "calls emu_stop) a guest memory read-modify-write instruction is executed again on "
    "resume (its memory effect kept): `addq $1, mem` x 3000000 gives 3000020-3000040 with "
    "200 us slices, `lock xadd` likewise; under host load threads_mutex prints "
    "counter = 400001 or deadlocks on futexes (replayed lock cmpxchg). "
    "Cf. unicorn-engine/unicorn#1565")


@pytest.mark.xfail(reason=REPLAY_BUG, strict=True)
def test_preempted_read_modify_write_is_exact(progs, monkeypatch):
    """Each process's `addq $1, mem` runs exactly 3000000 times across
    hundreds of 200 us time-slice stops. minios itself arms the watchdog only
    while another task waits and with a 200 ms slice (emu/cpu.py CPU.run), so
    ordinary programs rarely meet this; with 200 us slices every run so far
    replayed 10-16 instructions per process."""
    n = native(progs["rmw"])
    assert n[0] == 0 and sorted(n[1].splitlines()) == [b"child cnt=3000000",
                                                      b"parent cnt=3000000"]
    m = run_api(progs["rmw"], 200, monkeypatch)
    assert (m[0], sorted(m[1].splitlines())) == (n[0], sorted(n[1].splitlines()))


def test_fork_then_spin_does_not_starve_child(progs):
    n = native(progs["starve"], timeout=30)
    assert n[:2] == (143, b"child ran\n")
    try:
        p = subprocess.run(minios_cmd("run", progs["starve"]), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(ENV),
                           cwd=ROOT, timeout=8)
    except subprocess.TimeoutExpired:
        raise AssertionError("minios did not finish in 8 s: the child never ran") from None
    assert (p.returncode, p.stdout) == (-15, b"child ran\n") or \
        (128 - p.returncode if p.returncode < 0 else p.returncode, p.stdout) == n[:2]
