"""Socket system calls: socketpair and what a connected pair supports
(send/recv, shutdown, getsockopt, names). The sockets are ``minios/sockets.py``;
socket(2) and the named-socket calls are not implemented (ENOSYS)."""
from __future__ import annotations

import errno as E
import struct

from minios.files import O_CLOEXEC, O_NONBLOCK, Again
from minios.sockets import (
    AF_UNIX,
    SNDBUF,
    SOCK_DGRAM,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SocketEnd,
    SocketPair,
)
from minios.sys_fs import _blocking, _oserr, _user_source, _wake_pipe, install_pair, s32
from minios.syscalls import syscall
from minios.uaccess import copy_from_user, copy_to_user, user_prefix

SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
SOCK_RAW, SOCK_MAX = 3, 11
AF_MAX = 46
# Families Linux has whose sockets cannot be made in pairs (EOPNOTSUPP).
_NO_PAIRS = {2, 10, 16, 17}                    # AF_INET, AF_INET6, AF_NETLINK, AF_PACKET
MSG_OOB, MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x20, 0x40
MSG_WAITALL, MSG_NOSIGNAL = 0x100, 0x4000
SOL_SOCKET = 1
SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_ACCEPTCONN = 3, 4, 7, 8, 30
SO_PROTOCOL, SO_DOMAIN = 38, 39


def _sock(t, fd: int) -> SocketEnd:
    f = t.files.get(s32(fd))                   # EBADF
    if not isinstance(f, SocketEnd):
        raise OSError(E.ENOTSOCK, "")
    return f


class _Nonblocking:
    """What sys_fs._blocking looks at, with O_NONBLOCK for MSG_DONTWAIT."""
    host_poll = False

    def __init__(self, f: SocketEnd) -> None:
        self.flags, self.wait_key = f.flags | O_NONBLOCK, f.wait_key


@syscall(53, "socketpair")
def sys_socketpair(k, t, domain, type_, protocol, sv, *_):
    domain, type_, protocol = s32(domain), s32(type_), s32(protocol)
    kind, flags = type_ & 0xF, type_ & ~0xF
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC) or not 0 < kind < SOCK_MAX:
        return -E.EINVAL
    if not 0 <= domain < AF_MAX:
        return -E.EAFNOSUPPORT
    if domain != AF_UNIX:
        return -E.EOPNOTSUPP if domain in _NO_PAIRS else -E.EAFNOSUPPORT
    if protocol not in (0, AF_UNIX):
        return -E.EPROTONOSUPPORT
    if kind == SOCK_RAW:                       # as Linux's unix_create
        kind = SOCK_DGRAM
    if kind not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        return -E.ESOCKTNOSUPPORT
    pair = SocketPair(k, kind)
    fl = flags & SOCK_NONBLOCK
    return install_pair(t, SocketEnd(pair, 0, fl), SocketEnd(pair, 1, fl),
                        bool(flags & SOCK_CLOEXEC), sv)


@syscall(44, "sendto")
def sys_sendto(k, t, fd, buf, n, flags, addr, addrlen):
    f = _sock(t, fd)
    if flags & MSG_OOB:
        return -E.EOPNOTSUPP
    if addr and addrlen:
        # A connected pair: an address is EISCONN for the connected kinds;
        # sending a datagram to a named socket needs names minios lacks.
        return -E.EISCONN if f.pair.kind != SOCK_DGRAM else -E.EOPNOTSUPP
    data = _user_source(t, f, ((buf, min(n, 1 << 31)),))
    if isinstance(data, int):
        return data
    done = [0]

    def op():                                  # (Again propagates: block, or EAGAIN)
        try:
            while True:
                done[0] += f.write(data[done[0]:])
                _wake_pipe(k, f)
                if done[0] >= len(data):
                    return len(data)
        except OSError as e:
            if done[0]:
                return done[0]
            if e.errno == E.EPIPE and flags & MSG_NOSIGNAL:
                return -E.EPIPE
            return _oserr(k, t, e)
    return _blocking(k, t, _Nonblocking(f) if flags & MSG_DONTWAIT else f, op, "sock_send")


@syscall(45, "recvfrom")
def sys_recvfrom(k, t, fd, buf, n, flags, addr, addrlen):
    f = _sock(t, fd)
    if flags & MSG_OOB:
        return -E.EOPNOTSUPP
    n = min(n, 1 << 31)
    avail = user_prefix(t.mm, buf, n, True) if n else 0
    if n and not avail:
        return -E.EFAULT
    g = _Nonblocking(f) if flags & MSG_DONTWAIT else f
    peek = bool(flags & MSG_PEEK)
    got = bytearray()                          # MSG_WAITALL: kept across retries

    def op():
        if f.pair.kind != SOCK_STREAM:
            whole = len(f.rx.data[0]) if f.rx.data else 0
            data = f.read(avail, peek)         # one message (or Again, or EOF)
            size = whole if flags & MSG_TRUNC else len(data)
        elif flags & MSG_WAITALL and not peek:
            while len(got) < avail:
                try:
                    part = f.read(avail - len(got))
                except Again:
                    if got and g.flags & O_NONBLOCK:
                        break
                    raise
                if not part:                   # end of file
                    break
                got.extend(part)
                _wake_pipe(k, f)
            data = bytes(got)
            size = len(data)
        else:
            data = f.read(avail, peek)
            size = len(data)
        copy_to_user(t.mm, buf, data)
        _wake_pipe(k, f)
        if addr and addrlen:
            copy_to_user(t.mm, addrlen, struct.pack("<I", 0))     # the peer is unnamed
        return size
    return _blocking(k, t, g, op, "sock_recv")


@syscall(48, "shutdown")
def sys_shutdown(k, t, fd, how, *_):
    f = _sock(t, fd)
    how = s32(how)
    if how not in (0, 1, 2):
        return -E.EINVAL
    f.shutdown(how)
    return 0


@syscall(55, "getsockopt")
def sys_getsockopt(k, t, fd, level, name, val, lenp, *_):
    f = _sock(t, fd)
    level, name = s32(level), s32(name)
    opts = {SO_TYPE: f.pair.kind, SO_ERROR: 0, SO_SNDBUF: SNDBUF, SO_RCVBUF: SNDBUF,
            SO_ACCEPTCONN: 0, SO_PROTOCOL: 0, SO_DOMAIN: AF_UNIX}
    if level != SOL_SOCKET or name not in opts:
        return -E.ENOPROTOOPT
    n = s32(struct.unpack("<I", copy_from_user(t.mm, lenp, 4))[0])
    if n < 0:
        return -E.EINVAL
    n = min(n, 4)
    copy_to_user(t.mm, val, struct.pack("<i", opts[name])[:n])
    copy_to_user(t.mm, lenp, struct.pack("<I", n))
    return 0


def _name(k, t, fd, addr, lenp) -> int:
    """An unnamed AF_UNIX address: the family alone (2 bytes)."""
    _sock(t, fd)
    n = s32(struct.unpack("<I", copy_from_user(t.mm, lenp, 4))[0])
    if n < 0:
        return -E.EINVAL
    copy_to_user(t.mm, addr, struct.pack("<H", AF_UNIX)[:n])
    copy_to_user(t.mm, lenp, struct.pack("<I", 2))
    return 0


@syscall(51, "getsockname")
def sys_getsockname(k, t, fd, addr, lenp, *_):
    return _name(k, t, fd, addr, lenp)


@syscall(52, "getpeername")
def sys_getpeername(k, t, fd, addr, lenp, *_):
    return _name(k, t, fd, addr, lenp)
