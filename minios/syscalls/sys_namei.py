"""Names and directories: open, the current and root directory, mkdir,
mknod, unlink, rename, link, symlink, readlink, getdents."""
from __future__ import annotations

from minios.uapi import errno as E
import stat as st
import struct

from minios.fs.files import O_CLOEXEC, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_WRONLY, DirFile
from minios.fs.vfs import (
    W_OK,
    X_OK,
    HostNode,
    check_writable,
    creds,
    get_vfs,
    guest_cwd,
    lookup,
    may_access,
    open_path,
)
from minios.mm.uaccess import copy_from_user, copy_to_user
from minios.syscalls.common import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    at_base,
    lookup_at,
    node_at,
    s32,
    user_path,
)
from minios.syscalls.sys_stat import attr_node
from minios.syscalls.kinds import (AT_FLAGS, CWD_OUT, DIRENTS, DIRFD, FD, FILE_MODE, HEX, MODE,
                                   OPEN_FLAGS, OUT_STR, PATH, PTR, RENAME_FLAGS, SIZE,
                                   mode_if_creat)
from minios.syscalls.table import syscall
from minios.fs.tmpfs import Inode


@syscall(257, "openat", DIRFD, PATH, OPEN_FLAGS, mode_if_creat(2))
def sys_openat(k, t, dirfd, path, flags, mode, *_):
    p = user_path(t, path)
    if not p:
        return -E.ENOENT
    flags &= 0xFFFFFFFF
    f = open_path(k, t, p, flags, mode & 0o7777, base=at_base(t, s32(dirfd), p))
    if f.refs == 0:
        f.flags = flags & ~(O_CLOEXEC | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC)
    return t.files.install(f, bool(flags & O_CLOEXEC))


@syscall(2, "open", PATH, OPEN_FLAGS, mode_if_creat(1))
def sys_open(k, t, path, flags, mode, *_):
    return sys_openat(k, t, AT_FDCWD & 0xFFFFFFFF, path, flags, mode)


@syscall(85, "creat", PATH, MODE)
def sys_creat(k, t, path, mode, *_):
    return sys_openat(k, t, AT_FDCWD & 0xFFFFFFFF, path, O_CREAT | O_WRONLY | O_TRUNC, mode)


@syscall(437, "openat2", DIRFD, PATH, PTR, SIZE)
def sys_openat2(k, t, dirfd, path, how, size, *_):
    if size < 24:
        return -E.EINVAL
    flags, mode, resolve = struct.unpack("<QQQ", copy_from_user(t.mm, how, 24))
    if resolve:
        return -E.EINVAL
    return sys_openat(k, t, dirfd, path, flags, mode)


@syscall(89, "readlink", PATH, OUT_STR, SIZE)
def sys_readlink(k, t, path, buf, size, *_):
    return sys_readlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, size)


@syscall(267, "readlinkat", DIRFD, PATH, OUT_STR, SIZE)
def sys_readlinkat(k, t, dirfd, path, buf, size, *_):
    if s32(size) <= 0:
        return -E.EINVAL
    p = user_path(t, path)
    if not p:
        return -E.ENOENT
    lk = lookup_at(k, t, s32(dirfd), p, False)
    if lk.node is None:
        return -E.ENOENT
    if not st.S_ISLNK(lk.node.stat()["mode"]):
        return -E.EINVAL
    data = lk.node.readlink().encode(errors="surrogateescape")[:s32(size)]
    copy_to_user(t.mm, buf, data)
    return len(data)


@syscall(79, "getcwd", CWD_OUT, SIZE)
def sys_getcwd(k, t, buf, size, *_):
    cwd = guest_cwd(t).encode(errors="surrogateescape") + b"\0"
    if size < len(cwd):
        return -E.ERANGE
    copy_to_user(t.mm, buf, cwd)
    return len(cwd)


def _set_cwd(t, node, path: str, stack: tuple) -> int:
    s = node.stat()
    if not st.S_ISDIR(s["mode"]):
        return -E.ENOTDIR
    if not may_access(t, s, X_OK):
        return -E.EACCES
    t.group.cwd = path
    t.group.cwd_stack = stack
    return 0


@syscall(80, "chdir", PATH)
def sys_chdir(k, t, path, *_):
    p = user_path(t, path)
    if not p:
        return -E.ENOENT
    lk = lookup(k, t, p)
    if lk.node is None:
        return -E.ENOENT
    return _set_cwd(t, lk.node, lk.path, lk.stack)


@syscall(81, "fchdir", FD)
def sys_fchdir(k, t, fd, *_):
    f = t.files.get(s32(fd))
    if f.node is None or not f.path:
        return -E.ENOTDIR
    return _set_cwd(t, f.node, f.path, f.stack)


@syscall(161, "chroot", PATH)
def sys_chroot(k, t, path, *_):
    return -E.EPERM


def _umask(t) -> int:
    return t.group.umask


def _is_mountpoint(k, path: str) -> bool:
    return path == "/" or path in get_vfs(k).mounts


@syscall(258, "mkdirat", DIRFD, PATH, MODE)
def sys_mkdirat(k, t, dirfd, path, mode, *_):
    p = user_path(t, path)
    lk = lookup_at(k, t, s32(dirfd), p, False)
    if lk.node is not None:
        return -E.EEXIST
    check_writable(lk.parent)
    if not may_access(t, lk.parent.stat(), W_OK | X_OK):
        return -E.EACCES
    uid, gid = creds(t)
    lk.parent.mkdir(lk.name, mode & 0o1777 & ~_umask(t), uid, gid)
    return 0


@syscall(83, "mkdir", PATH, MODE)
def sys_mkdir(k, t, path, mode, *_):
    return sys_mkdirat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode)


@syscall(259, "mknodat", DIRFD, PATH, FILE_MODE, HEX)
def sys_mknodat(k, t, dirfd, path, mode, dev, *_):
    p = user_path(t, path)
    mode &= 0xFFFF                        # umode_t
    fmt = st.S_IFMT(mode) or st.S_IFREG
    if fmt not in (st.S_IFREG, st.S_IFIFO, st.S_IFCHR, st.S_IFBLK, st.S_IFSOCK):
        return -E.EINVAL
    lk = lookup_at(k, t, s32(dirfd), p, False)
    if lk.node is not None:
        return -E.EEXIST
    check_writable(lk.parent)
    if fmt in (st.S_IFCHR, st.S_IFBLK, st.S_IFIFO, st.S_IFSOCK):
        return -E.EPERM                   # no device or FIFO files here
    uid, gid = creds(t)
    lk.parent.create(lk.name, mode & 0o7777 & ~_umask(t), uid, gid)
    return 0


@syscall(133, "mknod", PATH, FILE_MODE, HEX)
def sys_mknod(k, t, path, mode, dev, *_):
    return sys_mknodat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode, dev)


@syscall(263, "unlinkat", DIRFD, PATH, AT_FLAGS)
def sys_unlinkat(k, t, dirfd, path, flags, *_):
    if flags & ~AT_REMOVEDIR:
        return -E.EINVAL
    p = user_path(t, path)
    rmdir = bool(flags & AT_REMOVEDIR)
    lk = lookup_at(k, t, s32(dirfd), p, False)
    if rmdir and lk.last == ".":
        return -E.EINVAL
    if rmdir and lk.last == "..":
        return -E.ENOTEMPTY
    if lk.node is None:
        return -E.ENOENT
    s = lk.node.stat()
    if _is_mountpoint(k, lk.path):
        return -E.EBUSY if rmdir or not st.S_ISDIR(s["mode"]) else -E.EISDIR
    if rmdir and not st.S_ISDIR(s["mode"]):
        return -E.ENOTDIR
    if not rmdir and st.S_ISDIR(s["mode"]):
        return -E.EISDIR
    check_writable(lk.parent)
    if not may_access(t, lk.parent.stat(), W_OK | X_OK):
        return -E.EACCES
    if rmdir:
        lk.parent.rmdir(lk.name)
    else:
        lk.parent.unlink(lk.name)
    return 0


@syscall(87, "unlink", PATH)
def sys_unlink(k, t, path, *_):
    return sys_unlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, 0)


@syscall(84, "rmdir", PATH)
def sys_rmdir(k, t, path, *_):
    return sys_unlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, AT_REMOVEDIR)


def _same_fs(a, b) -> bool:
    if isinstance(a, Inode) and isinstance(b, Inode):
        return a.fs is b.fs
    return isinstance(a, HostNode) and isinstance(b, HostNode) and a.mount == b.mount


@syscall(316, "renameat2", DIRFD, PATH, DIRFD, PATH, RENAME_FLAGS)
def sys_renameat2(k, t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~7 or (flags & 1 and flags & 2):
        return -E.EINVAL
    if flags & 4:                              # RENAME_WHITEOUT
        return -E.EINVAL
    op, np_ = user_path(t, oldpath), user_path(t, newpath)
    old = lookup_at(k, t, s32(olddirfd), op, False)
    new = lookup_at(k, t, s32(newdirfd), np_, False)
    if old.node is None:
        return -E.ENOENT
    if old.last in (".", "..") or new.last in (".", ".."):
        return -E.EBUSY if old.last in (".", "..") else -E.EINVAL
    if _is_mountpoint(k, old.path) or _is_mountpoint(k, new.path):
        return -E.EBUSY
    if not _same_fs(old.parent, new.parent):
        return -E.EXDEV
    check_writable(old.parent)
    check_writable(new.parent)
    if new.node is not None and flags & 1:
        return -E.EEXIST
    if new.node is None and flags & 2:
        return -E.ENOENT
    old_dir = st.S_ISDIR(old.node.stat()["mode"])
    if (new.trailing or old.trailing) and not old_dir:
        return -E.ENOTDIR
    if new.node is not None and not flags & 2:
        new_dir = st.S_ISDIR(new.node.stat()["mode"])
        if old_dir and not new_dir:
            return -E.ENOTDIR
        if new_dir and not old_dir:
            return -E.EISDIR
    if old_dir and (new.path + "/").startswith(old.path + "/") and new.path != old.path:
        return -E.EINVAL
    old.parent.rename(old.name, new.parent, new.name, flags)
    return 0


@syscall(264, "renameat", DIRFD, PATH, DIRFD, PATH)
def sys_renameat(k, t, olddirfd, oldpath, newdirfd, newpath, *_):
    return sys_renameat2(k, t, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall(82, "rename", PATH, PATH)
def sys_rename(k, t, oldpath, newpath, *_):
    return sys_renameat2(k, t, AT_FDCWD & 0xFFFFFFFF, oldpath, AT_FDCWD & 0xFFFFFFFF,
                         newpath, 0)


@syscall(265, "linkat", DIRFD, PATH, DIRFD, PATH, AT_FLAGS)
def sys_linkat(k, t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    node, _p = node_at(k, t, s32(olddirfd), oldpath,
                        (flags & AT_EMPTY_PATH) | (0 if flags & AT_SYMLINK_FOLLOW
                                                   else AT_SYMLINK_NOFOLLOW))
    node = attr_node(node)
    np_ = user_path(t, newpath)
    new = lookup_at(k, t, s32(newdirfd), np_, False)
    if new.node is not None:
        return -E.EEXIST
    if st.S_ISDIR(node.stat()["mode"]):
        return -E.EPERM
    if not _same_fs(node, new.parent):
        return -E.EXDEV
    check_writable(new.parent)
    new.parent.link(new.name, node)
    return 0


@syscall(86, "link", PATH, PATH)
def sys_link(k, t, oldpath, newpath, *_):
    return sys_linkat(k, t, AT_FDCWD & 0xFFFFFFFF, oldpath, AT_FDCWD & 0xFFFFFFFF, newpath, 0)


@syscall(266, "symlinkat", PATH, DIRFD, PATH)
def sys_symlinkat(k, t, target, newdirfd, linkpath, *_):
    tg = user_path(t, target)
    if not tg:
        return -E.ENOENT
    p = user_path(t, linkpath)
    lk = lookup_at(k, t, s32(newdirfd), p, False)
    if lk.node is not None:
        return -E.EEXIST
    check_writable(lk.parent)
    uid, gid = creds(t)
    lk.parent.symlink(lk.name, tg, uid, gid)
    return 0


@syscall(88, "symlink", PATH, PATH)
def sys_symlink(k, t, target, linkpath, *_):
    return sys_symlinkat(k, t, target, AT_FDCWD & 0xFFFFFFFF, linkpath)


def _entries(f):
    if f.entries is None or f.pos == 0:
        f.entries = f.node.list()
    return f.entries


def _dirent64(ino: int, off: int, typ: int, nb: bytes) -> bytes:
    reclen = (19 + len(nb) + 1 + 7) & ~7
    return (struct.pack("<QqHB", ino, off, reclen, typ) + nb + b"\0").ljust(reclen, b"\0")


def _dirent(ino: int, off: int, typ: int, nb: bytes) -> bytes:
    """The old linux_dirent: d_type is the record's last byte."""
    reclen = (18 + len(nb) + 2 + 7) & ~7
    return (struct.pack("<QqH", ino, off, reclen) + nb + b"\0").ljust(reclen - 1, b"\0") \
        + bytes([typ])


def _getdents(t, fd: int, buf: int, count: int, record) -> int:
    """Fill ``buf`` with whole records from the directory's position on."""
    f = t.files.get(s32(fd))
    if not isinstance(f, DirFile):
        return -E.ENOTDIR
    ents = _entries(f)
    out = bytearray()
    i = f.pos
    while i < len(ents):
        ino, typ, name = ents[i]
        rec = record(ino or 1, i + 1, typ, name.encode(errors="surrogateescape"))
        if len(out) + len(rec) > count:
            if not out:
                return -E.EINVAL
            break
        out += rec
        i += 1
    copy_to_user(t.mm, buf, bytes(out))
    f.pos = i
    return len(out)


@syscall(217, "getdents64", FD, DIRENTS, SIZE)
def sys_getdents64(k, t, fd, buf, count, *_):
    return _getdents(t, fd, buf, count, _dirent64)


@syscall(78, "getdents", FD, DIRENTS, SIZE)
def sys_getdents(k, t, fd, buf, count, *_):
    return _getdents(t, fd, buf, count, _dirent)
