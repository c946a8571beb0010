"""socketpair(2): connected pairs of AF_UNIX sockets, as Linux's.

Each direction of a pair is a queue: bytes for SOCK_STREAM, whole messages
for SOCK_DGRAM and SOCK_SEQPACKET (a read takes one message and drops what
does not fit). The descriptors are ``SocketEnd`` files, so read, write,
readv, writev, poll, epoll, fstat, close and blocking work as for pipes
(``sys_fs``); send/recv and their flags, shutdown, getsockopt and the
unnamed addresses are here. Named sockets (socket, bind, connect, listen,
accept), sendmsg/recvmsg and setsockopt are not implemented: ENOSYS.

What Linux does and this follows:
* closing one end, or shutdown(SHUT_WR), is end of file for the other's
  reads of a stream or seqpacket socket, and EPIPE (with SIGPIPE unless
  MSG_NOSIGNAL) for its writes; a datagram socket whose peer closed keeps
  waiting on reads and refuses writes with ECONNREFUSED;
* a stream accepts up to its send buffer (SO_SNDBUF, 212992 bytes) and
  blocks or writes part; a message larger than it is EMSGSIZE.
"""
from __future__ import annotations

import collections
import errno
import stat as st

from minios.files import _IN, _OUT, O_RDWR, POLLERR, POLLHUP, Again, File

AF_UNIX = 1
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SNDBUF = 212992              # net.core.wmem_default
POLLRDHUP = 0x2000


class _Queue:
    """One direction: what one end wrote and the other has not read."""

    def __init__(self, packets: bool) -> None:
        self.data: bytearray | collections.deque = \
            collections.deque() if packets else bytearray()
        self.size = 0                # bytes queued


class SocketPair:
    """The state both ends share, and what blocked tasks sleep on."""

    def __init__(self, kernel, kind: int) -> None:
        self.kernel = kernel
        self.kind = kind
        packets = kind != SOCK_STREAM
        self.q = (_Queue(packets), _Queue(packets))   # q[i]: written by end i
        self.ends: list[SocketEnd] = []
        self.gen = 0

    def changed(self) -> None:
        self.gen += 1
        self.kernel.wake_sleepers(self)


class SocketEnd(File):
    """One end. ``rcv_shut``/``snd_shut`` are Linux's sk_shutdown bits of
    this socket: its own shutdown sets them, and for the connected kinds
    (stream, seqpacket) the peer's shutdown and close set them too."""
    kind = "sock"
    mode = st.S_IFSOCK | 0o777
    pollable = wakes_waiters = True

    def __init__(self, pair: SocketPair, side: int, flags: int) -> None:
        super().__init__(O_RDWR | flags)
        self.pair, self.side = pair, side
        self.tx, self.rx = pair.q[side], pair.q[1 - side]
        self.rcv_shut = self.snd_shut = False
        self.dead = False
        pair.ends.append(self)

    @property
    def peer(self) -> "SocketEnd":
        return self.pair.ends[1 - self.side]

    # -- data
    def read(self, n: int, peek: bool = False) -> bytes:
        rx, p = self.rx, self.pair
        if not rx.data:
            if self.rcv_shut:
                return b""
            raise Again
        if p.kind == SOCK_STREAM:
            out = bytes(rx.data[:n])
            if not peek:
                del rx.data[:n]
                rx.size -= len(out)
        else:
            msg = rx.data[0] if peek else rx.data.popleft()
            if not peek:
                rx.size -= len(msg)
            out = msg[:n]
        p.gen += 1
        return out

    def write(self, data: bytes) -> int:
        tx, p = self.tx, self.pair
        if self.snd_shut:
            raise OSError(errno.EPIPE, "")
        if p.kind == SOCK_DGRAM and self.peer.dead:
            raise OSError(errno.ECONNREFUSED, "")
        if p.kind == SOCK_STREAM:
            room = SNDBUF - tx.size
            if room <= 0:
                raise Again
            chunk = data[:room]
            tx.data += chunk
            tx.size += len(chunk)
            p.gen += 1
            return len(chunk)
        if len(data) > SNDBUF:
            raise OSError(errno.EMSGSIZE, "")
        if tx.size + len(data) > SNDBUF:
            raise Again
        tx.data.append(bytes(data))
        tx.size += len(data)
        p.gen += 1
        return len(data)

    def shutdown(self, how: int) -> None:
        """SHUT_RD (0), SHUT_WR (1) or SHUT_RDWR (2)."""
        connected = self.pair.kind != SOCK_DGRAM and not self.peer.dead
        if how != 1:
            self.rcv_shut = True
            if connected:
                self.peer.snd_shut = True
        if how != 0:
            self.snd_shut = True
            if connected:
                self.peer.rcv_shut = True
        self.pair.changed()

    # -- readiness (Linux's unix_poll)
    def readable_now(self) -> bool:
        return bool(self.rx.data) or self.rcv_shut

    def writable_now(self) -> bool:
        return (self.snd_shut or self.tx.size < SNDBUF
                or (self.pair.kind == SOCK_DGRAM and self.peer.dead))

    def poll(self, events: int) -> int:
        r = 0
        if self.rcv_shut and self.snd_shut:
            r |= POLLHUP
        if self.rcv_shut:
            r |= POLLRDHUP | _IN
        if self.rx.data:
            r |= _IN
        if self.tx.size * 4 <= SNDBUF:          # unix_writable
            r |= _OUT
        return r & (events | POLLERR | POLLHUP)

    @property
    def wait_key(self):
        return self.pair

    @property
    def gen(self) -> int:
        return self.pair.gen

    def stat(self) -> dict:
        return dict(super().stat(), ino=id(self) & 0xFFFFF, size=0)

    def close(self) -> None:
        if self.dead:
            return
        self.dead = True
        if self.pair.kind != SOCK_DGRAM:
            peer = self.peer
            peer.rcv_shut = peer.snd_shut = True
        self.pair.changed()
