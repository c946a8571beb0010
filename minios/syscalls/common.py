"""What the file syscalls share: path and descriptor arguments, iovecs, and
sleeping on a file that would block.

Paths are resolved by ``vfs.lookup`` (never outside the guest's root).
Blocking calls (a pipe, a terminal, a socket) sleep through the
scheduler's retry mechanism: the handler sets ``t.retry`` and
``t.wait_channel`` and returns BLOCK; pipe reads, writes and closes wake
the tasks asleep on that pipe (``t.wait_obj``) and the "poll" waiters. A host descriptor (the
terminal, a host pipe on stdin) cannot wake the kernel, so a task waiting
on one sets ``t.wake_time`` and re-checks it every ``HOST_POLL_S``.
"""
from __future__ import annotations

import errno as E
import stat as st
import struct
import time

from minios.fs.files import HOST_POLL_S, O_ACCMODE, O_NONBLOCK, O_RDONLY, O_WRONLY, Again
from minios.fs.vfs import guest_cwd, lookup
from minios.mm.uaccess import Fault, copy_from_user, copy_to_user, strncpy_from_user, user_prefix
from minios.proc import signals
from minios.proc.task import BLOCK

from minios.uapi.fcntl import (  # noqa: F401  (the *at calls' flags, for the sys_* modules)
    AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_REMOVEDIR, AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW)

MAX_RW = 0x7FFFF000
PATH_MAX = 4096


def s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def user_path(t, p: int) -> str:
    """A path argument: EFAULT, ENOENT (empty is the caller's) or ENAMETOOLONG."""
    if not p:
        raise Fault(0)
    try:
        raw = strncpy_from_user(t.mm, p, PATH_MAX + 4096)
    except Fault:
        raise
    if len(raw) >= PATH_MAX:
        raise OSError(E.ENAMETOOLONG, "")
    return raw.decode(errors="surrogateescape")


def at_base(t, dirfd: int, path: str) -> str | None:
    """The directory a relative path starts from (None: the cwd)."""
    if path.startswith("/") or dirfd == AT_FDCWD:
        return None
    f = t.files.get(dirfd)
    if not st.S_ISDIR(f.stat()["mode"]):
        raise OSError(E.ENOTDIR, "")
    return f.path or "/"


def lookup_at(k, t, dirfd: int, path: str, follow: bool):
    if not path:
        raise OSError(E.ENOENT, "")
    return lookup(k, t, path, follow=follow, base=at_base(t, dirfd, path))


def node_at(k, t, dirfd: int, p: int, flags: int, allow_empty: bool = True):
    """(node, path) for the *at calls, with AT_EMPTY_PATH and
    AT_SYMLINK_NOFOLLOW; None path for an fd without a node."""
    path = user_path(t, p)
    if not path and flags & AT_EMPTY_PATH and allow_empty:
        if dirfd == AT_FDCWD:
            lk = lookup(k, t, guest_cwd(t))
            return lk.node, lk.path
        f = t.files.get(dirfd)
        return FdNode(f), f.path
    lk = lookup_at(k, t, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)
    if lk.node is None:
        raise OSError(E.ENOENT, path)
    return lk.node, lk.path


class FdNode:
    """An open file as a node (AT_EMPTY_PATH): stat() asks the open file,
    which works after an unlink; changes go to its node (_attr_node)."""

    def __init__(self, f) -> None:
        self.file = f

    def stat(self) -> dict:
        return self.file.stat()

    def writable(self) -> bool:
        return self.file.node.writable() if self.file.node is not None else True
# Pipes and sockets: no O_LARGEFILE, no fsync (EINVAL).
PIPE_LIKE = ("fifo", "sock")


def blocking(k, t, f, op, channel: str):
    """Run ``op``; if the file would block, sleep and retry it later."""
    try:
        return op()
    except Again:
        if f.flags & O_NONBLOCK:
            return -E.EAGAIN

    def retry():
        if signals.has_pending(t):
            return -E.EINTR
        try:
            return op()
        except Again:
            if f.host_poll:
                t.wake_time = time.monotonic() + HOST_POLL_S
            return BLOCK
        except Fault:
            return -E.EFAULT
        except OSError as e:
            return oserr(k, t, e)
    t.wait_channel = channel
    t.wait_obj = f.wait_key
    t.retry = retry
    if f.host_poll:
        t.wake_time = time.monotonic() + HOST_POLL_S
    return BLOCK


def oserr(k, t, e: OSError) -> int:
    if e.errno == E.EPIPE:
        signals.send_signal(k, t, signals.SIGPIPE, {"code": signals.SI_USER, "pid": t.pid},
                            thread=True)
    return -(e.errno or E.EIO)


def wake_pipe(k, f) -> None:
    """Wake whoever may wait on ``f``'s other side: pipe ends, and eventfds
    (readers, writers and poll/epoll sleepers share these channels)."""
    if f.wakes_waiters:
        k.wake_sleepers(f.wait_key)


def readable_fd(t, fd: int):
    f = t.files.get(s32(fd))
    if f.flags & O_ACCMODE == O_WRONLY or f.opath:
        raise OSError(E.EBADF, "")
    return f


def writable_fd(t, fd: int):
    f = t.files.get(s32(fd))
    if f.flags & O_ACCMODE == O_RDONLY or f.opath:
        raise OSError(E.EBADF, "")
    return f


def user_source(t, f, vec) -> bytes | int:
    """The bytes write() or writev() takes from the user's buffers ``vec``
    ((address, length) pairs): all of them, or the readable prefix (Linux
    stops at the first bad page), or -EFAULT when there is none or the file
    is a pipe (which fails whole)."""
    try:
        if len(vec) == 1:                       # write(): no join
            return copy_from_user(t.mm, vec[0][0], vec[0][1])
        return b"".join(copy_from_user(t.mm, b, n) for b, n in vec)
    except Fault:
        pass
    left = iov_prefix(t, vec, False)
    if left < sum(n for _, n in vec) and (left == 0 or f.whole_copies):
        return -E.EFAULT
    parts = []
    for b, n in vec:
        parts.append(copy_from_user(t.mm, b, min(n, left)))
        left -= len(parts[-1])
        if not left:
            break
    return b"".join(parts)


def iov_prefix(t, vec, write: bool) -> int:
    """How many bytes of the buffers of ``vec``, in order, the task may
    write (or read) before the first bad byte: the calls stop there."""
    total = 0
    for b, n in vec:
        a = user_prefix(t.mm, b, n, write)
        total += a
        if a < n:
            break
    return total


def read_iovec(t, iov, cnt):
    if cnt > 1024:
        raise OSError(E.EINVAL, "")
    raw = copy_from_user(t.mm, iov, 16 * cnt)
    vec = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]
    if any(n > MAX_RW for _, n in vec):
        raise OSError(E.EINVAL, "")
    return vec


def scatter(t, vec, data: bytes) -> None:
    pos = 0
    for b, n in vec:
        if pos >= len(data):
            break
        copy_to_user(t.mm, b, data[pos:pos + n])
        pos += n
