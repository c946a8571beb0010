"""The kernel: boot, the scheduler loop, and the two ways into it from the
guest (``syscall`` and exceptions).

The scheduler is deterministic for guests that make system calls: the
running task keeps the CPU until it blocks, exits, or has made
``QUANTUM`` syscalls while another task is runnable; only a task that spins
without syscalls is cut by a timer slice. Runnable tasks go round-robin in FIFO order.

A task that blocks or exits in a syscall is usually replaced without
leaving the CPU: the next task's context is loaded inside the ``syscall``
hook and Unicorn carries on with it (``_switch_in_hook``), as a kernel
returns to a different task than the one that entered it. Only the cases
that need the loop (signals to deliver, a debugger, the checker, nothing
to run) stop the CPU.
"""
from __future__ import annotations

import collections
import os
import sys
import time
import traceback
from typing import Callable

import numpy as np

from emu import x86
from emu.cpu import CPU, CTX, RESERVED_FRAMES
from minios.events import Events
from minios.time import clock
from minios.proc import sigframe, signals
from minios.uapi.errno import EFAULT, ENOMEM, ENOSYS
from minios.mm.fault import handle_mm_fault
from minios.fs.tty import HostTerminal
from minios.fs.files import FdTable, HostFd, O_RDONLY, O_WRONLY
from minios.fs.vfs import VFS
from minios.mm.frames import FrameAllocator, OutOfMemory
from minios.syscalls.all import SYSCALLS
from minios.proc.task import (BLOCK, BLOCKED, DEAD, NORETURN, RUNNING, ZOMBIE, SigHand, Task,
                              ThreadGroup, host_rlimits)
from minios.mm.mm_types import MM
from minios.mm.uaccess import Fault
from minios.proc.exec import exec_into
from minios.proc.exit import do_group_exit
from minios.mm.teardown import mmput
from minios.time.vdso import build_image

RIP, RAX = CTX["rip"], CTX["rax"]
QUANTUM = 64                 # syscalls before a running task yields
SLICE_US = 200_000           # a task spinning without syscalls yields after this


class Kernel:
    def __init__(self, mem: int = 4 << 30, cow_pte: str = "flag",
                 check: bool = False, root: str = "/", rw: tuple = (),
                 vdso: bool = True) -> None:
        if cow_pte not in ("flag", "always", "never"):
            raise ValueError("cow_pte must be flag, always or never")
        self.cpu = CPU(mem)
        self.ram = self.cpu.ram
        self.cpu.on_syscall = self._on_syscall
        self.cpu.on_trap = self._on_trap
        self.frames = FrameAllocator(self.ram, RESERVED_FRAMES)
        self.frames.on_code_reuse = self.cpu.flush_code
        self.pt_owner = np.full(self.ram.nframes, -1, dtype=np.int64)
        self.pt_owner_at = memoryview(self.pt_owner)    # scalar access, as frames' *_at
        self.mms: dict = {}             # every live mm, in creation order
        self.mm_ids: dict = {}          # ... by id (an owner in pt_owner)
        # PMD table -> (its va >> 30, mask of entries holding no share count):
        # the COW fork's lent rows (minios.mm.cow, "Lent rows")
        self.uncounted: dict[int, tuple[int, np.ndarray]] = {}
        self.next_mm_id = 0
        self.cow_pte = cow_pte
        self.root = root
        self.rw_dirs = list(rw)          # host dirs writable in the guest (minios/fs/vfs.py)
        self.vfs: VFS | None = None      # the file tree, built on first use (vfs.get_vfs)
        # (guest path, host path) of the program Machine.run boots: execve of
        # that path reads the host file, even where /tmp hides it (exec.read_executable).
        self.boot_exe: tuple[str, str] | None = None
        # The last fork's page-table copy: {"shared": tables, "copied": tables,
        # "ns": host time} (for --trace fork and the tests).
        self.last_fork: dict[str, int] | None = None
        self.tasks: dict[int, Task] = {}
        self.groups: dict[int, ThreadGroup] = {}
        self.runq: collections.deque[Task] = collections.deque()
        self.current: Task | None = None
        self.next_pid = 1
        self.stats: collections.Counter = collections.Counter()
        self.nr_switches = 0
        self.check = check
        self.checker: Callable | None = None
        self.boot_free = self.frames.nr_free
        self.boot_time = time.time()
        # The vDSO image every execve maps (None: none, the libcs then make
        # system calls). One bytes object, so its page is one page-cache frame.
        data = clock.vdata() if vdso else None
        self.vdso_image = build_image(data) if data is not None else None
        self.need_resched = False
        self.sliced = False          # the current run has an instruction slice
        self.rearm = False           # ... and must get one: someone is waiting
        self.quantum = QUANTUM
        self.init_status: int | None = None
        self.host_signals: list[int] = []   # from the host terminal (forward_terminal_signals)
        self.tty = HostTerminal()           # the guest's view of the host terminal
        self.futexes: dict = collections.defaultdict(list)
        # What observers (the tracer, --break, the GDB stub) learn: see
        # minios/events.py. Emitted inside the kernel, so pdb sees its state.
        self.events = Events()
        # minios.debug's --break registry: kind -> (breaks, event, subscriber).
        self.breaks: dict[str, tuple] = {}
        # A guest debugger (the GDB stub): before_run(task) runs before each
        # slice and may single-step or wait for commands; on_trap(task,
        # vector, err, addr) -> True consumes a #BP/#DB/fault; on_signal(task,
        # sig) -> True suppresses a signal (gdb decides what to pass on).
        self.debugger = None
        # Set by a syscall_enter subscriber (the GDB stub's syscall
        # catchpoints) to stop the task before the call: the call is not
        # made; the task is left at its syscall instruction and makes it
        # when it runs again.
        self.hold_syscall = False
        self.syscalls = SYSCALLS

    # ------------------------------------------------------------- process
    def alloc_pid(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        return pid

    def spawn(self, path: str, argv: list[bytes], envp: list[bytes],
              stdio: tuple[int, int, int] = (0, 1, 2)) -> Task:
        """Create pid 1 running ``path`` (errors raise ExecError)."""
        files = FdTable()
        for fd, host in enumerate(stdio):
            files.install_at(fd, HostFd(host, O_RDONLY if fd == 0 else O_WRONLY))
        group = ThreadGroup(self.alloc_pid())
        group.pgid = group.sid = group.tgid
        group.rlimits = host_rlimits()
        mm = MM(self)
        task = Task(group.tgid, group, mm, files, SigHand(), self.cpu.new_context())
        group.threads.append(task)
        self.tasks[task.tid] = task
        self.groups[group.tgid] = group
        self._switch_to(task)
        try:
            self.cpu.set_reg("rip", exec_into(self, task, path, argv, envp))
        except Exception:
            self.reap_everything(task)
            raise
        self.runq.append(task)
        return task

    def reap_everything(self, task: Task) -> None:
        mmput(task.mm)
        self.tasks.pop(task.tid, None)
        self.groups.pop(task.pid, None)
        self.current = None

    # ------------------------------------------------------------ scheduler
    def _switch_to(self, t: Task, in_hook: bool = False, rax: int | None = None) -> None:
        """Make ``t`` the task on the CPU. ``in_hook``: we are inside the
        current task's ``syscall`` hook, so it resumes after that
        instruction and ``t``'s RIP is pre-compensated for the 2 Unicorn
        adds on leaving the hook. ``rax``: ``t``'s syscall result. Both
        are written into the saved contexts, not through the CPU."""
        cur = self.current
        if cur is t:
            return
        cpu = self.cpu
        regs = cpu.ctx_regs(t.ctx)
        if in_hook:
            regs[RIP] -= 2
        if rax is not None:
            regs[RAX] = rax & 0xFFFF_FFFF_FFFF_FFFF
        old = cur.ctx if cur is not None and cur.state not in (DEAD, ZOMBIE) else None
        cpu.switch_context(old, t.ctx, t.mm.pgd, same_space=old is not None and cur.mm is t.mm)
        if in_hook and old is not None:
            cpu.ctx_regs(old)[RIP] = cur.syscall_rip + 2
        self.current = t
        self.nr_switches += 1
        if self.events.listening:
            self.events.emit("switch", cur, t)

    def wake(self, t: Task) -> None:
        if t.state == BLOCKED:
            t.state = RUNNING
            t.wake_time = None
            self.make_runnable(t)

    def make_runnable(self, t: Task) -> None:
        """Queue ``t``. If the running task has no instruction slice (it
        started alone), give it one now: otherwise a task that now spins
        without syscalls would starve ``t``. (Under a debugger, which
        steers runs itself, stop it and restart it first in line instead.)"""
        self.runq.append(t)
        cur = self.current
        if cur is not None and cur is not t and cur.state == RUNNING and not self.sliced:
            if self.debugger is None:
                self.cpu.arm_slice(SLICE_US)
                self.sliced = True
            else:
                self.need_resched = True
                self.rearm = True

    def wake_waiters(self, group: ThreadGroup) -> None:
        """A child of ``group`` changed state: wake its threads asleep in
        wait4/waitid (only they can be: no scan of every task)."""
        for t in group.threads:
            if t.state == BLOCKED and t.wait_channel == "wait4":
                self.wake(t)

    def wake_sleepers(self, key) -> None:
        """Wake the tasks asleep on ``key`` (a pipe, an eventfd: see
        syscalls.common.blocking) and the poll/epoll sleepers, who may wait for it
        too. One loop without a predicate call: pipe I/O does this twice
        per round trip."""
        for t in self.tasks.values():         # wake() changes states, not the dict
            if t.state == BLOCKED and (t.wait_obj is key or t.wait_channel == "poll"):
                self.wake(t)

    def _pick(self) -> Task | None:
        while self.runq:
            t = self.runq.popleft()
            if t.state == RUNNING:
                return t
        return None

    def _idle(self) -> bool:
        """Nothing runnable: sleep until a timed wait expires. False when no
        task can ever run again."""
        sleepers = [t for t in self.tasks.values() if t.state == BLOCKED and t.wake_time]
        if sleepers:
            first = min(t.wake_time for t in sleepers)
            delay = first - time.monotonic()
            while delay > 0 and not self.host_signals:     # Ctrl-C ends the wait
                time.sleep(min(delay, 0.05))
                delay = first - time.monotonic()
            now = time.monotonic()
            for t in sleepers:
                if t.wake_time <= now:
                    self.wake(t)
            return True
        blocked = [t for t in self.tasks.values() if t.state == BLOCKED]
        if blocked:
            print(f"minios: deadlock: every task is blocked "
                  f"({', '.join(f'{t.tid}:{t.wait_channel}' for t in blocked)})",
                  file=sys.stderr)
        return False

    def run(self) -> int:
        """Run until pid 1 exits; returns its status as a shell reports it."""
        cpu = self.cpu
        while self.init_status is None:
            if self.host_signals:
                self._deliver_host_signals()
            t = self._pick()
            if t is None:
                if not self._idle():
                    break
                continue
            self._switch_to(t)
            if t.retry is not None:
                r = t.retry()
                if r is BLOCK:
                    t.state = BLOCKED
                    continue
                t.retry = None
                if r is not NORETURN:
                    cpu.set_reg("rax", r)
                if self.events.listening:
                    self.events.emit("syscall_resume", t, r)
            sigframe.do_signal(self, t)
            if t.state != RUNNING:
                continue
            if self.debugger is not None:
                self.debugger.before_run(t)
                if t.state != RUNNING:
                    continue
            self.need_resched = False
            self.quantum = QUANTUM
            self.sliced = bool(self.runq)
            self.rearm = False
            try:
                cpu.run(SLICE_US if self.sliced else 0)
            except Exception as e:            # a kernel bug, never the guest's
                self._internal_error(t, e)
            t = self.current            # the run may have switched in a hook
            if t is not None and t.state == RUNNING:
                if self.rearm:
                    self.runq.appendleft(t)
                else:
                    self.runq.append(t)
            if self.check and self.checker:
                self.checker(self)
        if self.init_status is None:
            return 1
        return self.init_status

    def _internal_error(self, t: Task, e: BaseException) -> None:
        print(f"minios: internal error while running pid {t.tid}: "
              f"{type(e).__name__}: {e}", file=sys.stderr)
        if os.environ.get("MINIOS_DEBUG"):
            traceback.print_exc()
        if t.state == RUNNING:
            do_group_exit(self, t, signals.SIGKILL)

    # ------------------------------------------------------------- syscall
    def _on_syscall(self) -> None:
        cpu = self.cpu
        nr, a0, a1, a2, a3, a4, a5, rip, rflags = cpu.syscall_args()
        t = self.current
        t.syscall_nr = nr
        t.syscall_rip = rip
        t.syscall_rflags = rflags
        t.syscall_args = (a0, a1, a2, a3, a4, a5)
        ent = self.syscalls.get(nr)
        events = self.events
        if events.listening:
            events.emit("syscall_enter", t, nr)
            if self.hold_syscall:
                self.hold_syscall = False
                cpu.set_rip_in_syscall(rip)     # back onto the syscall instruction
                cpu.stop()
                return
        if ent is None:
            r = -ENOSYS
        else:
            try:
                r = ent[0](self, t, a0, a1, a2, a3, a4, a5)
            except Fault:
                r = -EFAULT
            except OutOfMemory:
                r = -ENOMEM
            except OSError as e:
                r = -(e.errno or 5)
            except Exception as e:
                self._internal_error(t, e)
                r = NORETURN
        if r is BLOCK:
            cpu.set_syscall_result(nr, rip, rflags)   # RCX/R11 clobbers now
            t.state = BLOCKED
            if events.listening:
                events.emit("syscall_exit", t, nr, r)
            if not self._switch_in_hook(t):
                cpu.stop()
            return
        if r is not NORETURN:
            cpu.set_syscall_result(r, rip, rflags)
        if events.listening:
            events.emit("syscall_exit", t, nr, r)
        self.quantum -= 1
        if t.state in (DEAD, ZOMBIE):
            self.need_resched = False            # it meant "t is gone"
            if not self._switch_in_hook(t):
                cpu.stop()
        elif self.need_resched or t.state != RUNNING \
                or ((t.pending or t.group.shared_pending) and signals.has_pending(t)) \
                or self.host_signals or (self.quantum <= 0 and self._others_runnable(t)):
            cpu.stop()
        else:
            if self.quantum <= 0:
                self.quantum = QUANTUM           # nobody else wants the CPU
            if self.check and self.checker:
                self.checker(self)

    def _others_runnable(self, t: Task) -> bool:
        return any(x.state == RUNNING and x is not t for x in self.runq)

    def _switch_in_hook(self, t: Task) -> bool:
        """``t`` stopped running at its ``syscall`` (it blocked or exited):
        run the next task without leaving the CPU, as a kernel returns to a
        different task than the one that entered it. Stopping and
        restarting Unicorn, and a turn of the run loop, cost more than the
        whole switch. Only the plain case is done here; whatever needs the
        run loop (a debugger, the checker, the terminal, nothing runnable)
        returns False and the caller stops the CPU; after a switch, so does
        a signal to deliver (the run loop delivers it, the new task first)."""
        if self.debugger is not None or self.check or self.host_signals \
                or self.need_resched or self.init_status is not None:
            return False
        while True:
            n = self._pick()
            if n is None:
                return False
            r = None
            retried = n.retry is not None
            if retried:                       # touches n's memory, not the CPU
                r = n.retry()
                if r is BLOCK:
                    n.state = BLOCKED
                    continue
                n.retry = None
            break
        self._switch_to(n, in_hook=True, rax=None if r is NORETURN else r)
        if retried and self.events.listening:
            self.events.emit("syscall_resume", n, r)
        if (n.pending or n.group.shared_pending) and signals.has_pending(n):
            self.rearm = True
            return False
        self.quantum = QUANTUM
        self.sliced = bool(self.runq)
        self.cpu.new_slice(SLICE_US if self.sliced else 0)
        return True

    # --------------------------------------------------------------- traps
    def _on_trap(self, vector: int, err: int, cr2: int) -> None:
        t = self.current
        if self.debugger is not None and vector != x86.PF \
                and self.debugger.on_trap(t, vector, err, cr2):
            return
        if vector == x86.PF:
            self.stats["page_faults"] += 1
            events = self.events
            if events.listening:
                events.emit("fault_enter", t, cr2, err)
            vmf = handle_mm_fault(t.mm, cr2, bool(err & x86.PF_W), bool(err & x86.PF_I), err)
            if events.listening:
                events.emit("fault", t, vmf)
            if not vmf.flags:
                if self.check and self.checker:
                    self.checker(self)
                return
            sig, code = vmf.signal, vmf.si_code
            if self.debugger is not None and self.debugger.on_trap(t, vector, err, cr2):
                return
            signals.force_sig_fault(self, t, sig, code, cr2, vector, err)
        else:
            sig, code = signals.TRAP_SIGNALS.get(vector, (signals.SIGSEGV, 0x80))
            signals.force_sig_fault(self, t, sig, code, 0, vector, err)
        self.cpu.stop()

    # ------------------------------------------------------- host terminal
    def forward_terminal_signals(self) -> None:
        """Ctrl-C and Ctrl-\\ at the host terminal go to the guest's
        foreground process group, as a tty driver sends them, instead of
        killing the machine. The host delivers them to this process; the
        Python handler only runs once the CPU is back in Python, so a
        helper thread woken by the C-level wakeup fd gives a guest that
        spins without syscalls a slice (the watchdog then stops it)."""
        import signal
        import threading
        r, w = os.pipe()
        os.set_blocking(w, False)

        def handler(sig, _frame) -> None:
            self.host_signals.append(sig)

        def waker() -> None:
            while os.read(r, 64):
                self.cpu.arm_slice(SLICE_US)
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, handler)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        threading.Thread(target=waker, name="minios-tty", daemon=True).start()

    def _deliver_host_signals(self) -> None:
        sigs, self.host_signals = self.host_signals, []
        init = self.groups.get(1)
        pgid = self.tty.foreground_pgrp(0, init.pgid if init else 1)
        targets = [g for g in self.groups.values() if g.pgid == pgid and g.threads]
        if not targets and init is not None:
            targets = [init]
        for sig in sigs:
            if self.events.listening:
                self.events.emit("tty_signal", sig, pgid)
            for g in targets:
                signals.send_signal(self, g, sig, {"code": signals.SI_KERNEL, "pid": 0, "uid": 0})
