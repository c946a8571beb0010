"""epoll and eventfd: what Go's runtime, libuv and most event loops wait with.

An epoll instance is a file holding an interest list. Readiness is the same
check poll(2) makes (each file's ``poll()``), so every file poll(2) can
watch, epoll can watch; regular files and directories are refused with
EPERM as on Linux. Entries belong to the open file description: one whose
file has been closed everywhere disappears from the list.

Edge-triggered entries (EPOLLET) report when the file is ready and something
happened to it since their last report: pipes and eventfds count their
reads, writes and closes in ``gen``, as Linux's wakeups mark those events.
Other files (a terminal) report a readiness bit that was clear at the
previous check. EPOLLONESHOT disables an entry once it has reported, until
EPOLL_CTL_MOD re-arms it.

Waiting reuses poll's blocking machinery (``sys_poll.wait_ready``); a task
asleep in epoll_wait has wait channel "poll", which pipe and eventfd
activity wakes.
"""
from __future__ import annotations

import errno as E
import struct

from minios.fs.files import (O_CLOEXEC, O_NONBLOCK, O_RDWR, POLLERR, POLLHUP, Again, File)
from minios.syscalls.common import s32
from minios.syscalls.kinds import (EFD_FLAGS, EPOLL_CREATE_FLAGS, EPOLL_CTL_OP, EPOLL_EVENT,
                                   EPOLL_EVENTS, FD, INT, PTR, SIGSET, SIZE)
from minios.syscalls.sys_poll import (ms_deadline, sigmask_arg, swap_mask, timespec_deadline,
                                      wait_ready)
from minios.syscalls.table import syscall
from minios.uapi.epoll import (EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EPOLL_CTL_ADD,
                               EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLET, EPOLLEXCLUSIVE, EPOLLONESHOT)
from minios.mm.uaccess import copy_from_user, copy_to_user

EPOLL_MAXEVENTS = 0x7FFFFFFF // 12
_EVENT = struct.Struct("<IQ")          # struct epoll_event is packed on x86-64
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class _Entry:
    __slots__ = ("file", "events", "data", "last", "gen", "armed")

    def __init__(self, file: File, events: int, data: int) -> None:
        self.file, self.events, self.data = file, events, data
        self.last = 0           # readiness at the previous check (EPOLLET)
        self.gen = -1           # the file's event count at the last report
        self.armed = True       # cleared after an EPOLLONESHOT report


class EpollFile(File):
    kind = "anon_inode"
    pollable = True

    def __init__(self, flags: int) -> None:
        super().__init__(O_RDWR | flags)
        self.path = "anon_inode:[eventpoll]"
        self.entries: dict[tuple[int, int], _Entry] = {}   # (fd, id(file)) -> entry

    def ready(self, limit: int, consume: bool) -> list[tuple[int, int]]:
        """[(events, data)] of up to ``limit`` ready entries; ``consume``
        updates the edge and one-shot state (epoll_wait, not poll)."""
        out = []
        for key, e in list(self.entries.items()):
            if e.file.refs == 0:            # closed everywhere: gone
                del self.entries[key]
                continue
            if not e.armed:
                continue
            want = (e.events & 0xFFFF) | POLLERR | POLLHUP
            now = e.file.poll(want) & want
            rep = now
            gen = getattr(e.file, "gen", None)
            if e.events & EPOLLET:
                rep = (now if gen != e.gen else 0) if gen is not None else now & ~e.last
            if consume:
                e.last = now
            if rep and len(out) < limit:
                out.append((rep, e.data))
                if consume:
                    e.gen = gen
                    if e.events & EPOLLONESHOT:
                        e.armed = False
        return out

    def poll(self, events: int) -> int:
        return 1 & events if self.ready(1, False) else 0     # POLLIN


class EventFd(File):
    """eventfd(2): a 64-bit counter; read takes it (or 1 with
    EFD_SEMAPHORE), write adds to it."""
    kind = "anon_inode"
    pollable = wakes_waiters = True

    def __init__(self, value: int, flags: int) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.path = "anon_inode:[eventfd]"
        self.count = value
        self.semaphore = bool(flags & EFD_SEMAPHORE)
        self.gen = 0            # reads and writes, for EPOLLET

    def read(self, n: int) -> bytes:
        if n < 8:
            raise OSError(E.EINVAL, "")
        if self.count == 0:
            raise Again
        v = 1 if self.semaphore else self.count
        self.count -= v
        self.gen += 1
        return struct.pack("<Q", v)

    def write(self, data: bytes) -> int:
        if len(data) < 8:
            raise OSError(E.EINVAL, "")
        v = struct.unpack_from("<Q", data)[0]
        if v == _U64_MAX:
            raise OSError(E.EINVAL, "")
        if self.count + v > _U64_MAX - 1:
            raise Again
        self.count += v
        self.gen += 1
        return 8

    def readable_now(self) -> bool:
        return self.count > 0

    def writable_now(self) -> bool:
        return self.count < _U64_MAX - 1


def _epoll(t, epfd: int) -> EpollFile:
    f = t.files.get(s32(epfd))
    if not isinstance(f, EpollFile):
        raise OSError(E.EINVAL, "")
    return f


def _new_epoll(k, t, flags: int) -> int:
    return t.files.install(EpollFile(0), bool(flags & O_CLOEXEC))


@syscall(213, "epoll_create", INT)
def sys_epoll_create(k, t, size, *_):
    if s32(size) <= 0:
        return -E.EINVAL
    return _new_epoll(k, t, 0)


@syscall(291, "epoll_create1", EPOLL_CREATE_FLAGS)
def sys_epoll_create1(k, t, flags, *_):
    if flags & ~O_CLOEXEC:
        return -E.EINVAL
    return _new_epoll(k, t, flags)


@syscall(233, "epoll_ctl", FD, EPOLL_CTL_OP, FD, EPOLL_EVENT)
def sys_epoll_ctl(k, t, epfd, op, fd, event, *_):
    """Errors in Linux's order: EFAULT, EBADF, EPERM, EINVAL."""
    ev = data = 0
    if op != EPOLL_CTL_DEL:
        ev, data = _EVENT.unpack(copy_from_user(t.mm, event, _EVENT.size))
    ep = t.files.get(s32(epfd))
    f = t.files.get(s32(fd))
    if not getattr(f, "pollable", False):
        return -E.EPERM                  # regular files, directories, /dev/null
    if not isinstance(ep, EpollFile) or f is ep:
        return -E.EINVAL
    if ev & EPOLLEXCLUSIVE and (op == EPOLL_CTL_MOD or ev & EPOLLONESHOT):
        return -E.EINVAL
    if op not in (EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD):
        return -E.EINVAL
    key = (s32(fd), id(f))
    have = ep.entries.get(key)
    if have is not None and have.file.refs == 0:
        del ep.entries[key]
        have = None
    if op == EPOLL_CTL_ADD:
        if have is not None:
            return -E.EEXIST
        ep.entries[key] = _Entry(f, ev, data)
    elif have is None:
        return -E.ENOENT
    elif op == EPOLL_CTL_DEL:
        del ep.entries[key]
    else:
        if have.events & EPOLLEXCLUSIVE:
            return -E.EINVAL
        have.events, have.data, have.last, have.gen, have.armed = ev, data, 0, -1, True
    return 0


def _epoll_wait(k, t, epfd: int, events: int, maxevents: int, deadline, sigmask):
    maxevents = s32(maxevents)
    if maxevents <= 0 or maxevents > EPOLL_MAXEVENTS:
        return -E.EINVAL
    ep = _epoll(t, epfd)
    if not t.mm.is_mapped(events & ~0xFFF, (events + maxevents * 12 + 0xFFF) & ~0xFFF):
        return -E.EFAULT
    got: list = []

    def check():
        got[:] = ep.ready(maxevents, True)
        hostp = any(e.file.host_poll for e in ep.entries.values())
        return len(got), hostp

    def done(n):
        copy_to_user(t.mm, events, b"".join(_EVENT.pack(ev, d) for ev, d in got))
        return n
    return wait_ready(k, t, check, deadline, swap_mask(t, sigmask), done)


@syscall(232, "epoll_wait", FD, EPOLL_EVENTS, INT, INT)
def sys_epoll_wait(k, t, epfd, events, maxevents, timeout, *_):
    return _epoll_wait(k, t, epfd, events, maxevents, ms_deadline(timeout), None)


@syscall(281, "epoll_pwait", FD, EPOLL_EVENTS, INT, INT, SIGSET, SIZE)
def sys_epoll_pwait(k, t, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    return _epoll_wait(k, t, epfd, events, maxevents, ms_deadline(timeout),
                       sigmask_arg(t, sigmask, sigsetsize))


@syscall(441, "epoll_pwait2", FD, EPOLL_EVENTS, INT, PTR, SIGSET, SIZE)
def sys_epoll_pwait2(k, t, epfd, events, maxevents, tsp, sigmask, sigsetsize):
    return _epoll_wait(k, t, epfd, events, maxevents, timespec_deadline(t, tsp),
                       sigmask_arg(t, sigmask, sigsetsize))


@syscall(284, "eventfd", SIZE)
def sys_eventfd(k, t, initval, *_):
    return t.files.install(EventFd(initval & 0xFFFFFFFF, 0))


@syscall(290, "eventfd2", SIZE, EFD_FLAGS)
def sys_eventfd2(k, t, initval, flags, *_):
    if flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC):
        return -E.EINVAL
    return t.files.install(EventFd(initval & 0xFFFFFFFF, flags), bool(flags & EFD_CLOEXEC))
