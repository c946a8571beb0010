"""Socket system calls: socketpair and what a connected pair supports
(send/recv, sendmsg/recvmsg with SCM_RIGHTS, shutdown, getsockopt, names).
The sockets are ``minios/net/sockets.py``; socket(2) and the named-socket
calls are not implemented (ENOSYS)."""
from __future__ import annotations

import errno as E
import struct

from minios.fs.files import O_NONBLOCK, Again
from minios.net.sockets import (AF_UNIX, SNDBUF, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM,
                            SocketEnd, SocketPair, drop_files)
from minios.syscalls.common import (blocking, iov_prefix, oserr, read_iovec, s32, scatter,
                                    user_source, wake_pipe)
from minios.syscalls.sys_fd import install_pair
from minios.proc.task import BLOCK
from minios.syscalls.kinds import (FAMILY, FD, FD_PAIR, INT, IN_BUF, MSG_FLAGS, OUT_BUF, PTR,
                                   SHUT_HOW, SIZE, SOCKOPT_LEVEL, SOCK_TYPE)
from minios.syscalls.table import syscall
from minios.uapi.socket import (MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_OOB,
                                MSG_PEEK, MSG_TRUNC, MSG_WAITALL, SOCK_CLOEXEC, SOCK_MAX,
                                SOCK_NONBLOCK, SOCK_RAW, SOL_SOCKET)
from minios.mm.uaccess import copy_from_user, copy_to_user, user_prefix

# Families Linux has whose sockets cannot be made in pairs (EOPNOTSUPP).
_NO_PAIRS = {2, 10, 16, 17}                    # AF_INET, AF_INET6, AF_NETLINK, AF_PACKET
SCM_RIGHTS, SCM_CREDENTIALS, SCM_MAX_FD = 1, 2, 253
_CMSG_HDR = 16                                 # struct cmsghdr: len, level, type
SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_ACCEPTCONN = 3, 4, 7, 8, 30
SO_PROTOCOL, SO_DOMAIN = 38, 39
_MIN_SNDBUF, _MIN_RCVBUF = 4608, 2304           # SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF


def _sock(t, fd: int, flags: int = 0) -> SocketEnd:
    """The socket at ``fd`` (EBADF, ENOTSOCK); out-of-band data in
    ``flags`` is EOPNOTSUPP, as on AF_UNIX sockets."""
    f = t.files.get(s32(fd))
    if not isinstance(f, SocketEnd):
        raise OSError(E.ENOTSOCK, "")
    if flags & MSG_OOB:
        raise OSError(E.EOPNOTSUPP, "")
    return f


class _Nonblocking:
    """What common.blocking looks at, with O_NONBLOCK for MSG_DONTWAIT."""
    host_poll = False

    def __init__(self, f: SocketEnd) -> None:
        self.flags, self.wait_key = f.flags | O_NONBLOCK, f.wait_key


@syscall(53, "socketpair", FAMILY, SOCK_TYPE, INT, FD_PAIR)
def sys_socketpair(k, t, domain, type_, protocol, sv, *_):
    domain, type_, protocol = s32(domain), s32(type_), s32(protocol)
    kind, flags = type_ & 0xF, type_ & ~0xF
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC) or not 0 < kind < SOCK_MAX:
        return -E.EINVAL
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


def _send(k, t, f: SocketEnd, data: bytes, flags: int, files: list) -> int:
    """sendto/sendmsg: all of ``data`` (a stream blocks for room unless
    MSG_DONTWAIT), with ``files`` (referenced by the caller) on the first
    part. Files not queued in the end are let go."""
    done, pending = [0], [files]

    def op():                                  # (Again propagates: block, or EAGAIN)
        try:
            while True:
                done[0] += f.write(data[done[0]:], pending[0])
                pending[0] = []
                wake_pipe(k, f)
                if done[0] >= len(data):
                    return len(data)
        except OSError as e:
            drop_files(pending[0])
            pending[0] = []
            if done[0]:
                return done[0]
            if e.errno == E.EPIPE and flags & MSG_NOSIGNAL:
                return -E.EPIPE
            return oserr(k, t, e)
    r = blocking(k, t, _Nonblocking(f) if flags & MSG_DONTWAIT else f, op, "sock_send")
    if r is not BLOCK:
        drop_files(pending[0])                 # EAGAIN
        return r
    inner = t.retry

    def retry():                               # a signal ends the wait: let go of them
        res = inner()
        if res is not BLOCK:
            drop_files(pending[0])
            pending[0] = []
        return res
    t.retry = retry
    return r


def _recv(k, t, f: SocketEnd, total: int, flags: int, deliver) -> int:
    """recvfrom/recvmsg: up to ``total`` bytes (a stream; all of them with
    MSG_WAITALL unless end of file) or one message. ``deliver(data, files,
    truncated)`` copies them out; the result is the length read, or with
    MSG_TRUNC a message's whole length."""
    g = _Nonblocking(f) if flags & MSG_DONTWAIT else f
    peek = bool(flags & MSG_PEEK)
    got, gfiles = bytearray(), []              # MSG_WAITALL: kept across retries

    def done(data: bytes, files: list, whole: int) -> int:
        deliver(data, files, whole > len(data))
        wake_pipe(k, f)
        return whole if flags & MSG_TRUNC else len(data)

    def op():
        if f.pair.kind != SOCK_STREAM:
            whole = f.peek_size()
            data, files = f.recv(total, peek)  # one message (or Again, or EOF)
            return done(data, files, whole)
        if not flags & MSG_WAITALL or peek:
            data, files = f.recv(total, peek)
            return done(data, files, len(data))
        while len(got) < total:
            try:
                part, files = f.recv(total - len(got))
            except Again:
                if got and g.flags & O_NONBLOCK:
                    break
                raise
            gfiles.extend(files)
            if not part:                       # end of file
                break
            got.extend(part)
            wake_pipe(k, f)
            if files:                          # a read stops after files
                break
        return done(bytes(got), gfiles, len(got))
    return blocking(k, t, g, op, "sock_recv")


def _check_name(f: SocketEnd, addr: int, addrlen: int) -> int:
    """A destination address on a connected pair: EISCONN for the connected
    kinds; a datagram to a named socket needs names minios lacks."""
    if addr and addrlen:
        return -E.EISCONN if f.pair.kind != SOCK_DGRAM else -E.EOPNOTSUPP
    return 0


@syscall(44, "sendto", FD, IN_BUF, SIZE, MSG_FLAGS, PTR, INT)
def sys_sendto(k, t, fd, buf, n, flags, addr, addrlen):
    f = _sock(t, fd, flags)
    r = _check_name(f, addr, addrlen)
    if r:
        return r
    data = user_source(t, f, ((buf, min(n, 1 << 31)),))
    if isinstance(data, int):
        return data
    return _send(k, t, f, data, flags, [])


@syscall(45, "recvfrom", FD, OUT_BUF, SIZE, MSG_FLAGS, PTR, PTR)
def sys_recvfrom(k, t, fd, buf, n, flags, addr, addrlen):
    f = _sock(t, fd, flags)
    n = min(n, 1 << 31)
    avail = user_prefix(t.mm, buf, n, True) if n else 0
    if n and not avail:
        return -E.EFAULT

    def deliver(data, files, truncated):
        drop_files(files)                      # no room for them: closed
        copy_to_user(t.mm, buf, data)
        if addr and addrlen:
            copy_to_user(t.mm, addrlen, struct.pack("<I", 0))     # the peer is unnamed
    return _recv(k, t, f, avail, flags, deliver)


def _msghdr(t, msg: int) -> tuple:
    """(name, namelen, iov, iovlen, control, controllen) of a struct msghdr."""
    return struct.unpack("<QI4xQQQQ", copy_from_user(t.mm, msg, 48))


@syscall(46, "sendmsg", FD, PTR, MSG_FLAGS)
def sys_sendmsg(k, t, fd, msg, flags, *_):
    f = _sock(t, fd, flags)
    name, namelen, iov, iovlen, control, controllen = _msghdr(t, msg)
    r = _check_name(f, name, namelen)
    if r:
        return r
    vec = read_iovec(t, iov, iovlen)
    files: list = []
    if controllen >= _CMSG_HDR:                # shorter: no message at all, as Linux
        if controllen > 1 << 16:
            return -E.ENOBUFS
        raw = copy_from_user(t.mm, control, controllen)
        pos = 0
        while pos + _CMSG_HDR <= len(raw):     # Linux's __scm_send
            clen, level, typ = struct.unpack_from("<Qii", raw, pos)
            if clen < _CMSG_HDR or pos + clen > len(raw):
                return -E.EINVAL
            if level == SOL_SOCKET:
                if typ == SCM_RIGHTS:
                    n = (clen - _CMSG_HDR) // 4
                    if len(files) + n > SCM_MAX_FD:
                        return -E.EINVAL
                    fds = struct.unpack_from(f"<{n}i", raw, pos + _CMSG_HDR)
                    files += [t.files.get(d) for d in fds]      # EBADF
                elif typ != SCM_CREDENTIALS:   # (credentials: nobody can ask for them)
                    return -E.EINVAL
            pos += (clen + 7) & ~7
    data = user_source(t, f, vec)
    if isinstance(data, int):
        return data
    for x in files:                            # in flight: referenced until received
        x.refs += 1
    return _send(k, t, f, data, flags, files)


@syscall(47, "recvmsg", FD, PTR, MSG_FLAGS)
def sys_recvmsg(k, t, fd, msg, flags, *_):
    f = _sock(t, fd, flags)
    name, namelen, iov, iovlen, control, controllen = _msghdr(t, msg)
    vec = read_iovec(t, iov, iovlen)
    want = sum(n for _, n in vec)
    total = iov_prefix(t, vec, True)
    if want and not total:
        return -E.EFAULT

    def deliver(data, files, truncated):
        scatter(t, vec, data)
        out = MSG_TRUNC if truncated else 0
        used = 0
        if files:                              # Linux's scm_detach_fds
            room = (controllen - _CMSG_HDR) // 4 if control and controllen >= _CMSG_HDR else 0
            give, rest = files[:max(room, 0)], files[max(room, 0):]
            fds = []
            for x in give:
                try:
                    fds.append(t.files.install(x, bool(flags & MSG_CMSG_CLOEXEC)))
                except OSError:                # EMFILE: the rest are closed
                    rest = give[len(fds):] + rest
                    break
                x.refs -= 1                    # the in-flight reference is now the fd's
            if rest:
                out |= MSG_CTRUNC
                drop_files(rest)
            if fds:
                clen = _CMSG_HDR + 4 * len(fds)
                copy_to_user(t.mm, control, struct.pack(f"<Qii{len(fds)}i", clen, SOL_SOCKET,
                                                        SCM_RIGHTS, *fds))
                used = min(controllen, (clen + 7) & ~7)
        if name:
            copy_to_user(t.mm, msg + 8, struct.pack("<I", 0))     # the peer is unnamed
        copy_to_user(t.mm, msg + 40, struct.pack("<Q", used))
        copy_to_user(t.mm, msg + 48, struct.pack("<i", out))
    return _recv(k, t, f, total, flags, deliver)


@syscall(48, "shutdown", FD, SHUT_HOW)
def sys_shutdown(k, t, fd, how, *_):
    f = _sock(t, fd)
    how = s32(how)
    if how not in (0, 1, 2):
        return -E.EINVAL
    f.shutdown(how)
    return 0


@syscall(55, "getsockopt", FD, SOCKOPT_LEVEL, INT, PTR, PTR)
def sys_getsockopt(k, t, fd, level, name, val, lenp, *_):
    f = _sock(t, fd)
    level, name = s32(level), s32(name)
    opts = {SO_TYPE: f.pair.kind, SO_ERROR: 0, SO_SNDBUF: f.sndbuf, SO_RCVBUF: f.rcvbuf,
            SO_ACCEPTCONN: 0, SO_PROTOCOL: 0, SO_DOMAIN: AF_UNIX}
    if level != SOL_SOCKET or name not in opts:
        return -E.ENOPROTOOPT
    n = min(_socklen(t, lenp), 4)
    copy_to_user(t.mm, val, struct.pack("<i", opts[name])[:n])
    copy_to_user(t.mm, lenp, struct.pack("<I", n))
    return 0


@syscall(54, "setsockopt", FD, SOCKOPT_LEVEL, INT, PTR, INT)
def sys_setsockopt(k, t, fd, level, name, val, optlen, *_):
    """The buffer sizes, as Linux's sock_setsockopt: twice the value asked
    for, within [SOCK_MIN_SNDBUF, 2 * wmem_max] (receive: SOCK_MIN_RCVBUF).
    Other options are ENOPROTOOPT: minios would not honour them."""
    f = _sock(t, fd)
    if s32(level) != SOL_SOCKET or s32(name) not in (SO_SNDBUF, SO_RCVBUF):
        return -E.ENOPROTOOPT
    if s32(optlen) < 4:
        return -E.EINVAL
    v = min(struct.unpack("<I", copy_from_user(t.mm, val, 4))[0], SNDBUF)
    if s32(name) == SO_SNDBUF:
        f.sndbuf = max(2 * v, _MIN_SNDBUF)
        f.pair.changed()                       # more room may wake writers
    else:
        f.rcvbuf = max(2 * v, _MIN_RCVBUF)
    return 0


def _socklen(t, lenp: int) -> int:
    """The socklen_t at ``lenp``: a buffer's size, EINVAL if negative."""
    n = s32(struct.unpack("<I", copy_from_user(t.mm, lenp, 4))[0])
    if n < 0:
        raise OSError(E.EINVAL, "")
    return n


def _name(k, t, fd, addr, lenp) -> int:
    """An unnamed AF_UNIX address: the family alone (2 bytes)."""
    _sock(t, fd)
    n = _socklen(t, lenp)
    copy_to_user(t.mm, addr, struct.pack("<H", AF_UNIX)[:n])
    copy_to_user(t.mm, lenp, struct.pack("<I", 2))
    return 0


@syscall(51, "getsockname", FD, PTR, PTR)
def sys_getsockname(k, t, fd, addr, lenp, *_):
    return _name(k, t, fd, addr, lenp)


@syscall(52, "getpeername", FD, PTR, PTR)
def sys_getpeername(k, t, fd, addr, lenp, *_):
    return _name(k, t, fd, addr, lenp)
