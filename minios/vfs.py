"""Path resolution and opening files.

The guest's ``/`` is a host directory (``kernel.root``), read-only. Every
lookup resolves ``..`` and symlinks component by component inside that
root, so no path can leave it. ``/proc`` and ``/dev`` are synthesized.
"""
from __future__ import annotations

import errno
import os
import stat as st
from typing import TYPE_CHECKING

from minios.files import (File, MemFile, NullFile, O_ACCMODE, O_CREAT, O_DIRECTORY,
                          O_RDONLY, O_TRUNC, O_WRONLY)

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.task import Task

MAX_SYMLINKS = 40


def normalize(cwd: str, path: str) -> str:
    """Lexically absolute (symlinks are resolved by :func:`host_path`)."""
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    return path


def host_path(k: "Kernel", path: str, follow: bool = True) -> str:
    """The host path of a guest absolute path, resolving symlinks inside
    the root. Raises OSError(ENOENT/ELOOP/ENOTDIR) like the kernel would."""
    root = os.path.realpath(k.root)
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        cand = os.path.join(root, *done, name)
        try:
            s = os.lstat(cand)
        except FileNotFoundError:
            if parts:
                raise OSError(errno.ENOENT, path) from None
            done.append(name)
            continue
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, path) from None
        if st.S_ISLNK(s.st_mode) and (parts or follow):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, path)
            target = os.readlink(cand)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        if parts and not st.S_ISDIR(s.st_mode):
            raise OSError(errno.ENOTDIR, path)
        done.append(name)
    return os.path.join(root, *done)


def guest_cwd(t: "Task") -> str:
    return getattr(t.group, "cwd", "/")


def open_path(k: "Kernel", t: "Task", path: str, flags: int, mode: int = 0o666) -> File:
    path = normalize(guest_cwd(t), path)
    clean = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    if clean == "/proc" or clean.startswith("/proc/"):
        from minios.procfs import open_proc
        return open_proc(k, t, clean, flags)
    if clean in ("/dev/null", "/dev/zero"):
        return NullFile(flags, zero=clean == "/dev/zero")
    if clean == "/dev/urandom" or clean == "/dev/random":
        return MemFile(os.urandom(1 << 16), clean, st.S_IFCHR | 0o666)
    hp = host_path(k, clean)
    if flags & O_ACCMODE != O_RDONLY or flags & (O_CREAT | O_TRUNC):
        if os.path.exists(hp) and os.path.isdir(hp):
            raise OSError(errno.EISDIR, path)
        raise OSError(errno.EROFS, path)
    try:
        s = os.stat(hp)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, path) from None
    except PermissionError:
        raise OSError(errno.EACCES, path) from None
    info = {"ino": s.st_ino, "dev": s.st_dev, "nlink": s.st_nlink, "uid": s.st_uid,
            "gid": s.st_gid, "atime": s.st_atime_ns, "mtime": s.st_mtime_ns,
            "ctime": s.st_ctime_ns, "size": s.st_size}
    if st.S_ISDIR(s.st_mode):
        f = MemFile(b"", clean, s.st_mode, info)
        f.host = hp
        return f
    if flags & O_DIRECTORY:
        raise OSError(errno.ENOTDIR, path)
    try:
        with open(hp, "rb") as fh:
            data = fh.read()
    except PermissionError:
        raise OSError(errno.EACCES, path) from None
    f = MemFile(data, clean, s.st_mode, info)
    f.host = hp
    return f


def read_exec_file(k: "Kernel", path: str) -> bytes:
    """The bytes of an executable, with execve's errors."""
    from minios.exec import ExecError
    try:
        hp = host_path(k, path)
        s = os.stat(hp)
    except OSError as e:
        err = e.errno if isinstance(e.errno, int) else errno.ENOENT
        raise ExecError(err, f"{path}: {os.strerror(err)}") from None
    if st.S_ISDIR(s.st_mode) or not s.st_mode & 0o111:
        raise ExecError(errno.EACCES, f"{path}: {os.strerror(errno.EACCES)}")
    try:
        with open(hp, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise ExecError(e.errno or errno.EIO, f"{path}: {e.strerror}") from None
