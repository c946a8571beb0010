"""One syscall's trace line, from its declaration in the syscall table:
each argument formatted by its kind (``minios.syscalls.kinds``), the
result by its result kind.

The call is formatted after its handler ran, so output arguments show
what the kernel wrote; user memory is read through the page tables without
faulting anything in (``minios.mm.peek``). A formatter never raises into
the kernel: an argument that fails to format is shown in hex.
"""
from __future__ import annotations

import struct
from typing import Callable

from minios.mm.peek import peek, peek_str
from minios.proc.task import BLOCK, NORETURN
from minios.syscalls import kinds as K
from minios.syscalls.table import Syscall
from minios.trace.format import (STRLEN, errno_text, flags, mmap_flags, open_flags, ptr,
                                 quote, s32, s64, sigset, signame, sym)
from minios.uapi.epoll import EPOLL_EVENTS
from minios.uapi.errno import EINTR, ERRNO_NAMES
from minios.uapi.fcntl import (ACCESS_MODES, AT_FDCWD, F_GETFD, F_GETFL, F_SETFD, F_SETFL,
                               FCNTL_CMDS, FCNTL_INTARG, FCNTL_NOARG, FD_CLOEXEC,
                               S_IFBLK, S_IFCHR, S_IFMT, S_IFMT_NAMES)
from minios.uapi.misc import (FUTEX_OPS, PR_GET_NAME, PR_SET_NAME, PR_SET_PDEATHSIG,
                              PRCTL_OPTIONS, RLIM_INFINITY)
from minios.uapi.sched import (CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_FLAGS,
                               CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SETTLS, CSIGNAL)
from minios.uapi.signal import SA_FLAGS, SA_RESTORER, SS_FLAGS, SIG_DFL, SIG_IGN
from minios.uapi.socket import SOCK_FLAGS, SOCK_TYPES


class Call:
    """The call being formatted: kernel, task, raw arguments, result."""
    __slots__ = ("k", "t", "mm", "args", "r", "decl")

    def __init__(self, k, t, decl: Syscall | None, args, r) -> None:
        self.k, self.t, self.mm, self.args, self.r, self.decl = k, t, t.mm, args, r, decl

    @property
    def ok(self) -> bool:
        r = self.r
        return isinstance(r, int) and not -4096 < r < 0

    def mem(self, va: int, n: int) -> bytes | None:
        d = peek(self.mm, va, n)
        return d if d is not None and len(d) == n else None


# ------------------------------------------------------- argument kinds
# fn(c, v, kind) -> str, by kind class.

def _int(c: Call, v: int, kind) -> str:
    return str(s32(v))


def _long(c: Call, v: int, kind) -> str:
    return str(s64(v))


def _uint(c: Call, v: int, kind) -> str:
    return str(v)


def _ptr(c: Call, v: int, kind) -> str:
    return ptr(v)


def _hex(c: Call, v: int, kind) -> str:
    return hex(v) if v else "0"            # C's %#lx


def _dirfd(c: Call, v: int, kind) -> str:
    return "AT_FDCWD" if s32(v) == AT_FDCWD else str(s32(v))


def _path(c: Call, v: int, kind) -> str:
    if v == 0:
        return "NULL"
    s = peek_str(c.mm, v, 4096)
    return hex(v) if s is None else quote(s, None)


def _mode(c: Call, v: int, kind) -> str:
    return "0%o" % (v & 0o7777) if v & 0o7777 else "000"


def _file_mode(c: Call, v: int, kind) -> str:
    ft = S_IFMT_NAMES.get(v & S_IFMT)
    perm = "%04o" % (v & 0o7777)
    return f"{ft}|{perm}" if ft else perm


def _umask(c: Call, v: int, kind) -> str:
    return "0%o" % (v & 0o777) if v & 0o777 else "0"


def _access(c: Call, v: int, kind) -> str:
    v &= 0xFFFFFFFF
    return "F_OK" if v == 0 else flags(v, ACCESS_MODES)


def _sig(c: Call, v: int, kind=None) -> str:
    return "0" if v == 0 else signame(v)


def _flags(c: Call, v: int, kind: K.Flags) -> str:
    return flags(v & 0xFFFFFFFF, kind.table, kind.zero)


def _enum(c: Call, v: int, kind: K.Enum) -> str:
    return sym(s32(v) if kind.signed else v, kind.table, kind.signed)


def _open_flags(c: Call, v: int, kind) -> str:
    return open_flags(v)


def _mmap_flags(c: Call, v: int, kind) -> str:
    return mmap_flags(v & 0xFFFFFFFF)


def _sock_type(c: Call, v: int, kind) -> str:
    v &= 0xFFFFFFFF
    head = sym(v & 0xF, SOCK_TYPES)
    rest = flags(v & ~0xF, SOCK_FLAGS, "")
    return head + ("|" + rest if rest else "")


def _in_buf(c: Call, v: int, kind: K.InBuf) -> str:
    """Bytes the call reads, args[kind.len] long (write)."""
    n = c.args[kind.len]
    if v == 0:
        return "NULL"
    data = peek(c.mm, v, min(n, STRLEN + 1))
    if data is None:
        return hex(v)
    if n > STRLEN:
        return quote(data[:STRLEN]) + "..."
    return quote(data)


def _out_buf(c: Call, v: int, kind: K.OutBuf) -> str:
    """Bytes the call wrote, ``result`` of them (read, getrandom)."""
    if not c.ok or v == 0:
        return ptr(v)
    n = c.r
    if n == 0:
        return '""'
    data = peek(c.mm, v, min(n, STRLEN + 1))
    if data is None:
        return hex(v)
    if n > STRLEN:
        return quote(data[:STRLEN], hexall=kind.hexall) + "..."
    return quote(data, hexall=kind.hexall)


def _out_str(c: Call, v: int, kind: K.OutStr) -> str:
    """readlink/getcwd: ``result`` bytes of string (getcwd counts the NUL)."""
    if not c.ok or v == 0:
        return ptr(v)
    n = c.r - (1 if kind.nul else 0)
    data = peek(c.mm, v, min(max(n, 0), STRLEN + 1)) if n > 0 else b""
    if data is None:
        return hex(v)
    return quote(data[:STRLEN]) + ("..." if n > STRLEN else "")


def _stat(c: Call, v: int, kind) -> str:
    if not c.ok or v == 0:
        return ptr(v)
    raw = c.mem(v, 144)
    if raw is None:
        return hex(v)
    mode, = struct.unpack_from("<I", raw, 24)
    rdev, size = struct.unpack_from("<Qq", raw, 40)
    ft = S_IFMT_NAMES.get(mode & S_IFMT, "%#o" % (mode & S_IFMT))
    perm = "%04o" % (mode & 0o7777)
    if mode & S_IFMT in (S_IFCHR, S_IFBLK):
        major = ((rdev >> 8) & 0xFFF) | ((rdev >> 32) & ~0xFFF)
        minor = (rdev & 0xFF) | ((rdev >> 12) & ~0xFF)
        return f"{{st_mode={ft}|{perm}, st_rdev=makedev({major:#x}, {minor:#x}), ...}}"
    return f"{{st_mode={ft}|{perm}, st_size={size}, ...}}"


def _struct_at(c: Call, v: int, size: int, out: bool) -> tuple[bytes | None, str]:
    """The ``size`` bytes of a struct argument at ``v`` to decode, or (None,
    what strace prints instead): NULL, or the bare pointer for an output
    the call did not write or memory that cannot be read."""
    if v == 0:
        return None, "NULL"
    if out and not c.ok:
        return None, hex(v)
    raw = c.mem(v, size)
    if raw is None:
        return None, hex(v)
    return raw, ""


def _timespec(c: Call, v: int, kind: K.Timespec = K.TIMESPEC) -> str:
    raw, text = _struct_at(c, v, 16, kind.out)
    if raw is None:
        return text
    a, b = struct.unpack("<qq", raw)
    return f"{{tv_sec={a}, {'tv_usec' if kind.usec else 'tv_nsec'}={b}}}"


def _rem(c: Call, v: int, kind) -> str:
    """nanosleep's remaining time: shown only when interrupted."""
    if v and c.r == -EINTR:
        return _timespec(c, v)
    return ptr(v)


def _sigset(c: Call, v: int, kind: K.SigSet) -> str:
    if v == 0 or (kind.out and not c.ok):
        return ptr(v)
    raw = c.mem(v, 8)
    return hex(v) if raw is None else sigset(struct.unpack("<Q", raw)[0])


def _sigaction(c: Call, v: int, kind: K.SigAction) -> str:
    raw, text = _struct_at(c, v, 32, kind.out)
    if raw is None:
        return text
    h, fl, rest, mask = struct.unpack("<QQQQ", raw)
    hs = {SIG_DFL: "SIG_DFL", SIG_IGN: "SIG_IGN"}.get(h, hex(h))
    s = f"{{sa_handler={hs}, sa_mask={sigset(mask)}, sa_flags={flags(fl, SA_FLAGS)}"
    if fl & SA_RESTORER:
        s += f", sa_restorer={ptr(rest)}"
    return s + "}"


def _stack_t(c: Call, v: int, kind: K.StackT) -> str:
    raw, text = _struct_at(c, v, 24, kind.out)
    if raw is None:
        return text
    sp, fl, size = struct.unpack("<QiQ", raw[:8] + raw[8:12] + raw[16:24])
    return f"{{ss_sp={ptr(sp)}, ss_flags={flags(fl & 0xFFFFFFFF, SS_FLAGS)}, ss_size={size}}}"


def _iovec(c: Call, v: int, kind: K.Iovec) -> str:
    cnt = c.args[kind.cnt] & 0xFFFFFFFF
    raw, text = _struct_at(c, v, 16 * min(cnt, STRLEN + 1), kind.out)
    if raw is None:
        return text
    left = c.r if kind.out else None
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


def _fd_pair(c: Call, v: int, kind) -> str:
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, 8)
    if raw is None:
        return hex(v)
    a, b = struct.unpack("<ii", raw)
    return f"[{a}, {b}]"


def _int_out(c: Call, v: int, kind=None) -> str:
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


def _rlimit(c: Call, v: int, kind: K.Rlimit) -> str:
    raw, text = _struct_at(c, v, 16, kind.out)
    if raw is None:
        return text
    a, b = struct.unpack("<QQ", raw)
    return f"{{rlim_cur={_rlim_val(a)}, rlim_max={_rlim_val(b)}}}"


def _utsname(c: Call, v: int, kind) -> str:
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, 65 * 2)
    if raw is None:
        return hex(v)
    f = [raw[i * 65:(i + 1) * 65].split(b"\0")[0] for i in range(2)]
    return f"{{sysname={quote(f[0])}, nodename={quote(f[1])}, ...}}"


def _wstatus(c: Call, v: int, kind) -> str:
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


def _dirents(c: Call, v: int, kind) -> str:
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


def _argv(c: Call, v: int, kind) -> str:
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


def _envp(c: Call, v: int, kind) -> str:
    if v == 0:
        return "NULL"
    n = 0
    while n < 100000:
        raw = c.mem(v + 8 * n, 8)
        if raw is None or raw == b"\0" * 8:
            break
        n += 1
    return f"{hex(v)} /* {n} var{'' if n == 1 else 's'} */"


def _affinity(c: Call, v: int, kind) -> str:
    if v == 0 or not c.ok:
        return ptr(v)
    raw = c.mem(v, c.r) if c.r else b""
    if raw is None:
        return hex(v)
    m = int.from_bytes(raw, "little")
    return "[" + " ".join(str(i) for i in range(len(raw) * 8) if m >> i & 1) + "]"


def _epoll_event(c: Call, v: int, kind=None) -> str:
    if v == 0:
        return "NULL"
    raw = c.mem(v, 12)
    if raw is None:
        return hex(v)
    ev, data = struct.unpack("<IQ", raw)
    return "{events=%s, data=%#x}" % (flags(ev, EPOLL_EVENTS), data)


def _epoll_events(c: Call, v: int, kind) -> str:
    """The events epoll_wait returned (its result says how many)."""
    if v == 0 or not c.ok or not isinstance(c.r, int) or c.r <= 0:
        return ptr(v)
    return "[" + ", ".join(_epoll_event(c, v + 12 * i) for i in range(min(c.r, 8))) + \
        (", ..." if c.r > 8 else "") + "]"


FORMATTERS: dict[type, Callable[[Call, int, K.Kind], str]] = {
    K.Int: _int, K.Long: _long, K.UInt: _uint, K.Ptr: _ptr, K.Hex: _hex, K.DirFd: _dirfd,
    K.Path: _path, K.Mode: _mode, K.FileMode: _file_mode, K.Umask: _umask,
    K.AccessMode: _access, K.Signal: _sig,
    K.Flags: _flags, K.Enum: _enum, K.OpenFlags: _open_flags, K.MmapFlags: _mmap_flags,
    K.SockType: _sock_type, K.InBuf: _in_buf, K.Argv: _argv, K.Envp: _envp,
    K.Iovec: _iovec, K.Timespec: _timespec, K.SigSet: _sigset, K.SigAction: _sigaction,
    K.StackT: _stack_t, K.Rlimit: _rlimit, K.EpollEvent: _epoll_event, K.OutBuf: _out_buf,
    K.OutStr: _out_str, K.Stat: _stat, K.TimespecRem: _rem, K.FdPair: _fd_pair,
    K.IntOut: _int_out, K.Utsname: _utsname, K.WStatus: _wstatus, K.Dirents: _dirents,
    K.Affinity: _affinity, K.EpollEvents: _epoll_events,
}


# ------------------------------------------------------ whole-call formats
# fn(c) -> the argument strings, for calls declared with format=.

def _clone(c: Call) -> list[str]:
    fl, stack, ptid, ctid, tls = c.args[:5]
    sig = fl & CSIGNAL
    parts = [f for f in (flags(fl & ~CSIGNAL, CLONE_FLAGS, ""), signame(sig) if sig else "")
             if f]
    out = [f"child_stack={ptr(stack)}", f"flags={'|'.join(parts) or '0'}"]
    if fl & CLONE_PARENT_SETTID:
        out.append(f"parent_tid={_int_out(c, ptid)}")
    if fl & CLONE_SETTLS:
        out.append(f"tls={ptr(tls)}")
    if fl & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID):
        out.append(f"child_tidptr={ptr(ctid)}")
    return out


def _clone3(c: Call) -> list[str]:
    va, size = c.args[:2]
    raw = c.mem(va, min(size, 88)) if va else None
    if raw is None or len(raw) < 64:
        return [ptr(va), str(size)]
    raw = raw.ljust(88, b"\0")
    (fl, pidfd, ctid, ptid, esig, stack, ssize, tls, set_tid, set_tid_size,
     cgroup) = struct.unpack("<11Q", raw)
    fs = flags(fl, CLONE_FLAGS)
    if fl and fs.startswith("0x"):
        fs += " /* CLONE_??? */"                           # as strace
    f = [f"flags={fs}"]
    if fl & CLONE_PIDFD:
        f.append(f"pidfd={ptr(pidfd)}")
    if ctid:
        f.append(f"child_tid={ptr(ctid)}")
    if ptid:
        f.append(f"parent_tid={ptr(ptid)}")
    f.append(f"exit_signal={_sig(c, esig)}")
    f.append(f"stack={ptr(stack)}")
    f.append(f"stack_size={ssize:#x}" if ssize else "stack_size=0")
    if tls or fl & CLONE_SETTLS:
        f.append(f"tls={ptr(tls)}")
    if set_tid:
        f.append(f"set_tid={ptr(set_tid)}, set_tid_size={set_tid_size}")
    if cgroup:
        f.append(f"cgroup={cgroup}")
    st = "{" + ", ".join(f) + "}"
    if fl & CLONE_PARENT_SETTID and ptid and c.ok and c.r is not BLOCK:
        st += f" => {{parent_tid={_int_out(c, ptid)}}}"
    return [st, str(size)]


def _fcntl(c: Call) -> list[str]:
    fd, cmd, arg = c.args[:3]
    cmd = s32(cmd)
    out = [str(s32(fd)), FCNTL_CMDS.get(cmd, str(cmd))]
    if cmd in FCNTL_NOARG:
        return out
    if cmd == F_SETFD:
        out.append("FD_CLOEXEC" if arg & 0xFFFFFFFF == FD_CLOEXEC else str(s32(arg)))
    elif cmd == F_SETFL:
        out.append(open_flags(arg))
    elif cmd in FCNTL_INTARG:
        out.append(str(s32(arg)))
    else:
        out.append(ptr(arg))
    return out


def _futex(c: Call) -> list[str]:
    uaddr, op, val, timeout, uaddr2, val3 = c.args
    base = op & 0x7F
    name = FUTEX_OPS.get(base, hex(base))
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
        return out + [_timespec(c, timeout)]
    if base in (9, 10):                                    # *_BITSET
        return out + [_timespec(c, timeout), ptr(uaddr2),
                      "FUTEX_BITSET_MATCH_ANY" if val3 & 0xFFFFFFFF == 0xFFFFFFFF else hex(val3)]
    return out + [str(timeout), ptr(uaddr2), str(s32(val3))]


def _prctl(c: Call) -> list[str]:
    op = s32(c.args[0])
    name = PRCTL_OPTIONS.get(op, str(op))
    a = c.args
    if op == PR_SET_NAME:
        return [name, _path(c, a[1], K.PATH)]
    if op == PR_GET_NAME:
        if not c.ok:
            return [name, ptr(a[1])]
        s = peek_str(c.mm, a[1], 16)
        return [name, hex(a[1]) if s is None else quote(s)]
    if op == PR_SET_PDEATHSIG:
        return [name, _sig(c, a[1])]
    if op in (4, 36, 38, 22):                              # an int to set
        return [name, str(s32(a[1]))]
    if op in (2, 3, 37, 39):                               # gets: a pointer or nothing
        return [name] + ([ptr(a[1])] if op in (2, 37) else [])
    return [name] + [ptr(x) for x in a[1:5]]


def _sigreturn(c: Call) -> list[str]:
    return [f"{{mask={sigset(c.t.blocked)}}}"]


CALL_FORMATS: dict[type, Callable[[Call], list[str]]] = {
    K.CloneFormat: _clone, K.Clone3Format: _clone3, K.FcntlFormat: _fcntl,
    K.FutexFormat: _futex, K.PrctlFormat: _prctl, K.SigreturnFormat: _sigreturn,
}


# ------------------------------------------------------------- the line

def format_args(c: Call, pre: list | None = None, split: bool = False):
    """The argument strings. With ``split``, (before, after): the arguments
    before the first output argument, and the rest (for <unfinished ...>).
    ``pre``: the strings formatted at entry (a call that replaces its image)."""
    decl = c.decl
    if decl is None:                                       # not implemented: raw registers
        out = [hex(v) if v > 4096 else str(s64(v)) for v in c.args]
        return (out, []) if split else out
    if decl.format is not None:
        out = pre if pre is not None else CALL_FORMATS[type(decl.format)](c)
        return (out, []) if split else out
    out = []
    cut = None
    args = c.args
    for i, kind in enumerate(decl.args):
        if type(kind) is K.If:
            if not args[kind.arg] & kind.mask:
                continue
            kind = kind.kind
        if pre is not None:
            out.append(pre[len(out)])
            continue
        if split and cut is None and kind.out:
            cut = len(out)
        try:
            out.append(FORMATTERS[type(kind)](c, args[i], kind))
        except Exception:                                  # a formatter must never kill a trace
            out.append(hex(args[i]))
    if split:
        cut = len(out) if cut is None else cut
        return out[:cut], out[cut:]
    return out


def format_result(c: Call) -> str:
    r = c.r
    decl = c.decl
    ret = decl.ret if decl is not None else K.RET
    if r is NORETURN:
        if ret.exec:
            return "0"
        if type(ret) is K.RetSigreturn:
            return str(s64(c.k.cpu.reg("rax")))
        return "?"
    if not isinstance(r, int):
        return str(r)
    if -4096 < r < 0:
        if decl is None:
            return f"-1 {ERRNO_NAMES.get(-r, str(-r))} (not implemented)"
        return f"-1 {errno_text(-r)}"
    t = type(ret)
    if t is K.RetHex:
        return hex(r)
    if t is K.RetFcntl:
        cmd = s32(c.args[1])
        if cmd == F_GETFD:
            return f"{r:#x} (flags FD_CLOEXEC)" if r & FD_CLOEXEC else "0"
        if cmd == F_GETFL:
            return f"{r:#x} (flags {open_flags(r)})"
    if t is K.RetOctal:
        return "0%o" % r if r else "0"
    return str(s64(r))


def _call(k, t, nr: int, r) -> tuple[str, Call]:
    decl = k.syscalls.get(nr)
    name = decl.name if decl is not None else f"syscall_{nr}"
    return name, Call(k, t, decl, t.syscall_args, r)


def format_entry(k, t, nr: int) -> list[str] | None:
    """The arguments of a call that replaces the image, formatted at entry
    (they vanish with the old image); None for any other call."""
    decl = k.syscalls.get(nr)
    if decl is None or not decl.ret.exec:
        return None
    return format_args(Call(k, t, decl, t.syscall_args, 0))


def format_syscall(k, t, nr: int, r, pre: list | None = None) -> str:
    """The trace line of a syscall ``t`` just made (its handler returned
    ``r``); ``name(args <unfinished ...>`` if the call blocked."""
    name, c = _call(k, t, nr, r)
    if r is BLOCK:
        before, _ = format_args(c, pre, split=True)
        sep = ", " if before else ""
        return f"[pid {t.tid}] {name}({', '.join(before)}{sep} <unfinished ...>"
    return f"[pid {t.tid}] {name}({', '.join(format_args(c, pre))}) = {format_result(c)}"


def format_resumed(k, t, r, pre: list | None = None) -> str:
    """The second half of a call that blocked: ``<... read resumed>"x", 10) = 1``."""
    name, c = _call(k, t, t.syscall_nr, r)
    _, after = format_args(c, pre, split=True)
    return f"[pid {t.tid}] <... {name} resumed>{', '.join(after)}) = {format_result(c)}"
