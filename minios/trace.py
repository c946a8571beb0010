"""Tracing: strace-like syscall lines, page faults, forks, exits, context
switches, and a parser that turns trace text back into events.

Categories (``--trace=syscall,fault,sched,signal,fork``, ``Machine(trace=)``):

* ``syscall`` - one line per call, decoded as strace does::

      [pid 12] openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3
      [pid 12] newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=2791, ...}, AT_EMPTY_PATH) = 0
      [pid 12] read(3, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 2791
      [pid 12] openat(AT_FDCWD, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory)
      [pid 12] wait4(-1,  <unfinished ...>
      [pid 12] <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 13
      [pid 12] exit_group(0) = ?
      [pid 12] +++ exited with 0 +++

  Flags, signal names and sets, ``fcntl``/``ioctl`` commands and ``AT_*``
  flags are decoded; strings are escaped like strace's and buffers cut at
  32 bytes (``"..."...``); stat, timespec, rlimit, sigaction, iovec, utsname
  and clone3 arguments are shown as structs; pointers are hex, 0 is NULL.
  The call is formatted after its handler ran, so output arguments (read
  buffers, stat results, pipe fds) show what the kernel wrote; user memory is
  read through the page tables without faulting anything in. A syscall
  minios does not implement ends in ``= -1 ENOSYS (not implemented)``.
* ``fault`` - every page fault the CPU raises: address, ip, the decoded
  error code and what the kernel did, including COW-PTE table breaks::

      [pid 2] page fault at 0x7ffff7c00000 ip 0x401b2c (user write, protection) -> PUD table share broken by copy (was shared by 2), PMD table share broken by copy (was shared by 2), PTE table share broken by copy (was shared by 2), COW copy

* ``fork`` - ``[pid 1] fork: 2 tables shared, 0 copied (41 us), child pid 2``
* ``signal`` - ``[pid 1] --- SIGCHLD {si_signo=SIGCHLD, si_code=1} ---`` and
  ``+++ exited with N +++`` / ``+++ killed by SIGSEGV (core dumped) +++``
  (also printed with ``syscall``, as strace does)
* ``sched`` - ``[sched] pid 1 -> pid 2 (pid 1 blocked: wait4)`` on each
  context switch.

:func:`install` (called by :class:`minios.machine.Machine`) hooks the parts
that need it: execve's arguments are decoded before the call replaces the
image, exits are reported through the ``exit`` kernel hook, context switches
by wrapping ``Kernel._switch_to``. Without a trace nothing is installed and
the kernel's hot paths are unchanged.

:func:`parse` turns trace text into a list of event dicts (see its
docstring); the pytest plugin uses it for ``result.trace``.
"""
from __future__ import annotations

import os
import re
import struct

from emu import x86
from minios.uapi.errno import ERRNO_NAMES
from minios.proc.task import BLOCK, NORETURN

STRLEN = 32                       # strace's default -s

# ---------------------------------------------------------------- constants

from minios.proc.signals import NAMES as SIGNALS   # one table of signal names

O_FLAGS = [(0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
           (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"),
           (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"),
           (0o100000, "O_LARGEFILE"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
           (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"), (0o20200000, "O_TMPFILE"),
           (0o200000, "O_DIRECTORY")]            # strace's order
PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (8, "PROT_SEM"),
        (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP")]
MAP_TYPES = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
MAP = [(0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"),
       (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
       (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
       (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
       (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"),
       (0x4000000, "MAP_UNINITIALIZED")]
MREMAP = [(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")]
MADV = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
        4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
        11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE",
        14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP",
        18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT",
        22: "MADV_POPULATE_READ", 23: "MADV_POPULATE_WRITE", 100: "MADV_HWPOISON"}
CLONE = [(0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"),
         (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"),
         (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"),
         (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"),
         (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"),
         (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"),
         (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"),
         (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
         (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
         (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"),
         (1 << 32, "CLONE_CLEAR_SIGHAND"), (1 << 33, "CLONE_INTO_CGROUP"),
         (1 << 34, "CLONE_COW_PGTABLE")]
WAIT = [(1, "WNOHANG"), (2, "WSTOPPED"), (4, "WEXITED"), (8, "WCONTINUED"),
        (0x1000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"),
        (0x80000000, "__WCLONE")]
AT = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
      (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"), (0x6000, "AT_STATX_DONT_SYNC"),
      (0x2000, "AT_STATX_FORCE_SYNC"), (0x8000, "AT_RECURSIVE")]
ACCESS_AT = [(0x200, "AT_EACCESS")] + AT[:1] + AT[3:5]
SA = [(0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"),
      (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND"), (4, "SA_SIGINFO"),
      (1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT")]
FCNTL = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
         6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG",
         11: "F_GETSIG", 15: "F_SETOWN_EX", 16: "F_GETOWN_EX", 36: "F_OFD_GETLK",
         37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 1024: "F_SETLEASE", 1025: "F_GETLEASE",
         1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ",
         1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"}
FCNTL_NOARG = {1, 3, 9, 11, 1025, 1032, 1034}
IOCTL = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF",
         0x5405: "TCGETA", 0x5406: "TCSETA", 0x5409: "TCSBRK", 0x540A: "TCXONC",
         0x540B: "TCFLSH", 0x540C: "TIOCEXCL", 0x540D: "TIOCNXCL", 0x540E: "TIOCSCTTY",
         0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5411: "TIOCOUTQ", 0x5413: "TIOCGWINSZ",
         0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD", 0x5421: "FIONBIO", 0x5422: "TIOCNOTTY",
         0x5429: "TIOCGSID", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX", 0x5452: "FIOASYNC",
         0x80045430: "TIOCGPTN", 0x40045431: "TIOCSPTLCK", 0x802C542A: "TCGETS2",
         0x402C542B: "TCSETS2"}
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"}
RLIMIT = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK",
          4: "RLIMIT_CORE", 5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE",
          8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS", 10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING",
          12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE", 14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
          3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
          6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
          9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
FUTEX = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE",
         4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI",
         8: "FUTEX_TRYLOCK_PI", 9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET",
         11: "FUTEX_WAIT_REQUEUE_PI", 12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2"}
PRCTL = {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE",
         4: "PR_SET_DUMPABLE", 15: "PR_SET_NAME", 16: "PR_GET_NAME", 22: "PR_SET_SECCOMP",
         36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
         38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 0x53564D41: "PR_SET_VMA"}
SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
SIGHOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
IDTYPE = {0: "P_ALL", 1: "P_PID", 2: "P_PGID", 3: "P_PIDFD"}
RUSAGE = {0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"}
GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
S_IFMT = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG",
          0o060000: "S_IFBLK", 0o040000: "S_IFDIR", 0o020000: "S_IFCHR", 0o010000: "S_IFIFO"}
AT_FDCWD = 0xFFFFFF9C
RLIM_INFINITY = (1 << 64) - 1

_ERRSTR: dict[int, str] = {}


def errno_text(e: int) -> str:
    """``ENOENT (No such file or directory)``, as strace prints a failure."""
    s = _ERRSTR.get(e)
    if s is None:
        try:
            s = os.strerror(e)
        except ValueError:
            s = f"Unknown error {e}"
        _ERRSTR[e] = s
    return f"{ERRNO_NAMES.get(e, str(e))} ({s})"


# ------------------------------------------------------------ value helpers

def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def ptr(v: int) -> str:
    return "NULL" if v == 0 else hex(v)


def flags(v: int, table, zero: str = "0") -> str:
    """``A|B|0x40`` from a [(bit, name)] table (multi-bit masks first match)."""
    if v == 0:
        return zero
    out = []
    for bit, name in table:
        if v & bit == bit:
            out.append(name)
            v &= ~bit
    if v:
        out.append(hex(v))
    return "|".join(out)


def sym(v: int, table: dict, signed: bool = True) -> str:
    name = table.get(v)
    if name is not None:
        return name
    return str(v) if signed or v < 10 else hex(v)


def signame(v: int) -> str:
    v = s32(v)
    if v in SIGNALS:
        return SIGNALS[v]
    if 32 <= v <= 64:
        return "SIGRTMIN" if v == 32 else f"SIGRT_{v - 32}"
    return str(v)


def open_flags(v: int) -> str:
    v &= 0xFFFFFFFF
    acc = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(v & 3, "O_ACCMODE")
    rest = flags(v & ~3, O_FLAGS, "")
    return acc + ("|" + rest if rest else "")


def mmap_flags(v: int) -> str:
    t = MAP_TYPES.get(v & 0xF)
    rest = flags(v & ~0xF, MAP, "")
    head = t if t else (hex(v & 0xF) if v & 0xF else "MAP_FILE")    # strace: type 0
    return "|".join(x for x in (head, rest) if x)


def sigset(v: int, nbits: int = 64) -> str:
    """``[CHLD USR1]``, or ``~[...]`` when most signals are set (strace)."""
    v &= (1 << nbits) - 1
    inv = bin(v).count("1") > nbits // 2
    if inv:
        v = ~v & ((1 << nbits) - 1)
    names = []
    for i in range(nbits):
        if v >> i & 1:
            s = i + 1
            names.append(SIGNALS[s][3:] if s in SIGNALS else
                         ("RTMIN" if s == 32 else f"RT_{s - 32}"))
    return ("~" if inv else "") + "[" + " ".join(names) + "]"


def quote(b: bytes, limit: int | None = STRLEN, hexall: bool = False) -> str:
    """A C string literal as strace prints one; ``"..."...`` past ``limit``."""
    more = limit is not None and len(b) > limit
    if more:
        b = b[:limit]
    out = ['"']
    n = len(b)
    for i, c in enumerate(b):
        if hexall:
            out.append(f"\\x{c:02x}")
        elif c == 0x22:
            out.append('\\"')
        elif c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif c in _ESC:
            out.append(_ESC[c])
        elif i + 1 < n and 0x30 <= b[i + 1] <= 0x37:
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    out.append('"')
    if more:
        out.append("...")
    return "".join(out)


_ESC = {9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


from minios.mm.peek import peek, peek_str   # noqa: E402  (user memory without faulting)


# -------------------------------------------------------- argument decoders
# Each decoder is fn(c, v, *param) -> str, where ``c`` is the Call being
# formatted (kernel, task, raw args, result).

class Call:
    __slots__ = ("k", "t", "mm", "args", "r", "name", "_i")

    def __init__(self, k, t, name: str, args, r) -> None:
        self.k, self.t, self.mm, self.args, self.r, self.name = k, t, t.mm, args, r, name
        self._i = 0

    @property
    def ok(self) -> bool:
        r = self.r
        return isinstance(r, int) and not -4096 < r < 0

    def mem(self, va: int, n: int) -> bytes | None:
        d = peek(self.mm, va, n)
        return d if d is not None and len(d) == n else None


def _d(c, v):
    return str(s32(v))


def _ld(c, v):
    return str(s64(v))


def _u(c, v):
    return str(v)


def _x(c, v):
    return ptr(v)


def _hex(c, v):
    return hex(v) if v else "0"            # C's %#lx


def _dirfd(c, v):
    return "AT_FDCWD" if v & 0xFFFFFFFF == AT_FDCWD else str(s32(v))


def _path(c, v):
    if v == 0:
        return "NULL"
    s = peek_str(c.mm, v, 4096)
    return hex(v) if s is None else quote(s, None)


def _wbuf(c, v, lenarg):
    """An input buffer of args[lenarg] bytes (write)."""
    n = c.args[lenarg]
    if v == 0:
        return "NULL"
    data = peek(c.mm, v, min(n, STRLEN + 1))
    if data is None:
        return hex(v)
    if n > STRLEN:
        return quote(data[:STRLEN]) + "..."
    return quote(data)


def _rbuf(c, v, hexall=False):
    """An output buffer holding ``result`` bytes (read, getrandom)."""
    if not c.ok or v == 0:
        return ptr(v)
    n = c.r
    if n == 0:
        return '""'
    data = peek(c.mm, v, min(n, STRLEN + 1))
    if data is None:
        return hex(v)
    if n > STRLEN:
        return quote(data[:STRLEN], hexall=hexall) + "..."
    return quote(data, hexall=hexall)


def _rstr(c, v):
    """readlink/getcwd: ``result`` bytes of string (getcwd counts the NUL)."""
    if not c.ok or v == 0:
        return ptr(v)
    n = c.r - (1 if c.name == "getcwd" else 0)
    data = peek(c.mm, v, min(max(n, 0), STRLEN + 1)) if n > 0 else b""
    if data is None:
        return hex(v)
    return quote(data[:STRLEN]) + ("..." if n > STRLEN else "")


def _mode(c, v):
    return "0%o" % (v & 0o7777) if v & 0o7777 else "000"


def _stat(c, v):
    if not c.ok or v == 0:
        return ptr(v)
    raw = c.mem(v, 144)
    if raw is None:
        return hex(v)
    mode, = struct.unpack_from("<I", raw, 24)
    rdev, size = struct.unpack_from("<Qq", raw, 40)
    ft = S_IFMT.get(mode & 0o170000, "%#o" % (mode & 0o170000))
    perm = "%04o" % (mode & 0o7777)
    if mode & 0o170000 in (0o020000, 0o060000):
        major = ((rdev >> 8) & 0xFFF) | ((rdev >> 32) & ~0xFFF)
        minor = (rdev & 0xFF) | ((rdev >> 12) & ~0xFF)
        return f"{{st_mode={ft}|{perm}, st_rdev=makedev({major:#x}, {minor:#x}), ...}}"
    return f"{{st_mode={ft}|{perm}, st_size={size}, ...}}"


def _timespec(c, v, out=False, usec=False):
    if v == 0:
        return "NULL"
    if out and not c.ok:
        return hex(v)
    raw = c.mem(v, 16)
    if raw is None:
        return hex(v)
    a, b = struct.unpack("<qq", raw)
    return f"{{tv_sec={a}, {'tv_usec' if usec else 'tv_nsec'}={b}}}"


def _ts_in(c, v):
    return _timespec(c, v)


def _ts_out(c, v):
    return _timespec(c, v, True)


def _tv_out(c, v):
    return _timespec(c, v, True, True)


def _rem(c, v):
    """nanosleep's remaining time: shown only when interrupted."""
    if v and c.r == -4:
        return _timespec(c, v)
    return ptr(v)


def _oflags(c, v):
    return open_flags(v)


def _pipe_flags(c, v):
    return flags(v & 0xFFFFFFFF, O_FLAGS)


def _prot(c, v):
    return flags(v & 0xFFFFFFFF, PROT, "PROT_NONE")


def _mflags(c, v):
    return mmap_flags(v & 0xFFFFFFFF)


def _table(table, signed=True):
    def dec(c, v):
        return sym(s32(v) if signed else v, table, signed)
    return dec


def _bits(table):
    def dec(c, v):
        return flags(v & 0xFFFFFFFF, table)
    return dec


def _sig(c, v):
    return "0" if v == 0 else signame(v)


def _sigset_in(c, v):
    if v == 0:
        return "NULL"
    raw = c.mem(v, 8)
    return hex(v) if raw is None else sigset(struct.unpack("<Q", raw)[0])


def _sigset_out(c, v):
    if v == 0 or not c.ok:
        return ptr(v)
    return _sigset_in(c, v)


def _sigaction(c, v, out=False):
    if v == 0:
        return "NULL"
    if out and not c.ok:
        return hex(v)
    raw = c.mem(v, 32)
    if raw is None:
        return hex(v)
    h, fl, rest, mask = struct.unpack("<QQQQ", raw)
    hs = {0: "SIG_DFL", 1: "SIG_IGN"}.get(h, hex(h))
    s = f"{{sa_handler={hs}, sa_mask={sigset(mask)}, sa_flags={flags(fl, SA)}"
    if fl & 0x04000000:
        s += f", sa_restorer={ptr(rest)}"
    return s + "}"


def _sigaction_in(c, v):
    return _sigaction(c, v)


def _sigaction_out(c, v):
    return _sigaction(c, v, True)


def _stack_t(c, v, out=False):
    if v == 0:
        return "NULL"
    if out and not c.ok:
        return hex(v)
    raw = c.mem(v, 24)
    if raw is None:
        return hex(v)
    sp, fl, size = struct.unpack("<QiQ", raw[:8] + raw[8:12] + raw[16:24])
    return f"{{ss_sp={ptr(sp)}, ss_flags={flags(fl & 0xFFFFFFFF, [(1, 'SS_ONSTACK'), (2, 'SS_DISABLE')])}, ss_size={size}}}"


def _stack_in(c, v):
    return _stack_t(c, v)


def _stack_out(c, v):
    return _stack_t(c, v, True)


def _iov(c, v, cntarg, out=False):
    if v == 0:
        return "NULL"
    cnt = c.args[cntarg] & 0xFFFFFFFF
    if out and not c.ok:
        return hex(v)
    raw = c.mem(v, 16 * min(cnt, STRLEN + 1))
    if raw is None:
        return hex(v)
    left = c.r if out else None
    parts = []
    for i in range(min(cnt, STRLEN)):
        base, ln = struct.unpack_from("<QQ", raw, 16 * i)
        n = ln if left is None else min(ln, left)
        if left is not None:
            left -= n
        data = peek(c.mm, base, min(n, STRLEN + 1)) if n else b""
        if data is None:
            bs = hex(base)
        else:
            bs = quote(data[:STRLEN]) + ("..." if n > STRLEN else "")
        parts.append(f"{{iov_base={bs}, iov_len={ln}}}")
    if cnt > STRLEN:
        parts.append("...")
    return "[" + ", ".join(parts) + "]"


def _iov_in(c, v, cntarg):
    return _iov(c, v, cntarg)


def _iov_out(c, v, cntarg):
    return _iov(c, v, cntarg, True)


def _fds_out(c, v):
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, 8)
    if raw is None:
        return hex(v)
    a, b = struct.unpack("<ii", raw)
    return f"[{a}, {b}]"


def _int_out(c, v):
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, 4)
    return hex(v) if raw is None else f"[{struct.unpack('<i', raw)[0]}]"


def _rlim_val(x: int) -> str:
    if x == RLIM_INFINITY:
        return "RLIM64_INFINITY"
    if x and x % 1024 == 0:
        return f"{x // 1024}*1024"
    return str(x)


def _rlimit(c, v, out=False):
    if v == 0:
        return "NULL"
    if out and not c.ok:
        return hex(v)
    raw = c.mem(v, 16)
    if raw is None:
        return hex(v)
    a, b = struct.unpack("<QQ", raw)
    return f"{{rlim_cur={_rlim_val(a)}, rlim_max={_rlim_val(b)}}}"


def _rlimit_in(c, v):
    return _rlimit(c, v)


def _rlimit_out(c, v):
    return _rlimit(c, v, True)


def _uname(c, v):
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, 65 * 2)
    if raw is None:
        return hex(v)
    f = [raw[i * 65:(i + 1) * 65].split(b"\0")[0] for i in range(2)]
    return f"{{sysname={quote(f[0])}, nodename={quote(f[1])}, ...}}"


def _wstatus(c, v):
    if v == 0 or not c.ok or c.r == 0:
        return ptr(v)
    raw = c.mem(v, 4)
    if raw is None:
        return hex(v)
    s, = struct.unpack("<i", raw)
    if s & 0x7F == 0:
        d = f"WIFEXITED(s) && WEXITSTATUS(s) == {(s >> 8) & 0xFF}"
    elif s & 0xFF == 0x7F:
        d = f"WIFSTOPPED(s) && WSTOPSIG(s) == {signame((s >> 8) & 0xFF)}"
    elif s == 0xFFFF:
        d = "WIFCONTINUED(s)"
    else:
        d = f"WIFSIGNALED(s) && WTERMSIG(s) == {signame(s & 0x7F)}"
        if s & 0x80:
            d += " && WCOREDUMP(s)"
    return f"[{{{d}}}]"


def _dents(c, v):
    if v == 0 or not c.ok:
        return ptr(v)
    raw = peek(c.mm, v, c.r) or b""
    n = pos = 0
    while pos + 19 <= len(raw):
        reclen, = struct.unpack_from("<H", raw, pos + 16)
        if reclen == 0:
            break
        n += 1
        pos += reclen
    return f"{hex(v)} /* {n} entries */"


def _argv(c, v):
    if v == 0:
        return "NULL"
    items = []
    for i in range(STRLEN + 1):
        raw = c.mem(v + 8 * i, 8)
        if raw is None:
            return hex(v) if not items else "[" + ", ".join(items) + ", ...]"
        p, = struct.unpack("<Q", raw)
        if p == 0:
            break
        if i == STRLEN:
            items.append("...")
            break
        s = peek_str(c.mm, p, 4096)
        items.append(hex(p) if s is None else quote(s))
    return "[" + ", ".join(items) + "]"


def _envp(c, v):
    if v == 0:
        return "NULL"
    n = 0
    while n < 100000:
        raw = c.mem(v + 8 * n, 8)
        if raw is None or raw == b"\0" * 8:
            break
        n += 1
    return f"{hex(v)} /* {n} var{'' if n == 1 else 's'} */"


def _affinity(c, v):
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, c.r) if c.r else b""
    if raw is None:
        return hex(v)
    m = int.from_bytes(raw, "little")
    return "[" + " ".join(str(i) for i in range(len(raw) * 8) if m >> i & 1) + "]"


def _umask(c, v):
    return "0%o" % (v & 0o777) if v & 0o777 else "0"


def _access(c, v):
    v &= 0xFFFFFFFF
    return "F_OK" if v == 0 else flags(v, [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")])


def _clockid(c, v):
    return sym(s32(v), CLOCKS)


def _timer_flags(c, v):
    return flags(v & 0xFFFFFFFF, [(1, "TIMER_ABSTIME")])


EPOLL_EVENTS = [(1, "EPOLLIN"), (2, "EPOLLPRI"), (4, "EPOLLOUT"), (8, "EPOLLERR"),
                (0x10, "EPOLLHUP"), (0x40, "EPOLLRDNORM"), (0x80, "EPOLLRDBAND"),
                (0x100, "EPOLLWRNORM"), (0x200, "EPOLLWRBAND"), (0x2000, "EPOLLRDHUP"),
                (1 << 28, "EPOLLEXCLUSIVE"), (1 << 29, "EPOLLWAKEUP"),
                (1 << 30, "EPOLLONESHOT"), (1 << 31, "EPOLLET")]
EPOLL_CTL = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
EPOLL_FLAGS = [(0o2000000, "EPOLL_CLOEXEC")]
EFD_FLAGS = [(1, "EFD_SEMAPHORE"), (0o4000, "EFD_NONBLOCK"), (0o2000000, "EFD_CLOEXEC")]


def _epoll_event(c, v):
    if v == 0:
        return "NULL"
    raw = c.mem(v, 12)
    if raw is None:
        return hex(v)
    ev, data = struct.unpack("<IQ", raw)
    return "{events=%s, data=%#x}" % (flags(ev, EPOLL_EVENTS), data)


def _epoll_events_out(c, v):
    """The events epoll_wait returned (its result says how many)."""
    if v == 0 or not c.ok or not isinstance(c.r, int) or c.r <= 0:
        return ptr(v)
    return "[" + ", ".join(_epoll_event(c, v + 12 * i) for i in range(min(c.r, 8))) + \
        (", ..." if c.r > 8 else "") + "]"


# Output arguments: formatted after the call; a blocked call's first line
# stops before the first of them, as strace's <unfinished ...> does.
_OUT = {_rbuf, _rstr, _stat, _ts_out, _tv_out, _rem, _sigset_out, _sigaction_out,
        _stack_out, _iov_out, _fds_out, _int_out, _rlimit_out, _uname, _wstatus, _dents,
        _affinity, _epoll_events_out}

_getrandom_buf = (_rbuf, True)

# name -> argument decoders, (decoder, param...) tuples for parameters.
SIGNATURES: dict[str, tuple] = {
    "read": (_d, _rbuf, _u), "write": (_d, (_wbuf, 2), _u),
    "open": (_path, _oflags, _mode), "close": (_d,),
    "stat": (_path, _stat), "fstat": (_d, _stat), "lstat": (_path, _stat),
    "lseek": (_d, _ld, _table(SEEK)),
    "mmap": (_x, _u, _prot, _mflags, _d, _hex), "mprotect": (_x, _u, _prot),
    "munmap": (_x, _u), "brk": (_x,),
    "rt_sigaction": (_sig, _sigaction_in, _sigaction_out, _u),
    "rt_sigprocmask": (_table(SIGHOW), _sigset_in, _sigset_out, _u),
    "ioctl": (_d, _table(IOCTL, False), _x),
    "pread64": (_d, _rbuf, _u, _ld),
    "readv": (_d, (_iov_out, 2), _d), "writev": (_d, (_iov_in, 2), _d),
    "access": (_path, _access), "pipe": (_fds_out,), "sched_yield": (),
    "mremap": (_x, _u, _u, _bits(MREMAP), _x),
    "madvise": (_x, _u, _table(MADV)),
    "dup": (_d,), "dup2": (_d, _d), "dup3": (_d, _d, _pipe_flags), "pause": (),
    "nanosleep": (_ts_in, _rem), "getpid": (), "fork": (), "vfork": (),
    "execve": (_path, _argv, _envp), "exit": (_d,), "exit_group": (_d,),
    "wait4": (_d, _wstatus, _bits(WAIT), _x), "kill": (_d, _sig),
    "uname": (_uname,), "getcwd": (_rstr, _u), "chdir": (_path,),
    "readlink": (_path, _rstr, _u), "umask": (_umask,),
    "gettimeofday": (_tv_out, _x), "getrlimit": (_table(RLIMIT), _rlimit_out),
    "setrlimit": (_table(RLIMIT), _rlimit_in), "getrusage": (_table(RUSAGE), _x),
    "sysinfo": (_x,), "times": (_x,), "getuid": (), "getgid": (), "geteuid": (),
    "getegid": (), "setpgid": (_d, _d), "getppid": (), "getpgrp": (), "setsid": (),
    "getgroups": (_d, _x), "getresuid": (_int_out, _int_out, _int_out),
    "getresgid": (_int_out, _int_out, _int_out), "getpgid": (_d,), "getsid": (_d,),
    "rt_sigpending": (_sigset_out, _u), "rt_sigsuspend": (_sigset_in, _u),
    "sigaltstack": (_stack_in, _stack_out),
    "arch_prctl": (_table(ARCH_PRCTL, False), _x),
    "gettid": (), "time": (_x,), "tkill": (_d, _sig),
    "sched_getaffinity": (_d, _u, _affinity),
    "getdents64": (_d, _dents, _u), "set_tid_address": (_x,),
    "clock_gettime": (_clockid, _ts_out), "clock_getres": (_clockid, _ts_out),
    "clock_nanosleep": (_clockid, _timer_flags, _ts_in, _rem),
    "tgkill": (_d, _d, _sig),
    "waitid": (_table(IDTYPE), _d, _x, _bits(WAIT), _x),
    "openat": (_dirfd, _path, _oflags, _mode),
    "newfstatat": (_dirfd, _path, _stat, _bits(AT)),
    "readlinkat": (_dirfd, _path, _rstr, _u),
    "faccessat": (_dirfd, _path, _access),
    "faccessat2": (_dirfd, _path, _access, _bits(ACCESS_AT)),
    "set_robust_list": (_x, _u), "pipe2": (_fds_out, _pipe_flags),
    "prlimit64": (_d, _table(RLIMIT), _rlimit_in, _rlimit_out),
    "getcpu": (_x, _x, _x),
    "getrandom": ((_rbuf, True), _u, _bits(GRND)),
    "execveat": (_dirfd, _path, _argv, _envp, _bits(AT)),
    "rseq": (_x, _hex, _d, _hex),
    "clone3": None, "clone": None, "fcntl": None, "futex": None, "rt_sigreturn": None,
    "prctl": None,
    "mkdir": (_path, _mode), "mkdirat": (_dirfd, _path, _mode), "unlink": (_path,),
    "unlinkat": (_dirfd, _path, _bits(AT)), "rmdir": (_path,), "rename": (_path, _path),
    "renameat": (_dirfd, _path, _dirfd, _path), "symlink": (_path, _path),
    "link": (_path, _path), "truncate": (_path, _ld), "ftruncate": (_d, _ld),
    "fchdir": (_d,), "chmod": (_path, _mode), "fchmod": (_d, _mode),
    "fchmodat": (_dirfd, _path, _mode), "fsync": (_d,), "fdatasync": (_d,),
    "pwrite64": (_d, (_wbuf, 2), _u, _ld), "utimensat": (_dirfd, _path, _x, _bits(AT)),
    "statx": (_dirfd, _path, _bits(AT), _hex, _x), "sendfile": (_d, _d, _x, _u),
    "alarm": (_u,), "setitimer": (_d, _x, _x), "getitimer": (_d, _x),
    "socket": (_d, _d, _d), "poll": (_x, _u, _d), "ppoll": (_x, _u, _x, _x, _u),
    "select": (_d, _x, _x, _x, _x), "pselect6": (_d, _x, _x, _x, _x, _x),
    "eventfd2": (_u, _bits(EFD_FLAGS)), "eventfd": (_u,), "memfd_create": (_path, _hex),
    "epoll_create": (_d,), "epoll_create1": (_bits(EPOLL_FLAGS),),
    "epoll_ctl": (_d, _table(EPOLL_CTL), _d, _epoll_event),
    "epoll_wait": (_d, _epoll_events_out, _d, _d),
    "epoll_pwait": (_d, _epoll_events_out, _d, _d, _sigset_in, _u),
    "epoll_pwait2": (_d, _epoll_events_out, _d, _x, _sigset_in, _u),
    "membarrier": (_d, _d, _d), "sched_setaffinity": (_d, _u, _x),
    "setuid": (_d,), "setgid": (_d,), "chown": (_path, _d, _d),
}


def _decode(c: Call, spec) -> str:
    if isinstance(spec, tuple):
        return spec[0](c, c.args[c._i], *spec[1:])
    return spec(c, c.args[c._i])


def _fn(spec):
    return spec[0] if isinstance(spec, tuple) else spec


# Whole-call formatters for calls whose arguments depend on each other.
# Each returns the list of argument strings.

def _clone_args(c: Call) -> list[str]:
    fl, stack, ptid, ctid, tls = c.args[:5]
    sig = fl & 0xFF
    parts = [f for f in (flags(fl & ~0xFF, CLONE, ""), signame(sig) if sig else "") if f]
    out = [f"child_stack={ptr(stack)}", f"flags={'|'.join(parts) or '0'}"]
    if fl & 0x100000:
        out.append(f"parent_tid={_int_out(c, ptid)}")
    if fl & 0x80000:
        out.append(f"tls={ptr(tls)}")
    if fl & 0x1200000:
        out.append(f"child_tidptr={ptr(ctid)}")
    return out


def _clone3_args(c: Call) -> list[str]:
    va, size = c.args[:2]
    raw = c.mem(va, min(size, 88)) if va else None
    if raw is None or len(raw) < 64:
        return [ptr(va), str(size)]
    raw = raw.ljust(88, b"\0")
    (fl, pidfd, ctid, ptid, esig, stack, ssize, tls, set_tid, set_tid_size,
     cgroup) = struct.unpack("<11Q", raw)
    fs = flags(fl, CLONE)
    if fl and fs.startswith("0x"):
        fs += " /* CLONE_??? */"                           # as strace
    f = [f"flags={fs}"]
    if fl & 0x1000:                                        # CLONE_PIDFD
        f.append(f"pidfd={ptr(pidfd)}")
    if ctid:
        f.append(f"child_tid={ptr(ctid)}")
    if ptid:
        f.append(f"parent_tid={ptr(ptid)}")
    f.append(f"exit_signal={_sig(c, esig)}")
    f.append(f"stack={ptr(stack)}")
    f.append(f"stack_size={ssize:#x}" if ssize else "stack_size=0")
    if tls or fl & 0x80000:
        f.append(f"tls={ptr(tls)}")
    if set_tid:
        f.append(f"set_tid={ptr(set_tid)}, set_tid_size={set_tid_size}")
    if cgroup:
        f.append(f"cgroup={cgroup}")
    st = "{" + ", ".join(f) + "}"
    if fl & 0x100000 and ptid and c.ok and c.r is not BLOCK:     # CLONE_PARENT_SETTID
        st += f" => {{parent_tid={_int_out(c, ptid)}}}"
    return [st, str(size)]


def _fcntl_args(c: Call) -> list[str]:
    fd, cmd, arg = c.args[:3]
    cmd = s32(cmd)
    out = [str(s32(fd)), FCNTL.get(cmd, str(cmd))]
    if cmd in FCNTL_NOARG:
        return out
    if cmd == 2:
        out.append("FD_CLOEXEC" if arg & 0xFFFFFFFF == 1 else str(s32(arg)))
    elif cmd == 4:
        out.append(open_flags(arg))
    elif cmd in (0, 1030, 8, 10, 1024, 1026, 1031, 1033):
        out.append(str(s32(arg)))
    else:
        out.append(ptr(arg))
    return out


def _futex_args(c: Call) -> list[str]:
    uaddr, op, val, timeout, uaddr2, val3 = c.args
    base = op & 0x7F
    name = FUTEX.get(base, hex(base))
    if op & 0x80:
        name += "_PRIVATE"
    if op & 0x100:
        name += "|FUTEX_CLOCK_REALTIME"
    if op & ~0x1FF:
        name += f"|{op & ~0x1FF:#x}"
    out = [ptr(uaddr), name, str(s32(val))]
    if base in (1, 7, 8):                                  # WAKE, UNLOCK_PI, TRYLOCK_PI
        return out
    if base in (0, 6, 13):                                 # WAIT, LOCK_PI
        return out + [_ts_in(c, timeout)]
    if base in (9, 10):                                    # *_BITSET
        return out + [_ts_in(c, timeout), ptr(uaddr2),
                      "FUTEX_BITSET_MATCH_ANY" if val3 & 0xFFFFFFFF == 0xFFFFFFFF else hex(val3)]
    return out + [str(timeout), ptr(uaddr2), str(s32(val3))]


def _prctl_args(c: Call) -> list[str]:
    op = s32(c.args[0])
    name = PRCTL.get(op, str(op))
    a = c.args
    if op == 15:                                           # PR_SET_NAME
        return [name, _path(c, a[1])]
    if op == 16:                                           # PR_GET_NAME
        if not c.ok:
            return [name, ptr(a[1])]
        s = peek_str(c.mm, a[1], 16)
        return [name, hex(a[1]) if s is None else quote(s)]
    if op == 1:                                            # PR_SET_PDEATHSIG
        return [name, _sig(c, a[1])]
    if op in (4, 36, 38, 22):
        return [name, str(s32(a[1]))]
    if op in (2, 3, 37, 39):
        return [name] + ([ptr(a[1])] if op in (2, 37) else [])
    return [name] + [ptr(x) for x in a[1:5]]


def _sigreturn_args(c: Call) -> list[str]:
    return [f"{{mask={sigset(c.t.blocked)}}}"]


_CUSTOM = {"clone": _clone_args, "clone3": _clone3_args, "fcntl": _fcntl_args,
           "futex": _futex_args, "rt_sigreturn": _sigreturn_args, "prctl": _prctl_args}


def _format_args(c: Call, pre: list | None = None, split: bool = False):
    """The argument strings. With ``split``, (before, after): the arguments
    before the first output argument, and the rest (for <unfinished ...>)."""
    name = c.name
    custom = _CUSTOM.get(name)
    if custom is not None:
        out = pre if pre is not None else custom(c)
        return (out, []) if split else out
    spec = SIGNATURES.get(name)
    if spec is None:
        n = 6 if name.startswith("syscall_") else 3
        out = [hex(v) if v > 4096 else str(s64(v)) for v in c.args[:n]]
        return (out, []) if split else out
    if name in ("open", "openat"):
        fl = c.args[2 if name == "openat" else 1]
        if not fl & 0o20100100:                           # no O_CREAT/O_TMPFILE: no mode
            spec = spec[:-1]
    elif name == "mremap" and not c.args[3] & 2:
        spec = spec[:-1]
    out = []
    cut = None
    for i, s in enumerate(spec):
        c._i = i
        if pre is not None and pre[i] is not None:
            out.append(pre[i])
            continue
        if split and cut is None and _fn(s) in _OUT:
            cut = i
        try:
            out.append(_decode(c, s))
        except Exception:                                 # a decoder must never kill a trace
            out.append(hex(c.args[i]))
    if split:
        cut = len(out) if cut is None else cut
        return out[:cut], out[cut:]
    return out


def _result(c: Call, nr_known: bool) -> str:
    r = c.r
    name = c.name
    if r is NORETURN:
        if name in ("execve", "execveat"):
            return "0"
        if name == "rt_sigreturn":
            return str(s64(c.k.cpu.reg("rax")))
        return "?"
    if not isinstance(r, int):
        return str(r)
    if -4096 < r < 0:
        if not nr_known:
            return f"-1 {ERRNO_NAMES.get(-r, str(-r))} (not implemented)"
        return f"-1 {errno_text(-r)}"
    if name in ("mmap", "mremap", "brk"):
        return hex(r)
    if name == "fcntl":
        cmd = s32(c.args[1])
        if cmd == 1:
            return f"{r:#x} (flags FD_CLOEXEC)" if r & 1 else "0"
        if cmd == 3:
            return f"{r:#x} (flags {open_flags(r)})"
    if name == "umask":
        return "0%o" % r if r else "0"
    return str(s64(r))


def syscall_name(k, nr: int) -> str:
    ent = k.syscalls.get(nr)
    return ent[1] if ent else f"syscall_{nr}"


def format_syscall(k, t, nr: int, r) -> str:
    """The trace line of a syscall ``t`` just made (its handler returned
    ``r``); ``name(args <unfinished ...>`` if the call blocked."""
    ent = k.syscalls.get(nr)
    name = ent[1] if ent else f"syscall_{nr}"
    c = Call(k, t, name, t.syscall_args, r)
    pre = getattr(t, "trace_pre", None)
    if pre is not None and pre[0] == nr:
        pre = pre[1]
    else:
        pre = None
    if r is BLOCK:
        before, _ = _format_args(c, pre, split=True)
        t.trace_pre = (nr, pre)
        sep = ", " if before else ""
        return f"[pid {t.tid}] {name}({', '.join(before)}{sep} <unfinished ...>"
    t.trace_pre = None
    line = f"[pid {t.tid}] {name}({', '.join(_format_args(c, pre))}) = {_result(c, ent is not None)}"
    tail = getattr(t, "trace_exit", None)
    if tail is not None:
        t.trace_exit = None
        line += "\n" + tail
    return line


def format_resumed(k, t, r) -> str:
    """The second half of a call that blocked: ``<... read resumed>"x", 10) = 1``."""
    nr = t.syscall_nr
    ent = k.syscalls.get(nr)
    name = ent[1] if ent else f"syscall_{nr}"
    c = Call(k, t, name, t.syscall_args, r)
    pre = getattr(t, "trace_pre", None)
    pre = pre[1] if pre is not None and pre[0] == nr else None
    t.trace_pre = None
    _, after = _format_args(c, pre, split=True)
    return f"[pid {t.tid}] <... {name} resumed>{', '.join(after)}) = {_result(c, ent is not None)}"


# ------------------------------------------------------------ other events

def format_fork(k, t, last_fork: dict, child_pid: int | None = None) -> str:
    """``[pid 1] fork: 2 tables shared, 0 copied (41 us), child pid 2``."""
    line = (f"[pid {t.tid}] fork: {last_fork['shared']} tables shared, "
            f"{last_fork['copied']} copied ({last_fork['ns'] / 1000:.0f} us)")
    if child_pid is not None:
        line += f", child pid {child_pid}"
    return line


def format_exit(t, status: int) -> str:
    """strace's ``+++ exited with 0 +++`` / ``+++ killed by SIGSEGV (core dumped) +++``."""
    if status & 0x7F == 0:
        return f"[pid {t.tid}] +++ exited with {(status >> 8) & 0xFF} +++"
    core = " (core dumped)" if status & 0x80 else ""
    return f"[pid {t.tid}] +++ killed by {signame(status & 0x7F)}{core} +++"


SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -6: "SI_TKILL"}
CLD_CODES = {1: "CLD_EXITED", 2: "CLD_KILLED", 3: "CLD_DUMPED", 4: "CLD_TRAPPED",
             5: "CLD_STOPPED", 6: "CLD_CONTINUED"}
SEGV_CODES = {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"}
BUS_CODES = {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR"}


def format_signal(t, sig: int, info: dict) -> str:
    """``[pid 1] --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=2, ...} ---``
    (strace's format) from the kernel's siginfo dict."""
    code = info.get("code", 0)
    table = {17: CLD_CODES, 11: SEGV_CODES, 7: BUS_CODES}.get(sig, {})
    cs = table.get(code) or SI_CODES.get(code, str(code))
    f = [f"si_signo={signame(sig)}", f"si_code={cs}"]
    if "pid" in info:
        f.append(f"si_pid={info['pid']}")
        f.append(f"si_uid={info.get('uid', 0)}")
    if sig == 17 and "status" in info:
        st = info["status"]
        f.append(f"si_status={st if code == 1 else signame(st)}")
    if "addr" in info:
        f.append(f"si_addr={ptr(info['addr'])}")
    return f"[pid {t.tid}] --- {signame(sig)} {{{', '.join(f)}}} ---"


def trace_fault(k, t, vmf) -> None:
    """Write the trace line of a page fault the kernel handled: ``vmf``
    (``minios.mm.fault.VmFault``) says what it did."""
    k.trace_out.write(f"[pid {t.tid}] page fault at {vmf.address:#x} ip {k.cpu.reg('rip'):#x} "
                      f"({x86.pf_reason(vmf.error_code)}) -> {vmf.describe()}\n")


# ---------------------------------------------------------------- install

def add_hook(k, kind: str, fn) -> None:
    """Add a break hook ``fn(kernel, what, task)`` to ``k.hooks[kind]``,
    chained after one already there."""
    old = k.hooks.get(kind)
    if old is None:
        k.hooks[kind] = fn
        return

    def both(kk, what, task, _a=old, _b=fn):
        _a(kk, what, task)
        _b(kk, what, task)
    k.hooks[kind] = both


def _pre_execve(fn, nr: int, name: str):
    """Wrap execve/execveat: their arguments vanish with the old image."""
    def traced(k, t, *a):
        c = Call(k, t, name, a, 0)
        pre = _format_args(c)
        t.trace_pre = (nr, pre)
        return fn(k, t, *a)
    return traced


def install(k) -> None:
    """Prepare kernel ``k`` for its ``k.trace`` categories (idempotent).
    Called by Machine; a bare Kernel traces too, without these extras."""
    if getattr(k, "_trace_installed", False) or not k.trace:
        return
    k._trace_installed = True
    tr = k.trace
    if "syscall" in tr:
        table = dict(k.syscalls)
        for nr, (fn, name) in k.syscalls.items():
            if name in ("execve", "execveat"):
                table[nr] = (_pre_execve(fn, nr, name), name)
        k.syscalls = table
    if "syscall" in tr or "signal" in tr:
        def on_exit(kk, status, task):
            line = format_exit(task, status)
            if task.syscall_nr == 231 and "syscall" in kk.trace:
                task.trace_exit = line            # after the exit_group(...) = ? line
            else:
                kk.trace_out.write(line + "\n")
        add_hook(k, "exit", on_exit)
    if "sched" in tr:
        orig = k._switch_to

        def switch(t, *args, _orig=orig, _k=k, **kw):
            cur = _k.current
            _orig(t, *args, **kw)
            if cur is t:
                return
            if cur is None:
                frm = "-"
                why = "start" if _k.nr_switches <= 1 else "previous task exited"
            else:
                frm = f"pid {cur.tid}"
                why = {"R": "preempted", "S": f"blocked: {cur.wait_channel or '?'}",
                       "T": "stopped", "Z": "exited", "X": "exited"}.get(cur.state, cur.state)
                why = f"pid {cur.tid} {why}"
            _k.trace_out.write(f"[sched] {frm} -> pid {t.tid} ({why})\n")
        k._switch_to = switch


# ----------------------------------------------------------------- parsing

_PID = r"\[pid (\d+)\] "
_RE_SYSCALL = re.compile(_PID + r"([a-z_0-9]+)\((.*)\) = (.+)$")
_RE_UNFINISHED = re.compile(_PID + r"([a-z_0-9]+)\((.*?)(?:,  | )<unfinished \.\.\.>$")
_RE_RESUMED = re.compile(_PID + r"<\.\.\. ([a-z_0-9]+) resumed>(.*)\) = (.+)$")
_RE_FAULT = re.compile(_PID + r"page fault at (0x[0-9a-f]+) ip (0x[0-9a-f]+) \(([^)]*)\) -> (.*)$")
_RE_FORK = re.compile(_PID + r"fork: (\d+) tables shared, (\d+) copied \((\d+) us\)"
                      r"(?:, child pid (\d+))?")
_RE_SIGNAL = re.compile(_PID + r"--- (SIG\w+|\d+) (\{.*\}) ---$")
_RE_EXIT = re.compile(_PID + r"\+\+\+ (exited with (\d+)|killed by (\S+)( \(core dumped\))?) \+\+\+$")
_RE_SCHED = re.compile(r"\[sched\] (?:pid (\d+)|-) -> pid (\d+) \((.*)\)$")
_RE_RESULT = re.compile(r"(-?\d+|0x[0-9a-f]+|\?)(?: (E[A-Z0-9]+) \((.*)\))?(?: \(.*\))?$")


def split_args(s: str) -> list[str]:
    """Split a trace line's argument list at top-level commas (quotes,
    brackets and braces respected)."""
    out, depth, cur, q, esc = [], 0, [], False, False
    for ch in s:
        if q:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                q = False
            continue
        if ch == '"':
            q = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


def _parse_result(s: str) -> tuple[int | None, str | None]:
    m = _RE_RESULT.match(s.strip())
    if not m:
        return None, None
    if m.group(1) == "?":
        return None, m.group(2)
    v = m.group(1)
    n = int(v, 16) if v.startswith("0x") else int(v)
    return n, m.group(2)


def parse(text: str) -> list[dict]:
    """Trace text -> events, in order. Every event has ``kind`` and ``pid``:

    * ``syscall``: ``name``, ``args`` (list of argument strings as printed),
      ``result`` (int, or None for ``?``), ``errno`` (``"ENOENT"`` or None),
      ``line``. A call that blocked becomes one event when it resumes (its
      ``args`` joined), with ``blocked=True``.
    * ``fault``: ``addr``, ``ip`` (ints), ``reason`` (``"user write,
      protection"``), ``note`` (what the kernel did).
    * ``fork``: ``shared``, ``copied``, ``us``, ``child``.
    * ``signal``: ``signal`` (name), ``info``; ``exit``: ``status`` or
      ``signal``; ``sched``: ``from``, ``pid`` (the task switched to), ``why``.
    Lines that are not trace lines (a program's own stderr) are skipped."""
    events: list[dict] = []
    pending: dict[int, dict] = {}
    for line in text.splitlines():
        m = _RE_SYSCALL.match(line)
        if m and not line.startswith("[pid " + m.group(1) + "] <..."):
            res, err = _parse_result(m.group(4))
            events.append({"kind": "syscall", "pid": int(m.group(1)), "name": m.group(2),
                           "args": split_args(m.group(3)), "result": res, "errno": err,
                           "line": line})
            continue
        m = _RE_UNFINISHED.match(line)
        if m:
            ev = {"kind": "syscall", "pid": int(m.group(1)), "name": m.group(2),
                  "args": split_args(m.group(3)), "result": None, "errno": None,
                  "blocked": True, "line": line}
            pending[ev["pid"]] = ev
            events.append(ev)
            continue
        m = _RE_RESUMED.match(line)
        if m:
            pid = int(m.group(1))
            ev = pending.pop(pid, None)
            if ev is None:
                ev = {"kind": "syscall", "pid": pid, "name": m.group(2), "args": [],
                      "blocked": True, "line": line}
                events.append(ev)
            rest = m.group(3)
            more = split_args(rest.lstrip(", "))
            if rest.lstrip().startswith("=>") and ev["args"] and more:
                ev["args"] = ev["args"][:-1] + [ev["args"][-1] + " " + more.pop(0)]
            ev["args"] = ev["args"] + more
            ev["result"], ev["errno"] = _parse_result(m.group(4))
            ev["line"] += "\n" + line
            continue
        m = _RE_FAULT.match(line)
        if m:
            events.append({"kind": "fault", "pid": int(m.group(1)), "addr": int(m.group(2), 16),
                           "ip": int(m.group(3), 16), "reason": m.group(4),
                           "note": m.group(5), "line": line})
            continue
        m = _RE_FORK.match(line)
        if m:
            events.append({"kind": "fork", "pid": int(m.group(1)), "shared": int(m.group(2)),
                           "copied": int(m.group(3)), "us": int(m.group(4)),
                           "child": int(m.group(5)) if m.group(5) else None, "line": line})
            continue
        m = _RE_SIGNAL.match(line)
        if m:
            events.append({"kind": "signal", "pid": int(m.group(1)), "signal": m.group(2),
                           "info": m.group(3), "line": line})
            continue
        m = _RE_EXIT.match(line)
        if m:
            events.append({"kind": "exit", "pid": int(m.group(1)),
                           "status": int(m.group(3)) if m.group(3) is not None else None,
                           "signal": m.group(4), "core": bool(m.group(5)), "line": line})
            continue
        m = _RE_SCHED.match(line)
        if m:
            events.append({"kind": "sched", "from": int(m.group(1)) if m.group(1) else None,
                           "pid": int(m.group(2)), "why": m.group(3), "line": line})
    return events
