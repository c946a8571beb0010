"""Open files, descriptor tables and pipes.

A :class:`File` is an open file description (shared by dup and fork); a
descriptor table maps numbers to (file, close-on-exec). ``read``/``write``
return bytes / a count, or raise :class:`Again` when they would block, or
:class:`OSError` with a Linux errno.
"""
from __future__ import annotations

import errno
import os
import stat as st
from typing import Callable

O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 3, 0, 1, 2
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND = 0o100, 0o200, 0o400, 0o1000, 0o2000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
PIPE_BUF_SIZE = 65536


class Again(Exception):
    """The operation would block; ``wake`` says what it waits for."""


class File:
    kind = "file"
    mode = st.S_IFREG | 0o444

    def __init__(self, flags: int = O_RDONLY) -> None:
        self.flags = flags
        self.refs = 0
        self.pos = 0
        self.path = ""

    def read(self, n: int) -> bytes:
        raise OSError(errno.EINVAL, "")

    def write(self, data: bytes) -> int:
        raise OSError(errno.EINVAL, "")

    def close(self) -> None:
        pass

    def readable_now(self) -> bool:
        return True

    def writable_now(self) -> bool:
        return True

    def stat(self) -> dict:
        return {"mode": self.mode, "size": 0, "ino": id(self) & 0xFFFFFF, "dev": 5,
                "nlink": 1, "rdev": 0, "blksize": 4096}

    def isatty(self) -> bool:
        return False

    def lseek(self, off: int, whence: int) -> int:
        raise OSError(errno.ESPIPE, "")


class HostFd(File):
    """A host descriptor passed through (the guest's stdin/stdout/stderr)."""
    kind = "host"

    def __init__(self, fd: int, flags: int) -> None:
        super().__init__(flags)
        self.fd = fd

    def read(self, n: int) -> bytes:
        return os.read(self.fd, n)

    def write(self, data: bytes) -> int:
        total = 0
        while total < len(data):
            total += os.write(self.fd, data[total:])
        return total

    def stat(self) -> dict:
        s = os.fstat(self.fd)
        return {"mode": s.st_mode, "size": s.st_size, "ino": s.st_ino, "dev": s.st_dev,
                "nlink": s.st_nlink, "rdev": s.st_rdev, "blksize": s.st_blksize,
                "uid": s.st_uid, "gid": s.st_gid, "atime": s.st_atime_ns,
                "mtime": s.st_mtime_ns, "ctime": s.st_ctime_ns}

    @property
    def mode(self) -> int:          # type: ignore[override]
        return os.fstat(self.fd).st_mode

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def lseek(self, off: int, whence: int) -> int:
        return os.lseek(self.fd, off, whence)


class MemFile(File):
    """A read-only file whose bytes are made at open (/proc, host files)."""

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
        s["size"] = len(self.data) if not st.S_ISDIR(self._mode) else s.get("size", 4096)
        s["mode"] = self._mode
        return s

    def lseek(self, off: int, whence: int) -> int:
        new = {0: off, 1: self.pos + off, 2: len(self.data) + off}.get(whence)
        if new is None or new < 0:
            raise OSError(errno.EINVAL, "")
        self.pos = new
        return new


class NullFile(File):
    kind = "chr"
    mode = st.S_IFCHR | 0o666

    def __init__(self, flags: int, zero: bool = False) -> None:
        super().__init__(flags)
        self.zero = zero

    def read(self, n: int) -> bytes:
        return bytes(n) if self.zero else b""

    def write(self, data: bytes) -> int:
        return len(data)

    def lseek(self, off: int, whence: int) -> int:
        return 0


class Pipe:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.readers = 0
        self.writers = 0


class PipeEnd(File):
    kind = "fifo"
    mode = st.S_IFIFO | 0o600

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
        return min(room, len(data))

    def readable_now(self) -> bool:
        return bool(self.pipe.buf) or self.pipe.writers == 0

    def writable_now(self) -> bool:
        return self.pipe.readers == 0 or len(self.pipe.buf) < PIPE_BUF_SIZE

    def close(self) -> None:
        if self.writer:
            self.pipe.writers -= 1
        else:
            self.pipe.readers -= 1


class FdTable:
    """Descriptor numbers -> [file, cloexec]; shared by CLONE_FILES."""
    MAX = 1024

    def __init__(self) -> None:
        self.fds: dict[int, list] = {}
        self.users = 1
        self.on_close: Callable[[File], None] = lambda f: None

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
        if fd in self.fds:
            self.close(fd)
        f.refs += 1
        self.fds[fd] = [f, cloexec]

    def close(self, fd: int) -> None:
        ent = self.fds.pop(fd, None)
        if ent is None:
            raise OSError(errno.EBADF, "")
        self.drop(ent[0])

    def drop(self, f: File) -> None:
        f.refs -= 1
        if f.refs == 0:
            f.close()
            self.on_close(f)

    def copy(self) -> "FdTable":
        new = FdTable()
        new.on_close = self.on_close
        for fd, (f, cx) in self.fds.items():
            f.refs += 1
            new.fds[fd] = [f, cx]
        return new

    def close_all(self) -> None:
        for fd in list(self.fds):
            self.close(fd)

    def close_on_exec(self) -> None:
        for fd in [fd for fd, (_, cx) in self.fds.items() if cx]:
            self.close(fd)
