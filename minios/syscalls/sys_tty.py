"""ioctl: the generic requests, and the terminal's, which go to the host
terminal (``fs.tty``) minios runs on."""
from __future__ import annotations

import errno as E
import stat as st
import struct

from minios.fs.files import O_NONBLOCK, DirFile, HostFd, PipeEnd
from minios.mm.uaccess import copy_from_user, copy_to_user, get_u32, put_u32
from minios.syscalls.common import s32
from minios.syscalls.kinds import (FD, IOCTL_CMD, PTR)
from minios.syscalls.table import syscall
from minios.uapi.ioctls import (
    FIOCLEX,
    FIONBIO,
    FIONCLEX,
    FIONREAD,
    TCFLSH,
    TCGETS,
    TCSBRK,
    TCSETS,
    TCSETSF,
    TCSETSW,
    TCXONC,
    TIOCGPGRP,
    TIOCGSID,
    TIOCGWINSZ,
    TIOCNOTTY,
    TIOCOUTQ,
    TIOCSCTTY,
    TIOCSPGRP,
    TIOCSWINSZ,
)


@syscall(16, "ioctl", FD, IOCTL_CMD, PTR)
def sys_ioctl(k, t, fd, req, arg, *_):
    fd = s32(fd)
    f = t.files.get(fd)
    req &= 0xFFFFFFFF
    if req in (FIOCLEX, FIONCLEX):
        t.files.fds[fd][1] = req == FIOCLEX
        return 0
    if req == FIONBIO:
        on = get_u32(t.mm, arg)
        f.flags = (f.flags | O_NONBLOCK) if on else (f.flags & ~O_NONBLOCK)
        return 0
    if req == FIONREAD:
        if isinstance(f, PipeEnd):
            n = len(f.pipe.buf)
        elif f.kind == "sock":
            n = f.inq()
        elif isinstance(f, DirFile):
            return -E.ENOTTY
        elif isinstance(f, HostFd):
            import fcntl
            import termios
            try:
                n = struct.unpack("<i", fcntl.ioctl(f.fd, termios.FIONREAD, bytes(4)))[0]
            except OSError:
                return -E.ENOTTY
        elif st.S_ISREG(f.stat()["mode"]):
            n = max(0, f.stat()["size"] - f.pos)
        else:
            return -E.ENOTTY
        put_u32(t.mm, arg, n)
        return 0
    if not f.isatty():
        return -E.ENOTTY
    return _tty_ioctl(k, t, f, req, arg)


def _tty_ioctl(k, t, f, req: int, arg: int):
    import fcntl
    hfd = f.fd
    try:
        if req == TCGETS:
            copy_to_user(t.mm, arg, fcntl.ioctl(hfd, TCGETS, bytes(36)))
            return 0
        if req in (TCSETS, TCSETSW, TCSETSF):
            data = copy_from_user(t.mm, arg, 36)
            k.tty.save(hfd)
            fcntl.ioctl(hfd, req, data)
            return 0
        if req == TIOCGWINSZ:
            copy_to_user(t.mm, arg, fcntl.ioctl(hfd, TIOCGWINSZ, bytes(8)))
            return 0
        if req == TIOCSWINSZ:
            fcntl.ioctl(hfd, TIOCSWINSZ, copy_from_user(t.mm, arg, 8))
            return 0
        if req in (TCSBRK, TCXONC, TCFLSH):
            fcntl.ioctl(hfd, req, arg & 0xFFFFFFFF)
            return 0
        if req == TIOCOUTQ:
            put_u32(t.mm, arg, 0)
            return 0
    except OSError as e:
        return -(e.errno or E.EIO)
    if req == TIOCGPGRP:
        put_u32(t.mm, arg, k.tty.foreground_pgrp(hfd, t.group.pgid))
        return 0
    if req == TIOCSPGRP:
        pg = s32(get_u32(t.mm, arg))
        if pg < 0:
            return -E.EINVAL
        if not any(g.pgid == pg for g in k.groups.values()):
            return -E.EPERM
        k.tty.set_foreground_pgrp(hfd, pg)
        return 0
    if req == TIOCGSID:
        put_u32(t.mm, arg, t.group.sid)
        return 0
    if req in (TIOCSCTTY, TIOCNOTTY):
        return 0
    return -E.ENOTTY
