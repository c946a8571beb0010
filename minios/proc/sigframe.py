"""Signal delivery: acting on a pending signal before a return to user mode,
the x86-64 rt_sigframe, and rt_sigreturn (Linux's get_signal and
arch/x86/kernel/signal.c).

A handler runs on a frame laid out exactly as Linux's ``struct rt_sigframe``
(return address = sa_restorer, ucontext with the sigcontext, siginfo), so
glibc's and musl's handlers, ``siglongjmp`` and ``rt_sigreturn`` work. FPU
and SSE state is kept in the kernel (one saved CPU context per frame)
rather than in an xsave area, and restored by rt_sigreturn. A default action
that kills, or a frame that cannot be written or read back, exits the
process (``exit.do_group_exit``).
"""
from __future__ import annotations

import struct
import sys
from typing import TYPE_CHECKING

from emu import x86
from minios.mm.uaccess import Fault, copy_from_user, copy_to_user
from minios.proc.exit import do_group_exit
from minios.proc.signals import (CLD_STOPPED, KERNEL_COREDUMP, KERNEL_IGNORE, KERNEL_STOP, NAMES,
                                 SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_SIGINFO, SIG_DFL,
                                 SIG_IGN, SI_USER, SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGKILL,
                                 SIGSEGV, SIGSTOP, SIGTRAP, UNBLOCKABLE, bit, dequeue_signal,
                                 do_notify_parent_cldstop)
from minios.proc.task import BLOCKED, RLIMIT_CORE, RUNNING, STOPPED

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task


def do_signal(k: "Kernel", t: "Task") -> None:
    """Before returning to user mode: act on one pending signal, or several
    that are ignored. Called with ``t``'s context live in the CPU."""
    while t.state == RUNNING and (t.pending or t.group.shared_pending):
        got = dequeue_signal(t)
        if got is None:
            return
        sig, info = got
        if k.events.listening:
            k.events.emit("signal", t, sig, info)
        if k.debugger is not None and k.debugger.on_signal(t, sig):
            continue
        act = t.sighand.actions[sig]
        if sig in (SIGKILL, SIGSTOP) or act.handler == SIG_DFL:
            if sig in KERNEL_IGNORE:
                continue
            if sig in KERNEL_STOP:
                _do_stop(k, t, sig)
                return
            # The core flag says a core was written: minios writes none, and
            # Linux writes none either when RLIMIT_CORE is 0 (the default).
            core = sig in KERNEL_COREDUMP and _core_limit(t) != 0
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
    fault = t.group.fault
    ip = fault[2] if fault else 0
    vec = info.get("trapno", 0)
    why = x86.pf_reason(info.get("err", 0)) if vec == x86.PF else x86.VECTOR_NAMES.get(vec, str(vec))
    print(f"minios: pid {t.tid} ({t.group.comm}): {NAMES.get(sig, sig)} at "
          f"{info.get('addr', 0):#x} ip {ip:#x} ({why})", file=sys.stderr)
    sys.stderr.flush()


def _core_limit(t) -> int:
    return t.group.rlimit(RLIMIT_CORE)[0]


def _do_stop(k: "Kernel", t: "Task", sig: int) -> None:
    g = t.group
    g.stopped = True
    g.stop_report = (sig << 8) | 0x7F
    for th in g.threads:
        if th.state in (RUNNING, BLOCKED):
            th.state = STOPPED
    do_notify_parent_cldstop(k, g, CLD_STOPPED, sig)


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
    restore_mask = t.suspend_restore
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
            cpu.load_context(ctx)                  # FPU/SSE state back
            del t.sigctx[len(t.sigctx) - 1 - i:]
            break
    regs = dict(zip(_GREGS, vals))
    regs["eflags"] = (regs["eflags"] & 0x40DD5) | 0x202
    rip = regs.pop("rip")
    cpu.set_regs(**regs)
    cpu.set_rip_in_syscall(rip)
    t.blocked = mask & ~UNBLOCKABLE
    k.need_resched = True     # newly unblocked signals are delivered now
