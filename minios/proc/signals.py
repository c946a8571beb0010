"""Signals: numbers, default actions, sending and queueing.

``send_signal`` and ``force_sig_fault`` queue a signal on a task or its
process and wake a sleeper; ``dequeue_signal`` takes the next one to act on.
Acting on a signal (a handler's frame, a default action that stops or kills)
is ``minios/proc/sigframe.py``. The split follows the imports: ``exit.py``
sends SIGCHLD through this module, and ``sigframe.py`` ends a process
through ``exit.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu import x86
from minios.proc.task import BLOCKED, RUNNING, STOPPED, ThreadGroup

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task

from minios.uapi.signal import (  # noqa: F401  (the signal numbers, as signals.SIGKILL)
    CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED, NAMES, SA_NODEFER,
    SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SA_SIGINFO, SI_KERNEL, SI_TKILL, SI_USER,
    SIG_DFL, SIG_IGN, SIGABRT, SIGALRM, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGHUP, SIGILL, SIGINT,
    SIGIO, SIGKILL, SIGPIPE, SIGPROF, SIGPWR, SIGQUIT, SIGSEGV, SIGSTKFLT, SIGSTOP, SIGSYS,
    SIGTERM, SIGTRAP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGUSR1, SIGUSR2, SIGVTALRM, SIGWINCH,
    SIGXCPU, SIGXFSZ)

# Signals whose default action dumps core, is to ignore them, is to stop.
KERNEL_COREDUMP = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ,
                   SIGSYS}
KERNEL_IGNORE = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT}
KERNEL_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))

# Exception vector -> (signal, si_code) for traps other than page faults.
TRAP_SIGNALS = {x86.DE: (SIGFPE, 1), x86.UD: (SIGILL, 2), x86.GP: (SIGSEGV, SI_KERNEL),
                x86.BP: (SIGTRAP, SI_KERNEL), x86.DB: (SIGTRAP, 2), x86.AC: (SIGBUS, 1),
                x86.MF: (SIGFPE, 0), x86.XM: (SIGFPE, 0), x86.SS: (SIGBUS, SI_KERNEL),
                x86.NP: (SIGSEGV, SI_KERNEL), x86.OF: (SIGSEGV, SI_KERNEL),
                x86.BR: (SIGSEGV, SI_KERNEL)}


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def _deliverable(t: "Task") -> int:
    mask = 0
    for s in t.pending:
        mask |= bit(s)
    for s in t.group.shared_pending:
        mask |= bit(s)
    return mask & ~(t.blocked & ~UNBLOCKABLE)


def has_pending(t: "Task") -> bool:
    return bool((t.pending or t.group.shared_pending) and _deliverable(t))


def _ignored(t: "Task", sig: int) -> bool:
    h = t.sighand.actions[sig].handler
    return h == SIG_IGN or (h == SIG_DFL and sig in KERNEL_IGNORE)


def send_signal(k: "Kernel", target, sig: int, info: dict, thread: bool = False) -> None:
    """Queue ``sig`` on a task (``thread``) or its whole process, as kill/tgkill."""
    group = target if isinstance(target, ThreadGroup) else target.group
    if group.zombie or not group.threads or sig == 0:
        return
    leader = group.threads[0]
    if sig == SIGCONT or sig == SIGKILL:
        _continue(k, group)
    if sig in KERNEL_STOP:
        for s in (SIGCONT,):
            group.shared_pending.pop(s, None)
    # Linux's sig_ignored(): a blocked signal is queued even if ignored now,
    # since the handler may change before it is unblocked.
    who = target if thread else leader
    if _ignored(leader, sig) and sig != SIGKILL and not who.blocked & bit(sig):
        return
    info = dict(info, signo=sig)
    if thread:
        target.pending.setdefault(sig, info)
        cands = [target]
    else:
        group.shared_pending.setdefault(sig, info)
        cands = group.threads
    for t in cands:
        if t.state == BLOCKED and (bit(sig) & ~t.blocked or sig == SIGKILL):
            _interrupt(k, t)
            break
    if k.current is not None and k.current.group is group:
        k.need_resched = True


def _interrupt(k: "Kernel", t: "Task") -> None:
    """A blocked task with a signal to take: wake it so sigframe.do_signal runs."""
    k.wake(t)


def _continue(k: "Kernel", group) -> None:
    for s in KERNEL_STOP:
        group.shared_pending.pop(s, None)
    if group.stopped:
        group.stopped = False
        group.stop_report = 0xFFFF
        for t in group.threads:
            if t.state == STOPPED:
                t.state = RUNNING
                k.make_runnable(t)
        do_notify_parent_cldstop(k, group, CLD_CONTINUED, SIGCONT)


def do_notify_parent_cldstop(k: "Kernel", group, code: int, status: int) -> None:
    """Tell the parent that ``group`` stopped or continued (SIGCHLD, waiters)."""
    parent = group.parent
    if parent is None or parent.zombie:
        return
    send_signal(k, parent, SIGCHLD, {"code": code, "pid": group.tgid, "uid": 0,
                                     "status": status})
    k.wake_waiters(parent)


def force_sig_fault(k: "Kernel", t: "Task", sig: int, code: int, addr: int,
                    vector: int, err: int) -> None:
    """A synchronous fault: a handler if one is installed and the signal is
    not blocked; otherwise Linux resets it to default, which kills."""
    act = t.sighand.actions[sig]
    if act.handler in (SIG_DFL, SIG_IGN) or t.blocked & bit(sig):
        t.sighand.actions[sig] = act._replace(handler=SIG_DFL)
        t.blocked &= ~bit(sig)
    t.group.fault = (sig, addr, k.cpu.reg("rip"), vector, err)
    t.pending[sig] = {"signo": sig, "code": code, "addr": addr, "trapno": vector,
                      "err": err}
    k.need_resched = True


def dequeue_signal(t: "Task") -> tuple[int, dict] | None:
    """The next signal ``t`` takes, removed from its queue: (signo, info)."""
    allowed = _deliverable(t)
    if not allowed:
        return None
    for q in (t.pending, t.group.shared_pending):
        for s in sorted(q):
            # Synchronous signals first (as Linux's SYNCHRONOUS_MASK).
            if allowed & bit(s):
                return s, q.pop(s)
    return None
