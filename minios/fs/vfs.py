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

import os
import stat as st
from typing import TYPE_CHECKING, NamedTuple

from minios.uapi import errno
from minios.fs.files import (DirFile, File, InodeFile, PipeEnd, O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL,
                          O_NOFOLLOW, O_PATH, O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC,
                          O_WRONLY)
from minios.fs.procfs import FileNode, PLink, ProcRoot
from minios.fs.tmpfs import Inode, TmpFS
from minios.fs.hostfs import HostFS, HostNode, is_dir
from minios.fs.devfs import DevDir

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
    # The walk's stack down to ``node`` (to ``parent`` when missing): the
    # (name, node) pairs from the root. An open directory keeps it, so that
    # a lookup relative to it (openat) starts from the directory itself,
    # wherever it has since been moved, and ".." returns the way it came.
    stack: tuple = ()


# -------------------------------------------------------------- the tree
class VFS:
    def __init__(self, root: str = "/", rw: list[str] | tuple = (), kernel=None) -> None:
        self.host = HostFS(root)
        self.mounts: dict[str, object] = {}
        self.root = HostNode.root_of(self.host, self)
        ram = kernel.ram.size if kernel is not None else 2 << 30
        self.tmpfs = TmpFS(limit=ram // 2)      # Linux's default tmpfs size
        self.mounts = {"/tmp": self.tmpfs.root, "/dev": DevDir(), "/proc": ProcRoot(kernel)}
        self.host.rw = [self.guest_rw_path(d) for d in rw]
        for d in self.host.rw:
            self.host.rw_ids.add(lookup_in(self, None, None, d).node.ident())
        if self.root.ident() in self.host.rw_ids:
            self.root.mount = self.root.ident()

    @staticmethod
    def guest_cwd(t: "Task") -> str:
        """``t``'s current directory as a guest path (see :func:`guest_cwd`)."""
        return guest_cwd(t)

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
    """The kernel's file tree, built on first use (it checks the --rw dirs)."""
    v = k.vfs
    if v is None:
        v = k.vfs = VFS(k.root, k.rw_dirs, k)
    return v


def guest_cwd(t: "Task") -> str:
    """The current directory's guest path. A host directory's is read off
    its descriptor (the host knows where it is now, after any rename);
    another's is the path it was entered by."""
    stack = t.group.cwd_stack
    if stack and isinstance(stack[-1][1], HostNode):
        path = stack[-1][1].guest_path()
        if path is not None:
            return path
    return t.group.cwd


def normalize(cwd: str, path: str) -> str:
    """Lexically absolute (symlinks are resolved by :func:`lookup`)."""
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    return path


def lookup(k: "Kernel", t: "Task | None", path: str, follow: bool = True,
           base: "str | tuple | None" = None) -> Lookup:
    """Resolve ``path`` relative to ``base``: the cwd (None), a guest path,
    or an open directory's walk (``Lookup.stack``)."""
    return lookup_in(get_vfs(k), k, t if t is not None else k.current,
                     path, follow, base)


def lookup_in(vfs: VFS, k, t, path: str, follow: bool = True,
              base: "str | tuple | None" = None) -> Lookup:
    if not path:
        raise OSError(errno.ENOENT, path)
    if len(path.encode(errors="surrogateescape")) >= PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, path)
    trailing = path.endswith("/") and path.strip("/") != ""
    lits = [p for p in path.split("/") if p]
    last = lits[-1] if lits else "/"
    stack: list[tuple[str, object]] = [("", vfs.root)]
    if not path.startswith("/"):
        if base is None and t is not None and t.group.cwd_stack:
            base = t.group.cwd_stack
        if isinstance(base, tuple) and base:
            stack = list(base)
        else:
            start = base if base is not None else (guest_cwd(t) if t is not None else "/")
            path = start.rstrip("/") + "/" + path
    parts = [p for p in path.split("/") if p]
    parts.reverse()                    # a stack: the next component on top
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
            return Lookup(cur, comp, None, cpath, last, trailing, tuple(stack))
        if (parts or follow or trailing) and st.S_ISLNK(child.stat()["mode"]):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, path)
            magic = child.magic if isinstance(child, PLink) else None
            if magic is not None and k is not None:
                # A magic link (/proc/PID/fd/N, cwd) leads to the object
                # itself, not to a path: the last component is that object,
                # and a directory's walk goes on from where it really is.
                res = magic(k, t)
                if res is not None:
                    mnode, mpath, mstack = res
                    if not parts:
                        return Lookup(cur, comp, mnode, mpath, last, trailing, mstack)
                    if mstack:
                        stack = list(mstack)
                        continue
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
        return Lookup(vfs.root, "", vfs.root, "/", last, trailing, tuple(stack))
    return Lookup(stack[-2][1], stack[-1][0], stack[-1][1], gpath, last, trailing,
                  tuple(stack))


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
        raise OSError(node.ro_errno, "")


# ---------------------------------------------------------------- opening
def open_node(k, t, node, path: str, flags: int) -> File:
    """An open file for an existing node."""
    if isinstance(node, FileNode):
        return reopen(node.file, flags)
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
        umask = t.group.umask if t is not None else 0o022
        node = lk.parent.create(lk.name, mode & 0o7777 & ~umask, uid, gid)
        f = open_node(k, t, node, lk.path, (flags & ~O_TRUNC) | 0)
        return f
    if flags & O_CREAT and flags & O_EXCL:
        raise OSError(errno.EEXIST, path)
    if flags & O_NOFOLLOW and not flags & O_PATH and st.S_ISLNK(lk.node.stat()["mode"]):
        raise OSError(errno.ELOOP, path)
    f = open_node(k, t, lk.node, lk.path, flags)
    if isinstance(f, DirFile):
        f.stack = lk.stack
    return f


def reopen(f: File, flags: int) -> File:
    """A new open of the file a /proc/PID/fd link leads to (Linux reopens
    the inode): a pipe's other end, a node's new open, else the file itself."""
    if isinstance(f, PipeEnd):
        return PipeEnd(f.pipe, flags & O_ACCMODE == O_WRONLY, flags)
    if f.node is not None:          # an O_PATH descriptor too, as Linux
        return open_node(None, None, f.node, f.path, flags)
    return f


def node_bytes(node) -> bytes:
    """A file's bytes for execve."""
    if isinstance(node, Inode):
        return bytes(node.data)
    if isinstance(node, HostNode):
        fd = node.reopen(os.O_RDONLY)
        try:
            return node.fs.file_bytes(fd)
        finally:
            os.close(fd)
    raise OSError(errno.EACCES, "")


def exec_file_bytes(k: "Kernel", path: str) -> bytes:
    """The bytes of the file execve runs at ``path``: a regular file the
    caller may execute (OSError otherwise)."""
    lk = lookup(k, None, path)
    if lk.node is None:
        raise OSError(errno.ENOENT, path)
    node = lk.node
    if isinstance(node, FileNode):
        node = node.file.node
        if node is None:
            raise OSError(errno.EACCES, path)
    s = node.stat()
    if not st.S_ISREG(s["mode"]) or not may_access(None, s, X_OK):
        raise OSError(errno.EACCES, path)
    return node_bytes(node)


def canonical_path(k: "Kernel", t, path: str) -> str:
    """``path`` with every symlink resolved (what /proc/PID/exe shows); the
    path itself when it cannot be resolved."""
    try:
        lk = lookup(k, t, path)
    except OSError:
        return path
    if lk.node is None:
        return path
    if isinstance(lk.node, FileNode) and lk.node.file.path:     # a /proc/PID/fd link
        return lk.node.file.path
    return lk.path
