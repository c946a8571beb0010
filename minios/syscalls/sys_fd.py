"""The descriptor table's calls: close, dup, fcntl, flock, the sync family,
pipes."""
from __future__ import annotations

import errno as E
import struct

from minios.fs.files import (
    O_APPEND,
    O_CLOEXEC,
    O_NONBLOCK,
    O_RDONLY,
    O_WRONLY,
    PIPE_BUF_SIZE,
    FdTable,
    Pipe,
    PipeEnd,
)
from minios.mm.uaccess import Fault, copy_to_user
from minios.syscalls.common import PIPE_LIKE, s32, wake_pipe
from minios.syscalls.kinds import (FADVICE, FCNTL_FORMAT, FD, FD_PAIR, FLOCK_OP, INT, OFF,
                                   O_FLAGS, PTR, RET_FCNTL, SIZE)
from minios.syscalls.table import syscall
from minios.uapi.fcntl import (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_GETOWN,
                               F_GETPIPE_SZ, F_SETFD, F_SETFL, F_SETOWN, F_SETPIPE_SZ)


@syscall(3, "close", FD)
def sys_close(k, t, fd, *_):
    f = t.files.get(s32(fd))
    t.files.close(s32(fd))
    wake_pipe(k, f)
    return 0


@syscall(32, "dup", FD)
def sys_dup(k, t, fd, *_):
    return t.files.install(t.files.get(s32(fd)))


@syscall(292, "dup3", FD, FD, O_FLAGS)
def sys_dup3(k, t, old, new, flags, *_):
    old, new = s32(old), s32(new)
    if old == new or flags & ~O_CLOEXEC:
        return -E.EINVAL
    f = t.files.get(old)
    if not 0 <= new < FdTable.MAX:
        return -E.EBADF
    prev = t.files.fds.get(new)
    t.files.install_at(new, f, bool(flags & O_CLOEXEC))
    wake_pipe(k, f)
    if prev is not None:
        wake_pipe(k, prev[0])
    return new


@syscall(33, "dup2", FD, FD)
def sys_dup2(k, t, old, new, *_):
    t.files.get(s32(old))
    if s32(old) == s32(new):
        return s32(new)
    return sys_dup3(k, t, old, new, 0)


@syscall(72, "fcntl", FD, INT, PTR, ret=RET_FCNTL, format=FCNTL_FORMAT)
def sys_fcntl(k, t, fd, cmd, arg, *_):
    fd = s32(fd)
    f = t.files.get(fd)
    ent = t.files.fds[fd]
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if arg >= FdTable.MAX:
            return -E.EINVAL
        return t.files.install(f, cmd == F_DUPFD_CLOEXEC, lowest=arg)
    if cmd == F_GETFD:
        return 1 if ent[1] else 0
    if cmd == F_SETFD:
        ent[1] = bool(arg & 1)
        return 0
    if cmd == F_GETFL:
        return f.flags | (0o100000 if f.kind not in PIPE_LIKE else 0)
    if cmd == F_SETFL:
        f.flags = (f.flags & ~(O_NONBLOCK | O_APPEND | 0o40000 | 0o20000 | 0o1000000)) | \
            (arg & (O_NONBLOCK | O_APPEND | 0o40000 | 0o20000 | 0o1000000))
        return 0
    if cmd in (5, 6, 7, 36, 37, 38):   # F_GETLK/F_SETLK(W), OFD locks: no other lockers
        return 0
    if cmd in (F_GETOWN, F_SETOWN):
        return 0
    if cmd == F_GETPIPE_SZ:
        return PIPE_BUF_SIZE if isinstance(f, PipeEnd) else -E.EBADF
    if cmd == F_SETPIPE_SZ:
        return max(PIPE_BUF_SIZE, arg) if isinstance(f, PipeEnd) else -E.EBADF
    return -E.EINVAL


@syscall(73, "flock", FD, FLOCK_OP)
def sys_flock(k, t, fd, op, *_):
    t.files.get(s32(fd))
    return 0


@syscall(74, "fsync", FD)
def sys_fsync(k, t, fd, *_):
    f = t.files.get(s32(fd))
    return -E.EINVAL if f.kind in PIPE_LIKE else 0


@syscall(75, "fdatasync", FD)
def sys_fdatasync(k, t, fd, *_):
    return sys_fsync(k, t, fd)


@syscall(162, "sync")
def sys_sync(k, t, *_):
    return 0


@syscall(306, "syncfs", FD)
def sys_syncfs(k, t, fd, *_):
    t.files.get(s32(fd))
    return 0


@syscall(221, "fadvise64", FD, OFF, SIZE, FADVICE)
def sys_fadvise64(k, t, fd, _offset, _length, _advice, *_):
    f = t.files.get(s32(fd))
    return -E.ESPIPE if isinstance(f, PipeEnd) else 0       # (a socket: 0, as Linux)


@syscall(293, "pipe2", FD_PAIR, O_FLAGS)
def sys_pipe2(k, t, fds, flags, *_):
    if flags & ~(O_CLOEXEC | O_NONBLOCK | 0o40000):
        return -E.EINVAL
    if not t.mm.is_mapped(fds & ~0xFFF, (fds + 8 + 0xFFF) & ~0xFFF):
        return -E.EFAULT
    p = Pipe(k)
    fl = flags & O_NONBLOCK
    return install_pair(t, PipeEnd(p, False, O_RDONLY | fl), PipeEnd(p, True, O_WRONLY | fl),
                        bool(flags & O_CLOEXEC), fds)


def install_pair(t, a, b, cloexec: bool, ptr: int) -> int:
    """Install two new files and write their descriptors to the int[2] at
    ``ptr`` (pipe2, socketpair); when either step fails neither stays open."""
    fa = t.files.install(a, cloexec)
    try:
        fb = t.files.install(b, cloexec)
    except OSError:
        t.files.close(fa)
        raise
    try:
        copy_to_user(t.mm, ptr, struct.pack("<ii", fa, fb))
    except Fault:
        t.files.close(fa)
        t.files.close(fb)
        raise
    return 0


@syscall(22, "pipe", FD_PAIR)
def sys_pipe(k, t, fds, *_):
    return sys_pipe2(k, t, fds, 0)
