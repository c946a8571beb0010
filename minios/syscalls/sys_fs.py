"""File syscalls: descriptors, read/write, pipes, stat, ioctl, paths,
directories, poll/select, sendfile.

Paths are resolved by ``vfs.lookup`` (never outside the guest's root).
Blocking calls (a pipe, a terminal, poll/select) sleep through the
scheduler's retry mechanism: the handler sets ``t.retry`` and
``t.wait_channel`` and returns BLOCK; pipe reads, writes and closes wake
the tasks asleep on that pipe (``t.wait_obj``) and the "poll" waiters. A host descriptor (the
terminal, a host pipe on stdin) cannot wake the kernel, so a task waiting
on one sets ``t.wake_time`` and re-checks it every ``HOST_POLL_S``.
"""
from __future__ import annotations

import os
import stat as st
import struct
import time

from minios.uapi import errno as E
from minios.time import clock
from minios.proc import signals
from minios.fs.files import (HOST_POLL_S, Again, DirFile, FdTable, HostFd, Pipe, PipeEnd,
                          O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_EXCL, O_NOCTTY,
                          O_NONBLOCK, O_RDONLY, O_TRUNC, O_WRONLY,
                          POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI,
                          PIPE_BUF_SIZE)
from minios.syscalls.table import syscall
from minios.proc.task import BLOCK
from minios.mm.uaccess import (Fault, copy_from_user, copy_to_user, get_u32, put_u32, user_prefix,
                            strncpy_from_user)
from minios.fs.vfs import (W_OK, X_OK, HostNode, check_writable, creds, get_vfs,
                        guest_cwd, lookup, may_access, open_path)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EACCESS, AT_SYMLINK_FOLLOW = 0x100, 0x200, 0x200, 0x400
AT_NO_AUTOMOUNT, AT_EMPTY_PATH = 0x800, 0x1000
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
F_SETOWN, F_GETOWN, F_SETPIPE_SZ, F_GETPIPE_SZ = 8, 9, 1031, 1032
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH, TIOCSCTTY, TIOCGPGRP, TIOCSPGRP = 0x5409, 0x540A, 0x540B, 0x540E, \
    0x540F, 0x5410
TIOCOUTQ, TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TIOCNOTTY, FIONBIO = 0x5411, 0x5413, 0x5414, \
    0x541B, 0x5422, 0x5421
TIOCGSID, FIONCLEX, FIOCLEX = 0x5429, 0x5450, 0x5451
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
MAX_RW = 0x7FFFF000
PATH_MAX = 4096


def s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


# ----------------------------------------------------------------- helpers
def _upath(t, p: int) -> str:
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


def _base(t, dirfd: int, path: str) -> str | None:
    """The directory a relative path starts from (None: the cwd)."""
    if path.startswith("/") or dirfd == AT_FDCWD:
        return None
    f = t.files.get(dirfd)
    if not st.S_ISDIR(f.stat()["mode"]):
        raise OSError(E.ENOTDIR, "")
    return f.path or "/"


def _lookup_at(k, t, dirfd: int, path: str, follow: bool):
    if not path:
        raise OSError(E.ENOENT, "")
    return lookup(k, t, path, follow=follow, base=_base(t, dirfd, path))


def _node_at(k, t, dirfd: int, p: int, flags: int, allow_empty: bool = True):
    """(node, path) for the *at calls, with AT_EMPTY_PATH and
    AT_SYMLINK_NOFOLLOW; None path for an fd without a node."""
    path = _upath(t, p)
    if not path and flags & AT_EMPTY_PATH and allow_empty:
        if dirfd == AT_FDCWD:
            lk = lookup(k, t, guest_cwd(t))
            return lk.node, lk.path
        f = t.files.get(dirfd)
        return _FdNode(f), f.path
    lk = _lookup_at(k, t, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)
    if lk.node is None:
        raise OSError(E.ENOENT, path)
    return lk.node, lk.path


class _FdNode:
    """An open file as a node (AT_EMPTY_PATH): stat() asks the open file,
    which works after an unlink; changes go to its node (_attr_node)."""

    def __init__(self, f) -> None:
        self.file = f

    def stat(self) -> dict:
        return self.file.stat()

    def writable(self) -> bool:
        return self.file.node.writable() if self.file.node is not None else True


# Pipes and sockets: no O_LARGEFILE, no fsync (EINVAL).
_PIPE_LIKE = ("fifo", "sock")


def _blocking(k, t, f, op, channel: str):
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
            return _oserr(k, t, e)
    t.wait_channel = channel
    t.wait_obj = f.wait_key
    t.retry = retry
    if f.host_poll:
        t.wake_time = time.monotonic() + HOST_POLL_S
    return BLOCK


def _oserr(k, t, e: OSError) -> int:
    if e.errno == E.EPIPE:
        signals.send_signal(k, t, signals.SIGPIPE, {"code": signals.SI_USER, "pid": t.pid},
                            thread=True)
    return -(e.errno or E.EIO)


def _wake_pipe(k, f) -> None:
    """Wake whoever may wait on ``f``'s other side: pipe ends, and eventfds
    (readers, writers and poll/epoll sleepers share these channels)."""
    if f.wakes_waiters:
        k.wake_sleepers(f.wait_key)


def _readable_fd(t, fd: int):
    f = t.files.get(s32(fd))
    if f.flags & O_ACCMODE == O_WRONLY or f.opath:
        raise OSError(E.EBADF, "")
    return f


def _writable_fd(t, fd: int):
    f = t.files.get(s32(fd))
    if f.flags & O_ACCMODE == O_RDONLY or f.opath:
        raise OSError(E.EBADF, "")
    return f


# -------------------------------------------------------------- read/write
@syscall(0, "read")
def sys_read(k, t, fd, buf, n, *_):
    f = _readable_fd(t, fd)
    if isinstance(f, DirFile):
        return -E.EISDIR
    n = min(n, MAX_RW)
    if n == 0:
        return 0
    # Linux copies until the first bad page and returns what it moved; a
    # pipe fails whole instead, leaving its data unread.
    avail = user_prefix(t.mm, buf, n, True)
    if avail == 0:
        return -E.EFAULT
    want, n = n, avail

    def op():
        if n < want and f.whole_copies and len(f.pipe.buf) > n:
            return -E.EFAULT
        data = f.read(n)
        copy_to_user(t.mm, buf, data)
        _wake_pipe(k, f)
        return len(data)
    return _blocking(k, t, f, op, "pipe_read")


def _user_source(t, f, vec) -> bytes | int:
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
    left = _iov_prefix(t, vec, False)
    if left < sum(n for _, n in vec) and (left == 0 or f.whole_copies):
        return -E.EFAULT
    parts = []
    for b, n in vec:
        parts.append(copy_from_user(t.mm, b, min(n, left)))
        left -= len(parts[-1])
        if not left:
            break
    return b"".join(parts)


def _iov_prefix(t, vec, write: bool) -> int:
    """How many bytes of the buffers of ``vec``, in order, the task may
    write (or read) before the first bad byte: the calls stop there."""
    total = 0
    for b, n in vec:
        a = user_prefix(t.mm, b, n, write)
        total += a
        if a < n:
            break
    return total


@syscall(1, "write")
def sys_write(k, t, fd, buf, n, *_):
    f = _writable_fd(t, fd)
    n = min(n, MAX_RW)
    if f.ignores_writes:
        return n                    # /dev/null never reads the buffer
    data = _user_source(t, f, ((buf, n),))
    if isinstance(data, int):
        return data
    return _write_all(k, t, f, data)


def _write_all(k, t, f, data: bytes):
    if not data:
        return 0                  # even to a pipe without readers: no EPIPE
    try:                          # the common case: it all goes in at once
        done = f.write(data)
    except Again:
        done = 0
    except OSError as e:
        return _oserr(k, t, e)
    else:
        _wake_pipe(k, f)
        if done == len(data):
            return done
    state = {"done": done}

    def op():
        try:
            while state["done"] < len(data):
                state["done"] += f.write(data[state["done"]:])
                _wake_pipe(k, f)
        except Again:
            if state["done"] and f.flags & O_NONBLOCK:
                return state["done"]
            raise
        except OSError as e:
            if state["done"]:
                return state["done"]
            return _oserr(k, t, e)
        return len(data)
    return _blocking(k, t, f, op, "pipe_write")


def _iov(t, iov, cnt):
    if cnt > 1024:
        raise OSError(E.EINVAL, "")
    raw = copy_from_user(t.mm, iov, 16 * cnt)
    vec = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]
    if any(n > MAX_RW for _, n in vec):
        raise OSError(E.EINVAL, "")
    return vec


def _scatter(t, vec, data: bytes) -> None:
    pos = 0
    for b, n in vec:
        if pos >= len(data):
            break
        copy_to_user(t.mm, b, data[pos:pos + n])
        pos += n


@syscall(20, "writev")
def sys_writev(k, t, fd, iov, cnt, *_):
    f = _writable_fd(t, fd)
    vec = _iov(t, iov, cnt)
    if f.ignores_writes:
        return sum(n for _, n in vec)          # /dev/null never reads the buffers
    data = _user_source(t, f, vec)
    return data if isinstance(data, int) else _write_all(k, t, f, data)


@syscall(19, "readv")
def sys_readv(k, t, fd, iov, cnt, *_):
    f = _readable_fd(t, fd)
    if isinstance(f, DirFile):
        return -E.EISDIR
    vec = _iov(t, iov, cnt)
    want = sum(n for _, n in vec)
    total = _iov_prefix(t, vec, True)          # as read(): up to the first bad byte
    if want and not total:
        return -E.EFAULT

    def op():
        if total < want and f.whole_copies and len(f.pipe.buf) > total:
            return -E.EFAULT                   # a pipe fails whole, keeping its data
        data = f.read(total)
        _scatter(t, vec, data)
        _wake_pipe(k, f)
        return len(data)
    return _blocking(k, t, f, op, "pipe_read")


@syscall(17, "pread64")
def sys_pread64(k, t, fd, buf, n, off, *_):
    f = _readable_fd(t, fd)
    if s64(off) < 0:
        return -E.EINVAL
    if not f.positioned():
        return -E.ESPIPE
    n = min(n, MAX_RW)
    avail = user_prefix(t.mm, buf, n, True)
    if n and not avail:
        return -E.EFAULT
    data = f.pread(avail, off)
    copy_to_user(t.mm, buf, data)
    return len(data)


@syscall(18, "pwrite64")
def sys_pwrite64(k, t, fd, buf, n, off, *_):
    f = _writable_fd(t, fd)
    if s64(off) < 0:
        return -E.EINVAL
    if not f.positioned():
        return -E.ESPIPE
    n = min(n, MAX_RW)
    if f.ignores_writes:
        return n
    data = _user_source(t, f, ((buf, n),))
    return data if isinstance(data, int) else f.pwrite(data, off)


@syscall(295, "preadv")
def sys_preadv(k, t, fd, iov, cnt, off, *_):
    f = _readable_fd(t, fd)
    if s64(off) < 0:
        return -E.EINVAL
    if not f.positioned():
        return -E.ESPIPE
    vec = _iov(t, iov, cnt)
    total = _iov_prefix(t, vec, True)          # as pread(): up to the first bad byte
    if not total and any(n for _, n in vec):
        return -E.EFAULT
    data = f.pread(total, off)
    _scatter(t, vec, data)
    return len(data)


@syscall(296, "pwritev")
def sys_pwritev(k, t, fd, iov, cnt, off, *_):
    f = _writable_fd(t, fd)
    if s64(off) < 0:
        return -E.EINVAL
    if not f.positioned():
        return -E.ESPIPE
    vec = _iov(t, iov, cnt)
    if f.ignores_writes:
        return sum(n for _, n in vec)          # /dev/null never reads the buffers
    data = _user_source(t, f, vec)
    return data if isinstance(data, int) else f.pwrite(data, off)


@syscall(8, "lseek")
def sys_lseek(k, t, fd, off, whence, *_):
    f = t.files.get(s32(fd))
    if whence > 4:
        return -E.EINVAL
    return f.lseek(s64(off), whence)


@syscall(3, "close")
def sys_close(k, t, fd, *_):
    f = t.files.get(s32(fd))
    t.files.close(s32(fd))
    _wake_pipe(k, f)
    return 0


@syscall(40, "sendfile")
def sys_sendfile(k, t, out_fd, in_fd, offp, count, *_):
    fin = _readable_fd(t, in_fd)
    fout = _writable_fd(t, out_fd)
    if isinstance(fin, DirFile):
        return -E.EISDIR
    count = min(count, 1 << 20)
    if offp:
        off = s64(struct.unpack("<Q", copy_from_user(t.mm, offp, 8))[0])
        if off < 0:
            return -E.EINVAL
    if fout.flags & O_APPEND:
        return -E.EINVAL

    def op():
        if not fout.writable_now():
            raise Again
        n = count
        if isinstance(fout, PipeEnd):
            n = min(n, max(PIPE_BUF_SIZE - len(fout.pipe.buf), 0)) or 1
        if offp:
            data = fin.pread(n, off)
        else:
            data = fin.read(n)
        if not data:
            return 0
        try:
            done = fout.write(data)
        except Again:
            done = 0
        except OSError as e:
            return _oserr(k, t, e)
        if offp:
            copy_to_user(t.mm, offp, struct.pack("<q", off + done))
        elif done < len(data):
            try:
                fin.lseek(done - len(data), 1)
            except OSError:
                pass
        _wake_pipe(k, fout)
        _wake_pipe(k, fin)
        return done
    f = fout if not fout.writable_now() else fin
    return _blocking(k, t, f, op, "pipe_write" if f is fout else "pipe_read")


# -------------------------------------------------------------------- stat
def _stat_bytes(s: dict) -> bytes:
    def ts(v):
        v = int(v or 0)
        return v // 10**9, v % 10**9
    a, m, c = ts(s.get("atime")), ts(s.get("mtime")), ts(s.get("ctime"))
    size = s.get("size", 0)
    blocks = s.get("blocks", (size + 511) // 512)
    return struct.pack("<QQQIIIIQqqq6q3q", s.get("dev", 0), s.get("ino", 0), s.get("nlink", 1),
                       s["mode"], s.get("uid", 0), s.get("gid", 0), 0, s.get("rdev", 0),
                       size, s.get("blksize", 4096), blocks,
                       a[0], a[1], m[0], m[1], c[0], c[1], 0, 0, 0)


@syscall(5, "fstat")
def sys_fstat(k, t, fd, buf, *_):
    copy_to_user(t.mm, buf, _stat_bytes(t.files.get(s32(fd)).stat()))
    return 0


@syscall(262, "newfstatat")
def sys_newfstatat(k, t, dirfd, path, buf, flags, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        return -E.EINVAL
    node, _p = _node_at(k, t, s32(dirfd), path, flags)
    copy_to_user(t.mm, buf, _stat_bytes(node.stat()))
    return 0


@syscall(4, "stat")
def sys_stat(k, t, path, buf, *_):
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, 0)


@syscall(6, "lstat")
def sys_lstat(k, t, path, buf, *_):
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, AT_SYMLINK_NOFOLLOW)


@syscall(332, "statx")
def sys_statx(k, t, dirfd, path, flags, mask, buf, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | 0x6000) \
            or mask & 0x80000000:
        return -E.EINVAL
    node, _p = _node_at(k, t, s32(dirfd), path, flags)
    s = node.stat()

    def ts(v):
        v = int(v or 0)
        return struct.pack("<qIi", v // 10**9, v % 10**9, 0)
    dev, rdev = s.get("dev", 0), s.get("rdev", 0)
    size = s.get("size", 0)
    out = struct.pack("<IIQIIIHHQQQQ", 0x7FF, s.get("blksize", 4096), 0, s.get("nlink", 1),
                      s.get("uid", 0), s.get("gid", 0), s["mode"], 0, s.get("ino", 0), size,
                      s.get("blocks", (size + 511) // 512), 0)
    out += ts(s.get("atime")) + ts(0) + ts(s.get("ctime")) + ts(s.get("mtime"))
    out += struct.pack("<IIII", os.major(rdev), os.minor(rdev), os.major(dev), os.minor(dev))
    copy_to_user(t.mm, buf, out.ljust(256, b"\0"))
    return 0


_FS_MAGIC = {"tmpfs": 0x01021994, "proc": 0x9FA0, "dev": 0x01021994, "host": 0xEF53}


def _statfs_bytes(k, node) -> bytes:
    from minios.fs.tmpfs import Inode
    if isinstance(node, HostNode):
        try:
            v = os.statvfs(node.hp)
            vals = (v.f_bsize, v.f_blocks, v.f_bfree, v.f_bavail, v.f_files, v.f_ffree,
                    v.f_namemax, v.f_frsize)
        except OSError:
            vals = (4096, 0, 0, 0, 0, 0, 255, 4096)
        kind = "host"
        ro = not node.writable()
    elif isinstance(node, Inode):
        total = node.fs.limit // 4096
        free = max(0, node.fs.limit - node.fs.used) // 4096
        vals = (4096, total, free, free, total, free, 255, 4096)
        kind = "tmpfs"
        ro = False
    else:
        vals = (4096, 0, 0, 0, 0, 0, 255, 4096)
        kind = "proc"
        ro = True
    bsize, blocks, bfree, bavail, files, ffree, namelen, frsize = vals
    return struct.pack("<qqQQQQQiiqqq4q", _FS_MAGIC[kind], bsize, blocks, bfree, bavail,
                       files, ffree, 0, 0, namelen, frsize, 1 if ro else 0, 0, 0, 0, 0)


@syscall(137, "statfs")
def sys_statfs(k, t, path, buf, *_):
    node, _p = _node_at(k, t, AT_FDCWD, path, 0)
    copy_to_user(t.mm, buf, _statfs_bytes(k, node))
    return 0


@syscall(138, "fstatfs")
def sys_fstatfs(k, t, fd, buf, *_):
    f = t.files.get(s32(fd))
    copy_to_user(t.mm, buf, _statfs_bytes(k, f.node))
    return 0


# ------------------------------------------------------------------- ioctl
_TTY_PGRP: dict = {}


@syscall(16, "ioctl")
def sys_ioctl(k, t, fd, req, arg, *_):
    fd = s32(fd)
    f = t.files.get(fd)
    req &= 0xFFFFFFFF
    if req in (FIOCLEX, FIONCLEX):
        t.files.fds[fd][1] = req == FIOCLEX
        return 0
    if req == FIONBIO:
        on = get_u32(t.mm, arg)
        f.flags = (f.flags | O_NONBLOCK) if on else (f.flags & ~O_NONBLOCK)
        return 0
    if req == FIONREAD:
        if isinstance(f, PipeEnd):
            n = len(f.pipe.buf)
        elif f.kind == "sock":
            n = f.inq()
        elif isinstance(f, DirFile):
            return -E.ENOTTY
        elif isinstance(f, HostFd):
            import fcntl
            import termios
            try:
                n = struct.unpack("<i", fcntl.ioctl(f.fd, termios.FIONREAD, bytes(4)))[0]
            except OSError:
                return -E.ENOTTY
        elif st.S_ISREG(f.stat()["mode"]):
            n = max(0, f.stat()["size"] - f.pos)
        else:
            return -E.ENOTTY
        put_u32(t.mm, arg, n)
        return 0
    if not f.isatty():
        return -E.ENOTTY
    return _tty_ioctl(k, t, f, req, arg)


def _tty_ioctl(k, t, f, req: int, arg: int):
    import fcntl
    hfd = f.fd
    try:
        if req == TCGETS:
            copy_to_user(t.mm, arg, fcntl.ioctl(hfd, TCGETS, bytes(36)))
            return 0
        if req in (TCSETS, TCSETSW, TCSETSF):
            data = copy_from_user(t.mm, arg, 36)
            _save_tty(hfd)
            fcntl.ioctl(hfd, req, data)
            return 0
        if req == TIOCGWINSZ:
            copy_to_user(t.mm, arg, fcntl.ioctl(hfd, TIOCGWINSZ, bytes(8)))
            return 0
        if req == TIOCSWINSZ:
            fcntl.ioctl(hfd, TIOCSWINSZ, copy_from_user(t.mm, arg, 8))
            return 0
        if req in (TCSBRK, TCXONC, TCFLSH):
            fcntl.ioctl(hfd, req, arg & 0xFFFFFFFF)
            return 0
        if req == TIOCOUTQ:
            put_u32(t.mm, arg, 0)
            return 0
    except OSError as e:
        return -(e.errno or E.EIO)
    key = _tty_key(hfd)
    if req == TIOCGPGRP:
        put_u32(t.mm, arg, _TTY_PGRP.get(key, t.group.pgid))
        return 0
    if req == TIOCSPGRP:
        pg = s32(get_u32(t.mm, arg))
        if pg < 0:
            return -E.EINVAL
        if not any(g.pgid == pg for g in k.groups.values()):
            return -E.EPERM
        _TTY_PGRP[key] = pg
        return 0
    if req == TIOCGSID:
        put_u32(t.mm, arg, t.group.sid)
        return 0
    if req in (TIOCSCTTY, TIOCNOTTY):
        return 0
    return -E.ENOTTY


def foreground_pgrp(hfd: int, default: int) -> int:
    """The process group the guest made the foreground of the terminal on
    host fd ``hfd`` (TIOCSPGRP), or ``default``."""
    try:
        return _TTY_PGRP.get(_tty_key(hfd), default)
    except OSError:
        return default


def _tty_key(hfd: int):
    """One key for the machine's terminal: the inherited standard streams
    and /dev/tty (a different host device number) are the same tty."""
    if os.isatty(hfd):
        return "tty"
    try:
        s = os.fstat(hfd)
        return (s.st_dev, s.st_ino, s.st_rdev)
    except OSError:
        return hfd


_SAVED_TTY: dict = {}


def _save_tty(hfd: int) -> None:
    """Remember a host terminal's settings before the guest first changes
    them, and put them back when minios exits."""
    import atexit
    import fcntl
    key = _tty_key(hfd)
    if key in _SAVED_TTY:
        return
    try:
        _SAVED_TTY[key] = (os.dup(hfd), fcntl.ioctl(hfd, TCGETS, bytes(36)))
    except OSError:
        return
    if len(_SAVED_TTY) == 1:
        atexit.register(_restore_ttys)


def _restore_ttys() -> None:
    import fcntl
    for fd, data in _SAVED_TTY.values():
        try:
            fcntl.ioctl(fd, TCSETSW, data)
        except OSError:
            pass


# -------------------------------------------------------------------- open
@syscall(257, "openat")
def sys_openat(k, t, dirfd, path, flags, mode, *_):
    p = _upath(t, path)
    if not p:
        return -E.ENOENT
    flags &= 0xFFFFFFFF
    f = open_path(k, t, p, flags, mode & 0o7777, base=_base(t, s32(dirfd), p))
    if f.refs == 0:
        f.flags = flags & ~(O_CLOEXEC | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC)
    return t.files.install(f, bool(flags & O_CLOEXEC))


@syscall(2, "open")
def sys_open(k, t, path, flags, mode, *_):
    return sys_openat(k, t, AT_FDCWD & 0xFFFFFFFF, path, flags, mode)


@syscall(85, "creat")
def sys_creat(k, t, path, mode, *_):
    return sys_openat(k, t, AT_FDCWD & 0xFFFFFFFF, path, O_CREAT | O_WRONLY | O_TRUNC, mode)


@syscall(437, "openat2")
def sys_openat2(k, t, dirfd, path, how, size, *_):
    if size < 24:
        return -E.EINVAL
    flags, mode, resolve = struct.unpack("<QQQ", copy_from_user(t.mm, how, 24))
    if resolve:
        return -E.EINVAL
    return sys_openat(k, t, dirfd, path, flags, mode)


# --------------------------------------------------------------------- dup
@syscall(32, "dup")
def sys_dup(k, t, fd, *_):
    return t.files.install(t.files.get(s32(fd)))


@syscall(292, "dup3")
def sys_dup3(k, t, old, new, flags, *_):
    old, new = s32(old), s32(new)
    if old == new or flags & ~O_CLOEXEC:
        return -E.EINVAL
    f = t.files.get(old)
    if not 0 <= new < FdTable.MAX:
        return -E.EBADF
    prev = t.files.fds.get(new)
    t.files.install_at(new, f, bool(flags & O_CLOEXEC))
    _wake_pipe(k, f)
    if prev is not None:
        _wake_pipe(k, prev[0])
    return new


@syscall(33, "dup2")
def sys_dup2(k, t, old, new, *_):
    t.files.get(s32(old))
    if s32(old) == s32(new):
        return s32(new)
    return sys_dup3(k, t, old, new, 0)


@syscall(72, "fcntl")
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
        return f.flags | (0o100000 if f.kind not in _PIPE_LIKE else 0)
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


@syscall(73, "flock")
def sys_flock(k, t, fd, op, *_):
    t.files.get(s32(fd))
    return 0


@syscall(74, "fsync")
def sys_fsync(k, t, fd, *_):
    f = t.files.get(s32(fd))
    return -E.EINVAL if f.kind in _PIPE_LIKE else 0


@syscall(75, "fdatasync")
def sys_fdatasync(k, t, fd, *_):
    return sys_fsync(k, t, fd)


@syscall(162, "sync")
def sys_sync(k, t, *_):
    return 0


@syscall(306, "syncfs")
def sys_syncfs(k, t, fd, *_):
    t.files.get(s32(fd))
    return 0


@syscall(221, "fadvise64")
def sys_fadvise64(k, t, fd, *_):
    f = t.files.get(s32(fd))
    return -E.ESPIPE if isinstance(f, PipeEnd) else 0       # (a socket: 0, as Linux)


# -------------------------------------------------------------------- pipe
@syscall(293, "pipe2")
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


@syscall(22, "pipe")
def sys_pipe(k, t, fds, *_):
    return sys_pipe2(k, t, fds, 0)


# ------------------------------------------------------------- names, dirs
@syscall(89, "readlink")
def sys_readlink(k, t, path, buf, size, *_):
    return sys_readlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, size)


@syscall(267, "readlinkat")
def sys_readlinkat(k, t, dirfd, path, buf, size, *_):
    if s32(size) <= 0:
        return -E.EINVAL
    p = _upath(t, path)
    if not p:
        return -E.ENOENT
    lk = _lookup_at(k, t, s32(dirfd), p, False)
    if lk.node is None:
        return -E.ENOENT
    if not st.S_ISLNK(lk.node.stat()["mode"]):
        return -E.EINVAL
    data = lk.node.readlink().encode(errors="surrogateescape")[:s32(size)]
    copy_to_user(t.mm, buf, data)
    return len(data)


@syscall(79, "getcwd")
def sys_getcwd(k, t, buf, size, *_):
    cwd = guest_cwd(t).encode(errors="surrogateescape") + b"\0"
    if size < len(cwd):
        return -E.ERANGE
    copy_to_user(t.mm, buf, cwd)
    return len(cwd)


def _set_cwd(t, node, path: str) -> int:
    s = node.stat()
    if not st.S_ISDIR(s["mode"]):
        return -E.ENOTDIR
    if not may_access(t, s, X_OK):
        return -E.EACCES
    t.group.cwd = path
    return 0


@syscall(80, "chdir")
def sys_chdir(k, t, path, *_):
    p = _upath(t, path)
    if not p:
        return -E.ENOENT
    lk = lookup(k, t, p)
    if lk.node is None:
        return -E.ENOENT
    return _set_cwd(t, lk.node, lk.path)


@syscall(81, "fchdir")
def sys_fchdir(k, t, fd, *_):
    f = t.files.get(s32(fd))
    if f.node is None or not f.path:
        return -E.ENOTDIR
    return _set_cwd(t, f.node, f.path)


@syscall(161, "chroot")
def sys_chroot(k, t, path, *_):
    return -E.EPERM


def _umask(t) -> int:
    return t.group.umask


def _is_mountpoint(k, path: str) -> bool:
    return path == "/" or path in get_vfs(k).mounts


@syscall(258, "mkdirat")
def sys_mkdirat(k, t, dirfd, path, mode, *_):
    p = _upath(t, path)
    lk = _lookup_at(k, t, s32(dirfd), p, False)
    if lk.node is not None:
        return -E.EEXIST
    check_writable(lk.parent)
    if not may_access(t, lk.parent.stat(), W_OK | X_OK):
        return -E.EACCES
    uid, gid = creds(t)
    lk.parent.mkdir(lk.name, mode & 0o1777 & ~_umask(t), uid, gid)
    return 0


@syscall(83, "mkdir")
def sys_mkdir(k, t, path, mode, *_):
    return sys_mkdirat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode)


@syscall(259, "mknodat")
def sys_mknodat(k, t, dirfd, path, mode, dev, *_):
    p = _upath(t, path)
    mode &= 0xFFFF                        # umode_t
    fmt = st.S_IFMT(mode) or st.S_IFREG
    if fmt not in (st.S_IFREG, st.S_IFIFO, st.S_IFCHR, st.S_IFBLK, st.S_IFSOCK):
        return -E.EINVAL
    lk = _lookup_at(k, t, s32(dirfd), p, False)
    if lk.node is not None:
        return -E.EEXIST
    check_writable(lk.parent)
    if fmt in (st.S_IFCHR, st.S_IFBLK, st.S_IFIFO, st.S_IFSOCK):
        return -E.EPERM                   # no device or FIFO files here
    uid, gid = creds(t)
    lk.parent.create(lk.name, mode & 0o7777 & ~_umask(t), uid, gid)
    return 0


@syscall(133, "mknod")
def sys_mknod(k, t, path, mode, dev, *_):
    return sys_mknodat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode, dev)


@syscall(263, "unlinkat")
def sys_unlinkat(k, t, dirfd, path, flags, *_):
    if flags & ~AT_REMOVEDIR:
        return -E.EINVAL
    p = _upath(t, path)
    rmdir = bool(flags & AT_REMOVEDIR)
    lk = _lookup_at(k, t, s32(dirfd), p, False)
    if rmdir and lk.last == ".":
        return -E.EINVAL
    if rmdir and lk.last == "..":
        return -E.ENOTEMPTY
    if lk.node is None:
        return -E.ENOENT
    s = lk.node.stat()
    if _is_mountpoint(k, lk.path):
        return -E.EBUSY if rmdir or not st.S_ISDIR(s["mode"]) else -E.EISDIR
    if rmdir and not st.S_ISDIR(s["mode"]):
        return -E.ENOTDIR
    if not rmdir and st.S_ISDIR(s["mode"]):
        return -E.EISDIR
    check_writable(lk.parent)
    if not may_access(t, lk.parent.stat(), W_OK | X_OK):
        return -E.EACCES
    if rmdir:
        lk.parent.rmdir(lk.name)
    else:
        lk.parent.unlink(lk.name)
    return 0


@syscall(87, "unlink")
def sys_unlink(k, t, path, *_):
    return sys_unlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, 0)


@syscall(84, "rmdir")
def sys_rmdir(k, t, path, *_):
    return sys_unlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, AT_REMOVEDIR)


def _same_fs(a, b) -> bool:
    from minios.fs.tmpfs import Inode
    if isinstance(a, Inode) and isinstance(b, Inode):
        return a.fs is b.fs
    return isinstance(a, HostNode) and isinstance(b, HostNode)


@syscall(316, "renameat2")
def sys_renameat2(k, t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~7 or (flags & 1 and flags & 2):
        return -E.EINVAL
    if flags & 4:                              # RENAME_WHITEOUT
        return -E.EINVAL
    op, np_ = _upath(t, oldpath), _upath(t, newpath)
    old = _lookup_at(k, t, s32(olddirfd), op, False)
    new = _lookup_at(k, t, s32(newdirfd), np_, False)
    if old.node is None:
        return -E.ENOENT
    if old.last in (".", "..") or new.last in (".", ".."):
        return -E.EBUSY if old.last in (".", "..") else -E.EINVAL
    if _is_mountpoint(k, old.path) or _is_mountpoint(k, new.path):
        return -E.EBUSY
    if not _same_fs(old.parent, new.parent):
        return -E.EXDEV
    check_writable(old.parent)
    check_writable(new.parent)
    if new.node is not None and flags & 1:
        return -E.EEXIST
    if new.node is None and flags & 2:
        return -E.ENOENT
    old_dir = st.S_ISDIR(old.node.stat()["mode"])
    if (new.trailing or old.trailing) and not old_dir:
        return -E.ENOTDIR
    if new.node is not None and not flags & 2:
        new_dir = st.S_ISDIR(new.node.stat()["mode"])
        if old_dir and not new_dir:
            return -E.ENOTDIR
        if new_dir and not old_dir:
            return -E.EISDIR
    if old_dir and (new.path + "/").startswith(old.path + "/") and new.path != old.path:
        return -E.EINVAL
    old.parent.rename(old.name, new.parent, new.name, flags)
    return 0


@syscall(264, "renameat")
def sys_renameat(k, t, olddirfd, oldpath, newdirfd, newpath, *_):
    return sys_renameat2(k, t, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall(82, "rename")
def sys_rename(k, t, oldpath, newpath, *_):
    return sys_renameat2(k, t, AT_FDCWD & 0xFFFFFFFF, oldpath, AT_FDCWD & 0xFFFFFFFF,
                         newpath, 0)


@syscall(265, "linkat")
def sys_linkat(k, t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    node, _p = _node_at(k, t, s32(olddirfd), oldpath,
                        (flags & AT_EMPTY_PATH) | (0 if flags & AT_SYMLINK_FOLLOW
                                                   else AT_SYMLINK_NOFOLLOW))
    node = _attr_node(node)
    np_ = _upath(t, newpath)
    new = _lookup_at(k, t, s32(newdirfd), np_, False)
    if new.node is not None:
        return -E.EEXIST
    if st.S_ISDIR(node.stat()["mode"]):
        return -E.EPERM
    if not _same_fs(node, new.parent):
        return -E.EXDEV
    check_writable(new.parent)
    new.parent.link(new.name, node)
    return 0


@syscall(86, "link")
def sys_link(k, t, oldpath, newpath, *_):
    return sys_linkat(k, t, AT_FDCWD & 0xFFFFFFFF, oldpath, AT_FDCWD & 0xFFFFFFFF, newpath, 0)


@syscall(266, "symlinkat")
def sys_symlinkat(k, t, target, newdirfd, linkpath, *_):
    tg = _upath(t, target)
    if not tg:
        return -E.ENOENT
    p = _upath(t, linkpath)
    lk = _lookup_at(k, t, s32(newdirfd), p, False)
    if lk.node is not None:
        return -E.EEXIST
    check_writable(lk.parent)
    uid, gid = creds(t)
    lk.parent.symlink(lk.name, tg, uid, gid)
    return 0


@syscall(88, "symlink")
def sys_symlink(k, t, target, linkpath, *_):
    return sys_symlinkat(k, t, target, AT_FDCWD & 0xFFFFFFFF, linkpath)


# --------------------------------------------------------- attribute writes
def _attr_node(node):
    """The node whose attributes change (a fd's file for /proc/N/fd links)."""
    f = getattr(node, "file", None)
    if f is not None:
        if f.node is None:
            raise OSError(E.EPERM, "")
        return f.node
    return node


@syscall(76, "truncate")
def sys_truncate(k, t, path, length, *_):
    if s64(length) < 0:
        return -E.EINVAL
    node, _p = _node_at(k, t, AT_FDCWD, path, 0)
    node = _attr_node(node)
    mode = node.stat()["mode"]
    if st.S_ISDIR(mode):
        return -E.EISDIR
    if not st.S_ISREG(mode):
        return -E.EINVAL
    check_writable(node)
    node.truncate(length)
    return 0


@syscall(77, "ftruncate")
def sys_ftruncate(k, t, fd, length, *_):
    f = t.files.get(s32(fd))
    if s64(length) < 0:
        return -E.EINVAL
    if f.flags & O_ACCMODE == O_RDONLY or isinstance(f, (PipeEnd, DirFile)):
        return -E.EINVAL
    f.truncate(length)
    return 0


def _chmod(node, mode: int) -> int:
    node = _attr_node(node)
    check_writable(node)
    if not hasattr(node, "chmod"):
        return -E.EPERM
    node.chmod(mode & 0o7777)
    return 0


@syscall(268, "fchmodat")
def sys_fchmodat(k, t, dirfd, path, mode, *_):
    node, _p = _node_at(k, t, s32(dirfd), path, 0)
    return _chmod(node, mode)


@syscall(90, "chmod")
def sys_chmod(k, t, path, mode, *_):
    return sys_fchmodat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode)


@syscall(91, "fchmod")
def sys_fchmod(k, t, fd, mode, *_):
    f = t.files.get(s32(fd))
    if f.node is None:
        return -E.EPERM if not isinstance(f, PipeEnd) else 0
    return _chmod(f.node, mode)


def _chown(node, uid: int, gid: int) -> int:
    node = _attr_node(node)
    check_writable(node)
    if not hasattr(node, "chown"):
        return -E.EPERM
    node.chown(s32(uid), s32(gid))
    return 0


@syscall(260, "fchownat")
def sys_fchownat(k, t, dirfd, path, uid, gid, flags, *_):
    node, _p = _node_at(k, t, s32(dirfd), path, flags)
    return _chown(node, uid, gid)


@syscall(92, "chown")
def sys_chown(k, t, path, uid, gid, *_):
    return sys_fchownat(k, t, AT_FDCWD & 0xFFFFFFFF, path, uid, gid, 0)


@syscall(94, "lchown")
def sys_lchown(k, t, path, uid, gid, *_):
    return sys_fchownat(k, t, AT_FDCWD & 0xFFFFFFFF, path, uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall(93, "fchown")
def sys_fchown(k, t, fd, uid, gid, *_):
    f = t.files.get(s32(fd))
    if f.node is None:
        return -E.EPERM
    return _chown(f.node, uid, gid)


def _set_times(k, t, node, atime, mtime) -> int:
    node = _attr_node(node)
    check_writable(node)
    if not hasattr(node, "utimes"):
        return -E.EPERM
    node.utimes(atime, mtime)
    return 0


def _ts_pair(t, ptr: int, unit: int, fmt: str):
    """Two times from user memory in nanoseconds (None = omit)."""
    if not ptr:
        now = clock.now_ns(0)
        return now, now
    a1, b1, a2, b2 = struct.unpack("<" + fmt * 4, copy_from_user(t.mm, ptr, 32))
    out = []
    for sec, sub in ((a1, b1), (a2, b2)):
        if unit == 1 and sub == UTIME_NOW:
            out.append(clock.now_ns(0))
        elif unit == 1 and sub == UTIME_OMIT:
            out.append(None)
        else:
            if not 0 <= sub < 10**9 // unit:
                raise OSError(E.EINVAL, "")
            out.append(sec * 10**9 + sub * unit)
    return out[0], out[1]


@syscall(280, "utimensat")
def sys_utimensat(k, t, dirfd, path, times, flags, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    a, m = _ts_pair(t, times, 1, "q")
    if not path:                                   # futimens
        f = t.files.get(s32(dirfd))
        if f.node is None:
            return -E.EPERM
        return _set_times(k, t, f.node, a, m)
    node, _p = _node_at(k, t, s32(dirfd), path, flags)
    return _set_times(k, t, node, a, m)


@syscall(235, "utimes")
def sys_utimes(k, t, path, times, *_):
    a, m = _ts_pair(t, times, 1000, "q")
    node, _p = _node_at(k, t, AT_FDCWD, path, 0)
    return _set_times(k, t, node, a, m)


@syscall(261, "futimesat")
def sys_futimesat(k, t, dirfd, path, times, *_):
    a, m = _ts_pair(t, times, 1000, "q")
    node, _p = _node_at(k, t, s32(dirfd), path, 0)
    return _set_times(k, t, node, a, m)


@syscall(132, "utime")
def sys_utime(k, t, path, times, *_):
    if times:
        a, m = struct.unpack("<qq", copy_from_user(t.mm, times, 16))
        a, m = a * 10**9, m * 10**9
    else:
        a = m = clock.now_ns(0)
    node, _p = _node_at(k, t, AT_FDCWD, path, 0)
    return _set_times(k, t, node, a, m)


# ------------------------------------------------------------------ access
@syscall(439, "faccessat2")
def sys_faccessat2(k, t, dirfd, path, mode, flags, *_):
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    node, _p = _node_at(k, t, s32(dirfd), path, flags)
    s = node.stat()
    if mode & W_OK and getattr(node, "ro_errno", None) == E.EROFS and not node.writable() \
            and st.S_IFMT(s["mode"]) in (st.S_IFREG, st.S_IFDIR, st.S_IFLNK):
        return -E.EROFS
    if mode and not may_access(t, s, mode):
        return -E.EACCES
    return 0


@syscall(269, "faccessat")
def sys_faccessat(k, t, dirfd, path, mode, *_):
    return sys_faccessat2(k, t, dirfd, path, mode, 0)


@syscall(21, "access")
def sys_access(k, t, path, mode, *_):
    return sys_faccessat2(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode, 0)


# --------------------------------------------------------------- getdents
def _entries(f):
    if f.entries is None or f.pos == 0:
        f.entries = f.node.list()
    return f.entries


def _dirent64(ino: int, off: int, typ: int, nb: bytes) -> bytes:
    reclen = (19 + len(nb) + 1 + 7) & ~7
    return (struct.pack("<QqHB", ino, off, reclen, typ) + nb + b"\0").ljust(reclen, b"\0")


def _dirent(ino: int, off: int, typ: int, nb: bytes) -> bytes:
    """The old linux_dirent: d_type is the record's last byte."""
    reclen = (18 + len(nb) + 2 + 7) & ~7
    return (struct.pack("<QqH", ino, off, reclen) + nb + b"\0").ljust(reclen - 1, b"\0") \
        + bytes([typ])


def _getdents(t, fd: int, buf: int, count: int, record) -> int:
    """Fill ``buf`` with whole records from the directory's position on."""
    f = t.files.get(s32(fd))
    if not isinstance(f, DirFile):
        return -E.ENOTDIR
    ents = _entries(f)
    out = bytearray()
    i = f.pos
    while i < len(ents):
        ino, typ, name = ents[i]
        rec = record(ino or 1, i + 1, typ, name.encode(errors="surrogateescape"))
        if len(out) + len(rec) > count:
            if not out:
                return -E.EINVAL
            break
        out += rec
        i += 1
    copy_to_user(t.mm, buf, bytes(out))
    f.pos = i
    return len(out)


@syscall(217, "getdents64")
def sys_getdents64(k, t, fd, buf, count, *_):
    return _getdents(t, fd, buf, count, _dirent64)


@syscall(78, "getdents")
def sys_getdents(k, t, fd, buf, count, *_):
    return _getdents(t, fd, buf, count, _dirent)


# ------------------------------------------------------------ poll, select
def _swap_mask(t, sigmask: int | None):
    if sigmask is None:
        return None
    saved = t.blocked
    t.blocked = sigmask & ~signals.UNBLOCKABLE
    return saved


def _restore_mask(t, saved, interrupted: bool) -> None:
    """Put the caller's mask back. Interrupted by a signal that only the
    temporary mask lets through, it stays until that signal is handled."""
    if saved is None:
        return
    if interrupted:
        tmp = t.blocked
        t.blocked = saved
        if not signals.has_pending(t):
            t.blocked = tmp
            t.suspend_restore = saved
        return
    t.blocked = saved


def _wait_ready(k, t, check, deadline: float | None, saved_mask, on_done):
    """Shared by poll/ppoll/select/pselect6. ``check()`` -> (count,
    host_poll); ``deadline`` None waits forever; ``on_done(n)`` writes the
    results and returns the syscall's value."""
    n, hostp = check()
    if n or (deadline is not None and time.monotonic() >= deadline):
        _restore_mask(t, saved_mask, False)
        return on_done(n)
    if signals.has_pending(t):
        _restore_mask(t, saved_mask, True)
        return -E.EINTR

    def arm(hostp: bool) -> None:
        wt = deadline
        if hostp:
            hp = time.monotonic() + HOST_POLL_S
            wt = hp if wt is None else min(wt, hp)
        t.wake_time = wt

    def retry():
        try:
            n, hostp = check()
        except Fault:
            _restore_mask(t, saved_mask, False)
            return -E.EFAULT
        if n or (deadline is not None and time.monotonic() >= deadline):
            _restore_mask(t, saved_mask, False)
            return on_done(n)
        if signals.has_pending(t):
            _restore_mask(t, saved_mask, True)
            return -E.EINTR
        arm(hostp)
        return BLOCK
    t.wait_channel = "poll"
    t.retry = retry
    arm(hostp)
    return BLOCK


def _poll_common(k, t, ufds: int, nfds: int, deadline, sigmask):
    if nfds > FdTable.MAX:
        return -E.EINVAL
    raw = copy_from_user(t.mm, ufds, 8 * nfds)
    ents = [struct.unpack_from("<iHH", raw, 8 * i)[:2] for i in range(nfds)]
    result = [0] * nfds

    def check():
        cnt = 0
        hostp = False
        for i, (fd, ev) in enumerate(ents):
            if fd < 0:
                result[i] = 0
                continue
            ent = t.files.fds.get(fd)
            if ent is None:
                result[i] = POLLNVAL
            else:
                f = ent[0]
                hostp = hostp or f.host_poll
                result[i] = f.poll(ev | POLLERR | POLLHUP) & (ev | POLLERR | POLLHUP | POLLNVAL)
            if result[i]:
                cnt += 1
        return cnt, hostp

    def done(n):
        out = bytearray(raw)
        for i, r in enumerate(result):
            struct.pack_into("<H", out, 8 * i + 6, r)
        copy_to_user(t.mm, ufds, bytes(out))
        return n
    saved = _swap_mask(t, sigmask)
    return _wait_ready(k, t, check, deadline, saved, done)


def ms_deadline(timeout: int):
    """A poll/epoll_wait timeout in ms as a deadline; None (negative) waits forever."""
    ms = s32(timeout)
    return None if ms < 0 else time.monotonic() + ms / 1000


@syscall(7, "poll")
def sys_poll(k, t, ufds, nfds, timeout, *_):
    return _poll_common(k, t, ufds, nfds, ms_deadline(timeout), None)


def _timespec_deadline(t, tsp: int):
    if not tsp:
        return None
    sec, nsec = struct.unpack("<qq", copy_from_user(t.mm, tsp, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise OSError(E.EINVAL, "")
    return time.monotonic() + sec + nsec / 1e9


def _sigmask_arg(t, p: int, size: int):
    if not p:
        return None
    if size != 8:
        raise OSError(E.EINVAL, "")
    return struct.unpack("<Q", copy_from_user(t.mm, p, 8))[0]


@syscall(271, "ppoll")
def sys_ppoll(k, t, ufds, nfds, tsp, sigmask, sigsetsize, *_):
    deadline = _timespec_deadline(t, tsp)
    return _poll_common(k, t, ufds, nfds, deadline, _sigmask_arg(t, sigmask, sigsetsize))


def _select_common(k, t, nfds: int, rp: int, wp: int, xp: int, deadline, sigmask,
                   on_return=None):
    nfds = s32(nfds)
    if nfds < 0 or nfds > FdTable.MAX:
        return -E.EINVAL
    nbytes = (nfds + 63) // 64 * 8
    sets = []
    for p in (rp, wp, xp):
        sets.append(int.from_bytes(copy_from_user(t.mm, p, nbytes), "little") if p and nbytes
                    else 0)
    want = sets[0] | sets[1] | sets[2]
    fds = [fd for fd in range(nfds) if want >> fd & 1]
    for fd in fds:
        if fd not in t.files.fds:
            return -E.EBADF
    res = [0, 0, 0]

    def check():
        out = [0, 0, 0]
        hostp = False
        for fd in fds:
            ent = t.files.fds.get(fd)
            if ent is None:
                raise OSError(E.EBADF, "")
            f = ent[0]
            hostp = hostp or f.host_poll
            r = f.poll(POLLIN | POLLOUT | POLLPRI)
            bit = 1 << fd
            if sets[0] & bit and r & (POLLIN | POLLHUP | POLLERR):
                out[0] |= bit
            if sets[1] & bit and r & (POLLOUT | POLLERR):
                out[1] |= bit
            if sets[2] & bit and r & POLLPRI:
                out[2] |= bit
        res[:] = out
        return sum(bin(x).count("1") for x in out), hostp

    def done(n):
        for p, v in zip((rp, wp, xp), res):
            if p and nbytes:
                copy_to_user(t.mm, p, v.to_bytes(nbytes, "little"))
        if on_return is not None:
            on_return()
        return n
    saved = _swap_mask(t, sigmask)
    return _wait_ready(k, t, check, deadline, saved, done)


@syscall(23, "select")
def sys_select(k, t, nfds, rp, wp, xp, tvp, *_):
    deadline = None
    if tvp:
        sec, usec = struct.unpack("<qq", copy_from_user(t.mm, tvp, 16))
        if sec < 0 or usec < 0:
            return -E.EINVAL
        deadline = time.monotonic() + sec + usec / 1e6

    def left():
        rem = max(0.0, deadline - time.monotonic())
        us = int(rem * 1e6)
        copy_to_user(t.mm, tvp, struct.pack("<qq", us // 10**6, us % 10**6))
    return _select_common(k, t, nfds, rp, wp, xp, deadline, None,
                          left if tvp else None)


@syscall(270, "pselect6")
def sys_pselect6(k, t, nfds, rp, wp, xp, tsp, sig, *_):
    deadline = _timespec_deadline(t, tsp)
    mask = None
    if sig:
        ss, ss_len = struct.unpack("<QQ", copy_from_user(t.mm, sig, 16))
        mask = _sigmask_arg(t, ss, ss_len)
    return _select_common(k, t, nfds, rp, wp, xp, deadline, mask)

