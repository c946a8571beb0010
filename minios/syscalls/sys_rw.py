"""read and write in all their forms (vectored, positioned), lseek, sendfile."""
from __future__ import annotations

from minios.uapi import errno as E
import struct

from minios.fs.files import O_APPEND, O_NONBLOCK, PIPE_BUF_SIZE, Again, DirFile, PipeEnd
from minios.mm.uaccess import copy_from_user, copy_to_user, user_prefix
from minios.syscalls.common import (
    MAX_RW,
    blocking,
    iov_prefix,
    oserr,
    read_iovec,
    readable_fd,
    s32,
    s64,
    scatter,
    user_source,
    wake_pipe,
    writable_fd,
)
from minios.syscalls.kinds import (FD, INT, IN_BUF, IOVEC, IOVEC_OUT, OFF, OUT_BUF, PTR,
                                   SEEK_WHENCE, SIZE)
from minios.syscalls.table import syscall


@syscall(0, "read", FD, OUT_BUF, SIZE)
def sys_read(k, t, fd, buf, n, *_):
    f = readable_fd(t, fd)
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
        wake_pipe(k, f)
        return len(data)
    return blocking(k, t, f, op, "pipe_read")


@syscall(1, "write", FD, IN_BUF, SIZE)
def sys_write(k, t, fd, buf, n, *_):
    f = writable_fd(t, fd)
    n = min(n, MAX_RW)
    if f.ignores_writes:
        return n                    # /dev/null never reads the buffer
    data = user_source(t, f, ((buf, n),))
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
        return oserr(k, t, e)
    else:
        wake_pipe(k, f)
        if done == len(data):
            return done
    state = {"done": done}

    def op():
        try:
            while state["done"] < len(data):
                state["done"] += f.write(data[state["done"]:])
                wake_pipe(k, f)
        except Again:
            if state["done"] and f.flags & O_NONBLOCK:
                return state["done"]
            raise
        except OSError as e:
            if state["done"]:
                return state["done"]
            return oserr(k, t, e)
        return len(data)
    return blocking(k, t, f, op, "pipe_write")


@syscall(20, "writev", FD, IOVEC, INT)
def sys_writev(k, t, fd, iov, cnt, *_):
    f = writable_fd(t, fd)
    vec = read_iovec(t, iov, cnt)
    if f.ignores_writes:
        return sum(n for _, n in vec)          # /dev/null never reads the buffers
    data = user_source(t, f, vec)
    return data if isinstance(data, int) else _write_all(k, t, f, data)


@syscall(19, "readv", FD, IOVEC_OUT, INT)
def sys_readv(k, t, fd, iov, cnt, *_):
    f = readable_fd(t, fd)
    if isinstance(f, DirFile):
        return -E.EISDIR
    vec = read_iovec(t, iov, cnt)
    want = sum(n for _, n in vec)
    total = iov_prefix(t, vec, True)          # as read(): up to the first bad byte
    if want and not total:
        return -E.EFAULT

    def op():
        if total < want and f.whole_copies and len(f.pipe.buf) > total:
            return -E.EFAULT                   # a pipe fails whole, keeping its data
        data = f.read(total)
        scatter(t, vec, data)
        wake_pipe(k, f)
        return len(data)
    return blocking(k, t, f, op, "pipe_read")


def _at_offset(f, off: int):
    """The positioned calls' checks after the descriptor's, in Linux's
    order: a negative offset (EINVAL), then a file without one (ESPIPE)."""
    if s64(off) < 0:
        raise OSError(E.EINVAL, "")
    if not f.positioned():
        raise OSError(E.ESPIPE, "")
    return f


@syscall(17, "pread64", FD, OUT_BUF, SIZE, OFF)
def sys_pread64(k, t, fd, buf, n, off, *_):
    f = _at_offset(readable_fd(t, fd), off)
    n = min(n, MAX_RW)
    avail = user_prefix(t.mm, buf, n, True)
    if n and not avail:
        return -E.EFAULT
    data = f.pread(avail, off)
    copy_to_user(t.mm, buf, data)
    return len(data)


@syscall(18, "pwrite64", FD, IN_BUF, SIZE, OFF)
def sys_pwrite64(k, t, fd, buf, n, off, *_):
    f = _at_offset(writable_fd(t, fd), off)
    n = min(n, MAX_RW)
    if f.ignores_writes:
        return n
    data = user_source(t, f, ((buf, n),))
    return data if isinstance(data, int) else f.pwrite(data, off)


@syscall(295, "preadv", FD, IOVEC_OUT, INT, OFF)
def sys_preadv(k, t, fd, iov, cnt, off, *_):
    f = _at_offset(readable_fd(t, fd), off)
    vec = read_iovec(t, iov, cnt)
    total = iov_prefix(t, vec, True)          # as pread(): up to the first bad byte
    if not total and any(n for _, n in vec):
        return -E.EFAULT
    data = f.pread(total, off)
    scatter(t, vec, data)
    return len(data)


@syscall(296, "pwritev", FD, IOVEC, INT, OFF)
def sys_pwritev(k, t, fd, iov, cnt, off, *_):
    f = _at_offset(writable_fd(t, fd), off)
    vec = read_iovec(t, iov, cnt)
    if f.ignores_writes:
        return sum(n for _, n in vec)          # /dev/null never reads the buffers
    data = user_source(t, f, vec)
    return data if isinstance(data, int) else f.pwrite(data, off)


@syscall(8, "lseek", FD, OFF, SEEK_WHENCE)
def sys_lseek(k, t, fd, off, whence, *_):
    f = t.files.get(s32(fd))
    if whence > 4:
        return -E.EINVAL
    return f.lseek(s64(off), whence)


@syscall(40, "sendfile", FD, FD, PTR, SIZE)
def sys_sendfile(k, t, out_fd, in_fd, offp, count, *_):
    fin = readable_fd(t, in_fd)
    fout = writable_fd(t, out_fd)
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
            return oserr(k, t, e)
        if offp:
            copy_to_user(t.mm, offp, struct.pack("<q", off + done))
        elif done < len(data):
            try:
                fin.lseek(done - len(data), 1)
            except OSError:
                pass
        wake_pipe(k, fout)
        wake_pipe(k, fin)
        return done
    f = fout if not fout.writable_now() else fin
    return blocking(k, t, f, op, "pipe_write" if f is fout else "pipe_read")
