"""Process syscalls: fork/vfork/clone/clone3, execve, exit, wait, signals,
futex, process groups."""
from __future__ import annotations

import struct
import time


from minios.uapi import errno as E
from minios.time import clock
from minios.proc import futex
from minios.proc import sigframe, signals
from minios.proc.exit import do_exit, do_group_exit
from minios.mm.fork import dup_mm
from minios.mm.frames import OutOfMemory
from minios.syscalls.kinds import (CLONE3_FORMAT, CLONE_FORMAT, FUTEX_FORMAT, HEX, IDTYPE, INT, PID, PTR, RET_SIGRETURN, SIG, SIGACTION, SIGACTION_OUT,
                                   SIGPROCMASK_HOW, SIGRETURN_FORMAT, SIGSET, SIGSET_OUT, SIZE,
                                   STACK_T, STACK_T_OUT, WAIT_OPTIONS, WSTATUS)
from minios.syscalls.table import syscall
from minios.uapi.sched import (CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_CLEAR_SIGHAND,
                               CLONE_COW_PGTABLE, CLONE_DETACHED, CLONE_FILES,
                               CLONE_INTO_CGROUP, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET,
                               CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS,
                               CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SETTLS,
                               CLONE_SIGHAND, CLONE_THREAD, CLONE_VFORK, CLONE_VM, CSIGNAL)
from minios.uapi.misc import (FUTEX_CLOCK_REALTIME, FUTEX_CMP_REQUEUE, FUTEX_PRIVATE,
                              FUTEX_REQUEUE, FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE,
                              FUTEX_WAKE_BITSET, FUTEX_WAKE_OP, P_ALL, P_PGID, P_PID, WCONTINUED,
                              WEXITED, WNOHANG, WNOWAIT, WUNTRACED, __WALL, __WCLONE,
                              __WNOTHREAD)
from minios.uapi.signal import SIG_BLOCK, SIG_SETMASK, SIG_UNBLOCK, SS_DISABLE, SS_FLAG_BITS
from minios.proc.task import (BLOCK, NORETURN, SigAction, SigHand, Task,
                         ThreadGroup)
from minios.mm.uaccess import (copy_from_user, copy_to_user, get_u32, put_u32)

_CLONE3_KNOWN = (0xFFFFFFFF & ~CSIGNAL) | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP | CLONE_COW_PGTABLE
_NAMESPACES = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER \
    | CLONE_NEWPID | CLONE_NEWNET


def copy_process(k, t: Task, flags: int, exit_signal: int, stack: int, tls: int,
                 child_tid: int, parent_tid: int):
    cpu = k.cpu
    share = k.cow_pte == "always" or (k.cow_pte == "flag" and
                                      (flags & CLONE_COW_PGTABLE or t.mm.cow_pgtable))
    info = None                         # the COW copy's figures, for the fork event
    if flags & CLONE_VM:
        mm = t.mm
        mm.users += 1
    else:
        try:
            mm = dup_mm(t.mm, share, cpu.reg("rsp"),
                        child_tid if flags & CLONE_CHILD_SETTID else -1)
        except OutOfMemory:
            return -E.ENOMEM            # dup_mm released the half-built child
        info = k.last_fork
    if flags & CLONE_FILES:
        files = t.files
        files.users += 1
    else:
        files = t.files.copy()
    if flags & CLONE_SIGHAND:
        sighand = t.sighand
    else:
        sighand = SigHand(list(t.sighand.actions))
        if flags & CLONE_CLEAR_SIGHAND:
            sighand.actions = [a if a.handler <= 1 else SigAction() for a in sighand.actions]
    tid = k.alloc_pid()
    if flags & CLONE_THREAD:
        group = t.group
    else:
        group = ThreadGroup(tid, exit_signal=exit_signal)
        parent = t.group.parent if flags & CLONE_PARENT and t.group.parent else t.group
        group.parent = parent
        parent.children.append(group)
        group.pgid, group.sid = t.group.pgid, t.group.sid
        group.rlimits = dict(t.group.rlimits)
        group.cmdline, group.comm = list(t.group.cmdline), t.group.comm
        group.cwd = t.group.cwd
        group.cwd_stack = t.group.cwd_stack
        group.umask = t.group.umask
        k.groups[tid] = group
    rip = t.syscall_rip + 2
    regs = {"rip": rip, "rax": 0, "rcx": rip, "r11": t.syscall_rflags}
    if stack:
        regs["rsp"] = stack
    if flags & CLONE_SETTLS:
        regs["fs_base"] = tls
    ctx = cpu.clone_context(**regs)
    child = Task(tid, group, mm, files, sighand, ctx)
    child.blocked = t.blocked
    child.altstack = t.altstack if not flags & CLONE_VM or flags & CLONE_VFORK else (0, 2, 0)
    group.threads.append(child)
    k.tasks[tid] = child
    if flags & CLONE_PARENT_SETTID:
        put_u32(t.mm, parent_tid, tid)
    if flags & CLONE_CHILD_SETTID:
        put_u32(mm, child_tid, tid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    k.make_runnable(child)
    k.stats["forks"] += 1
    if k.events.listening:
        k.events.emit("fork", t, child, info)
    if flags & CLONE_VFORK:
        child.vfork_parent = t
        t.vfork_done = False

        def retry():
            return tid if t.vfork_done else BLOCK
        t.wait_channel = "vfork"
        t.retry = retry
        return BLOCK
    return tid


def _check_clone_flags(flags: int, exit_signal: int) -> int:
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        return -E.EINVAL
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
        return -E.EINVAL
    if (flags & (CLONE_THREAD | CLONE_PARENT)) and exit_signal:
        return -E.EINVAL
    if flags & _NAMESPACES:
        return -E.EPERM
    if flags & CLONE_PIDFD:
        return -E.EINVAL      # pidfds are not implemented
    return 0


@syscall(57, "fork")
def sys_fork(k, t, *_):
    return copy_process(k, t, 0, signals.SIGCHLD, 0, 0, 0, 0)


@syscall(58, "vfork")
def sys_vfork(k, t, *_):
    return copy_process(k, t, CLONE_VM | CLONE_VFORK, signals.SIGCHLD, 0, 0, 0, 0)


@syscall(56, "clone", HEX, PTR, PTR, PTR, PTR, format=CLONE_FORMAT)
def sys_clone(k, t, flags, stack, parent_tid, child_tid, tls, *_):
    sig = flags & CSIGNAL
    flags &= 0xFFFFFFFF & ~CSIGNAL
    if sig > 64:
        return -E.EINVAL
    # clone(2) ignores exit_signal for threads rather than failing.
    if flags & (CLONE_THREAD | CLONE_PARENT):
        sig = 0 if flags & CLONE_THREAD else sig
    r = _check_clone_flags(flags & ~CLONE_PARENT, 0 if flags & CLONE_THREAD else sig
                           if not flags & CLONE_PARENT else 0)
    if r:
        return r
    return copy_process(k, t, flags & ~CLONE_DETACHED, sig, stack, tls, child_tid, parent_tid)


@syscall(435, "clone3", PTR, SIZE, format=CLONE3_FORMAT)
def sys_clone3(k, t, uargs, size, *_):
    if size < 64:
        return -E.EINVAL
    if size > 4096:
        return -E.E2BIG
    raw = copy_from_user(t.mm, uargs, size)
    if size > 88 and any(raw[88:]):
        return -E.E2BIG
    raw = raw.ljust(88, b"\0")
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
     set_tid_size, cgroup) = struct.unpack_from("<11Q", raw)
    if flags & ~_CLONE3_KNOWN or flags & (CSIGNAL | CLONE_DETACHED):
        return -E.EINVAL
    if flags & CLONE_COW_PGTABLE and k.cow_pte == "never":
        return -E.EINVAL
    if exit_signal & ~0xFF or exit_signal > 64:
        return -E.EINVAL
    if (stack == 0) != (stack_size == 0):
        return -E.EINVAL
    if set_tid_size or set_tid:
        return -E.EINVAL if set_tid_size > 32 or (set_tid and not set_tid_size) else -E.EPERM
    if flags & CLONE_INTO_CGROUP:
        return -E.EINVAL
    if flags & (CLONE_THREAD | CLONE_PARENT) and exit_signal:
        return -E.EINVAL
    r = _check_clone_flags(flags, 0)
    if r:
        return r
    return copy_process(k, t, flags, exit_signal, stack + stack_size if stack else 0,
                        tls, child_tid, parent_tid)


@syscall(60, "exit", INT)
def sys_exit(k, t, code, *_):
    do_exit(k, t, code & 0xFF)
    k.need_resched = True
    return NORETURN


@syscall(231, "exit_group", INT)
def sys_exit_group(k, t, code, *_):
    do_group_exit(k, t, (code & 0xFF) << 8)
    return NORETURN


def _reap(k, t, g, keep: bool) -> None:
    if keep:
        return
    t.group.children.remove(g)
    k.groups.pop(g.tgid, None)


def _find_waitable(k, t, match, options):
    """(child group, kind) with kind 'exit', 'stop' or 'cont'; or None; or
    -ECHILD when nothing could ever match. Every thread of a group has its
    children (``t.group.children``), so __WNOTHREAD changes nothing here."""
    any_kind = options & __WALL
    clone = bool(options & __WCLONE)
    seen = False
    for g in t.group.children:
        if not match(g) or not (any_kind or clone == (g.exit_signal != signals.SIGCHLD)):
            continue
        seen = True
        if g.zombie and options & WEXITED:
            return g, "exit"
        if g.stop_report is not None:
            if g.stop_report != 0xFFFF and options & WUNTRACED:
                return g, "stop"
            if g.stop_report == 0xFFFF and options & WCONTINUED:
                return g, "cont"
    return None if seen else -E.ECHILD


def _do_wait(k, t, match, options, report):
    def attempt():
        r = _find_waitable(k, t, match, options)
        if isinstance(r, int):
            return r
        if r is None:
            if options & WNOHANG:
                return report(None, None)
            if signals.has_pending(t):
                return -E.EINTR
            return BLOCK
        g, kind = r
        res = report(g, kind)
        if kind == "exit":
            _reap(k, t, g, bool(options & WNOWAIT))
        elif not options & WNOWAIT:
            g.stop_report = None
        return res
    r = attempt()
    if r is BLOCK:
        t.wait_channel = "wait4"
        t.retry = attempt
    return r


def _matcher(t, pid: int):
    if pid == -1:
        return lambda g: True
    if pid > 0:
        return lambda g: g.tgid == pid
    pg = t.group.pgid if pid == 0 else -pid
    return lambda g: g.pgid == pg


@syscall(61, "wait4", PID, WSTATUS, WAIT_OPTIONS, PTR)
def sys_wait4(k, t, pid, status, options, rusage, *_):
    pid = pid - (1 << 64) if pid >= 1 << 63 else pid
    pid = pid - (1 << 32) if pid >= 1 << 31 else pid
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE):
        return -E.EINVAL

    def report(g, kind):
        if g is None:
            return 0
        st = g.exit_status if kind == "exit" else (g.stop_report if kind == "stop" else 0xFFFF)
        if status:
            put_u32(t.mm, status, st)
        if rusage:
            copy_to_user(t.mm, rusage, bytes(144))
        return g.tgid
    return _do_wait(k, t, _matcher(t, pid), options | WEXITED, report)


@syscall(247, "waitid", IDTYPE, PID, PTR, WAIT_OPTIONS, PTR)
def sys_waitid(k, t, idtype, id_, infop, options, rusage, *_):
    if options & ~(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | __WNOTHREAD
                   | __WALL | __WCLONE) or not options & (WEXITED | WUNTRACED | WCONTINUED):
        return -E.EINVAL
    if idtype == P_ALL:
        match = _matcher(t, -1)
    elif idtype == P_PID:
        match = _matcher(t, id_ & 0xFFFFFFFF)
    elif idtype == P_PGID:
        match = _matcher(t, -(id_ & 0xFFFFFFFF) if id_ else 0)
    else:
        return -E.EINVAL

    def report(g, kind):
        if infop:
            if g is None:
                copy_to_user(t.mm, infop, bytes(128))
            else:
                st = g.exit_status
                if kind == "exit":
                    code = signals.CLD_EXITED if st & 0x7F == 0 else (
                        signals.CLD_DUMPED if st & 0x80 else signals.CLD_KILLED)
                    val = (st >> 8) & 0xFF if code == signals.CLD_EXITED else st & 0x7F
                elif kind == "stop":
                    code, val = signals.CLD_STOPPED, g.stop_report >> 8
                else:
                    code, val = signals.CLD_CONTINUED, signals.SIGCONT
                info = struct.pack("<iiiiiii", signals.SIGCHLD, 0, code, 0, g.tgid, 0, val)
                copy_to_user(t.mm, infop, info.ljust(128, b"\0"))
        return 0
    return _do_wait(k, t, match, options, report)


_SA_KNOWN = 0x1 | 0x2 | 0x4 | 0x800 | 0x04000000 | 0x08000000 | 0x10000000 | 0x40000000 \
    | 0x80000000


def _sig_ok(sig: int) -> bool:
    return 0 <= sig <= 64


@syscall(62, "kill", PID, SIG)
def sys_kill(k, t, pid, sig, *_):
    pid = pid - (1 << 64) if pid >= 1 << 63 else pid
    pid = pid - (1 << 32) if pid >= 1 << 31 else pid
    if not _sig_ok(sig):
        return -E.EINVAL
    info = {"code": signals.SI_USER, "pid": t.pid, "uid": 0}
    if pid > 0:
        g = k.groups.get(pid)
        if g is None or (g.zombie and not g.threads and False):
            return -E.ESRCH
        signals.send_signal(k, g, sig, info)
        return 0
    if pid == -1:
        targets = [g for g in k.groups.values() if g.tgid != 1 and g is not t.group]
        targets.append(t.group)
    else:
        pg = t.group.pgid if pid == 0 else -pid
        targets = [g for g in k.groups.values() if g.pgid == pg]
    if not targets:
        return -E.ESRCH
    for g in targets:
        signals.send_signal(k, g, sig, info)
    return 0


@syscall(234, "tgkill", PID, PID, SIG)
def sys_tgkill(k, t, tgid, tid, sig, *_):
    tgid, tid = tgid & 0xFFFFFFFF, tid & 0xFFFFFFFF
    if not _sig_ok(sig) or tgid >= 1 << 31 or tid >= 1 << 31 or tgid == 0 or tid == 0:
        return -E.EINVAL
    target = k.tasks.get(tid)
    if target is None or target.pid != tgid:
        return -E.ESRCH
    signals.send_signal(k, target, sig, {"code": signals.SI_TKILL, "pid": t.pid, "uid": 0},
                        thread=True)
    return 0


@syscall(200, "tkill", PID, SIG)
def sys_tkill(k, t, tid, sig, *_):
    target = k.tasks.get(tid & 0xFFFFFFFF)
    if not _sig_ok(sig):
        return -E.EINVAL
    if target is None:
        return -E.ESRCH
    return sys_tgkill(k, t, target.pid, tid, sig)


@syscall(13, "rt_sigaction", SIG, SIGACTION, SIGACTION_OUT, SIZE)
def sys_rt_sigaction(k, t, sig, act, oact, size, *_):
    if size != 8 or not 1 <= sig <= 64:
        return -E.EINVAL
    if act and sig in (signals.SIGKILL, signals.SIGSTOP):
        return -E.EINVAL
    a = t.sighand.actions[sig]
    new = None
    if act:
        h, fl, rest, mask = struct.unpack("<4Q", copy_from_user(t.mm, act, 32))
        # Unknown sa_flags bits are dropped, as Linux >= 5.11 does.
        new = SigAction(h, fl & _SA_KNOWN, rest, mask & ~signals.UNBLOCKABLE)
    if oact:
        copy_to_user(t.mm, oact, struct.pack("<4Q", a.handler, a.flags, a.restorer, a.mask))
    if new is not None:
        t.sighand.actions[sig] = new
        if new.handler == signals.SIG_IGN or (new.handler == signals.SIG_DFL
                                              and sig in signals.KERNEL_IGNORE):
            for th in t.group.threads:
                th.pending.pop(sig, None)
            t.group.shared_pending.pop(sig, None)
    return 0


@syscall(14, "rt_sigprocmask", SIGPROCMASK_HOW, SIGSET, SIGSET_OUT, SIZE)
def sys_rt_sigprocmask(k, t, how, nset, oset, size, *_):
    if size != 8:
        return -E.EINVAL
    old = t.blocked
    if nset:
        m = struct.unpack("<Q", copy_from_user(t.mm, nset, 8))[0]
        if how == SIG_BLOCK:
            new = old | m
        elif how == SIG_UNBLOCK:
            new = old & ~m
        elif how == SIG_SETMASK:
            new = m
        else:
            return -E.EINVAL
    if oset:
        copy_to_user(t.mm, oset, struct.pack("<Q", old))
    if nset:
        t.blocked = new & ~signals.UNBLOCKABLE
        k.need_resched = True
    return 0


@syscall(127, "rt_sigpending", SIGSET_OUT, SIZE)
def sys_rt_sigpending(k, t, sset, size, *_):
    if size > 8:
        return -E.EINVAL
    m = 0
    for s in list(t.pending) + list(t.group.shared_pending):
        m |= signals.bit(s)
    copy_to_user(t.mm, sset, struct.pack("<Q", m & t.blocked)[:size])
    return 0


@syscall(130, "rt_sigsuspend", SIGSET, SIZE)
def sys_rt_sigsuspend(k, t, mset, size, *_):
    if size != 8:
        return -E.EINVAL
    m = struct.unpack("<Q", copy_from_user(t.mm, mset, 8))[0]
    saved = t.blocked
    t.blocked = m & ~signals.UNBLOCKABLE

    def retry():
        if signals.has_pending(t):
            # The handler runs with the temporary mask; sigreturn restores
            # the saved one because the frame records it.
            t.suspend_restore = saved
            return -E.EINTR
        return BLOCK
    t.wait_channel = "sigsuspend"
    t.retry = retry
    return retry()


@syscall(34, "pause")
def sys_pause(k, t, *_):
    def retry():
        return -E.EINTR if signals.has_pending(t) else BLOCK
    t.wait_channel = "pause"
    t.retry = retry
    return retry()


@syscall(15, "rt_sigreturn", ret=RET_SIGRETURN, format=SIGRETURN_FORMAT)
def sys_rt_sigreturn(k, t, *_):
    sigframe.sys_rt_sigreturn(k, t)
    return NORETURN


@syscall(131, "sigaltstack", STACK_T, STACK_T_OUT)
def sys_sigaltstack(k, t, ss, oss, *_):
    if oss:
        sp, fl, size = t.altstack
        copy_to_user(t.mm, oss, struct.pack("<QiiQ", sp, fl, 0, size))
    if ss:
        sp, fl, _pad, size = struct.unpack("<QiiQ", copy_from_user(t.mm, ss, 24))
        if fl & ~SS_FLAG_BITS:
            return -E.EINVAL
        if not fl & SS_DISABLE and size < 2048:          # MINSIGSTKSZ
            return -E.ENOMEM
        t.altstack = (sp, fl & SS_DISABLE, size)
    return 0




@syscall(202, "futex", PTR, INT, INT, PTR, PTR, INT, format=FUTEX_FORMAT)
def sys_futex(k, t, uaddr, op, val, timeout, uaddr2, val3):
    cmd = op & ~(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME)
    private = bool(op & FUTEX_PRIVATE)
    if uaddr & 3:
        return -E.EINVAL
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bits = val3 if cmd == FUTEX_WAIT_BITSET else 0xFFFFFFFF
        if bits == 0:
            return -E.EINVAL
        if get_u32(t.mm, uaddr) != val & 0xFFFFFFFF:
            return -E.EAGAIN
        deadline = None
        if timeout:
            sec, nsec = struct.unpack("<qq", copy_from_user(t.mm, timeout, 16))
            if sec < 0 or not 0 <= nsec < 10**9:
                return -E.EINVAL
            if cmd == FUTEX_WAIT_BITSET:
                now = clock.now_ns(0 if op & FUTEX_CLOCK_REALTIME else 1) / 1e9
                deadline = time.monotonic() + (sec + nsec / 1e9 - now)
            else:
                deadline = time.monotonic() + sec + nsec / 1e9
        kk = futex.key(t.mm, uaddr, private)
        entry = (t, bits)
        k.futexes[kk].append(entry)
        t.futex_woken = False

        def retry():
            if t.futex_woken:
                return 0
            q = k.futexes.get(kk, [])
            if deadline is not None and time.monotonic() >= deadline:
                if entry in q:
                    q.remove(entry)
                return -E.ETIMEDOUT
            if signals.has_pending(t):
                if entry in q:
                    q.remove(entry)
                return -E.EINTR
            t.wake_time = deadline
            return BLOCK
        t.wait_channel = "futex"
        t.retry = retry
        return BLOCK
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bits = val3 if cmd == FUTEX_WAKE_BITSET else 0xFFFFFFFF
        if bits == 0:
            return -E.EINVAL
        return futex.wake(k, t.mm, uaddr, val, private, bits)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and get_u32(t.mm, uaddr) != val3 & 0xFFFFFFFF:
            return -E.EAGAIN
        n = futex.wake(k, t.mm, uaddr, val, private)
        src, dst = futex.key(t.mm, uaddr, private), futex.key(t.mm, uaddr2, private)
        q = k.futexes.get(src, [])
        moved = q[:timeout & 0x7FFFFFFF]
        del q[:len(moved)]
        k.futexes[dst].extend(moved)
        return n + len(moved)
    if cmd == FUTEX_WAKE_OP:
        oldval = get_u32(t.mm, uaddr2)
        opc, cmp_, oparg, cmparg = (val3 >> 28) & 0xF, (val3 >> 24) & 0xF, (val3 >> 12) & 0xFFF, val3 & 0xFFF
        if opc & 8:
            oparg = 1 << oparg
        newv = {0: oparg, 1: oldval + oparg, 2: oldval | oparg, 3: oldval & ~oparg,
                4: oldval ^ oparg}.get(opc & 7, oldval)
        put_u32(t.mm, uaddr2, newv)
        n = futex.wake(k, t.mm, uaddr, val, private)
        ok = {0: oldval == cmparg, 1: oldval != cmparg, 2: oldval < cmparg, 3: oldval <= cmparg,
              4: oldval > cmparg, 5: oldval >= cmparg}.get(cmp_, False)
        if ok:
            n += futex.wake(k, t.mm, uaddr2, timeout & 0x7FFFFFFF, private)
        return n
    return -E.ENOSYS
@syscall(109, "setpgid", PID, PID)
def sys_setpgid(k, t, pid, pgid, *_):
    g = t.group if pid == 0 else k.groups.get(pid)
    if g is None:
        return -E.ESRCH
    if pgid >= 1 << 31:
        return -E.EINVAL
    g.pgid = pgid or g.tgid
    return 0


@syscall(121, "getpgid", PID)
def sys_getpgid(k, t, pid, *_):
    g = t.group if pid == 0 else k.groups.get(pid)
    return g.pgid if g is not None else -E.ESRCH


@syscall(111, "getpgrp")
def sys_getpgrp(k, t, *_):
    return t.group.pgid


@syscall(112, "setsid")
def sys_setsid(k, t, *_):
    g = t.group
    if any(x.pgid == g.tgid for x in k.groups.values() if x is not g):
        return -E.EPERM
    g.sid = g.pgid = g.tgid
    return g.tgid


@syscall(124, "getsid", PID)
def sys_getsid(k, t, pid, *_):
    g = t.group if pid == 0 else k.groups.get(pid)
    return g.sid if g is not None else -E.ESRCH
