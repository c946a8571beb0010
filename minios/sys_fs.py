"""File syscalls: descriptors, read/write, pipes, stat, ioctl, paths."""
from __future__ import annotations

import errno as E
import os
import stat as st
import struct

from minios import signals
from minios.files import (Again, FdTable, MemFile, Pipe, PipeEnd, O_ACCMODE, O_CLOEXEC,
                          O_NONBLOCK, O_RDONLY, O_WRONLY, O_DIRECTORY)
from minios.syscalls import syscall
from minios.task import BLOCK
from minios.uaccess import (Fault, copy_from_user, copy_to_user, put_u32,
                            strncpy_from_user)
from minios.vfs import guest_cwd, host_path, normalize, open_path

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = 0x100, 0x1000
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
TCGETS, TCSETS, TIOCGWINSZ, TIOCGPGRP, TIOCSPGRP, FIONREAD = 0x5401, 0x5402, 0x5413, 0x540F, 0x5410, 0x541B
MAX_RW = 0x7FFFF000


def s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _blocking(k, t, f, op, channel: str):
    """Run ``op``; if the file would block, sleep and retry it later."""
    try:
        return op()
    except Again:
        if f.flags & O_NONBLOCK:
            return -E.EAGAIN

    def retry():
        if signals.has_pending(t):
            return -E.EINTR
        try:
            return op()
        except Again:
            return BLOCK
        except Fault:
            return -E.EFAULT
        except OSError as e:
            return _oserr(k, t, e)
    t.wait_channel = channel
    t.retry = retry
    return BLOCK


def _oserr(k, t, e: OSError) -> int:
    if e.errno == E.EPIPE:
        signals.send_signal(k, t, signals.SIGPIPE, {"code": signals.SI_USER, "pid": t.pid},
                            thread=True)
    return -(e.errno or E.EIO)


def _wake_pipe(k, f) -> None:
    if isinstance(f, PipeEnd):
        k.wake_all(lambda x: x.wait_channel in ("pipe_read", "pipe_write", "poll"))


@syscall(0, "read")
def sys_read(k, t, fd, buf, n, *_):
    f = t.files.get(s32(fd))
    if f.flags & O_ACCMODE == O_WRONLY:
        return -E.EBADF
    if isinstance(f, MemFile) and st.S_ISDIR(f.mode):
        return -E.EISDIR
    n = min(n, MAX_RW)
    if n and not t.mm.is_mapped(buf & ~0xFFF, ((buf + n + 0xFFF) & ~0xFFF)):
        return -E.EFAULT

    def op():
        data = f.read(n)
        copy_to_user(t.mm, buf, data)
        _wake_pipe(k, f)
        return len(data)
    return _blocking(k, t, f, op, "pipe_read")


@syscall(1, "write")
def sys_write(k, t, fd, buf, n, *_):
    f = t.files.get(s32(fd))
    if f.flags & O_ACCMODE == O_RDONLY and not isinstance(f, PipeEnd) and f.kind != "chr":
        return -E.EBADF
    data = copy_from_user(t.mm, buf, min(n, MAX_RW))
    return _write_all(k, t, f, data)


def _write_all(k, t, f, data: bytes):
    state = {"done": 0}

    def op():
        try:
            while state["done"] < len(data):
                state["done"] += f.write(data[state["done"]:])
                _wake_pipe(k, f)
        except Again:
            if state["done"] and f.flags & O_NONBLOCK:
                return state["done"]
            raise
        except OSError as e:
            if state["done"]:
                return state["done"]
            return _oserr(k, t, e)
        return len(data)
    return _blocking(k, t, f, op, "pipe_write")


def _iov(t, iov, cnt):
    if cnt > 1024:
        raise OSError(E.EINVAL, "")
    raw = copy_from_user(t.mm, iov, 16 * cnt)
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]


@syscall(20, "writev")
def sys_writev(k, t, fd, iov, cnt, *_):
    f = t.files.get(s32(fd))
    data = b"".join(copy_from_user(t.mm, b, n) for b, n in _iov(t, iov, cnt))
    return _write_all(k, t, f, data)


@syscall(19, "readv")
def sys_readv(k, t, fd, iov, cnt, *_):
    f = t.files.get(s32(fd))
    vec = _iov(t, iov, cnt)
    total = sum(n for _, n in vec)

    def op():
        data = f.read(total)
        pos = 0
        for b, n in vec:
            if pos >= len(data):
                break
            copy_to_user(t.mm, b, data[pos:pos + n])
            pos += n
        _wake_pipe(k, f)
        return len(data)
    return _blocking(k, t, f, op, "pipe_read")


@syscall(17, "pread64")
def sys_pread64(k, t, fd, buf, n, off, *_):
    f = t.files.get(s32(fd))
    if not hasattr(f, "pread"):
        return -E.ESPIPE
    if s64(off) < 0:
        return -E.EINVAL
    data = f.pread(min(n, MAX_RW), off)
    copy_to_user(t.mm, buf, data)
    return len(data)


@syscall(8, "lseek")
def sys_lseek(k, t, fd, off, whence, *_):
    f = t.files.get(s32(fd))
    if whence > 4:
        return -E.EINVAL
    return f.lseek(s64(off), whence)


@syscall(3, "close")
def sys_close(k, t, fd, *_):
    f = t.files.get(s32(fd))
    t.files.close(s32(fd))
    _wake_pipe(k, f)
    return 0


def _stat_bytes(s: dict) -> bytes:
    def ts(v):
        v = int(v or 0)
        return v // 10**9, v % 10**9
    a, m, c = ts(s.get("atime")), ts(s.get("mtime")), ts(s.get("ctime"))
    size = s.get("size", 0)
    return struct.pack("<QQQIIIIQqqq6q3q", s.get("dev", 0), s.get("ino", 0), s.get("nlink", 1),
                       s["mode"], s.get("uid", 0), s.get("gid", 0), 0, s.get("rdev", 0),
                       size, s.get("blksize", 4096), (size + 511) // 512,
                       a[0], a[1], m[0], m[1], c[0], c[1], 0, 0, 0)


def _host_stat(hp: str, follow: bool) -> dict:
    s = os.stat(hp) if follow else os.lstat(hp)
    return {"dev": s.st_dev, "ino": s.st_ino, "nlink": s.st_nlink, "mode": s.st_mode,
            "uid": s.st_uid, "gid": s.st_gid, "rdev": s.st_rdev, "size": s.st_size,
            "blksize": s.st_blksize, "atime": s.st_atime_ns, "mtime": s.st_mtime_ns,
            "ctime": s.st_ctime_ns}


def _path_stat(k, t, dirfd: int, path: bytes, flags: int) -> dict:
    if not path:
        if flags & AT_EMPTY_PATH:
            return t.files.get(dirfd).stat() if dirfd != AT_FDCWD else \
                _host_stat(host_path(k, guest_cwd(t)), True)
        raise OSError(E.ENOENT, "")
    p = _resolve_at(t, dirfd, path.decode(errors="surrogateescape"))
    clean = "/" + "/".join(x for x in p.split("/") if x and x != ".")
    if clean.startswith("/proc") or clean.startswith("/dev/"):
        return open_path(k, t, clean, O_RDONLY).stat()
    try:
        return _host_stat(host_path(k, clean, follow=not flags & AT_SYMLINK_NOFOLLOW),
                          not flags & AT_SYMLINK_NOFOLLOW)
    except FileNotFoundError:
        raise OSError(E.ENOENT, "") from None
    except NotADirectoryError:
        raise OSError(E.ENOTDIR, "") from None
    except PermissionError:
        raise OSError(E.EACCES, "") from None


def _resolve_at(t, dirfd: int, path: str) -> str:
    if path.startswith("/") or dirfd == AT_FDCWD:
        return normalize(guest_cwd(t), path)
    f = t.files.get(dirfd)
    if not st.S_ISDIR(f.mode):
        raise OSError(E.ENOTDIR, "")
    return normalize(f.path or "/", path)


@syscall(5, "fstat")
def sys_fstat(k, t, fd, buf, *_):
    copy_to_user(t.mm, buf, _stat_bytes(t.files.get(s32(fd)).stat()))
    return 0


@syscall(262, "newfstatat")
def sys_newfstatat(k, t, dirfd, path, buf, flags, *_):
    p = strncpy_from_user(t.mm, path)
    copy_to_user(t.mm, buf, _stat_bytes(_path_stat(k, t, s32(dirfd), p, flags)))
    return 0


@syscall(4, "stat")
def sys_stat(k, t, path, buf, *_):
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, 0)


@syscall(6, "lstat")
def sys_lstat(k, t, path, buf, *_):
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, AT_SYMLINK_NOFOLLOW)


@syscall(16, "ioctl")
def sys_ioctl(k, t, fd, req, arg, *_):
    f = t.files.get(s32(fd))
    req &= 0xFFFFFFFF
    if req == FIONREAD and isinstance(f, PipeEnd):
        put_u32(t.mm, arg, len(f.pipe.buf))
        return 0
    if not f.isatty():
        return -E.ENOTTY
    import fcntl
    import termios
    if req == TCGETS:
        copy_to_user(t.mm, arg, fcntl.ioctl(f.fd, termios.TCGETS, bytes(60)))
        return 0
    if req == TIOCGWINSZ:
        copy_to_user(t.mm, arg, fcntl.ioctl(f.fd, termios.TIOCGWINSZ, bytes(8)))
        return 0
    if req == TIOCGPGRP:
        put_u32(t.mm, arg, t.group.pgid)
        return 0
    if req in (TCSETS, TCSETS + 1, TCSETS + 2, TIOCSPGRP):
        return 0
    return -E.EINVAL


@syscall(257, "openat")
def sys_openat(k, t, dirfd, path, flags, mode, *_):
    p = strncpy_from_user(t.mm, path).decode(errors="surrogateescape")
    if not p:
        return -E.ENOENT
    full = _resolve_at(t, s32(dirfd), p)
    f = open_path(k, t, full, flags & 0xFFFFFFFF, mode)
    f.flags = flags & ~O_CLOEXEC
    return t.files.install(f, bool(flags & O_CLOEXEC))


@syscall(2, "open")
def sys_open(k, t, path, flags, mode, *_):
    return sys_openat(k, t, AT_FDCWD & 0xFFFFFFFF, path, flags, mode)


@syscall(32, "dup")
def sys_dup(k, t, fd, *_):
    return t.files.install(t.files.get(s32(fd)))


@syscall(292, "dup3")
def sys_dup3(k, t, old, new, flags, *_):
    old, new = s32(old), s32(new)
    if old == new or flags & ~O_CLOEXEC:
        return -E.EINVAL
    f = t.files.get(old)
    if not 0 <= new < FdTable.MAX:
        return -E.EBADF
    t.files.install_at(new, f, bool(flags & O_CLOEXEC))
    _wake_pipe(k, f)
    return new


@syscall(33, "dup2")
def sys_dup2(k, t, old, new, *_):
    f = t.files.get(s32(old))
    if s32(old) == s32(new):
        return s32(new)
    return sys_dup3(k, t, old, new, 0)


@syscall(72, "fcntl")
def sys_fcntl(k, t, fd, cmd, arg, *_):
    fd = s32(fd)
    f = t.files.get(fd)
    ent = t.files.fds[fd]
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if arg >= FdTable.MAX:
            return -E.EINVAL
        return t.files.install(f, cmd == F_DUPFD_CLOEXEC, lowest=arg)
    if cmd == F_GETFD:
        return 1 if ent[1] else 0
    if cmd == F_SETFD:
        ent[1] = bool(arg & 1)
        return 0
    if cmd == F_GETFL:
        return f.flags | (0o100000 if not isinstance(f, PipeEnd) else 0)
    if cmd == F_SETFL:
        f.flags = (f.flags & O_ACCMODE) | (arg & (O_NONBLOCK | 0o2000 | 0o40000 | 0o20000))
        return 0
    if cmd in (5, 6, 7):          # F_GETLK/F_SETLK/F_SETLKW: no other lockers
        return 0
    return -E.EINVAL


@syscall(293, "pipe2")
def sys_pipe2(k, t, fds, flags, *_):
    if flags & ~(O_CLOEXEC | O_NONBLOCK | 0o40000):
        return -E.EINVAL
    if not t.mm.is_mapped(fds & ~0xFFF, (fds + 8 + 0xFFF) & ~0xFFF):
        return -E.EFAULT
    p = Pipe()
    fl = flags & O_NONBLOCK
    r = t.files.install(PipeEnd(p, False, O_RDONLY | fl), bool(flags & O_CLOEXEC))
    w = t.files.install(PipeEnd(p, True, O_WRONLY | fl), bool(flags & O_CLOEXEC))
    try:
        copy_to_user(t.mm, fds, struct.pack("<ii", r, w))
    except Fault:
        t.files.close(r)
        t.files.close(w)
        raise
    return 0


@syscall(22, "pipe")
def sys_pipe(k, t, fds, *_):
    return sys_pipe2(k, t, fds, 0)


@syscall(89, "readlink")
def sys_readlink(k, t, path, buf, size, *_):
    return sys_readlinkat(k, t, AT_FDCWD & 0xFFFFFFFF, path, buf, size)


@syscall(267, "readlinkat")
def sys_readlinkat(k, t, dirfd, path, buf, size, *_):
    if s32(size) <= 0:
        return -E.EINVAL
    p = _resolve_at(t, s32(dirfd), strncpy_from_user(t.mm, path).decode(errors="surrogateescape"))
    clean = "/" + "/".join(x for x in p.split("/") if x and x != ".")
    if clean.startswith("/proc/"):
        from minios.procfs import proc_readlink
        target = proc_readlink(k, t, clean)
    else:
        hp = host_path(k, clean, follow=False)
        try:
            target = os.readlink(hp)
        except FileNotFoundError:
            return -E.ENOENT
        except OSError:
            return -E.EINVAL
    data = target.encode(errors="surrogateescape")[:size]
    copy_to_user(t.mm, buf, data)
    return len(data)


@syscall(79, "getcwd")
def sys_getcwd(k, t, buf, size, *_):
    cwd = guest_cwd(t).encode() + b"\0"
    if size < len(cwd):
        return -E.ERANGE
    copy_to_user(t.mm, buf, cwd)
    return len(cwd)


@syscall(80, "chdir")
def sys_chdir(k, t, path, *_):
    p = normalize(guest_cwd(t), strncpy_from_user(t.mm, path).decode(errors="surrogateescape"))
    clean = "/" + "/".join(x for x in p.split("/") if x and x not in (".",))
    hp = host_path(k, clean)
    if not os.path.exists(hp):
        return -E.ENOENT
    if not os.path.isdir(hp):
        return -E.ENOTDIR
    root = os.path.realpath(k.root)
    rel = os.path.relpath(hp, root)
    t.group.cwd = "/" if rel == "." else "/" + rel
    return 0


@syscall(269, "faccessat")
def sys_faccessat(k, t, dirfd, path, mode, *_):
    p = strncpy_from_user(t.mm, path)
    s = _path_stat(k, t, s32(dirfd), p, 0)
    if mode & 2 and not (s["mode"] & 0o170000 in (st.S_IFCHR,)) and \
            not p.startswith(b"/tmp"):
        return -E.EROFS
    if mode & 1 and not s["mode"] & 0o111:
        return -E.EACCES
    return 0


@syscall(439, "faccessat2")
def sys_faccessat2(k, t, dirfd, path, mode, flags, *_):
    return sys_faccessat(k, t, dirfd, path, mode)


@syscall(21, "access")
def sys_access(k, t, path, mode, *_):
    return sys_faccessat(k, t, AT_FDCWD & 0xFFFFFFFF, path, mode)


_DT = {st.S_IFDIR: 4, st.S_IFREG: 8, st.S_IFLNK: 10, st.S_IFCHR: 2, st.S_IFBLK: 6,
       st.S_IFIFO: 1, st.S_IFSOCK: 12}


def _dir_entries(f) -> list[tuple[int, int, bytes]]:
    """(inode, d_type, name) for a directory file, '.' and '..' first."""
    if getattr(f, "entries", None) is not None:
        return f.entries
    out = [(f.stat().get("ino", 1), 4, b"."), (1, 4, b"..")]
    host = getattr(f, "host", None)
    if host is not None:
        try:
            with os.scandir(host) as it:
                for e in sorted(it, key=lambda e: e.name):
                    try:
                        s = e.stat(follow_symlinks=False)
                        out.append((s.st_ino, _DT.get(st.S_IFMT(s.st_mode), 0),
                                    os.fsencode(e.name)))
                    except OSError:
                        continue
        except OSError:
            pass
    else:                       # synthesized (/proc): one name per line
        for name in f.data.decode().split():
            out.append((abs(hash(name)) & 0xFFFFFF, 4 if name.isdigit() or name == "self"
                        else 8, name.encode()))
    f.entries = out
    return out


@syscall(217, "getdents64")
def sys_getdents64(k, t, fd, buf, count, *_):
    f = t.files.get(s32(fd))
    if not st.S_ISDIR(f.mode):
        return -E.ENOTDIR
    ents = _dir_entries(f)
    out = bytearray()
    i = f.pos
    while i < len(ents):
        ino, typ, name = ents[i]
        reclen = (19 + len(name) + 1 + 7) & ~7
        if len(out) + reclen > count:
            if not out:
                return -E.EINVAL
            break
        rec = struct.pack("<QqHB", ino, i + 1, reclen, typ) + name + b"\0"
        out += rec.ljust(reclen, b"\0")
        i += 1
    copy_to_user(t.mm, buf, bytes(out))
    f.pos = i
    return len(out)
