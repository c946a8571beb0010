"""Signals: queueing, default actions, and the x86-64 rt_sigframe.

A handler runs on a frame laid out exactly as Linux's ``struct rt_sigframe``
(return address = sa_restorer, ucontext with the sigcontext, siginfo), so
glibc's and musl's handlers, ``siglongjmp`` and ``rt_sigreturn`` work. FPU
and SSE state is kept in the kernel (one saved CPU context per frame)
rather than in an xsave area, and restored by rt_sigreturn.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from emu import x86
from minios.proc.task import BLOCKED, RUNNING, STOPPED, ThreadGroup
from minios.mm.uaccess import Fault, copy_from_user, copy_to_user

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

_CORE = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS}
_IGNORE = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT}
_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
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
    return h == SIG_IGN or (h == SIG_DFL and sig in _IGNORE)


def send_signal(k: "Kernel", target, sig: int, info: dict, thread: bool = False) -> None:
    """Queue ``sig`` on a task (``thread``) or its whole process, as kill/tgkill."""
    group = target if isinstance(target, ThreadGroup) else target.group
    if group.zombie or not group.threads or sig == 0:
        return
    leader = group.threads[0]
    if sig == SIGCONT or sig == SIGKILL:
        _continue(k, group)
    if sig in _STOP:
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
    """A blocked task with a signal to take: wake it so do_signal runs."""
    k.wake(t)


def _continue(k: "Kernel", group) -> None:
    for s in _STOP:
        group.shared_pending.pop(s, None)
    if group.stopped:
        group.stopped = False
        group.stop_report = 0xFFFF
        for t in group.threads:
            if t.state == STOPPED:
                t.state = RUNNING
                k.make_runnable(t)
        _notify_parent(k, group, CLD_CONTINUED, SIGCONT)


def _notify_parent(k: "Kernel", group, code: int, status: int) -> None:
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


def _dequeue(t: "Task") -> tuple[int, dict] | None:
    allowed = _deliverable(t)
    if not allowed:
        return None
    for q in (t.pending, t.group.shared_pending):
        for s in sorted(q):
            # Synchronous signals first (as Linux's SYNCHRONOUS_MASK).
            if allowed & bit(s):
                return s, q.pop(s)
    return None


def do_signal(k: "Kernel", t: "Task") -> None:
    """Before returning to user mode: act on one pending signal, or several
    that are ignored. Called with ``t``'s context live in the CPU."""
    from minios.proc.exit import do_group_exit
    while t.state == RUNNING and (t.pending or t.group.shared_pending):
        got = _dequeue(t)
        if got is None:
            return
        sig, info = got
        if k.events.listening:
            k.events.emit("signal", t, sig, info)
        if k.debugger is not None and k.debugger.on_signal(t, sig):
            continue
        act = t.sighand.actions[sig]
        if sig in (SIGKILL, SIGSTOP) or act.handler == SIG_DFL:
            if sig in _IGNORE:
                continue
            if sig in _STOP:
                _do_stop(k, t, sig)
                return
            # The core flag says a core was written: minios writes none, and
            # Linux writes none either when RLIMIT_CORE is 0 (the default).
            core = sig in _CORE and _core_limit(t) != 0
            if "trapno" in info:
                _report_fault(k, t, sig, info)
            do_group_exit(k, t, sig | (0x80 if core else 0))
            return
        if act.handler == SIG_IGN:
            continue
        _setup_frame(k, t, sig, info, act)
        return


def _report_fault(k: "Kernel", t: "Task", sig: int, info: dict) -> None:
    """One line on stderr for a process a fault kills (Linux logs a similar
    'segfault at ... ip ...' line to the kernel log)."""
    import sys
    fault = getattr(t.group, "fault", None)
    ip = fault[2] if fault else 0
    vec = info.get("trapno", 0)
    why = x86.pf_reason(info.get("err", 0)) if vec == x86.PF else x86.VECTOR_NAMES.get(vec, str(vec))
    print(f"minios: pid {t.tid} ({t.group.comm}): {NAMES.get(sig, sig)} at "
          f"{info.get('addr', 0):#x} ip {ip:#x} ({why})", file=sys.stderr)
    sys.stderr.flush()


def _core_limit(t) -> int:
    from minios.syscalls.sys_misc import DEFAULT_RLIMITS
    return t.group.rlimits.get(4, DEFAULT_RLIMITS[4])[0]


def _do_stop(k: "Kernel", t: "Task", sig: int) -> None:
    g = t.group
    g.stopped = True
    g.stop_report = (sig << 8) | 0x7F
    for th in g.threads:
        if th.state in (RUNNING, BLOCKED):
            th.state = STOPPED
    _notify_parent(k, g, CLD_STOPPED, sig)


def _siginfo(sig: int, info: dict) -> bytes:
    b = bytearray(128)
    code = info.get("code", SI_USER)
    struct.pack_into("<iii", b, 0, sig, 0, code)
    if "addr" in info and sig in (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP):
        struct.pack_into("<Q", b, 16, info["addr"])
    else:
        struct.pack_into("<ii", b, 16, info.get("pid", 0), info.get("uid", 0))
        if sig == SIGCHLD:
            struct.pack_into("<i", b, 24, info.get("status", 0))
    return bytes(b)


_GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi",
          "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")


def _setup_frame(k: "Kernel", t: "Task", sig: int, info: dict, act) -> None:
    cpu = k.cpu
    regs = {n: cpu.reg(n) for n in _GREGS}
    sp = regs["rsp"] - 128                              # the red zone
    ss_sp, ss_flags, ss_size = t.altstack
    if act.flags & SA_ONSTACK and not ss_flags and not (ss_sp < sp <= ss_sp + ss_size):
        sp = ss_sp + ss_size
    frame = ((sp - 440) & ~15) - 8
    mc = struct.pack("<18Q", *[regs[n] for n in _GREGS])
    mc += struct.pack("<4H", 0x33, 0, 0, 0x2B)
    # The mask sigreturn restores: the caller's own one when a temporary
    # mask (rt_sigsuspend, ppoll, pselect6) let this signal in.
    restore_mask = getattr(t, "suspend_restore", None)
    t.suspend_restore = None
    if restore_mask is None:
        restore_mask = t.blocked
    mc += struct.pack("<4Q", info.get("err", 0), info.get("trapno", 0), restore_mask,
                      info.get("addr", 0))
    mc += struct.pack("<Q", 0) + bytes(64)              # no fpstate: kept in-kernel
    uc = struct.pack("<QQQiiQ", 0, 0, ss_sp, ss_flags, 0, ss_size) + mc \
        + struct.pack("<Q", restore_mask)
    data = struct.pack("<Q", act.restorer) + uc + _siginfo(sig, info)
    try:
        copy_to_user(t.mm, frame, data)
    except Fault:
        from minios.proc.exit import do_group_exit
        do_group_exit(k, t, SIGSEGV | 0x80)
        return
    t.sigctx.append((frame, cpu.save_context()))
    del t.sigctx[:-32]
    t.blocked |= act.mask
    if not act.flags & SA_NODEFER:
        t.blocked |= bit(sig)
    t.blocked &= ~UNBLOCKABLE
    handler = act.handler
    if act.flags & SA_RESETHAND:
        t.sighand.actions[sig] = act._replace(handler=SIG_DFL, flags=act.flags & ~SA_SIGINFO)
    cpu.set_regs(rsp=frame, rip=handler, rdi=sig, rsi=frame + 312,
                 rdx=frame + 8, rax=0)
    cpu.set_reg("eflags", regs["eflags"] & ~0x400)      # DF clear, as the ABI says
    k.stats["signals_delivered"] += 1
    if k.events.listening:
        k.events.emit("signal_handler", t, sig, info)


def sys_rt_sigreturn(k: "Kernel", t: "Task") -> None:
    """Restore the registers from the frame at rsp - 8 (the restorer popped
    the return address)."""
    from minios.proc.exit import do_group_exit
    cpu = k.cpu
    frame = cpu.reg("rsp") - 8
    try:
        raw = copy_from_user(t.mm, frame + 8, 304)
    except Fault:
        do_group_exit(k, t, SIGSEGV | 0x80)
        return
    vals = struct.unpack_from("<18Q", raw, 40)
    mask = struct.unpack_from("<Q", raw, 296)[0]
    for i, (f, ctx) in enumerate(reversed(t.sigctx)):
        if f == frame:
            cpu.load_context(ctx)                        # FPU/SSE state back
            del t.sigctx[len(t.sigctx) - 1 - i:]
            break
    regs = dict(zip(_GREGS, vals))
    regs["eflags"] = (regs["eflags"] & 0x40DD5) | 0x202
    rip = regs.pop("rip")
    cpu.set_regs(**regs)
    cpu.set_rip_in_syscall(rip)
    t.blocked = mask & ~UNBLOCKABLE
    k.need_resched = True     # newly unblocked signals are delivered now
