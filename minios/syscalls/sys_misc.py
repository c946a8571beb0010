"""Identity, time, limits, randomness and other small syscalls."""
from __future__ import annotations

import os
import struct
import time

from minios.time import clock
from minios.uapi.errno import EINVAL, EPERM
from minios.syscalls.kinds import (AFFINITY, ARCH_PRCTL_CODE, CLOCKID, GRND_FLAGS, HEX, INT,
                                   INT_OUT, PID, PRCTL_FORMAT, PTR, RANDOM_OUT, REM, RESOURCE,
                                   RET_OCTAL, RLIMIT, RLIMIT_OUT, RUSAGE_WHO, SIZE,
                                   TIMER_FLAGS, TIMESPEC, TIMESPEC_OUT, TIMEVAL_OUT, UMASK,
                                   UTSNAME)
from minios.syscalls.table import syscall
from minios.uapi.misc import (ARCH_GET_CPUID, ARCH_GET_FS, ARCH_GET_GS, ARCH_SET_FS,
                              ARCH_SET_GS, RLIM_INFINITY)
from minios.proc.task import BLOCK
from minios.mm.uaccess import copy_from_user, copy_to_user, put_u32

DEFAULT_RLIMITS = {0: (RLIM_INFINITY,) * 2, 1: (RLIM_INFINITY,) * 2, 2: (RLIM_INFINITY,) * 2,
                   3: (8 << 20, RLIM_INFINITY), 4: (0, RLIM_INFINITY), 5: (RLIM_INFINITY,) * 2,
                   6: (63459, 63459), 7: (1024, 1048576), 8: (8 << 20, 8 << 20),
                   9: (RLIM_INFINITY,) * 2, 10: (RLIM_INFINITY,) * 2, 11: (63459, 63459),
                   12: (819200, 819200), 13: (0, 0), 14: (0, 0), 15: (RLIM_INFINITY,) * 2}


def _inherit_host_limits() -> None:
    """pid 1 inherits the limits of whoever started minios, as a program
    started from a shell does (RLIMIT_CORE decides the core flag, say)."""
    import resource
    for res in (3, 4, 7):            # STACK, CORE, NOFILE
        try:
            cur, mx = resource.getrlimit(res)
        except (ValueError, OSError):
            continue
        conv = [RLIM_INFINITY if v == resource.RLIM_INFINITY else v for v in (cur, mx)]
        DEFAULT_RLIMITS[res] = tuple(conv)


_inherit_host_limits()


@syscall(158, "arch_prctl", ARCH_PRCTL_CODE, PTR)
def sys_arch_prctl(k, t, code, addr, *_):
    if code == ARCH_SET_FS:
        if addr >= 1 << 47:
            return -EPERM
        k.cpu.set_reg("fs_base", addr)
        return 0
    if code == ARCH_SET_GS:
        if addr >= 1 << 47:
            return -EPERM
        k.cpu.set_reg("gs_base", addr)
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        v = k.cpu.reg("fs_base" if code == ARCH_GET_FS else "gs_base")
        copy_to_user(t.mm, addr, struct.pack("<Q", v))
        return 0
    if code == ARCH_GET_CPUID:
        return 1
    return -EINVAL


@syscall(218, "set_tid_address", PTR)
def sys_set_tid_address(k, t, addr, *_):
    t.clear_child_tid = addr
    return t.tid


@syscall(273, "set_robust_list", PTR, SIZE)
def sys_set_robust_list(k, t, head, length, *_):
    if length != 24:
        return -EINVAL
    t.robust_list = head
    return 0


@syscall(334, "rseq", PTR, HEX, INT, HEX)
def sys_rseq(k, t, addr, length, flags, sig, *_):
    # Registration only: one CPU, id 0. Critical-section abort is not
    # emulated (glibc uses rseq only to read the CPU number).
    if flags & 1:
        t.rseq = 0
        return 0
    if length < 32 or addr & 31:
        return -EINVAL
    copy_to_user(t.mm, addr, struct.pack("<II", 0, 0))
    t.rseq = addr
    return 0


@syscall(302, "prlimit64", PID, RESOURCE, RLIMIT, RLIMIT_OUT)
def sys_prlimit64(k, t, pid, res, new, old, *_):
    if res >= 16:
        return -EINVAL
    g = t.group if pid in (0, t.pid) else k.groups.get(pid)
    if g is None:
        return -3                                  # ESRCH
    cur = g.rlimits.get(res, DEFAULT_RLIMITS[res])
    if new:
        lim = struct.unpack("<QQ", copy_from_user(t.mm, new, 16))
        if lim[0] > lim[1]:
            return -EINVAL
    if old:
        copy_to_user(t.mm, old, struct.pack("<QQ", *cur))
    if new:
        g.rlimits[res] = lim
    return 0


@syscall(97, "getrlimit", RESOURCE, RLIMIT_OUT)
def sys_getrlimit(k, t, res, old, *_):
    return sys_prlimit64(k, t, 0, res, 0, old)


@syscall(160, "setrlimit", RESOURCE, RLIMIT)
def sys_setrlimit(k, t, res, new, *_):
    return sys_prlimit64(k, t, 0, res, new, 0)


@syscall(318, "getrandom", RANDOM_OUT, SIZE, GRND_FLAGS)
def sys_getrandom(k, t, buf, n, flags, *_):
    if flags & ~7:
        return -EINVAL
    n = min(n, 1 << 25)
    copy_to_user(t.mm, buf, os.urandom(n))
    return n


@syscall(63, "uname", UTSNAME)
def sys_uname(k, t, buf, *_):
    fields = [b"Linux", b"minios", b"6.1.0-minios", b"#1 SMP minios", b"x86_64", b"(none)"]
    copy_to_user(t.mm, buf, b"".join(f.ljust(65, b"\0") for f in fields))
    return 0


def _clockid(v: int) -> int:
    """clockid_t is an int: Linux ignores the register's upper half."""
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >= 1 << 31 else v


@syscall(228, "clock_gettime", CLOCKID, TIMESPEC_OUT)
def sys_clock_gettime(k, t, clk, tp, *_):
    ns = clock.now_ns(_clockid(clk))
    if ns is None:
        return -EINVAL
    copy_to_user(t.mm, tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


@syscall(229, "clock_getres", CLOCKID, TIMESPEC_OUT)
def sys_clock_getres(k, t, clk, tp, *_):
    if _clockid(clk) not in clock.HOST_CLOCKS:
        return -EINVAL
    if tp:
        copy_to_user(t.mm, tp, struct.pack("<qq", 0, 1))
    return 0


@syscall(96, "gettimeofday", TIMEVAL_OUT, PTR)
def sys_gettimeofday(k, t, tv, tz, *_):
    ns = clock.now_ns(0)
    if tv:
        copy_to_user(t.mm, tv, struct.pack("<qq", ns // 10**9, (ns // 1000) % 10**6))
    if tz:
        copy_to_user(t.mm, tz, bytes(8))
    return 0


@syscall(201, "time", PTR)
def sys_time(k, t, tloc, *_):
    now = clock.now_ns(0) // 10**9
    if tloc:
        copy_to_user(t.mm, tloc, struct.pack("<q", now))
    return now


@syscall(39, "getpid")
def sys_getpid(k, t, *_):
    return t.pid


@syscall(186, "gettid")
def sys_gettid(k, t, *_):
    return t.tid


@syscall(110, "getppid")
def sys_getppid(k, t, *_):
    p = t.group.parent
    return p.tgid if p is not None else 0


@syscall(102, "getuid")
def sys_getuid(k, t, *_):
    return os.getuid()


@syscall(107, "geteuid")
def sys_geteuid(k, t, *_):
    return os.geteuid()


@syscall(104, "getgid")
def sys_getgid(k, t, *_):
    return os.getgid()


@syscall(108, "getegid")
def sys_getegid(k, t, *_):
    return os.getegid()


@syscall(118, "getresuid", INT_OUT, INT_OUT, INT_OUT)
def sys_getresuid(k, t, r, e, s, *_):
    for a in (r, e, s):
        put_u32(t.mm, a, os.getuid())
    return 0


@syscall(120, "getresgid", INT_OUT, INT_OUT, INT_OUT)
def sys_getresgid(k, t, r, e, s, *_):
    for a in (r, e, s):
        put_u32(t.mm, a, os.getgid())
    return 0


@syscall(115, "getgroups", INT, PTR)
def sys_getgroups(k, t, n, lst, *_):
    return 0


@syscall(24, "sched_yield")
def sys_sched_yield(k, t, *_):
    k.need_resched = True
    return 0


def _sleep_until(k, t, deadline: float):
    def retry():
        if time.monotonic() >= deadline:
            return 0
        from minios.proc import signals
        if signals.has_pending(t):
            return -4                               # EINTR
        t.wake_time = deadline
        return BLOCK
    t.wait_channel = "nanosleep"
    t.retry = retry
    return retry()


@syscall(35, "nanosleep", TIMESPEC, REM)
def sys_nanosleep(k, t, req, rem, *_):
    sec, nsec = struct.unpack("<qq", copy_from_user(t.mm, req, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        return -EINVAL
    r = _sleep_until(k, t, time.monotonic() + sec + nsec / 1e9)
    if r is not BLOCK:
        t.retry = None
    return r


@syscall(230, "clock_nanosleep", CLOCKID, TIMER_FLAGS, TIMESPEC, REM)
def sys_clock_nanosleep(k, t, clk, flags, req, rem, *_):
    clk = _clockid(clk)
    if clk not in clock.HOST_CLOCKS:
        return -EINVAL
    sec, nsec = struct.unpack("<qq", copy_from_user(t.mm, req, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        return -EINVAL
    delay = sec + nsec / 1e9
    if flags & 1:                                   # TIMER_ABSTIME
        delay -= clock.now_ns(clk) / 1e9
    r = _sleep_until(k, t, time.monotonic() + max(0.0, delay))
    if r is not BLOCK:
        t.retry = None
    return r


@syscall(99, "sysinfo", PTR)
def sys_sysinfo(k, t, buf, *_):
    fr = k.frames
    up = int(time.time() - k.boot_time)
    data = struct.pack("<q3Q6QHH", up, 0, 0, 0, fr.nframes * 4096, fr.nr_free * 4096,
                       0, 0, 0, 0, len(k.groups), 0)
    data = data.ljust(112, b"\0")
    data = data[:104] + struct.pack("<I", 1) + data[108:]
    copy_to_user(t.mm, buf, data[:112])
    return 0


@syscall(100, "times", PTR)
def sys_times(k, t, buf, *_):
    ticks = int(time.process_time() * 100)
    if buf:
        copy_to_user(t.mm, buf, struct.pack("<4q", ticks, 0, 0, 0))
    return int((time.time() - k.boot_time) * 100) + 1


@syscall(98, "getrusage", RUSAGE_WHO, PTR)
def sys_getrusage(k, t, who, buf, *_):
    if who not in (0, 1, (1 << 64) - 1, (1 << 64) - 2):
        return -EINVAL
    copy_to_user(t.mm, buf, bytes(144))
    return 0


@syscall(95, "umask", UMASK, ret=RET_OCTAL)
def sys_umask(k, t, mask, *_):
    old = getattr(t.group, "umask", 0o022)
    t.group.umask = mask & 0o777
    return old


@syscall(157, "prctl", INT, PTR, PTR, PTR, PTR, format=PRCTL_FORMAT)
def sys_prctl(k, t, option, a2, a3, a4, a5, *_):
    if option == 15:                               # PR_SET_NAME
        t.group.comm = copy_from_user(t.mm, a2, 16).split(b"\0")[0].decode(errors="replace")
        return 0
    if option == 16:                               # PR_GET_NAME
        copy_to_user(t.mm, a2, t.group.comm.encode()[:15].ljust(16, b"\0"))
        return 0
    return -EINVAL


@syscall(204, "sched_getaffinity", PID, SIZE, AFFINITY)
def sys_sched_getaffinity(k, t, pid, size, mask, *_):
    if size < 8:
        return -EINVAL
    copy_to_user(t.mm, mask, struct.pack("<Q", 1))
    return 8


@syscall(309, "getcpu", PTR, PTR, PTR)
def sys_getcpu(k, t, cpu, node, _tcache, *_):
    if cpu:
        put_u32(t.mm, cpu, 0)
    if node:
        put_u32(t.mm, node, 0)
    return 0
