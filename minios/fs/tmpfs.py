"""tmpfs: a writable file system kept in memory (mounted at ``/tmp``).

Inodes hold their bytes (regular files), children (directories) or
target (symlinks); names live in the parent directory, so hard links,
rename over an existing name, and unlinking an open file (which keeps
its bytes until the last descriptor closes) behave as on Linux.
"""
from __future__ import annotations

import os
import stat as st

from minios.uapi import errno
from minios.time import clock

NAME_MAX = 255


def _now() -> int:
    return clock.now_ns(0)


class Inode:
    """One tmpfs object. Also the VFS node for it (see vfs.py)."""
    ro_errno = errno.EROFS        # (never raised: a tmpfs node is always writable)

    def __init__(self, fs: "TmpFS", mode: int, uid: int, gid: int) -> None:
        self.fs = fs
        self.ino = fs.next_ino()
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.nlink = 2 if st.S_ISDIR(mode) else 1
        self.atime = self.mtime = self.ctime = _now()
        self.data = bytearray()
        self.children: dict[str, Inode] | None = {} if st.S_ISDIR(mode) else None
        self.target = ""
        self.parent: Inode | None = None          # directories only

    # ------------------------------------------------------------- reading
    def stat(self) -> dict:
        size = len(self.data) if st.S_ISREG(self.mode) else (
            len(self.target.encode(errors="surrogateescape")) if st.S_ISLNK(self.mode)
            else 40 + 20 * len(self.children or ()))
        return {"dev": self.fs.dev, "ino": self.ino, "nlink": self.nlink, "mode": self.mode,
                "uid": self.uid, "gid": self.gid, "rdev": 0, "size": size, "blksize": 4096,
                "blocks": (len(self.data) + 4095) // 4096 * 8, "atime": self.atime,
                "mtime": self.mtime, "ctime": self.ctime}

    def lookup(self, name: str) -> "Inode | None":
        if self.children is None:
            raise OSError(errno.ENOTDIR, name)
        return self.children.get(name)

    def readlink(self) -> str:
        if not st.S_ISLNK(self.mode):
            raise OSError(errno.EINVAL, "")
        return self.target

    def list(self) -> list[tuple[int, int, str]]:
        if self.children is None:
            raise OSError(errno.ENOTDIR, "")
        par = self.parent or self
        out = [(self.ino, 4, "."), (par.ino, 4, "..")]
        for name, c in self.children.items():
            out.append((c.ino, st.S_IFMT(c.mode) >> 12, name))
        return out

    def writable(self) -> bool:
        return True

    # ------------------------------------------------------------ changing
    def _touch_dir(self) -> None:
        self.mtime = self.ctime = _now()

    def _check_new(self, name: str) -> None:
        if self.children is None:
            raise OSError(errno.ENOTDIR, name)
        if len(name.encode(errors="surrogateescape")) > NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, name)
        if name in self.children:
            raise OSError(errno.EEXIST, name)
        if self.nlink == 0:                       # a removed directory
            raise OSError(errno.ENOENT, name)

    def _add(self, name: str, node: "Inode") -> "Inode":
        self.children[name] = node
        if node.children is not None:
            node.parent = self
            self.nlink += 1
        self._touch_dir()
        return node

    def create(self, name: str, mode: int, uid: int, gid: int) -> "Inode":
        self._check_new(name)
        return self._add(name, Inode(self.fs, st.S_IFREG | (mode & 0o7777), uid, gid))

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> "Inode":
        self._check_new(name)
        return self._add(name, Inode(self.fs, st.S_IFDIR | (mode & 0o7777), uid, gid))

    def mknod(self, name: str, mode: int, uid: int, gid: int) -> "Inode":
        self._check_new(name)
        return self._add(name, Inode(self.fs, mode, uid, gid))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> "Inode":
        self._check_new(name)
        node = Inode(self.fs, st.S_IFLNK | 0o777, uid, gid)
        node.target = target
        return self._add(name, node)

    def link(self, name: str, node) -> None:
        if not isinstance(node, Inode) or node.fs is not self.fs:
            raise OSError(errno.EXDEV, name)
        if node.children is not None:
            raise OSError(errno.EPERM, name)
        self._check_new(name)
        node.nlink += 1
        node.ctime = _now()
        self._add(name, node)

    def unlink(self, name: str) -> None:
        node = self.lookup(name)
        if node is None:
            raise OSError(errno.ENOENT, name)
        if node.children is not None:
            raise OSError(errno.EISDIR, name)
        del self.children[name]
        node.nlink -= 1
        node.ctime = _now()
        if node.nlink == 0 and st.S_ISREG(node.mode):
            node.fs.used -= len(node.data)     # (open descriptors keep the bytes)
        self._touch_dir()

    def rmdir(self, name: str) -> None:
        node = self.lookup(name)
        if node is None:
            raise OSError(errno.ENOENT, name)
        if node.children is None:
            raise OSError(errno.ENOTDIR, name)
        if node.children:
            raise OSError(errno.ENOTEMPTY, name)
        del self.children[name]
        node.nlink = 0
        self.nlink -= 1
        self._touch_dir()

    def rename(self, name: str, newdir, newname: str, flags: int = 0) -> None:
        """rename/renameat2 (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2)."""
        if not isinstance(newdir, Inode) or newdir.fs is not self.fs:
            raise OSError(errno.EXDEV, name)
        node = self.lookup(name)
        if node is None:
            raise OSError(errno.ENOENT, name)
        if newdir.children is None:
            raise OSError(errno.ENOTDIR, newname)
        if len(newname.encode(errors="surrogateescape")) > NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, newname)
        # A directory cannot move inside itself.
        d = newdir
        while d is not None:
            if d is node:
                raise OSError(errno.EINVAL, name)
            d = d.parent
        old = newdir.children.get(newname)
        if flags & 2:                                   # RENAME_EXCHANGE
            if old is None:
                raise OSError(errno.ENOENT, newname)
            self.children[name], newdir.children[newname] = old, node
            for n, parent in ((node, newdir), (old, self)):
                if n.children is not None and n.parent is not parent:
                    n.parent.nlink -= 1
                    parent.nlink += 1
                    n.parent = parent
            self._touch_dir()
            newdir._touch_dir()
            return
        if old is node:
            return
        if old is not None:
            if flags & 1:                               # RENAME_NOREPLACE
                raise OSError(errno.EEXIST, newname)
            if node.children is not None:
                if old.children is None:
                    raise OSError(errno.ENOTDIR, newname)
                if old.children:
                    raise OSError(errno.ENOTEMPTY, newname)
                newdir.rmdir(newname)
            else:
                if old.children is not None:
                    raise OSError(errno.EISDIR, newname)
                newdir.unlink(newname)
        del self.children[name]
        self._touch_dir()
        if node.children is not None:
            self.nlink -= 1
        newdir._add(newname, node)
        node.ctime = _now()

    def truncate(self, size: int) -> None:
        if self.children is not None:
            raise OSError(errno.EISDIR, "")
        if not st.S_ISREG(self.mode):
            raise OSError(errno.EINVAL, "")
        self._grow(size)
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data.extend(bytes(size - len(self.data)))
        self.mtime = self.ctime = _now()

    def chmod(self, mode: int) -> None:
        self.mode = st.S_IFMT(self.mode) | (mode & 0o7777)
        self.ctime = _now()

    def chown(self, uid: int, gid: int) -> None:
        if uid != -1:
            self.uid = uid
        if gid != -1:
            self.gid = gid
        self.ctime = _now()

    def utimes(self, atime: int | None, mtime: int | None) -> None:
        """Nanosecond times; None leaves one as it is (UTIME_OMIT)."""
        if atime is not None:
            self.atime = atime
        if mtime is not None:
            self.mtime = mtime
        self.ctime = _now()

    # ------------------------------------------------------------ file I/O
    def pread(self, n: int, off: int) -> bytes:
        self.atime = _now()
        return bytes(self.data[off:off + n])

    def _grow(self, new_size: int) -> None:
        """Account for the file becoming ``new_size`` bytes (ENOSPC past the
        file system's limit, like tmpfs's size=)."""
        delta = new_size - len(self.data)
        if delta > 0 and self.fs.used + delta > self.fs.limit:
            raise OSError(errno.ENOSPC, "")
        self.fs.used += delta

    def pwrite(self, data: bytes, off: int) -> int:
        end = off + len(data)
        if end > len(self.data):
            self._grow(end)
        if off > len(self.data):
            self.data.extend(bytes(off - len(self.data)))
        self.data[off:off + len(data)] = data
        self.mtime = self.ctime = _now()
        return len(data)

    def size(self) -> int:
        return len(self.data)


class TmpFS:
    """One tmpfs instance; ``root`` is its top directory."""

    _devs = 0x30

    def __init__(self, mode: int = 0o1777, limit: int = 1 << 30) -> None:
        TmpFS._devs += 1
        self.limit = limit              # bytes of file data (ENOSPC past it)
        self.used = 0
        self.dev = TmpFS._devs
        self._ino = 1
        self.root = Inode(self, st.S_IFDIR | mode, os.getuid(), os.getgid())

    def next_ino(self) -> int:
        self._ino += 1
        return self._ino
