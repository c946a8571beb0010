"""/dev: null, zero, full, random, urandom, tty, the /dev/fd links, and the
pseudo-terminal minios runs on (/dev/pts)."""
from __future__ import annotations

import os
import stat as st
import time

from minios.fs.files import (
    O_ACCMODE,
    O_RDWR,
    O_WRONLY,
    File,
    NullFile,
    OwnedHostFd,
    RandomFile,
    TtyFile,
    _host_stat,
    makedev,
)
from minios.fs.hostfs import dirent_type
from minios.uapi import errno


class SymNode:
    """A fixed symlink (the /dev/fd links)."""
    ro_errno = errno.EACCES

    def __init__(self, target: str, ino: int) -> None:
        self.target, self.ino = target, ino

    def stat(self) -> dict:
        return {"mode": st.S_IFLNK | 0o777, "ino": self.ino, "dev": 6, "nlink": 1,
                "size": len(self.target), "mtime": BOOT_NS, "ctime": BOOT_NS,
                "atime": BOOT_NS}

    def readlink(self) -> str:
        return self.target

    def lookup(self, name):
        raise OSError(errno.ENOTDIR, name)

    def writable(self) -> bool:
        return False


BOOT_NS = time.time_ns()


class DevNode:
    """A character device of /dev."""
    ro_errno = errno.EACCES
    DEVS = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
            "urandom": (1, 9), "tty": (5, 0)}

    def __init__(self, name: str) -> None:
        self.name = name
        self.rdev = makedev(*self.DEVS[name])

    def stat(self) -> dict:
        return {"mode": st.S_IFCHR | 0o666, "ino": self.rdev, "dev": 6, "nlink": 1,
                "rdev": self.rdev, "size": 0, "mtime": BOOT_NS, "ctime": BOOT_NS,
                "atime": BOOT_NS}

    def lookup(self, name):
        raise OSError(errno.ENOTDIR, name)

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def writable(self) -> bool:
        return True           # writing to a device is not writing the fs

    def truncate(self, size: int) -> None:
        pass

    def open(self, k, t, flags: int, path: str) -> File:
        n = self.name
        if n in ("null", "zero", "full"):
            f = NullFile(flags, zero=n != "null")
            if n == "full":
                f.path = "/dev/full"
                f.write = _enospc          # type: ignore[method-assign]
            return f
        if n in ("random", "urandom"):
            return RandomFile(flags, n)
        return TtyFile(k.tty.open_dev_tty(), flags)


def _enospc(data: bytes) -> int:
    raise OSError(errno.ENOSPC, "")


class PtsNode:
    """/dev/pts/N: a host pseudo-terminal (the one minios runs on), so that
    ttyname() finds the terminal a guest's stdin is."""
    ro_errno = errno.EACCES

    def __init__(self, name: str) -> None:
        self.hp = "/dev/pts/" + name

    def stat(self) -> dict:
        return _host_stat(os.stat(self.hp))

    def lookup(self, name):
        raise OSError(errno.ENOTDIR, name)

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def writable(self) -> bool:
        return True

    def truncate(self, size: int) -> None:
        pass

    def open(self, k, t, flags: int, path: str) -> File:
        fd = os.open(self.hp, (os.O_RDWR if flags & O_ACCMODE == O_RDWR else
                               os.O_WRONLY if flags & O_ACCMODE == O_WRONLY else os.O_RDONLY)
                     | os.O_NOCTTY | os.O_CLOEXEC)
        f = OwnedHostFd(fd, flags)
        f.path = "/dev/pts/" + os.path.basename(self.hp)
        return f


class PtsDir:
    ro_errno = errno.EACCES

    def stat(self) -> dict:
        return {"mode": st.S_IFDIR | 0o755, "ino": 2, "dev": 7, "nlink": 2, "size": 0,
                "mtime": BOOT_NS, "ctime": BOOT_NS, "atime": BOOT_NS}

    # Only the terminals minios itself runs on (its standard streams): the
    # host's other pseudo-terminals are other users' sessions, which a
    # guest must neither see nor write to.
    @staticmethod
    def _ours() -> list[str]:
        names = set()
        for fd in (0, 1, 2):
            try:
                path = os.ttyname(fd)
            except OSError:
                continue
            if path.startswith("/dev/pts/") and path[9:].isdigit():
                names.add(path[9:])
        return sorted(names, key=int)

    def lookup(self, name: str):
        if name in self._ours():
            try:
                if st.S_ISCHR(os.stat("/dev/pts/" + name).st_mode):
                    return PtsNode(name)
            except OSError:
                pass
        return None

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def list(self):
        return [(2, 4, "."), (1, 4, "..")] + [(100 + int(n), 2, n) for n in self._ours()]

    def writable(self) -> bool:
        return False


class DevDir:
    ro_errno = errno.EACCES

    def __init__(self) -> None:
        self.nodes: dict[str, object] = {n: DevNode(n) for n in DevNode.DEVS}
        self.nodes["pts"] = PtsDir()
        for i, n in enumerate(("stdin", "stdout", "stderr")):
            self.nodes[n] = SymNode(f"/proc/self/fd/{i}", 100 + i)
        self.nodes["fd"] = SymNode("/proc/self/fd", 103)

    def stat(self) -> dict:
        return {"mode": st.S_IFDIR | 0o755, "ino": 1, "dev": 6, "nlink": 2, "size": 0,
                "mtime": BOOT_NS, "ctime": BOOT_NS, "atime": BOOT_NS}

    def lookup(self, name: str):
        return self.nodes.get(name)

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def list(self):
        return [(1, 4, "."), (2, 4, "..")] + [
            (n.stat()["ino"], dirent_type(n.stat()["mode"]), name) for name, n in self.nodes.items()]

    def writable(self) -> bool:
        return False
