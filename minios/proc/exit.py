"""Exit: threads leave, the last one turns the process into a zombie,
children are handed to pid 1, the parent gets SIGCHLD, and the mm is torn
down (``minios.mm.teardown.mmput``: dropping, not breaking, any COW-shared
tables).

Linux names: ``mmput`` drops a user of an mm. Linux's ``mm_release`` is
what a task does as it stops using its mm, here the start of ``do_exit``:
clear_child_tid (when others share the mm) and ``complete_vfork_done``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from minios.proc import futex
from minios.proc import signals
from minios.mm.teardown import mmput
from minios.proc.task import DEAD, ZOMBIE
from minios.mm.uaccess import Fault, put_u32

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task


def complete_vfork_done(k: "Kernel", t: "Task") -> None:
    """``t`` stops using the mm it borrowed by vfork (exit or execve): its
    parent, waiting in vfork, may run again."""
    p = t.vfork_parent
    if p is not None:
        t.vfork_parent = None
        p.vfork_done = True
        k.wake(p)


def do_exit(k: "Kernel", t: "Task", code: int) -> None:
    """One thread leaves (exit(2) or the end of a group exit)."""
    if t.state in (DEAD, ZOMBIE):
        return
    # Linux's mm_release: clear_child_tid, then the vfork parent.
    if t.clear_child_tid and t.mm.users > 1:
        try:
            put_u32(t.mm, t.clear_child_tid, 0)
            futex.wake(k, t.mm, t.clear_child_tid, 1)
        except Fault:
            pass
    complete_vfork_done(k, t)
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
    mmput(t.mm)
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
