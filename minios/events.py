"""The kernel's event stream: what observers (the tracer, ``--break``, the
GDB stub, a user's pytest plugin) learn of the kernel, without patching it.

The kernel and its syscalls emit; observers subscribe. Emitting costs one
attribute test when nobody listens (``if k.events.listening:``), so hot
paths stay as fast as without observers. Observers must not change kernel
state from a callback, except a debugger stopping in pdb to look, or one
holding a call at ``syscall_enter`` (``Kernel.hold_syscall``: the GDB
stub's syscall catchpoints).

Kinds and their arguments (``task`` is a ``proc.task.Task``):

==================  ====================================================
``syscall_enter``   (task, nr)          before the handler; arguments in
                                        ``task.syscall_args``
``syscall_exit``    (task, nr, result)  after it; result may be ``BLOCK``
                                        or ``NORETURN``
``syscall_resume``  (task, result)      a blocked call finished
``fault_enter``     (task, addr, err)   a page fault, before it is handled
                                        (``err``: the x86 error code)
``fault``           (task, vmf)         after ``handle_mm_fault``: the
                                        ``mm.fault.VmFault`` it returned
                                        (what it did, or the signal)
``fork``            (parent, child, info)  a new task; ``info`` is the
                                        COW copy's figures (shared,
                                        copied, ns), None with CLONE_VM
``exec``            (task, path, argv)  a successful execve
``exit``            (task, status)      a thread group starts to exit
                                        (wait status)
``switch``          (prev, next)        a context switch; ``prev`` is None
                                        when the previous task is gone
``signal``          (task, sig, info)   a signal dequeued, before anyone
                                        (the GDB stub, a handler, the
                                        default action) acts on it
``signal_handler``  (task, sig, info)   a handler's frame was set up
``tty_signal``      (sig, pgid)         the host terminal sent ``sig`` to
                                        the guest's foreground group
==================  ====================================================

Subscribers run in subscription order.
"""
from __future__ import annotations

from typing import Callable

KINDS = ("syscall_enter", "syscall_exit", "syscall_resume", "fault_enter", "fault",
         "fork", "exec", "exit", "switch", "signal", "signal_handler", "tty_signal")


class Events:
    """Subscribers by kind. ``listening`` is true while anyone subscribes."""

    __slots__ = ("listening", "_subs")

    def __init__(self) -> None:
        self.listening = False
        self._subs: dict[str, list[Callable]] = {k: [] for k in KINDS}

    def subscribe(self, kind: str, fn: Callable) -> None:
        """Call ``fn(*args)`` at each event of ``kind`` (ValueError if unknown)."""
        if kind not in self._subs:
            raise ValueError(f"unknown kernel event {kind!r}")
        # A new list, not an append: an emit under way (a subscriber that
        # subscribes or unsubscribes) goes on over the list it started with.
        self._subs[kind] = self._subs[kind] + [fn]
        self.listening = True

    def unsubscribe(self, kind: str, fn: Callable) -> None:
        """Undo one ``subscribe(kind, fn)``."""
        subs = list(self._subs[kind])
        subs.remove(fn)
        self._subs[kind] = subs
        self.listening = any(self._subs.values())

    def wants(self, kind: str) -> bool:
        """Whether anyone subscribes to ``kind`` (for an emitter whose
        arguments cost something to build)."""
        return bool(self._subs[kind])

    def emit(self, kind: str, *args) -> None:
        """Call the subscribers of ``kind``; the caller has tested ``listening``."""
        for fn in self._subs[kind]:
            fn(*args)
