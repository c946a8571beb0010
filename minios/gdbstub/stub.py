"""The GdbStub: one gdb connection, and the kernel's debugger interface.

How it hooks into the kernel: ``kernel.debugger`` (``before_run``,
``on_trap``, ``on_signal``) plus subscriptions to the kernel's ``fork``,
``fault_enter`` and ``exit`` events, and while gdb catches syscalls to
``syscall_enter``, ``syscall_exit`` and ``syscall_resume``. The
conversation with gdb only ever happens with the stopped task's context
live in the CPU and outside the CPU's run (in ``before_run`` or in
``on_signal``); the hooks that fire inside the CPU only record an event and
stop it. A helper thread watches the socket while the guest runs, so a
``^C`` stops even a loop without syscalls.

Syscall catchpoints (``QCatchSyscalls``, gdb's ``catch syscall``): a
caught call stops before its handler runs (``kernel.hold_syscall``: the
task is left on its ``syscall`` instruction, so gdb sees RIP there, not
after it as on Linux, and makes the call when it goes on), and again when
it returns (``syscall_return``, after a blocked call finishes; execve's in
the new image; none for exit and exit_group). A return stop is reported
before a signal that comes with it. One stop waits at a time: a call
caught while another thread's stop is not yet reported runs uncaught.

Debugging model: all-stop, one process (with its threads; registers of a
thread that is not running come from its saved context). After a fork the
stub keeps the parent, or with ``follow="child"`` switches to the child;
the other one gets its original bytes back under the breakpoints, as gdb
does when it detaches a fork. gdb is not told about forks or execs (no
fork-events). Nothing a debugger sends can take the machine down: a stub
bug is reported on the log and the guest runs on.
"""
from __future__ import annotations

import os
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emu import x86
from minios.gdbstub import query
from minios.gdbstub.breakpoints import Breakpoints, Watchpoints, step_one
from minios.gdbstub.memory import Memory
from minios.gdbstub.packets import (Conn, GdbError, Gone, accept, listen,
                                    watch_interrupts)
from minios.gdbstub.vfile import VFiles
from minios.proc import sigframe, signals
from minios.proc.exit import do_group_exit
from minios.proc.task import BLOCK, RUNNING

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.mm.mm_types import MM
    from minios.proc.task import Task, ThreadGroup

SIGINT, SIGTRAP = signals.SIGINT, signals.SIGTRAP


@dataclass
class Stop:
    """A stop to report to gdb."""
    task: "Task"
    sig: int
    reason: str = ""            # "swbreak:;" / "watch:ADDR;" ...
    held: int | None = None     # a syscall entry: its instruction, the call not made yet


class GdbStub:
    """Serve one gdb connection for the first process the kernel runs (and,
    with ``follow="child"``, for each child it forks)."""

    def __init__(self, k: "Kernel", host: str = "127.0.0.1", port: int = 1234,
                 follow: str = "parent", log=None) -> None:
        if follow not in ("parent", "child"):
            raise ValueError("gdb follow mode must be parent or child")
        self.k = k
        self.follow = follow
        self.log = log or sys.stderr
        self.listener = listen(host, port)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.conn: Conn | None = None
        self.active = True
        self.task: "Task | None" = None          # the thread gdb sees as stopped/current
        self.group: "ThreadGroup | None" = None   # the process being debugged
        self.gthread: "Task | None" = None        # Hg: registers of this thread
        self.pending: Stop | None = None          # a stop not yet reported
        self.last_stop: Stop | None = None
        self.stepping = False                     # resumed with s/S (else c/C)
        self.inject: int = 0                      # a signal gdb asked us to deliver
        self.pass_signals: set[int] = set()
        self.catching = False                     # QCatchSyscalls:1 ...
        self.catch_nrs: frozenset[int] | None = None  # ... of these calls (None: all)
        self.mem = Memory(k)
        self.breaks = Breakpoints(k, self.mem)
        self.watch = Watchpoints(k, self.mem, lambda: self.mm, self.internal)
        self.vfiles = VFiles(k)
        self._forks: list = []                    # (parent, child, parent's mm) to settle
        self.auxv: bytes | None = None            # qXfer:auxv, once read
        self.multiprocess = False                 # pPID.TID thread ids (qSupported)
        # The PID gdb knows: the first process's, also after following a
        # fork's child (gdb is not told of forks: a new PID would be a new
        # inferior to it), whose threads then appear as new threads.
        self.wire_pid: int | None = None
        self._stops = 0
        self._running = threading.Event()         # the guest runs (not stopped, not stepping)
        self._install_hooks()
        k.debugger = self
        self.say(f"waiting for gdb on {self.host}:{self.port}")

    # ------------------------------------------------------------ plumbing
    def say(self, msg: str) -> None:
        try:
            self.log.write(f"minios: gdb: {msg}\n")
            self.log.flush()
        except (OSError, ValueError):
            pass

    def _install_hooks(self) -> None:
        ev = self.k.events
        ev.subscribe("fork", self._on_fork)
        ev.subscribe("exit", self._on_exit)
        ev.subscribe("fault_enter", self._on_fault)

    def _ours(self, t: "Task") -> bool:
        return self.group is not None and t.group is self.group

    @property
    def mm(self) -> "MM | None":
        """The debugged thread's mm (None before it runs or once it is gone)."""
        if self.task is not None and self.task.mm is not None:
            return self.task.mm
        return None

    def need_mm(self) -> "MM":
        """The debugged mm, for a packet that needs one (GdbError if none)."""
        mm = self.mm
        if mm is None:
            raise GdbError()
        return mm

    def read(self, mm: "MM", va: int, n: int) -> bytes:
        """gdb's view of memory: the original bytes under breakpoints."""
        data = self.mem.read(mm, va, n)
        return self.breaks.shadow(mm, va, data) if self.breaks.bps else data

    def close(self, restore: bool = True) -> None:
        """Stop debugging: the guest runs on undisturbed (``restore``: with
        its original bytes under the breakpoints)."""
        if self.active:
            self.active = False
            self.watch.clear_hooks()
            self.catch_syscalls(False, None)
            if restore:
                try:
                    self.breaks.remove_all()
                except Exception as e:
                    self.internal(e)
            self.breaks.bps.clear()
        self.vfiles.close_all()
        if self.k.debugger is self:
            self.k.debugger = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        try:
            self.listener.close()
        except OSError:
            pass

    def finish(self) -> None:
        """The machine stopped: report the debugged process's end if gdb
        has not heard of it yet, and close everything."""
        if self.active and self.conn is not None and self.group is not None:
            st = self.group.exit_status if self.group.exit_status is not None \
                else self.group.group_exit
            if st is not None:
                try:
                    self._send_exit(st)
                except Gone:
                    pass
        self.close()

    # ------------------------------------------------- kernel: debugger API
    def before_run(self, t: "Task") -> None:
        """The kernel is about to run ``t`` (live in the CPU): report a
        pending stop and serve gdb, or single-step, as gdb asked."""
        if not self.active:
            return
        try:
            self._before_run(t)
        except Gone:
            self._disconnected()
        except Exception as e:          # a stub bug must not take the guest down
            self.internal(e)

    def on_trap(self, t: "Task", vector: int, err: int, addr: int) -> bool:
        """A trap in ``t``: True if it was one of gdb's breakpoints (the
        CPU is stopped with RIP on it), False for the kernel to handle."""
        if not self.active or vector != x86.BP:
            return False
        try:
            cpu = self.k.cpu
            at = cpu.reg("rip") - 1
            if self.breaks.at(t.mm, at) is None:
                return False                    # not ours: SIGTRAP, as on Linux
            cpu.set_reg("rip", at)
            if self._ours(t):
                self.pending = Stop(t, SIGTRAP, "swbreak:;")
            else:
                self.breaks.stepover.add(t)     # e.g. a vfork child on our mm
            cpu.stop()
            return True
        except Exception as e:
            self.internal(e)
            return False

    def on_signal(self, t: "Task", sig: int) -> bool:
        """True: gdb suppressed ``sig``; False: deliver it."""
        if not self.active or not self._ours(t) or sig == signals.SIGKILL:
            return False
        try:
            self._fixup_watch(t)
            p = self.pending
            if p is not None and p.task is t and p.reason.startswith("syscall_return"):
                first = self._report_and_serve(t)   # the call returned first, as on Linux
                if t.state != RUNNING:
                    return True
                if not self.active:
                    return False
                if first and first != sig:
                    self._inject_signal(t, first)
            if self.inject == sig:
                self.inject = 0
                return False
            if sig in self.pass_signals:
                return False
            self.pending = Stop(t, sig)
            resume_sig = self._report_and_serve(t)
            if t.state != RUNNING:
                return True                     # killed meanwhile: nothing to deliver
            if not self.active:
                return False
            if resume_sig == sig:
                return False
            if resume_sig:
                self._inject_signal(t, resume_sig)
            return True
        except Gone:
            self._disconnected()
            return t.state != RUNNING
        except Exception as e:
            self.internal(e)
            return False

    # --------------------------------------------------------- kernel events
    def _on_fork(self, parent: "Task", child: "Task", _info) -> None:
        if not self.active or not self._ours(parent) or child.group is parent.group:
            return
        self._forks.append((parent, child, parent.mm))
        if self.follow == "child":
            self.group = child.group
            self.task = self.gthread = child

    def _on_exit(self, t: "Task", status: int) -> None:
        if not self.active or not self._ours(t):
            return
        try:
            self._send_exit(status)
        except Gone:
            pass
        self.close(restore=False)               # the mm goes away with it

    def _on_fault(self, t: "Task", addr: int, _err: int) -> None:
        """A fault on a watched page may give it another frame: stop after
        the kernel has handled it, re-arm, then let the access happen."""
        if not self.active or not self.watch.watches or t.mm is not self.mm:
            return
        if self.watch.covers_page(addr):
            self.watch.rearm = True
            self.k.cpu.stop()

    # ---------------------------------------------------- syscall catchpoints
    def catch_syscalls(self, on: bool, nrs: frozenset[int] | None) -> None:
        """``QCatchSyscalls``: stop at the entry and return of the calls
        numbered ``nrs`` (None: every call), or (``on`` false) of none. The
        stub listens to the syscall events only while it catches: the
        syscall path stays as fast as without it otherwise."""
        if on != self.catching:
            ev = self.k.events
            change = ev.subscribe if on else ev.unsubscribe
            change("syscall_enter", self._on_syscall_enter)
            change("syscall_exit", self._on_syscall_exit)
            change("syscall_resume", self._on_syscall_resume)
        self.catching, self.catch_nrs = on, nrs if on else None

    def _catches(self, t: "Task", nr: int) -> bool:
        return self.active and self._ours(t) and self.pending is None \
            and (self.catch_nrs is None or nr in self.catch_nrs)

    def _on_syscall_enter(self, t: "Task", nr: int) -> None:
        """Inside the syscall hook: stop ``t`` before the call, unless this
        is the call whose entry gdb was just told of."""
        last = self.last_stop
        if last is not None and last.task is t and last.held is not None:
            held, last.held = last.held, None
            if held == t.syscall_rip:
                return                          # gdb resumed it: make the call
        if self._catches(t, nr):
            self.pending = Stop(t, SIGTRAP, f"syscall_entry:{nr:x};", held=t.syscall_rip)
            self.k.hold_syscall = True          # the kernel stops the CPU

    def _on_syscall_exit(self, t: "Task", nr: int, result) -> None:
        """Inside the syscall hook, after the call: stop ``t`` on its
        return (a blocked call's comes with ``syscall_resume``; a task that
        exited has none; execve's is in the new image)."""
        if result is not BLOCK and t.state == RUNNING and self._catches(t, nr):
            self.pending = Stop(t, SIGTRAP, f"syscall_return:{nr:x};")
            self.k.cpu.stop()

    def _on_syscall_resume(self, t: "Task", _result) -> None:
        """In the run loop, before ``before_run``: a blocked call returned."""
        if t.state == RUNNING and self._catches(t, t.syscall_nr):
            self.pending = Stop(t, SIGTRAP, f"syscall_return:{t.syscall_nr:x};")

    # ------------------------------------------------------------ the loop
    def _before_run(self, t: "Task") -> None:
        if self.group is None:                  # the first task: pid 1 at its entry
            self.group, self.task, self.gthread = t.group, t, t
            if self.wire_pid is None:
                self.wire_pid = t.group.tgid
            self.pending = Stop(t, SIGTRAP)
        if self._forks:
            self._handle_forks()
            if self.mem.code_dirty:
                self.mem.flush_code()
        if t in self.breaks.stepover:
            self.breaks.step_over(t, self._step_muted)
            return
        if not self._ours(t):
            return
        self._fixup_watch(t)
        if self.conn is not None and self.pending is None and not self.stepping \
                and self.conn.poll_interrupt():
            self.pending = Stop(t, SIGINT)
        while self.active and t.state == RUNNING:
            if self.pending is not None and self.pending.task is t:
                sig = self._report_and_serve(t)
                if sig and self.active:
                    self._inject_signal(t, sig)     # e.g. gdb's "signal SIGUSR1"
                continue
            if self.stepping and self.task is t:
                if signals.has_pending(t):
                    stops = self._stops
                    sigframe.do_signal(self.k, t)
                    if self._stops == stops and self.stepping and self.active \
                            and self.pending is None and t.state == RUNNING:
                        self.pending = Stop(t, SIGTRAP)    # at the handler, as Linux
                    continue
                self._single_step(t)
                continue
            break
        if self.active:
            if self.watch.rearm:
                self.watch.arm()
            if self.mem.code_dirty:
                self.mem.flush_code()

    def _report_and_serve(self, t: "Task") -> int:
        """Report ``self.pending`` (``t`` is live) and talk to gdb until it
        resumes us. Returns the signal gdb resumed with (0: none)."""
        stop = self.pending
        self.pending = None
        self._running.clear()
        self._stops += 1
        self.task = self.gthread = t
        self.last_stop = stop
        self.stepping = False
        self.watch.clear_hooks()
        while True:
            fresh = self.conn is None
            if fresh:
                self._accept()                  # gdb asks '?' for the first stop
            else:
                self.conn.send(query.stop_reply(self, stop))
            try:
                sig = query.serve(self)
                break
            except Gone:
                if fresh and self.conn is not None and self.conn.packets == 0:
                    self.conn.close()           # a probe, not gdb: wait for the next
                    self.conn = None
                    continue
                raise
        if self.active:
            self.watch.arm()
            self.mem.flush_code()
            if not self.stepping:
                self._running.set()
        return sig

    def _accept(self) -> None:
        conn, peer = accept(self.listener)
        self.conn = conn
        self.say(f"connected from {peer[0]}:{peer[1]}")
        # While the guest runs, ^C (or a dropped connection) stops the CPU,
        # as the slice watchdog does; before_run then reports SIGINT.
        watch_interrupts(conn, self._running, lambda: self.active and self.conn is conn,
                         self.k.cpu.stop)

    def _disconnected(self) -> None:
        if self.active:
            self.say("gdb went away; the program runs on")
        self.stepping = False
        self.pending = None
        self._running.clear()
        self.close()

    def internal(self, e: BaseException) -> None:
        """A bug in the stub: say so (with the traceback under
        MINIOS_DEBUG) and carry on; the guest must not go down with it."""
        self.say(f"internal error: {type(e).__name__}: {e}")
        if os.environ.get("MINIOS_DEBUG"):
            traceback.print_exc()

    # ------------------------------------------------------------ stepping
    def _single_step(self, t: "Task") -> None:
        """Execute exactly one instruction of ``t`` (live) and make the stop
        pending, unless the instruction left ``t`` unable to stop here."""
        cpu, k = self.k.cpu, self.k
        for _ in range(8):
            rip = cpu.reg("rip")
            faults = k.stats["page_faults"]
            step_one(k, self.internal)
            if self.watch.hit is not None and self.watch.hit[0] is t:
                self._fixup_watch(t)
                return
            if self.pending is not None or not self.active:
                return                          # a breakpoint, an exit...
            if t.state != RUNNING or k.current is not t:
                self.pending = Stop(t, SIGTRAP)     # reported when it runs again
                return
            if signals.has_pending(t):
                return                          # the signal stop comes first
            if cpu.reg("rip") != rip or k.stats["page_faults"] == faults:
                break
            # a page fault was resolved: the instruction did not run yet
        self.pending = Stop(t, SIGTRAP)

    def _step_muted(self) -> None:
        """One instruction with the watch hooks off (the stub's own step)."""
        self.watch.mute = True
        try:
            step_one(self.k, self.internal)
        finally:
            self.watch.mute = False

    def _fixup_watch(self, t: "Task") -> None:
        """A watch hook stopped ``t`` inside an instruction: finish it and
        make the stop pending, after it."""
        reason = self.watch.fixup(t)
        if reason is not None and self.pending is None and self.active:
            self.pending = Stop(t, SIGTRAP, reason)

    # --------------------------------------------------------------- forks
    def _handle_forks(self) -> None:
        """Like gdb detaching the process it does not follow: that one gets
        the original bytes back under every breakpoint. Runs before either
        side's next slice (the forking parent may have run on: breakpoints
        it hits meanwhile are stepped over invisibly)."""
        forks, self._forks = self._forks, []
        for parent, child, mm in forks:
            if child.mm is mm:
                continue                        # vfork: one mm, nothing to undo
            other = parent.mm if self.follow == "child" else child.mm
            mine = [bp for bp in self.breaks.bps.values() if bp.mm is mm]
            if self.follow == "child":
                for bp in mine:
                    bp.mm = child.mm
                self.watch.rearm = True
            if other is None or other not in self.k.mms:
                continue
            self.breaks.put_back(mine, other)
            if self.follow == "child":
                self.say(f"following the child, pid {child.pid}")

    # -------------------------------------------------------- kill, signals
    def kill(self) -> None:
        """``k``/``vKill``: end the debugged process."""
        self.say("killed by gdb")
        t = self.task
        group = self.group
        self.active = False
        self.watch.clear_hooks()
        if t is not None and group is not None and group.threads:
            do_group_exit(self.k, group.threads[0], signals.SIGKILL)
            self.k.cpu.stop()

    def _inject_signal(self, t: "Task", sig: int) -> None:
        """gdb resumed with a signal the task did not stop for (``signal
        SIGUSR1``): queue it, and let it through when it comes out."""
        if not 0 < sig < 65:
            return
        t.pending[sig] = {"signo": sig, "code": signals.SI_USER}
        self.inject = sig

    def _send_exit(self, status: int) -> None:
        if self.conn is not None:
            self.conn.send(query.exit_reply(self, status))
