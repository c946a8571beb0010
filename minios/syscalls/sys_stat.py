"""stat in its forms, statfs, and the calls that change attributes
(truncate, chmod, chown, the utime family), access."""
from __future__ import annotations

from minios.uapi import errno as E
import os
import stat as st
import struct

from minios.fs.files import O_ACCMODE, O_RDONLY, DirFile, PipeEnd
from minios.fs.hostfs import HostNode
from minios.fs.vfs import W_OK, check_writable, may_access
from minios.mm.uaccess import copy_from_user, copy_to_user
from minios.syscalls.common import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_NO_AUTOMOUNT,
    AT_SYMLINK_NOFOLLOW,
    node_at,
    s32,
    s64,
)
from minios.syscalls.kinds import (ACCESS, ACCESS_AT_FLAGS, AT_FLAGS, DIRFD, FD, HEX, MODE,
                                   OFF, PATH, PTR, STAT, UID)
from minios.syscalls.table import syscall
from minios.time import clock
from minios.fs.tmpfs import Inode

UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


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


@syscall(5, "fstat", FD, STAT)
def sys_fstat(k, t, fd, buf, *_):
    copy_to_user(t.mm, buf, _stat_bytes(t.files.get(s32(fd)).stat()))
    return 0


@syscall(262, "newfstatat", DIRFD, PATH, STAT, AT_FLAGS)
def sys_newfstatat(k, t, dirfd, path, buf, flags, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        return -E.EINVAL
    node, _p = node_at(k, t, s32(dirfd), path, flags)
    copy_to_user(t.mm, buf, _stat_bytes(node.stat()))
    return 0


@syscall(4, "stat", PATH, STAT)
def sys_stat(k, t, path, buf, *_):
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, 0)


@syscall(6, "lstat", PATH, STAT)
def sys_lstat(k, t, path, buf, *_):
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, AT_SYMLINK_NOFOLLOW)


@syscall(332, "statx", DIRFD, PATH, AT_FLAGS, HEX, PTR)
def sys_statx(k, t, dirfd, path, flags, mask, buf, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | 0x6000) \
            or mask & 0x80000000:
        return -E.EINVAL
    node, _p = node_at(k, t, s32(dirfd), path, flags)
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
    if isinstance(node, HostNode):
        try:
            v = node.statvfs()
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


@syscall(137, "statfs", PATH, PTR)
def sys_statfs(k, t, path, buf, *_):
    node, _p = node_at(k, t, AT_FDCWD, path, 0)
    copy_to_user(t.mm, buf, _statfs_bytes(k, node))
    return 0


@syscall(138, "fstatfs", FD, PTR)
def sys_fstatfs(k, t, fd, buf, *_):
    f = t.files.get(s32(fd))
    copy_to_user(t.mm, buf, _statfs_bytes(k, f.node))
    return 0


def attr_node(node):
    """The node whose attributes change (a fd's file for /proc/N/fd links)."""
    f = getattr(node, "file", None)
    if f is not None:
        if f.node is None:
            raise OSError(E.EPERM, "")
        return f.node
    return node


@syscall(76, "truncate", PATH, OFF)
def sys_truncate(k, t, path, length, *_):
    if s64(length) < 0:
        return -E.EINVAL
    node, _p = node_at(k, t, AT_FDCWD, path, 0)
    node = attr_node(node)
    mode = node.stat()["mode"]
    if st.S_ISDIR(mode):
        return -E.EISDIR
    if not st.S_ISREG(mode):
        return -E.EINVAL
    check_writable(node)
    node.truncate(length)
    return 0


@syscall(77, "ftruncate", FD, OFF)
def sys_ftruncate(k, t, fd, length, *_):
    f = t.files.get(s32(fd))
    if s64(length) < 0:
        return -E.EINVAL
    if f.flags & O_ACCMODE == O_RDONLY or isinstance(f, (PipeEnd, DirFile)):
        return -E.EINVAL
    f.truncate(length)
    return 0


def _chmod(node, mode: int) -> int:
    node = attr_node(node)
    check_writable(node)
    if not hasattr(node, "chmod"):
        return -E.EPERM
    node.chmod(mode & 0o7777)
    return 0


@syscall(268, "fchmodat", DIRFD, PATH, MODE)
def sys_fchmodat(k, t, dirfd, path, mode, *_):
    node, _p = node_at(k, t, s32(dirfd), path, 0)
    return _chmod(node, mode)


@syscall(90, "chmod", PATH, MODE)
def sys_chmod(k, t, path, mode, *_):
    return sys_fchmodat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode)


@syscall(91, "fchmod", FD, MODE)
def sys_fchmod(k, t, fd, mode, *_):
    f = t.files.get(s32(fd))
    if f.node is None:
        return -E.EPERM if not isinstance(f, PipeEnd) else 0
    return _chmod(f.node, mode)


def _chown(node, uid: int, gid: int) -> int:
    node = attr_node(node)
    check_writable(node)
    if not hasattr(node, "chown"):
        return -E.EPERM
    node.chown(s32(uid), s32(gid))
    return 0


@syscall(260, "fchownat", DIRFD, PATH, UID, UID, AT_FLAGS)
def sys_fchownat(k, t, dirfd, path, uid, gid, flags, *_):
    node, _p = node_at(k, t, s32(dirfd), path, flags)
    return _chown(node, uid, gid)


@syscall(92, "chown", PATH, UID, UID)
def sys_chown(k, t, path, uid, gid, *_):
    return sys_fchownat(k, t, AT_FDCWD & 0xFFFFFFFF, path, uid, gid, 0)


@syscall(94, "lchown", PATH, UID, UID)
def sys_lchown(k, t, path, uid, gid, *_):
    return sys_fchownat(k, t, AT_FDCWD & 0xFFFFFFFF, path, uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall(93, "fchown", FD, UID, UID)
def sys_fchown(k, t, fd, uid, gid, *_):
    f = t.files.get(s32(fd))
    if f.node is None:
        return -E.EPERM
    return _chown(f.node, uid, gid)


def _set_times(k, t, node, atime, mtime) -> int:
    node = attr_node(node)
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


@syscall(280, "utimensat", DIRFD, PATH, PTR, AT_FLAGS)
def sys_utimensat(k, t, dirfd, path, times, flags, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    a, m = _ts_pair(t, times, 1, "q")
    if not path:                                   # futimens
        f = t.files.get(s32(dirfd))
        if f.node is None:
            return -E.EPERM
        return _set_times(k, t, f.node, a, m)
    node, _p = node_at(k, t, s32(dirfd), path, flags)
    return _set_times(k, t, node, a, m)


@syscall(235, "utimes", PATH, PTR)
def sys_utimes(k, t, path, times, *_):
    a, m = _ts_pair(t, times, 1000, "q")
    node, _p = node_at(k, t, AT_FDCWD, path, 0)
    return _set_times(k, t, node, a, m)


@syscall(261, "futimesat", DIRFD, PATH, PTR)
def sys_futimesat(k, t, dirfd, path, times, *_):
    a, m = _ts_pair(t, times, 1000, "q")
    node, _p = node_at(k, t, s32(dirfd), path, 0)
    return _set_times(k, t, node, a, m)


@syscall(132, "utime", PATH, PTR)
def sys_utime(k, t, path, times, *_):
    if times:
        a, m = struct.unpack("<qq", copy_from_user(t.mm, times, 16))
        a, m = a * 10**9, m * 10**9
    else:
        a = m = clock.now_ns(0)
    node, _p = node_at(k, t, AT_FDCWD, path, 0)
    return _set_times(k, t, node, a, m)


@syscall(439, "faccessat2", DIRFD, PATH, ACCESS, ACCESS_AT_FLAGS)
def sys_faccessat2(k, t, dirfd, path, mode, flags, *_):
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    node, _p = node_at(k, t, s32(dirfd), path, flags)
    s = node.stat()
    if mode & W_OK and getattr(node, "ro_errno", None) == E.EROFS and not node.writable() \
            and st.S_IFMT(s["mode"]) in (st.S_IFREG, st.S_IFDIR, st.S_IFLNK):
        return -E.EROFS
    if mode and not may_access(t, s, mode):
        return -E.EACCES
    return 0


@syscall(269, "faccessat", DIRFD, PATH, ACCESS)
def sys_faccessat(k, t, dirfd, path, mode, *_):
    return sys_faccessat2(k, t, dirfd, path, mode, 0)


@syscall(21, "access", PATH, ACCESS)
def sys_access(k, t, path, mode, *_):
    return sys_faccessat2(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode, 0)
