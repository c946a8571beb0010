"""The file-system tree the guest sees, and path resolution.

Mounts (guest path -> the root node of a file system):

* ``/``     a host directory (``kernel.root``), read-only except under the
            ``--rw`` directories (:class:`HostFS`);
* ``/tmp``  a tmpfs (``minios/fs/tmpfs.py``), writable, in memory;
* ``/dev``  null, zero, random, urandom, tty, and the fd/stdin/stdout/stderr
            links (:class:`DevDir`);
* ``/proc`` ``minios/fs/procfs.py``.

Every file system hands out *nodes* with one small interface: ``stat()``
(lstat), ``lookup(name)``, ``list()``, ``readlink()``, ``writable()`` and,
on writable ones, ``create/mkdir/symlink/link/unlink/rmdir/rename/
truncate/chmod/chown/utimes``. :func:`lookup` walks a path one component
at a time over those nodes: ``..`` pops the walk's own stack (it never asks
the host), a symlink's target is pushed back onto the components still to
walk (an absolute one restarts at the guest's ``/``), and a host path is
only ever the root plus names that were checked to be plain directories,
so no path, symlink or /proc link can name anything outside the root.
"""
from __future__ import annotations

import errno
import os
import stat as st
import time
from typing import TYPE_CHECKING, NamedTuple

from minios.fs.files import (DirFile, File, HostFile, InodeFile, NullFile, OwnedHostFd,
                          RandomFile,
                          TtyFile, O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL,
                          O_NOFOLLOW, O_PATH, O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC,
                          O_WRONLY, _host_stat, makedev)
from minios.fs.tmpfs import Inode, TmpFS

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task

MAX_SYMLINKS = 40
PATH_MAX = 4096
NAME_MAX = 255
R_OK, W_OK, X_OK = 4, 2, 1


class Lookup(NamedTuple):
    parent: object          # the directory node holding the last component
    name: str               # the last component after symlinks ("" for /)
    node: object | None     # None: the last component does not exist
    path: str               # canonical guest path (of parent/name when missing)
    last: str               # the last component as written ("." / ".." matter)
    trailing: bool          # the path ended in "/" (must be a directory)


def _dt(mode: int) -> int:
    return st.S_IFMT(mode) >> 12


def is_dir(node) -> bool:
    return st.S_ISDIR(node.stat()["mode"])


def _join(path: str, name: str) -> str:
    return ("" if path == "/" else path) + "/" + name


# ------------------------------------------------------------------ host fs
class HostFS:
    """A host directory as the guest's /; writable only under ``rw`` (guest
    paths, canonical)."""

    def __init__(self, root: str, rw: list[str] | tuple = ()) -> None:
        self.root = os.path.realpath(root)
        self.rw = [p.rstrip("/") or "/" for p in rw]

    def host(self, gpath: str) -> str:
        return self.root if gpath == "/" else (self.root.rstrip("/") + gpath)

    def is_rw(self, gpath: str) -> bool:
        return any(gpath == d or gpath.startswith(d.rstrip("/") + "/") for d in self.rw)


class HostNode:
    ro_errno = errno.EROFS

    def __init__(self, fs: HostFS, gpath: str, vfs: "VFS") -> None:
        self.fs, self.gpath, self.vfs = fs, gpath, vfs
        self.hp = fs.host(gpath)

    def __eq__(self, o) -> bool:
        return isinstance(o, HostNode) and o.hp == self.hp

    def __hash__(self) -> int:
        return hash(self.hp)

    def _os(self, fn, *a):
        try:
            return fn(*a)
        except OSError as e:
            raise OSError(e.errno, self.gpath) from None

    def stat(self) -> dict:
        return _host_stat(self._os(os.lstat, self.hp))

    def lookup(self, name: str):
        hp = os.path.join(self.hp, name)
        try:
            os.lstat(hp)
        except (FileNotFoundError, ValueError):
            return None
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, self.gpath) from None
        except OSError as e:
            raise OSError(e.errno, self.gpath) from None
        return HostNode(self.fs, _join(self.gpath, name), self.vfs)

    def readlink(self) -> str:
        try:
            return os.fsdecode(os.readlink(self.hp))
        except OSError as e:
            raise OSError(errno.EINVAL if e.errno == errno.EINVAL else e.errno, "") from None

    def list(self) -> list[tuple[int, int, str]]:
        s = self.stat()
        out = [(s["ino"], 4, "."), (s["ino"] if self.gpath == "/" else 0, 4, "..")]
        names = set()
        with os.scandir(self.hp) as it:
            for e in it:
                try:
                    es = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                names.add(e.name)
                out.append((es.st_ino, _dt(es.st_mode), e.name))
        for mp in self.vfs.mounts:           # mount points missing on the host
            head, _, name = mp.rpartition("/")
            if (head or "/") == self.gpath and name and name not in names:
                out.append((self.vfs.mounts[mp].stat()["ino"], 4, name))
        if out[1][0] == 0:
            try:
                out[1] = (os.stat(os.path.dirname(self.hp)).st_ino, 4, "..")
            except OSError:
                out[1] = (1, 4, "..")
        return out

    def writable(self) -> bool:
        return self.fs.is_rw(self.gpath)

    # The callers (syscalls/sys_namei.py) check writable() on the directory first.
    def create(self, name: str, mode: int, uid: int, gid: int):
        fd = self._os(os.open, os.path.join(self.hp, name),
                      os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      mode & 0o7777)
        os.close(fd)
        return HostNode(self.fs, _join(self.gpath, name), self.vfs)

    def mkdir(self, name: str, mode: int, uid: int, gid: int):
        self._os(os.mkdir, os.path.join(self.hp, name), mode & 0o7777)
        return HostNode(self.fs, _join(self.gpath, name), self.vfs)

    def mknod(self, name: str, mode: int, uid: int, gid: int):
        if not st.S_ISFIFO(mode) and not st.S_ISREG(mode):
            raise OSError(errno.EPERM, name)
        self._os(os.mknod, os.path.join(self.hp, name), mode)
        return HostNode(self.fs, _join(self.gpath, name), self.vfs)

    def symlink(self, name: str, target: str, uid: int, gid: int):
        self._os(os.symlink, os.fsencode(target), os.path.join(self.hp, name))
        return HostNode(self.fs, _join(self.gpath, name), self.vfs)

    def link(self, name: str, node) -> None:
        if not isinstance(node, HostNode):
            raise OSError(errno.EXDEV, name)
        if not node.writable():
            raise OSError(errno.EXDEV, name)     # across "mounts", as Linux says
        self._os(lambda: os.link(node.hp, os.path.join(self.hp, name),
                                 follow_symlinks=False))

    def unlink(self, name: str) -> None:
        hp = os.path.join(self.hp, name)
        if st.S_ISDIR(self._os(os.lstat, hp).st_mode):
            raise OSError(errno.EISDIR, name)
        self._os(os.unlink, hp)

    def rmdir(self, name: str) -> None:
        self._os(os.rmdir, os.path.join(self.hp, name))

    def rename(self, name: str, newdir, newname: str, flags: int = 0) -> None:
        if not isinstance(newdir, HostNode) or not newdir.writable():
            raise OSError(errno.EXDEV, name)
        src, dst = os.path.join(self.hp, name), os.path.join(newdir.hp, newname)
        if flags & 2:
            raise OSError(errno.EINVAL, name)
        if flags & 1 and os.path.lexists(dst):
            raise OSError(errno.EEXIST, newname)
        self._os(os.rename, src, dst)

    def truncate(self, size: int) -> None:
        self._os(os.truncate, self.hp, size)

    def chmod(self, mode: int) -> None:
        self._os(os.chmod, self.hp, mode & 0o7777)

    def chown(self, uid: int, gid: int) -> None:
        self._os(lambda: os.chown(self.hp, uid, gid, follow_symlinks=False))

    def utimes(self, atime: int | None, mtime: int | None) -> None:
        s = self._os(os.lstat, self.hp)
        ns = (s.st_atime_ns if atime is None else atime, s.st_mtime_ns if mtime is None
              else mtime)
        self._os(lambda: os.utime(self.hp, ns=ns, follow_symlinks=False))

    def open(self, k, t, flags: int, path: str) -> File:
        s = self._os(os.lstat, self.hp)
        if not st.S_ISREG(s.st_mode):
            raise OSError(errno.ENXIO if st.S_ISSOCK(s.st_mode) or st.S_ISFIFO(s.st_mode)
                          else errno.EACCES, path)
        acc = flags & O_ACCMODE
        hf = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY, O_RDWR: os.O_RDWR}.get(acc,
                                                                               os.O_RDONLY)
        fd = self._os(os.open, self.hp, hf | os.O_NOFOLLOW | os.O_CLOEXEC)
        return HostFile(fd, flags, path, self)


# ------------------------------------------------------------------- /dev
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

    def lookup(self, name: str):
        if name.isdigit() and os.path.exists("/dev/pts/" + name) and \
                os.path.realpath("/dev/pts/" + name) == "/dev/pts/" + name:
            try:
                if st.S_ISCHR(os.stat("/dev/pts/" + name).st_mode):
                    return PtsNode(name)
            except OSError:
                pass
        return None

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def list(self):
        try:
            names = sorted((n for n in os.listdir("/dev/pts") if n.isdigit()), key=int)
        except OSError:
            names = []
        return [(2, 4, "."), (1, 4, "..")] + [(100 + int(n), 2, n) for n in names]

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
            (n.stat()["ino"], _dt(n.stat()["mode"]), name) for name, n in self.nodes.items()]

    def writable(self) -> bool:
        return False


# -------------------------------------------------------------- the tree
class VFS:
    def __init__(self, root: str = "/", rw: list[str] | tuple = (), kernel=None) -> None:
        from minios.fs.procfs import ProcRoot
        self.host = HostFS(root, ())
        self.mounts: dict[str, object] = {}
        self.root = HostNode(self.host, "/", self)
        ram = getattr(getattr(kernel, "ram", None), "size", 2 << 30)
        self.tmpfs = TmpFS(limit=ram // 2)      # Linux's default tmpfs size
        self.mounts = {"/tmp": self.tmpfs.root, "/dev": DevDir(), "/proc": ProcRoot(kernel)}
        self.host.rw = [self.guest_rw_path(d) for d in rw]

    def guest_rw_path(self, d: str) -> str:
        """An --rw directory as a guest path: a host path inside the root,
        or else a guest path that names a host directory under it."""
        root = self.host.root
        real = os.path.realpath(d)
        if os.path.isdir(real) and (real == root or real.startswith(root.rstrip("/") + "/")):
            g = "/" + os.path.relpath(real, root)
            g = "/" if g == "/." else g
        else:
            try:
                lk = lookup_in(self, None, None, d if d.startswith("/") else "/" + d)
            except OSError:
                lk = None
            if lk is None or not isinstance(lk.node, HostNode) or not is_dir(lk.node):
                raise ValueError(f"--rw {d}: not a directory under the root {root}")
            g = lk.path
        if any(g == m or g.startswith(m + "/") for m in self.mounts):
            raise ValueError(f"--rw {d}: {g} is not on the root file system")
        return g


def get_vfs(k: "Kernel") -> VFS:
    v = getattr(k, "vfs", None)
    if v is None:
        v = VFS(getattr(k, "root", "/"), getattr(k, "rw_dirs", ()) or (), k)
        k.vfs = v
    return v


def guest_cwd(t: "Task") -> str:
    return getattr(t.group, "cwd", "/")


def normalize(cwd: str, path: str) -> str:
    """Lexically absolute (symlinks are resolved by :func:`lookup`)."""
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    return path


def lookup(k: "Kernel", t: "Task | None", path: str, follow: bool = True,
           base: str | None = None) -> Lookup:
    """Resolve ``path`` (relative to ``base``, default the cwd)."""
    return lookup_in(get_vfs(k), k, t if t is not None else getattr(k, "current", None),
                     path, follow, base)


def lookup_in(vfs: VFS, k, t, path: str, follow: bool = True,
              base: str | None = None) -> Lookup:
    if not path:
        raise OSError(errno.ENOENT, path)
    if len(path.encode(errors="surrogateescape")) >= PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, path)
    trailing = path.endswith("/") and path.strip("/") != ""
    lits = [p for p in path.split("/") if p]
    last = lits[-1] if lits else "/"
    if not path.startswith("/"):
        start = base if base is not None else (guest_cwd(t) if t is not None else "/")
        path = start.rstrip("/") + "/" + path
    parts = [p for p in path.split("/") if p]
    parts.reverse()                    # a stack: the next component on top
    stack: list[tuple[str, object]] = [("", vfs.root)]
    links = 0
    while parts:
        comp = parts.pop()
        if comp == ".":
            if not st.S_ISDIR(stack[-1][1].stat()["mode"]):
                raise OSError(errno.ENOTDIR, path)
            continue
        if comp == "..":
            if not st.S_ISDIR(stack[-1][1].stat()["mode"]):
                raise OSError(errno.ENOTDIR, path)
            if len(stack) > 1:
                stack.pop()
            continue
        if len(comp.encode(errors="surrogateescape")) > NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, path)
        cur = stack[-1][1]
        if not st.S_ISDIR(cur.stat()["mode"]):
            raise OSError(errno.ENOTDIR, path)
        cpath = "/" + "/".join(n for n, _ in stack[1:] + [(comp, None)])
        child = vfs.mounts.get(cpath)
        if child is None:
            child = cur.lookup(comp)
        if child is None:
            if parts:
                raise OSError(errno.ENOENT, path)
            return Lookup(cur, comp, None, cpath, last, trailing)
        if (parts or follow or trailing) and st.S_ISLNK(child.stat()["mode"]):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, path)
            magic = getattr(child, "magic", None)
            if magic is not None and not parts and k is not None:
                res = magic(k, t)
                if res is not None:
                    mnode, mpath = res
                    return Lookup(cur, comp, mnode, mpath, last, trailing)
            target = child.readlink()
            if not target:
                raise OSError(errno.ENOENT, path)
            if target.startswith("/"):
                stack = [("", vfs.root)]
            parts.extend(reversed([p for p in target.split("/") if p]))
            if target.endswith("/") and not parts:
                trailing = True
            continue
        stack.append((comp, child))
    node = stack[-1][1]
    gpath = "/" + "/".join(n for n, _ in stack[1:])
    if trailing and not st.S_ISDIR(node.stat()["mode"]):
        raise OSError(errno.ENOTDIR, path)
    if len(stack) == 1:
        return Lookup(vfs.root, "", vfs.root, "/", last, trailing)
    return Lookup(stack[-2][1], stack[-1][0], stack[-1][1], gpath, last, trailing)


# ------------------------------------------------------------ permissions
def creds(t) -> tuple[int, int]:
    return os.getuid(), os.getgid()


def may_access(t, s: dict, want: int) -> bool:
    """R_OK/W_OK/X_OK by the mode bits (not the read-only check)."""
    uid, gid = creds(t)
    mode = s["mode"]
    if uid == 0:
        if want & X_OK and not st.S_ISDIR(mode) and not mode & 0o111:
            return False
        return True
    if s.get("uid") == uid:
        bits = (mode >> 6) & 7
    elif s.get("gid") == gid:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def check_writable(node) -> None:
    if not node.writable():
        raise OSError(getattr(node, "ro_errno", errno.EROFS), "")


# ---------------------------------------------------------------- opening
def open_node(k, t, node, path: str, flags: int) -> File:
    """An open file for an existing node."""
    from minios.fs.procfs import FileNode
    if isinstance(node, FileNode):
        return node.reopen(flags)
    s = node.stat()
    mode = s["mode"]
    acc = flags & O_ACCMODE
    if flags & O_PATH:
        f = DirFile(node, flags, path) if st.S_ISDIR(mode) else File(flags)
        f.node, f.path = node, path
        f.opath = True
        return f
    if st.S_ISDIR(mode):
        if acc != O_RDONLY or flags & O_CREAT:
            raise OSError(errno.EISDIR, path)
        if not may_access(t, s, R_OK):
            raise OSError(errno.EACCES, path)
        return DirFile(node, flags, path)
    if flags & O_DIRECTORY:
        raise OSError(errno.ENOTDIR, path)
    if st.S_ISLNK(mode):
        raise OSError(errno.ELOOP, path)
    want = (R_OK if acc in (O_RDONLY, O_RDWR) else 0) | (W_OK if acc in (O_WRONLY, O_RDWR)
                                                         else 0)
    writing = acc != O_RDONLY or flags & O_TRUNC
    if writing and st.S_ISREG(mode):
        check_writable(node)
    if not may_access(t, s, want):
        raise OSError(errno.EACCES, path)
    if isinstance(node, Inode):
        if not st.S_ISREG(mode):
            raise OSError(errno.ENXIO, path)
        f: File = InodeFile(node, flags, path)
    elif hasattr(node, "open"):
        f = node.open(k, t, flags, path)
    else:
        raise OSError(errno.ENXIO, path)
    if flags & O_TRUNC and acc != O_RDONLY and st.S_ISREG(mode):
        f.truncate(0)
    return f


def open_path(k: "Kernel", t: "Task", path: str, flags: int, mode: int = 0o666,
              base: str | None = None) -> File:
    """open(2): resolve, create with O_CREAT, check, open."""
    if flags & O_TMPFILE == O_TMPFILE:
        raise OSError(errno.EOPNOTSUPP, path)
    follow = not flags & O_NOFOLLOW and not (flags & O_CREAT and flags & O_EXCL)
    lk = lookup(k, t, path, follow=follow, base=base)
    if lk.node is None:
        if not flags & O_CREAT:
            raise OSError(errno.ENOENT, path)
        if lk.trailing:
            raise OSError(errno.EISDIR, path)
        check_writable(lk.parent)
        if not may_access(t, lk.parent.stat(), W_OK | X_OK):
            raise OSError(errno.EACCES, path)
        uid, gid = creds(t)
        umask = getattr(t.group, "umask", 0o022) if t is not None else 0o022
        node = lk.parent.create(lk.name, mode & 0o7777 & ~umask, uid, gid)
        f = open_node(k, t, node, lk.path, (flags & ~O_TRUNC) | 0)
        return f
    if flags & O_CREAT and flags & O_EXCL:
        raise OSError(errno.EEXIST, path)
    if flags & O_NOFOLLOW and not flags & O_PATH and st.S_ISLNK(lk.node.stat()["mode"]):
        raise OSError(errno.ELOOP, path)
    return open_node(k, t, lk.node, lk.path, flags)


_HOST_BYTES: dict = {}


def host_file_bytes(fd: int) -> bytes:
    """The bytes of the host regular file open on ``fd``, as one immutable
    object while the file is unchanged: a shell execs the same binary over
    and over, and equal objects let every mapping share the page cache."""
    s = os.fstat(fd)
    key = (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns)
    data = _HOST_BYTES.get(key)
    if data is None:
        data = os.pread(fd, s.st_size, 0)
        if len(_HOST_BYTES) >= 8:
            _HOST_BYTES.pop(next(iter(_HOST_BYTES)))
        _HOST_BYTES[key] = data
    return data


def node_bytes(node) -> bytes:
    """A file's bytes for execve."""
    if isinstance(node, Inode):
        return bytes(node.data)
    if isinstance(node, HostNode):
        fd = os.open(node.hp, os.O_RDONLY)
        try:
            return host_file_bytes(fd)
        finally:
            os.close(fd)
    raise OSError(errno.EACCES, "")


def read_exec_file(k: "Kernel", path: str) -> bytes:
    """The bytes of an executable, with execve's errors."""
    from minios.proc.exec import ExecError
    boot = getattr(k, "boot_exe", None)
    if boot is not None and path == boot[0]:
        try:
            with open(boot[1], "rb") as fh:
                return fh.read()
        except OSError as e:
            raise ExecError(e.errno or errno.EIO, f"{path}: {e.strerror}") from None
    try:
        lk = lookup(k, None, path)
        if lk.node is None:
            raise OSError(errno.ENOENT, path)
        node = lk.node
        from minios.fs.procfs import FileNode
        if isinstance(node, FileNode):
            node = node.file.node
            if node is None:
                raise OSError(errno.EACCES, path)
        s = node.stat()
        if not st.S_ISREG(s["mode"]) or not may_access(None, s, X_OK):
            raise OSError(errno.EACCES, path)
        return node_bytes(node)
    except OSError as e:
        err = e.errno if isinstance(e.errno, int) else errno.ENOENT
        raise ExecError(err, f"{path}: {os.strerror(err)}") from None


def canonical_path(k: "Kernel", t, path: str) -> str:
    """``path`` with every symlink resolved (what /proc/PID/exe shows); the
    path itself when it cannot be resolved."""
    try:
        lk = lookup(k, t, path)
    except OSError:
        return path
    if lk.node is None:
        return path
    f = getattr(lk.node, "file", None)            # a /proc/PID/fd link
    return f.path if f is not None and f.path else lk.path


def host_path(k: "Kernel", path: str, follow: bool = True) -> str:
    """The host path of a guest path on the root file system (for tools);
    OSError when it is elsewhere (tmpfs, /proc, /dev) or missing."""
    lk = lookup(k, None, path, follow)
    if isinstance(lk.node, HostNode):
        return lk.node.hp
    if lk.node is None and isinstance(lk.parent, HostNode):
        return os.path.join(lk.parent.hp, lk.name)
    raise OSError(errno.ENOENT, path)
