"""socketpair(2): connected pairs of AF_UNIX sockets, as Linux's.

Each direction of a pair is a queue: bytes for SOCK_STREAM, whole messages
for SOCK_DGRAM and SOCK_SEQPACKET (a read takes one message and drops what
does not fit). The descriptors are ``SocketEnd`` files, so read, write,
readv, writev, poll, epoll, fstat, close and blocking work as for pipes
(``syscalls/common.py``); send/recv, sendmsg/recvmsg and their flags, shutdown,
getsockopt, setsockopt (the buffer sizes) and the unnamed addresses are in
``sys_net``. Descriptors travel
as SCM_RIGHTS: a message holds references to the files until they are
received (installed), or dropped by a read with no room for them or by
the receiver's close. Named sockets (socket, bind, connect, listen,
accept) are not implemented: ENOSYS.

What Linux does and this follows:
* closing one end, or shutdown(SHUT_WR), is end of file for the other's
  reads of a stream or seqpacket socket, and EPIPE (with SIGPIPE unless
  MSG_NOSIGNAL) for its writes; a datagram socket whose peer closed keeps
  waiting on reads and refuses writes with ECONNREFUSED;
* a stream accepts up to its send buffer (SO_SNDBUF, 212992 bytes unless
  set) and blocks or writes part; a message larger than it is EMSGSIZE.
"""
from __future__ import annotations

import collections
import errno
import stat as st

from minios.fs.files import _IN, _OUT, O_RDWR, POLLERR, POLLHUP, Again, File, fput
from minios.uapi.socket import AF_UNIX, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM  # noqa: F401

SNDBUF = 212992              # net.core.wmem_default
POLLRDHUP = 0x2000


def drop_files(files) -> None:
    """Let go of files in flight (SCM_RIGHTS) that no one will receive."""
    for f in files:
        fput(f)


class _Queue:
    """One direction: what one end wrote and the other has not read.
    Messages are (bytes, files) pairs; a stream is bytes, with the files
    each send carried kept as (start, end, files) in stream offsets."""

    def __init__(self, packets: bool) -> None:
        self.data: bytearray | collections.deque = \
            collections.deque() if packets else bytearray()
        self.size = 0                # bytes queued
        self.head = 0                # stream offset of data[0]
        self.marks: collections.deque = collections.deque()   # (start, end, files)

    def drop(self) -> None:
        """The reader is gone: the files in flight to it are released."""
        for _start, _end, files in self.marks:
            drop_files(files)
        self.marks.clear()
        if isinstance(self.data, collections.deque):
            for _msg, files in self.data:
                drop_files(files)


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
        self.sndbuf = self.rcvbuf = SNDBUF       # SO_SNDBUF, SO_RCVBUF
        pair.ends.append(self)

    @property
    def peer(self) -> "SocketEnd":
        return self.pair.ends[1 - self.side]

    # -- data
    def read(self, n: int, peek: bool = False) -> bytes:
        """read(2): the files in flight with the data are closed."""
        out, files = self.recv(n, peek)
        drop_files(files)
        return out

    def recv(self, n: int, peek: bool = False) -> tuple[bytes, list]:
        """Up to ``n`` bytes (a stream) or one message, and the files sent
        with them. As Linux's unix_stream_read_generic, a stream read stops
        at the end of the first send that carried files."""
        rx, p = self.rx, self.pair
        if not rx.data:
            if self.rcv_shut:
                return b"", []
            raise Again
        files: list = []
        if p.kind == SOCK_STREAM:
            if rx.marks and rx.marks[0][0] < rx.head + n:
                _start, end, fl = rx.marks[0]
                n = min(n, end - rx.head)
                if not peek:
                    rx.marks.popleft()
                    files = fl
            out = bytes(rx.data[:n])
            if not peek:
                del rx.data[:n]
                rx.size -= len(out)
                rx.head += len(out)
        else:
            msg, fl = rx.data[0] if peek else rx.data.popleft()
            if not peek:
                rx.size -= len(msg)
                files = fl
            out = msg[:n]
        p.gen += 1
        return out, files

    def inq(self) -> int:
        """FIONREAD (SIOCINQ): the bytes queued (a stream) or the size of
        the next message, as Linux's unix_inq_len."""
        return self.rx.size if self.pair.kind == SOCK_STREAM else self.peek_size()

    def peek_size(self) -> int:
        """The length of the next message (packet kinds)."""
        return len(self.rx.data[0][0]) if self.rx.data else 0

    def write(self, data: bytes, files: list | None = None) -> int:
        """Queue ``data`` (all of a message, or what fits of a stream) and
        ``files`` with it; the caller took a reference on each file."""
        tx, p = self.tx, self.pair
        if self.snd_shut:
            raise OSError(errno.EPIPE, "")
        if p.kind == SOCK_DGRAM and self.peer.dead:
            raise OSError(errno.ECONNREFUSED, "")
        if p.kind == SOCK_STREAM:
            if files and not data:             # no bytes, no message: Linux drops them
                drop_files(files)
                return 0
            room = self.sndbuf - tx.size
            if room <= 0:
                raise Again
            chunk = data[:room]
            if files:
                end = tx.head + tx.size
                tx.marks.append((end, end + len(chunk), files))
            tx.data += chunk
            tx.size += len(chunk)
            p.gen += 1
            return len(chunk)
        if len(data) > self.sndbuf:
            raise OSError(errno.EMSGSIZE, "")
        if tx.size + len(data) > self.sndbuf:
            raise Again
        tx.data.append((bytes(data), files or []))
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
        return (self.snd_shut or self.tx.size < self.sndbuf
                or (self.pair.kind == SOCK_DGRAM and self.peer.dead))

    def poll(self, events: int) -> int:
        r = 0
        if self.rcv_shut and self.snd_shut:
            r |= POLLHUP
        if self.rcv_shut:
            r |= POLLRDHUP | _IN
        if self.rx.data:
            r |= _IN
        if self.tx.size * 4 <= self.sndbuf:     # unix_writable
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
        self.rx.drop()                         # what was in flight to this end
        if self.pair.kind != SOCK_DGRAM:
            peer = self.peer
            peer.rcv_shut = peer.snd_shut = True
        self.pair.changed()
