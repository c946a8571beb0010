"""poll and select: a wait on several files, with a timeout and a signal
mask (epoll reuses the waiting machinery)."""
from __future__ import annotations

from minios.uapi import errno as E
import struct
import time

from minios.fs.files import (
    HOST_POLL_S,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    POLLPRI,
    FdTable,
)
from minios.mm.uaccess import Fault, copy_from_user, copy_to_user
from minios.proc import signals
from minios.proc.task import BLOCK
from minios.syscalls.common import s32
from minios.syscalls.kinds import (INT, PTR, SIZE)
from minios.syscalls.table import syscall


def swap_mask(t, sigmask: int | None):
    if sigmask is None:
        return None
    saved = t.blocked
    t.blocked = sigmask & ~signals.UNBLOCKABLE
    return saved


def restore_mask(t, saved, interrupted: bool) -> None:
    """Put the caller's mask back. Interrupted by a signal that only the
    temporary mask lets through, it stays until that signal is handled."""
    if saved is None:
        return
    if interrupted:
        tmp = t.blocked
        t.blocked = saved
        if not signals.has_pending(t):
            t.blocked = tmp
            t.suspend_restore = saved
        return
    t.blocked = saved


def wait_ready(k, t, check, deadline: float | None, saved_mask, on_done):
    """Shared by poll/ppoll/select/pselect6. ``check()`` -> (count,
    host_poll); ``deadline`` None waits forever; ``on_done(n)`` writes the
    results and returns the syscall's value."""
    def outcome(n: int):
        """The call's value once ``n`` files are ready, the deadline has
        passed or a signal came; None: go on waiting."""
        if n or (deadline is not None and time.monotonic() >= deadline):
            restore_mask(t, saved_mask, False)
            return on_done(n)
        if signals.has_pending(t):
            restore_mask(t, saved_mask, True)
            return -E.EINTR
        return None

    n, hostp = check()
    r = outcome(n)
    if r is not None:
        return r

    def arm(hostp: bool) -> None:
        wt = deadline
        if hostp:
            hp = time.monotonic() + HOST_POLL_S
            wt = hp if wt is None else min(wt, hp)
        t.wake_time = wt

    def retry():
        try:
            n, hostp = check()
        except Fault:
            restore_mask(t, saved_mask, False)
            return -E.EFAULT
        r = outcome(n)
        if r is not None:
            return r
        arm(hostp)
        return BLOCK
    t.wait_channel = "poll"
    t.retry = retry
    arm(hostp)
    return BLOCK


def _poll_common(k, t, ufds: int, nfds: int, deadline, sigmask):
    if nfds > FdTable.MAX:
        return -E.EINVAL
    raw = copy_from_user(t.mm, ufds, 8 * nfds)
    ents = [struct.unpack_from("<iHH", raw, 8 * i)[:2] for i in range(nfds)]
    result = [0] * nfds

    def check():
        cnt = 0
        hostp = False
        for i, (fd, ev) in enumerate(ents):
            if fd < 0:
                result[i] = 0
                continue
            ent = t.files.fds.get(fd)
            if ent is None:
                result[i] = POLLNVAL
            else:
                f = ent[0]
                hostp = hostp or f.host_poll
                result[i] = f.poll(ev | POLLERR | POLLHUP) & (ev | POLLERR | POLLHUP | POLLNVAL)
            if result[i]:
                cnt += 1
        return cnt, hostp

    def done(n):
        out = bytearray(raw)
        for i, r in enumerate(result):
            struct.pack_into("<H", out, 8 * i + 6, r)
        copy_to_user(t.mm, ufds, bytes(out))
        return n
    saved = swap_mask(t, sigmask)
    return wait_ready(k, t, check, deadline, saved, done)


def ms_deadline(timeout: int):
    """A poll/epoll_wait timeout in ms as a deadline; None (negative) waits forever."""
    ms = s32(timeout)
    return None if ms < 0 else time.monotonic() + ms / 1000


@syscall(7, "poll", PTR, SIZE, INT)
def sys_poll(k, t, ufds, nfds, timeout, *_):
    return _poll_common(k, t, ufds, nfds, ms_deadline(timeout), None)


def timespec_deadline(t, tsp: int):
    if not tsp:
        return None
    sec, nsec = struct.unpack("<qq", copy_from_user(t.mm, tsp, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise OSError(E.EINVAL, "")
    return time.monotonic() + sec + nsec / 1e9


def sigmask_arg(t, p: int, size: int):
    if not p:
        return None
    if size != 8:
        raise OSError(E.EINVAL, "")
    return struct.unpack("<Q", copy_from_user(t.mm, p, 8))[0]


@syscall(271, "ppoll", PTR, SIZE, PTR, PTR, SIZE)
def sys_ppoll(k, t, ufds, nfds, tsp, sigmask, sigsetsize, *_):
    deadline = timespec_deadline(t, tsp)
    return _poll_common(k, t, ufds, nfds, deadline, sigmask_arg(t, sigmask, sigsetsize))


def _select_common(k, t, nfds: int, rp: int, wp: int, xp: int, deadline, sigmask,
                   on_return=None):
    nfds = s32(nfds)
    if nfds < 0 or nfds > FdTable.MAX:
        return -E.EINVAL
    nbytes = (nfds + 63) // 64 * 8
    sets = []
    for p in (rp, wp, xp):
        sets.append(int.from_bytes(copy_from_user(t.mm, p, nbytes), "little") if p and nbytes
                    else 0)
    want = sets[0] | sets[1] | sets[2]
    fds = [fd for fd in range(nfds) if want >> fd & 1]
    for fd in fds:
        if fd not in t.files.fds:
            return -E.EBADF
    res = [0, 0, 0]

    def check():
        out = [0, 0, 0]
        hostp = False
        for fd in fds:
            ent = t.files.fds.get(fd)
            if ent is None:
                raise OSError(E.EBADF, "")
            f = ent[0]
            hostp = hostp or f.host_poll
            r = f.poll(POLLIN | POLLOUT | POLLPRI)
            bit = 1 << fd
            if sets[0] & bit and r & (POLLIN | POLLHUP | POLLERR):
                out[0] |= bit
            if sets[1] & bit and r & (POLLOUT | POLLERR):
                out[1] |= bit
            if sets[2] & bit and r & POLLPRI:
                out[2] |= bit
        res[:] = out
        return sum(bin(x).count("1") for x in out), hostp

    def done(n):
        for p, v in zip((rp, wp, xp), res):
            if p and nbytes:
                copy_to_user(t.mm, p, v.to_bytes(nbytes, "little"))
        if on_return is not None:
            on_return()
        return n
    saved = swap_mask(t, sigmask)
    return wait_ready(k, t, check, deadline, saved, done)


@syscall(23, "select", INT, PTR, PTR, PTR, PTR)
def sys_select(k, t, nfds, rp, wp, xp, tvp, *_):
    deadline = None
    if tvp:
        sec, usec = struct.unpack("<qq", copy_from_user(t.mm, tvp, 16))
        if sec < 0 or usec < 0:
            return -E.EINVAL
        deadline = time.monotonic() + sec + usec / 1e6

    def left():
        rem = max(0.0, deadline - time.monotonic())
        us = int(rem * 1e6)
        copy_to_user(t.mm, tvp, struct.pack("<qq", us // 10**6, us % 10**6))
    return _select_common(k, t, nfds, rp, wp, xp, deadline, None,
                          left if tvp else None)


@syscall(270, "pselect6", INT, PTR, PTR, PTR, PTR, PTR)
def sys_pselect6(k, t, nfds, rp, wp, xp, tsp, sig, *_):
    deadline = timespec_deadline(t, tsp)
    mask = None
    if sig:
        ss, ss_len = struct.unpack("<QQ", copy_from_user(t.mm, sig, 16))
        mask = sigmask_arg(t, ss, ss_len)
    return _select_common(k, t, nfds, rp, wp, xp, deadline, mask)
