"""Open files, descriptor tables and pipes.

A :class:`File` is an open file description (shared by dup and fork); a
descriptor table maps numbers to (file, close-on-exec). ``read``/``write``
return bytes / a count, or raise :class:`Again` when they would block, or
:class:`OSError` with a Linux errno.

Kinds of file: :class:`HostFd` (a host descriptor handed to the guest:
its stdin/stdout/stderr), :class:`HostFile` (a file of the host root,
read through its own host descriptor), :class:`InodeFile` (tmpfs),
:class:`MemFile` (bytes made at open: /proc), :class:`DirFile` (any
directory), the /dev character devices, and pipes.

Files backed by a host descriptor that may not be ready (a terminal, a
host pipe) set ``host_poll``: the kernel cannot be woken by the host, so
a task waiting on one re-checks it every ``HOST_POLL_S`` seconds.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import stat as st

from minios.uapi.fcntl import (  # noqa: F401  (the open flags, as files.O_*)
    O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_NOFOLLOW,
    O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC, O_WRONLY)

PIPE_BUF_SIZE = 65536
HOST_POLL_S = 0.01
MAX_DEV_READ = 1 << 20

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
_IN = POLLIN | POLLRDNORM
_OUT = POLLOUT | POLLWRNORM


class Again(Exception):
    """The operation would block; ``wake`` says what it waits for."""


def makedev(major: int, minor: int) -> int:
    return ((major & 0xFFF) << 8) | (minor & 0xFF) | ((minor & ~0xFF) << 12)


class File:
    kind = "file"
    mode = st.S_IFREG | 0o444
    host_poll = False
    pollable = False          # epoll may watch it (pipes, terminals, eventfd...)
    wakes_waiters = False     # its reads and writes wake tasks asleep on it
    opath = False             # opened with O_PATH: no reads or writes
    ignores_writes = False    # write() never looks at the buffer (/dev/null)
    whole_copies = False      # a short copy to or from the user fails the call (pipes)

    def __init__(self, flags: int = O_RDONLY) -> None:
        self.flags = flags
        self.refs = 0
        self.pos = 0
        self.path = ""
        self.node = None            # the VFS node (fchmod, fchdir, ftruncate...)

    @property
    def wait_key(self):
        """What a task blocked on this file sleeps on (see syscalls.common.blocking)."""
        return self

    def read(self, n: int) -> bytes:
        raise OSError(errno.EINVAL, "")

    def write(self, data: bytes) -> int:
        raise OSError(errno.EINVAL, "")

    def positioned(self) -> bool:
        """pread/pwrite work here (Linux's FMODE_PREAD): they fail with
        ESPIPE before anything else is looked at, the buffer included."""
        return type(self).pread is not File.pread

    def pread(self, n: int, off: int) -> bytes:
        raise OSError(errno.ESPIPE, "")

    def pwrite(self, data: bytes, off: int) -> int:
        raise OSError(errno.ESPIPE, "")

    def truncate(self, size: int) -> None:
        raise OSError(errno.EINVAL, "")

    def close(self) -> None:
        pass

    def readable_now(self) -> bool:
        return True

    def writable_now(self) -> bool:
        return True

    def poll(self, events: int) -> int:
        """poll(2) revents for ``events`` (POLLERR/POLLHUP always count)."""
        r = 0
        if self.readable_now():
            r |= _IN
        if self.writable_now():
            r |= _OUT
        return r & (events | POLLERR | POLLHUP)

    def stat(self) -> dict:
        return {"mode": self.mode, "size": 0, "ino": id(self) & 0xFFFFFF, "dev": 5,
                "nlink": 1, "rdev": 0, "blksize": 4096}

    def isatty(self) -> bool:
        return False

    def lseek(self, off: int, whence: int) -> int:
        raise OSError(errno.ESPIPE, "")


def _host_ready(fd: int, write: bool) -> bool:
    try:
        r, w, x = select.select([] if write else [fd], [fd] if write else [], [], 0)
    except (OSError, ValueError):
        return True            # let the read/write report the error
    return bool(w if write else r)


def _host_stat(s: os.stat_result) -> dict:
    return {"mode": s.st_mode, "size": s.st_size, "ino": s.st_ino, "dev": s.st_dev,
            "nlink": s.st_nlink, "rdev": s.st_rdev, "blksize": s.st_blksize,
            "blocks": s.st_blocks, "uid": s.st_uid, "gid": s.st_gid,
            "atime": s.st_atime_ns, "mtime": s.st_mtime_ns, "ctime": s.st_ctime_ns}


class HostFd(File):
    """A host descriptor passed through (the guest's stdin/stdout/stderr,
    /dev/tty). Reads never block the emulator: when the host has nothing
    to give they raise Again and the task polls (``host_poll``)."""
    kind = "host"

    def __init__(self, fd: int, flags: int) -> None:
        super().__init__(flags)
        self.fd = fd
        try:
            s = os.fstat(fd)
            self._seekable = st.S_ISREG(s.st_mode) or st.S_ISBLK(s.st_mode)
            self.host_poll = self.pollable = not self._seekable
            acc = fcntl.fcntl(fd, fcntl.F_GETFL) & O_ACCMODE
            if acc == O_RDWR:
                self.flags = (flags & ~O_ACCMODE) | O_RDWR
        except OSError:
            self._seekable = False

    def read(self, n: int) -> bytes:
        if self.host_poll and not _host_ready(self.fd, False):
            raise Again
        try:
            return os.read(self.fd, n)
        except BlockingIOError:
            raise Again from None
        except OSError as e:
            if e.errno == errno.EIO and self.isatty():
                return b""         # the terminal hung up
            raise

    def write(self, data: bytes) -> int:
        total = 0
        while total < len(data):
            total += os.write(self.fd, data[total:])
        return total

    def positioned(self) -> bool:
        return self._seekable

    def pread(self, n: int, off: int) -> bytes:
        if not self._seekable:
            raise OSError(errno.ESPIPE, "")
        return os.pread(self.fd, n, off)

    def pwrite(self, data: bytes, off: int) -> int:
        if not self._seekable:
            raise OSError(errno.ESPIPE, "")
        return os.pwrite(self.fd, data, off)

    def readable_now(self) -> bool:
        return not self.host_poll or _host_ready(self.fd, False)

    def writable_now(self) -> bool:
        return not self.host_poll or _host_ready(self.fd, True)

    def poll(self, events: int) -> int:
        if not self.host_poll:
            return super().poll(events)
        try:
            p = select.poll()
            p.register(self.fd, events & 0xFFFF)
            res = p.poll(0)
        except (OSError, ValueError):
            return POLLERR
        return res[0][1] if res else 0

    def stat(self) -> dict:
        return _host_stat(os.fstat(self.fd))

    @property
    def mode(self) -> int:          # type: ignore[override]
        return os.fstat(self.fd).st_mode

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def lseek(self, off: int, whence: int) -> int:
        return os.lseek(self.fd, off, whence)


class OwnedHostFd(HostFd):
    """A host descriptor minios opened for the guest (closed with it)."""

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class TtyFile(HostFd):
    """/dev/tty: the host terminal."""
    kind = "tty"

    def __init__(self, hfd: int, flags: int) -> None:
        super().__init__(hfd, flags)
        self.flags = flags
        self.path = "/dev/tty"


class HostFile(File):
    """A regular file of the host root, through a host descriptor of its
    own (closed with the last reference). Writable only in --rw dirs."""

    def __init__(self, fd: int, flags: int, path: str, node=None) -> None:
        super().__init__(flags)
        self.fd, self.path, self.node = fd, path, node

    @property
    def mode(self) -> int:          # type: ignore[override]
        return os.fstat(self.fd).st_mode

    def read(self, n: int) -> bytes:
        data = os.pread(self.fd, n, self.pos)
        self.pos += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self.flags & O_APPEND:
            self.pos = os.fstat(self.fd).st_size
        n = os.pwrite(self.fd, data, self.pos)
        self.pos += n
        return n

    def pread(self, n: int, off: int) -> bytes:
        return os.pread(self.fd, n, off)

    def pwrite(self, data: bytes, off: int) -> int:
        return os.pwrite(self.fd, data, off)

    @property
    def data(self) -> bytes:
        """What mmap maps: a snapshot of the file (see vfs.host_file_bytes)."""
        from minios.fs.vfs import host_file_bytes
        return host_file_bytes(self.fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def stat(self) -> dict:
        return _host_stat(os.fstat(self.fd))

    def lseek(self, off: int, whence: int) -> int:
        return _lseek(self, off, whence, os.fstat(self.fd).st_size)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _lseek(f: File, off: int, whence: int, size: int) -> int:
    if whence == 3:                 # SEEK_DATA: all data, no holes
        if off >= size:
            raise OSError(errno.ENXIO, "")
        new = off
    elif whence == 4:               # SEEK_HOLE: the end
        if off >= size:
            raise OSError(errno.ENXIO, "")
        new = size
    else:
        new = {0: off, 1: f.pos + off, 2: size + off}.get(whence)
    if new is None or new < 0:
        raise OSError(errno.EINVAL, "")
    f.pos = new
    return new


class InodeFile(File):
    """A tmpfs regular file."""

    def __init__(self, node, flags: int, path: str) -> None:
        super().__init__(flags)
        self.node, self.path = node, path

    @property
    def mode(self) -> int:          # type: ignore[override]
        return self.node.mode

    def read(self, n: int) -> bytes:
        data = self.node.pread(n, self.pos)
        self.pos += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self.flags & O_APPEND:
            self.pos = self.node.size()
        n = self.node.pwrite(data, self.pos)
        self.pos += n
        return n

    def pread(self, n: int, off: int) -> bytes:
        return self.node.pread(n, off)

    def pwrite(self, data: bytes, off: int) -> int:
        return self.node.pwrite(data, off)

    def truncate(self, size: int) -> None:
        self.node.truncate(size)

    def stat(self) -> dict:
        return self.node.stat()

    def lseek(self, off: int, whence: int) -> int:
        return _lseek(self, off, whence, self.node.size())


class DirFile(File):
    """An open directory: getdents64 reads ``entries`` (a snapshot taken at
    the first read, as (ino, d_type, name) with '.' and '..' first)."""
    kind = "dir"

    def __init__(self, node, flags: int, path: str) -> None:
        super().__init__(flags)
        self.node, self.path = node, path
        self.entries: list | None = None

    @property
    def mode(self) -> int:          # type: ignore[override]
        return self.node.stat()["mode"]

    def read(self, n: int) -> bytes:
        raise OSError(errno.EISDIR, "")

    def write(self, data: bytes) -> int:
        raise OSError(errno.EISDIR, "")

    def pread(self, n: int, off: int) -> bytes:
        raise OSError(errno.EISDIR, "")

    def stat(self) -> dict:
        return self.node.stat()

    def lseek(self, off: int, whence: int) -> int:
        if whence == 0 and off >= 0:
            if off == 0:
                self.entries = None
            self.pos = off
            return off
        if whence == 1 and self.pos + off >= 0:
            self.pos += off
            return self.pos
        raise OSError(errno.EINVAL, "")


class MemFile(File):
    """A read-only file whose bytes are made at open (/proc)."""

    def __init__(self, data: bytes, path: str = "", mode: int = st.S_IFREG | 0o444,
                 stat: dict | None = None) -> None:
        super().__init__(O_RDONLY)
        self.data, self.path, self._mode, self._stat = data, path, mode, stat

    @property
    def mode(self) -> int:          # type: ignore[override]
        return self._mode

    def read(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def pread(self, n: int, off: int) -> bytes:
        return self.data[off:off + n]

    def stat(self) -> dict:
        s = dict(super().stat())
        s.update(self._stat or {})
        s["size"] = 0 if self.path.startswith("/proc/") else len(self.data)
        s["mode"] = self._mode
        return s

    def lseek(self, off: int, whence: int) -> int:
        return _lseek(self, off, whence, len(self.data))


class NullFile(File):
    """/dev/null (and /dev/zero with ``zero``)."""
    kind = "chr"
    mode = st.S_IFCHR | 0o666
    ignores_writes = True

    def __init__(self, flags: int, zero: bool = False) -> None:
        super().__init__(flags)
        self.zero = zero
        self.rdev = makedev(1, 5 if zero else 3)
        self.path = "/dev/zero" if zero else "/dev/null"

    def read(self, n: int) -> bytes:
        return bytes(min(n, MAX_DEV_READ)) if self.zero else b""

    def write(self, data: bytes) -> int:
        return len(data)

    def pread(self, n: int, off: int) -> bytes:
        return self.read(n)

    def pwrite(self, data: bytes, off: int) -> int:
        return len(data)

    def lseek(self, off: int, whence: int) -> int:
        return 0

    def stat(self) -> dict:
        return dict(super().stat(), rdev=self.rdev, ino=self.rdev, size=0)


class RandomFile(NullFile):
    """/dev/urandom and /dev/random (writes are accepted and dropped)."""

    def __init__(self, flags: int, name: str = "urandom") -> None:
        super().__init__(flags)
        self.rdev = makedev(1, 9 if name == "urandom" else 8)
        self.path = "/dev/" + name

    def read(self, n: int) -> bytes:
        return os.urandom(min(n, MAX_DEV_READ))


class Pipe:
    def __init__(self, kernel=None) -> None:
        self.buf = bytearray()
        self.readers = 0
        self.writers = 0
        self.gen = 0              # reads, writes and closes (epoll's EPOLLET)
        self.kernel = kernel      # woken on the last close of an end

    def wake(self) -> None:
        k = self.kernel
        if k is not None:
            k.wake_sleepers(self)


class PipeEnd(File):
    kind = "fifo"
    mode = st.S_IFIFO | 0o600
    pollable = wakes_waiters = True
    whole_copies = True       # Linux's pipe_read/pipe_write: EFAULT, nothing moved

    def __init__(self, pipe: Pipe, writer: bool, flags: int) -> None:
        super().__init__(flags)
        self.pipe, self.writer = pipe, writer
        if writer:
            pipe.writers += 1
        else:
            pipe.readers += 1

    def read(self, n: int) -> bytes:
        p = self.pipe
        if not p.buf:
            if p.writers == 0:
                return b""
            raise Again
        out = bytes(p.buf[:n])
        del p.buf[:n]
        p.gen += 1
        return out

    def write(self, data: bytes) -> int:
        p = self.pipe
        if p.readers == 0:
            raise OSError(errno.EPIPE, "")
        room = PIPE_BUF_SIZE - len(p.buf)
        # Writes of at most PIPE_BUF (4096) bytes are atomic.
        if room <= 0 or (len(data) <= 4096 and room < len(data)):
            raise Again
        p.buf += data[:room]
        p.gen += 1
        return min(room, len(data))

    def readable_now(self) -> bool:
        return bool(self.pipe.buf) or self.pipe.writers == 0

    def writable_now(self) -> bool:
        return self.pipe.readers == 0 or len(self.pipe.buf) < PIPE_BUF_SIZE

    def poll(self, events: int) -> int:
        p = self.pipe
        if self.writer:
            if p.readers == 0:
                return POLLERR | (events & _OUT)
            return _OUT & events if len(p.buf) <= PIPE_BUF_SIZE - 4096 else 0
        r = _IN & events if p.buf else 0
        if p.writers == 0:
            r |= POLLHUP
        return r

    def stat(self) -> dict:
        return dict(super().stat(), ino=id(self.pipe) & 0xFFFFF, size=len(self.pipe.buf))

    @property
    def wait_key(self):
        return self.pipe          # both ends: a write wakes readers and vice versa

    @property
    def gen(self) -> int:
        return self.pipe.gen

    def close(self) -> None:
        self.pipe.gen += 1
        if self.writer:
            self.pipe.writers -= 1
            if self.pipe.writers == 0:
                self.pipe.wake()
        else:
            self.pipe.readers -= 1
            if self.pipe.readers == 0:
                self.pipe.wake()


def fput(f: File) -> None:
    """Drop one reference to ``f`` (a descriptor's, or one in flight over a
    socket); the last closes it."""
    f.refs -= 1
    if not f.refs:
        f.close()


class FdTable:
    """Descriptor numbers -> [file, cloexec]; shared by CLONE_FILES."""
    MAX = 1024

    def __init__(self) -> None:
        self.fds: dict[int, list] = {}
        self.users = 1

    def get(self, fd: int) -> File:
        ent = self.fds.get(fd)
        if ent is None:
            raise OSError(errno.EBADF, "")
        return ent[0]

    def install(self, f: File, cloexec: bool = False, lowest: int = 0) -> int:
        fd = lowest
        while fd in self.fds:
            fd += 1
        if fd >= self.MAX:
            raise OSError(errno.EMFILE, "")
        f.refs += 1
        self.fds[fd] = [f, cloexec]
        return fd

    def install_at(self, fd: int, f: File, cloexec: bool = False) -> None:
        f.refs += 1
        if fd in self.fds:
            self.close(fd)
        self.fds[fd] = [f, cloexec]

    def close(self, fd: int) -> None:
        ent = self.fds.pop(fd, None)
        if ent is None:
            raise OSError(errno.EBADF, "")
        fput(ent[0])

    def copy(self) -> "FdTable":
        new = FdTable()
        for fd, (f, cx) in self.fds.items():
            f.refs += 1
            new.fds[fd] = [f, cx]
        return new

    def close_all(self) -> None:
        """The last user is gone (exit): drop every file, as close would. No
        one can look at the table any more, so it is emptied at once."""
        fds, self.fds = self.fds, {}
        for f, _ in fds.values():
            fput(f)

    def close_on_exec(self) -> None:
        for fd in [fd for fd, (_, cx) in self.fds.items() if cx]:
            self.close(fd)
