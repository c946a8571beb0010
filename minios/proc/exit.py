"""Exit: threads leave, the last one turns the process into a zombie,
children are handed to pid 1, the parent gets SIGCHLD, and the mm is torn
down (dropping, not breaking, any COW-shared PTE tables)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from minios.proc import futex
from minios.proc import signals
from minios.mm.memory import free_pgtables, release_shm
from minios.proc.task import DEAD, ZOMBIE
from minios.mm.uaccess import Fault, put_u32

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.mm.mm_types import MM
    from minios.proc.task import Task


def mm_release(k: "Kernel", mm: "MM") -> None:
    """Drop one user of ``mm``; the last one frees everything it holds."""
    mm.users -= 1
    if mm.users > 0:
        return
    # No TLB flush: no task runs mm any more. If the CPU is still on its
    # tables (its last task exits, or is reaped after a failed spawn), the
    # next task gets on through a context switch that loads CR3 and flushes
    # (the old task is dead) before any guest instruction; execve loaded
    # the new CR3 before releasing the old mm. Frames freed here were
    # reached by mm only, so no other mm's translations go stale. Its own
    # kernel TLB goes, in case anything still reads through it.
    free_pgtables(mm)
    mm.utlb.clear()
    for v in mm.vmas:
        if v.shm:
            release_shm(k, v)
    mm.vmas.clear()
    mm._vcache = None
    k.frames.put(mm.pgd)
    mm.nr_tables -= 1
    k.mms.pop(mm, None)
    k.mm_ids.pop(mm.id, None)


def release_vfork(k: "Kernel", t: "Task") -> None:
    p = t.vfork_parent
    if p is not None:
        t.vfork_parent = None
        p.vfork_done = True
        k.wake(p)


def do_exit(k: "Kernel", t: "Task", code: int) -> None:
    """One thread leaves (exit(2) or the end of a group exit)."""
    if t.state in (DEAD, ZOMBIE):
        return
    if t.clear_child_tid and t.mm.users > 1:
        try:
            put_u32(t.mm, t.clear_child_tid, 0)
            futex.wake(k, t.mm, t.clear_child_tid, 1)
        except Fault:
            pass
    release_vfork(k, t)
    t.state = DEAD
    g = t.group
    if t.files is not None:
        t.files.users -= 1
        if t.files.users == 0:
            t.files.close_all()
    k.tasks.pop(t.tid, None)
    g.threads.remove(t)
    if k.current is t:
        k.current = None
    k.cpu.free_context(t.ctx)          # the next fork reuses it
    t.ctx = None
    mm_release(k, t.mm)
    if g.threads:
        return
    if g.group_exit is None:
        g.group_exit = (code & 0xFF) << 8
    _exit_notify(k, g)


def do_group_exit(k: "Kernel", t: "Task", status: int) -> None:
    """exit_group(2) or a fatal signal: ``status`` is the wait status
    (code << 8, or the signal number with 0x80 for a core dump)."""
    g = t.group
    if k.events.listening:
        k.events.emit("exit", t, status)
    if g.group_exit is None:
        g.group_exit = status
    for th in list(g.threads):
        do_exit(k, th, status >> 8)
    k.need_resched = True


def _exit_notify(k: "Kernel", g) -> None:
    g.exit_status = g.group_exit
    init = k.groups.get(1)
    for c in g.children:
        c.parent = init if init is not g else None
        if init is not None and init is not g:
            init.children.append(c)
            if c.zombie:
                k.wake_waiters(init)
    g.children = []
    if g.tgid == 1:
        st = g.exit_status
        k.init_status = (st >> 8) & 0xFF if st & 0x7F == 0 else 128 + (st & 0x7F)
    g.zombie = True
    parent = g.parent
    if parent is None:
        k.groups.pop(g.tgid, None)
        return
    ign = parent.threads and parent.threads[0].sighand.actions[signals.SIGCHLD].handler == 1
    if g.exit_signal and not ign:
        st = g.exit_status
        code = signals.CLD_EXITED if st & 0x7F == 0 else (
            signals.CLD_DUMPED if st & 0x80 else signals.CLD_KILLED)
        signals.send_signal(k, parent, g.exit_signal,
                            {"code": code, "pid": g.tgid, "uid": 0,
                             "status": (st >> 8) & 0xFF if code == 1 else st & 0x7F})
    if ign:           # SIGCHLD ignored: children are reaped at once
        parent.children.remove(g)
        k.groups.pop(g.tgid, None)
    k.wake_waiters(parent)
