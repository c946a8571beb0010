"""The tracer: an observer of the kernel's events (``minios.events``) that
writes one line per syscall, fault, fork, exit, signal and context switch."""
from __future__ import annotations

from typing import TextIO

from emu import x86
from minios.proc.task import BLOCK
from minios.trace.format import signame
from minios.trace.syscall import format_entry, format_resumed, format_syscall
from minios.uapi.signal import NAMES

EXIT_GROUP = 231            # its "+++ exited" line follows the exit_group(...) = ? line


def format_fork(t, info: dict, child_pid: int | None = None) -> str:
    """``[pid 1] fork: 2 tables shared, 0 copied (41 us), child pid 2``."""
    line = (f"[pid {t.tid}] fork: {info['shared']} tables shared, "
            f"{info['copied']} copied ({info['ns'] / 1000:.0f} us)")
    if child_pid is not None:
        line += f", child pid {child_pid}"
    return line


def format_exit(t, status: int) -> str:
    """strace's ``+++ exited with 0 +++`` / ``+++ killed by SIGSEGV (core dumped) +++``."""
    if status & 0x7F == 0:
        return f"[pid {t.tid}] +++ exited with {(status >> 8) & 0xFF} +++"
    core = " (core dumped)" if status & 0x80 else ""
    return f"[pid {t.tid}] +++ killed by {signame(status & 0x7F)}{core} +++"


def format_fault(k, t, vmf) -> str:
    """The trace line of a page fault the kernel handled: ``vmf``
    (``minios.mm.fault.VmFault``) says what it did."""
    return (f"[pid {t.tid}] page fault at {vmf.address:#x} ip {k.cpu.reg('rip'):#x} "
            f"({x86.pf_reason(vmf.error_code)}) -> {vmf.describe()}")


class Tracer:
    """Writes the trace lines of kernel ``k``'s events in the categories
    ``cats`` (syscall, fault, sched, signal, fork) to ``out``. It only
    subscribes: without it the kernel's hot paths test one flag."""

    def __init__(self, k, cats, out: TextIO) -> None:
        self.k = k
        self.cats = set(cats)
        self.out = out
        # tid -> (nr, argument strings formatted before the call finished)
        self.pre: dict[int, tuple[int, list | None]] = {}
        # tid -> its "+++ exited" line, written after its exit_group line
        self.exit_line: dict[int, str] = {}
        ev = k.events
        cats = self.cats
        if "syscall" in cats:
            ev.subscribe("syscall_enter", self.on_syscall_enter)
            ev.subscribe("syscall_exit", self.on_syscall_exit)
            ev.subscribe("syscall_resume", self.on_syscall_resume)
        if "fault" in cats:
            ev.subscribe("fault", self.on_fault)
        if "fork" in cats:
            ev.subscribe("fork", self.on_fork)
        if "syscall" in cats or "signal" in cats:
            ev.subscribe("exit", self.on_exit)
        if "signal" in cats:
            ev.subscribe("signal_handler", self.on_signal_handler)
            ev.subscribe("tty_signal", self.on_tty_signal)
        if "sched" in cats:
            ev.subscribe("switch", self.on_switch)

    def _pre(self, t, nr: int) -> list | None:
        pre = self.pre.pop(t.tid, None)
        return pre[1] if pre is not None and pre[0] == nr else None

    def on_syscall_enter(self, t, nr: int) -> None:
        pre = format_entry(self.k, t, nr)
        if pre is not None:
            self.pre[t.tid] = (nr, pre)

    def on_syscall_exit(self, t, nr: int, r) -> None:
        pre = self._pre(t, nr)
        line = format_syscall(self.k, t, nr, r, pre)
        if r is BLOCK:
            self.pre[t.tid] = (nr, pre)
        else:
            tail = self.exit_line.pop(t.tid, None)
            if tail is not None:
                line += "\n" + tail
        self.out.write(line + "\n")
        self.out.flush()

    def on_syscall_resume(self, t, r) -> None:
        self.out.write(format_resumed(self.k, t, r, self._pre(t, t.syscall_nr)) + "\n")

    def on_fault(self, t, vmf) -> None:
        self.out.write(format_fault(self.k, t, vmf) + "\n")

    def on_fork(self, parent, child, info) -> None:
        if info is not None:                   # a new mm (not CLONE_VM)
            self.out.write(format_fork(parent, info, child.tid) + "\n")

    def on_exit(self, t, status: int) -> None:
        line = format_exit(t, status)
        if t.syscall_nr == EXIT_GROUP and "syscall" in self.cats:
            self.exit_line[t.tid] = line
        else:
            self.out.write(line + "\n")

    def on_signal_handler(self, t, sig: int, info: dict) -> None:
        name = NAMES.get(sig, sig)
        self.out.write(f"[pid {t.tid}] --- {name} {{si_signo={name}, "
                       f"si_code={info.get('code', 0)}}} ---\n")

    def on_tty_signal(self, sig: int, pgid: int) -> None:
        self.out.write(f"--- host terminal sends {NAMES.get(sig, sig)} "
                       f"to process group {pgid} ---\n")

    def on_switch(self, prev, t) -> None:
        if prev is None:
            frm = "-"
            why = "start" if self.k.nr_switches <= 1 else "previous task exited"
        else:
            frm = f"pid {prev.tid}"
            why = {"R": "preempted", "S": f"blocked: {prev.wait_channel or '?'}",
                   "T": "stopped", "Z": "exited", "X": "exited"}.get(prev.state, prev.state)
            why = f"pid {prev.tid} {why}"
        self.out.write(f"[sched] {frm} -> pid {t.tid} ({why})\n")
