"""The host directory that is the guest's /, held by descriptors.

Every host object is held by descriptor, never by path string. A path is
only ever resolved one component at a time, relative to the descriptor of
the directory that was reached, with O_NOFOLLOW: a host symlink is never
followed by the host (the guest's walk, vfs.lookup_in, reads it and
resolves its target inside the guest's tree), and a later operation on a
node acts on the object that was resolved, whatever has since been renamed
or replaced by a symlink at its old name. The descriptors are O_PATH ones:
they can name anything (a directory without read permission, a symlink, a
socket) without opening it; a node reopens its object through
/proc/self/fd/N, which names exactly that inode, to read, write or change it.
"""
from __future__ import annotations

import os
import stat as st
from typing import TYPE_CHECKING

from minios.fs.files import O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY, File, HostFile, _host_stat
from minios.uapi import errno

if TYPE_CHECKING:
    from minios.fs.vfs import VFS


def dirent_type(mode: int) -> int:
    return st.S_IFMT(mode) >> 12


def is_dir(node) -> bool:
    return st.S_ISDIR(node.stat()["mode"])


def _join(path: str, name: str) -> str:
    return ("" if path == "/" else path) + "/" + name


# Every host object is held by descriptor, never by path string. A path is
# only ever resolved one component at a time, relative to the descriptor of
# the directory that was reached, with O_NOFOLLOW: a host symlink is never
# followed by the host (the guest's walk reads it and resolves its target
# inside the guest's tree), and a later operation on a node acts on the
# object that was resolved, whatever has since been renamed or replaced by
# a symlink at its old name. The descriptors are O_PATH ones: they can name
# anything (a directory without read permission, a symlink, a socket)
# without opening it; a node reopens its object through /proc/self/fd/N,
# which names exactly that inode, to read, write or change it.
_O_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _fd_path(fd: int) -> str:
    """The host's magic link to the object open on ``fd`` (not a path that
    can be redirected: opening it reaches that inode or nothing)."""
    return f"/proc/self/fd/{fd}"


class HostFS:
    """A host directory as the guest's /; writable only in and under the
    ``--rw`` directories, which are known by identity (device and inode),
    not by name: whatever a guest renames, a node is writable when the walk
    that reached it went through one of them."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.rw: list[str] = []                    # the --rw directories, as guest paths
        self.rw_ids: set[tuple[int, int]] = set()  # ... as (st_dev, st_ino)
        # (st_dev, st_ino, st_size, st_mtime_ns) -> the file's bytes: the last
        # few files read whole (file_bytes).
        self._bytes: dict[tuple[int, int, int, int], bytes] = {}

    def file_bytes(self, fd: int) -> bytes:
        """The bytes of the host regular file open on ``fd``, as one immutable
        object while the file is unchanged: a shell execs the same binary over
        and over, and equal objects let every mapping share the page cache."""
        s = os.fstat(fd)
        key = (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns)
        data = self._bytes.get(key)
        if data is None:
            data = os.pread(fd, s.st_size, 0)
            if len(self._bytes) >= 8:
                self._bytes.pop(next(iter(self._bytes)))
            self._bytes[key] = data
        return data


class HostNode:
    """An object of the host root: its O_PATH descriptor (closed with the
    node), the guest path it was reached by (for messages and listings
    only: never handed to the host), and the --rw directory it lies in
    (``mount``: its identity; None on the read-only root). Each --rw
    directory is a mount of its own, as /proc/mounts shows: a rename or
    link between two of them, or to the root, is EXDEV."""
    ro_errno = errno.EROFS

    def __init__(self, fs: HostFS, fd: int, gpath: str, vfs: "VFS",
                 mount: tuple[int, int] | None, parent: "HostNode | None" = None,
                 name: str = "") -> None:
        self.fs, self.fd, self.gpath, self.vfs, self.mount = fs, fd, gpath, vfs, mount
        # The directory and name it was found at: only for acting on a
        # symlink itself (lchown, lutimes), which no descriptor can reach.
        self.parent, self.name = parent, name
        self._id: tuple[int, int] | None = None

    @classmethod
    def root_of(cls, fs: HostFS, vfs: "VFS") -> "HostNode":
        fd = os.open(fs.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return cls(fs, fd, "/", vfs, None)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except (OSError, AttributeError, TypeError):
            pass

    def ident(self) -> tuple[int, int]:
        if self._id is None:
            s = os.stat(self.fd)
            self._id = (s.st_dev, s.st_ino)
        return self._id

    def __eq__(self, o) -> bool:
        return isinstance(o, HostNode) and o.ident() == self.ident()

    def __hash__(self) -> int:
        return hash(self.ident())

    def _os(self, fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except OSError as e:
            raise OSError(e.errno, self.gpath) from None
        except ValueError:               # a NUL in a name: no such file
            raise OSError(errno.ENOENT, self.gpath) from None

    def _child(self, fd: int, name: str) -> "HostNode":
        node = HostNode(self.fs, fd, _join(self.gpath, name), self.vfs, self.mount, self, name)
        if self.fs.rw_ids and node.ident() in self.fs.rw_ids:
            node.mount = node.ident()
        return node

    def stat(self) -> dict:
        return _host_stat(self._os(os.stat, self.fd))

    def lookup(self, name: str):
        if not name or "/" in name or name in (".", ".."):
            raise OSError(errno.EINVAL, name)     # the walk handles these itself
        try:
            fd = os.open(name, _O_PATH, dir_fd=self.fd)
        except (FileNotFoundError, ValueError):
            return None
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, self.gpath) from None
        except OSError as e:
            raise OSError(e.errno, self.gpath) from None
        return self._child(fd, name)

    def readlink(self) -> str:
        try:
            return os.fsdecode(os.readlink("", dir_fd=self.fd))
        except OSError as e:
            raise OSError(errno.EINVAL if e.errno in (errno.EINVAL, errno.ENOENT)
                          else e.errno, "") from None

    def list(self) -> list[tuple[int, int, str]]:
        s = self.stat()
        out = [(s["ino"], 4, "."), (s["ino"] if self.gpath == "/" else 0, 4, "..")]
        names = set()
        dfd = self._os(os.open, ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                       dir_fd=self.fd)
        try:
            with os.scandir(dfd) as it:
                for e in it:
                    try:
                        es = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    names.add(e.name)
                    out.append((es.st_ino, dirent_type(es.st_mode), e.name))
        finally:
            os.close(dfd)
        for mp in self.vfs.mounts:           # mount points missing on the host
            head, _, name = mp.rpartition("/")
            if (head or "/") == self.gpath and name and name not in names:
                out.append((self.vfs.mounts[mp].stat()["ino"], 4, name))
        if out[1][0] == 0:
            try:
                out[1] = (os.stat("..", dir_fd=self.fd, follow_symlinks=False).st_ino, 4, "..")
            except OSError:
                out[1] = (1, 4, "..")
        return out

    def writable(self) -> bool:
        return self.mount is not None

    # The callers (syscalls/sys_namei.py) check writable() on the directory first.
    def create(self, name: str, mode: int, uid: int, gid: int):
        fd = self._os(os.open, name,
                      os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      mode & 0o7777, dir_fd=self.fd)
        try:
            return self._child(self._os(os.open, _fd_path(fd), os.O_PATH | os.O_CLOEXEC), name)
        finally:
            os.close(fd)

    def _made(self, name: str):
        node = self.lookup(name)
        if node is None:                    # removed by someone else at once
            raise OSError(errno.ENOENT, name)
        return node

    def mkdir(self, name: str, mode: int, uid: int, gid: int):
        self._os(os.mkdir, name, mode & 0o7777, dir_fd=self.fd)
        return self._made(name)

    def mknod(self, name: str, mode: int, uid: int, gid: int):
        if not st.S_ISFIFO(mode) and not st.S_ISREG(mode):
            raise OSError(errno.EPERM, name)
        self._os(os.mknod, name, mode, dir_fd=self.fd)
        return self._made(name)

    def symlink(self, name: str, target: str, uid: int, gid: int):
        self._os(os.symlink, os.fsencode(target), name, dir_fd=self.fd)
        return self._made(name)

    def link(self, name: str, node) -> None:
        if not isinstance(node, HostNode) or node.mount != self.mount:
            raise OSError(errno.EXDEV, name)     # across mounts, as Linux says
        # linkat of the magic link with AT_SYMLINK_FOLLOW links the inode
        # the descriptor holds (a symlink too), wherever it now is.
        self._os(os.link, _fd_path(node.fd), name, dst_dir_fd=self.fd, follow_symlinks=True)

    def unlink(self, name: str) -> None:
        if st.S_ISDIR(self._os(os.stat, name, dir_fd=self.fd, follow_symlinks=False).st_mode):
            raise OSError(errno.EISDIR, name)
        self._os(os.unlink, name, dir_fd=self.fd)

    def rmdir(self, name: str) -> None:
        self._os(os.rmdir, name, dir_fd=self.fd)

    def rename(self, name: str, newdir, newname: str, flags: int = 0) -> None:
        if not isinstance(newdir, HostNode) or newdir.mount != self.mount:
            raise OSError(errno.EXDEV, name)
        if flags & 2:
            raise OSError(errno.EINVAL, name)
        if flags & 1:
            try:
                os.stat(newname, dir_fd=newdir.fd, follow_symlinks=False)
                raise OSError(errno.EEXIST, newname)
            except FileNotFoundError:
                pass
        self._os(os.rename, name, newname, src_dir_fd=self.fd, dst_dir_fd=newdir.fd)

    def _is_link(self) -> bool:
        return st.S_ISLNK(self._os(os.stat, self.fd).st_mode)

    def truncate(self, size: int) -> None:
        fd = self._os(os.open, _fd_path(self.fd), os.O_WRONLY | os.O_CLOEXEC)
        try:
            self._os(os.ftruncate, fd, size)
        finally:
            os.close(fd)

    def chmod(self, mode: int) -> None:
        if self._is_link():
            raise OSError(errno.EOPNOTSUPP, self.gpath)   # as fchmodat on a symlink
        self._os(os.chmod, _fd_path(self.fd), mode & 0o7777)

    def chown(self, uid: int, gid: int) -> None:
        if self._is_link():                  # lchown: the link itself, by its name
            self._os(os.chown, self.name, uid, gid, dir_fd=self.parent.fd,
                     follow_symlinks=False)
        else:
            self._os(os.chown, _fd_path(self.fd), uid, gid)

    def utimes(self, atime: int | None, mtime: int | None) -> None:
        s = self._os(os.stat, self.fd)
        ns = (s.st_atime_ns if atime is None else atime, s.st_mtime_ns if mtime is None
              else mtime)
        if st.S_ISLNK(s.st_mode):
            self._os(os.utime, self.name, ns=ns, dir_fd=self.parent.fd, follow_symlinks=False)
        else:
            self._os(os.utime, _fd_path(self.fd), ns=ns)

    def guest_path(self) -> str | None:
        """Where the object is now, as a guest path (None: not under the
        root any more, or unknown)."""
        try:
            real = os.readlink(_fd_path(self.fd))
        except OSError:
            return None
        root = self.fs.root.rstrip("/")
        if real == self.fs.root:
            return "/"
        if real.startswith(root + "/") and not real.endswith(" (deleted)"):
            return real[len(root):]
        return None

    def statvfs(self) -> os.statvfs_result:
        return self._os(os.statvfs, self.fd)

    def reopen(self, hflags: int) -> int:
        """A host descriptor open on this very object, with ``hflags``."""
        return self._os(os.open, _fd_path(self.fd), hflags | os.O_CLOEXEC)

    def open(self, k, t, flags: int, path: str) -> File:
        s = self._os(os.stat, self.fd)
        if not st.S_ISREG(s.st_mode):
            raise OSError(errno.ENXIO if st.S_ISSOCK(s.st_mode) or st.S_ISFIFO(s.st_mode)
                          else errno.EACCES, path)
        acc = flags & O_ACCMODE
        hf = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY, O_RDWR: os.O_RDWR}.get(acc,
                                                                               os.O_RDONLY)
        return HostFile(self.reopen(hf), flags, path, self)
