"""The kernel's event stream: what observers (the tracer, ``--break``, the
GDB stub, a user's pytest plugin) learn of the kernel, without patching it.

The kernel and its syscalls emit; observers subscribe. Emitting costs one
attribute test when nobody listens (``if k.events.listening:``), so hot
paths stay as fast as without observers. Observers must not change kernel
state from a callback, except a debugger stopping in pdb to look.

Kinds and their arguments (``task`` is a ``proc.task.Task``):

=================  =====================================================
``syscall_enter``  (task, nr)           arguments in ``task.syscall_args``
``syscall_exit``   (task, nr, result)   result may be ``BLOCK``
``syscall_resume`` (task, result)       a blocked call finished
``fault``          (task, vmf)          ``mm.fault.VmFault``: what it did
``fork``           (parent, child, info)
``exec``           (task, path, argv)
``exit``           (task, status)
``switch``         (prev, next)         ``prev`` may be None
``signal``         (task, sig, info)    a signal delivered to a handler or
                                        acted on by default
=================  =====================================================
"""
from __future__ import annotations

from typing import Callable

KINDS = ("syscall_enter", "syscall_exit", "syscall_resume", "fault", "fork",
         "exec", "exit", "switch", "signal")


class Events:
    """Subscribers by kind. ``listening`` is true while anyone subscribes."""

    __slots__ = ("listening", "_subs")

    def __init__(self) -> None:
        self.listening = False
        self._subs: dict[str, list[Callable]] = {k: [] for k in KINDS}

    def subscribe(self, kind: str, fn: Callable) -> None:
        if kind not in self._subs:
            raise ValueError(f"unknown kernel event {kind!r}")
        self._subs[kind].append(fn)
        self.listening = True

    def unsubscribe(self, kind: str, fn: Callable) -> None:
        self._subs[kind].remove(fn)
        self.listening = any(self._subs.values())

    def wants(self, kind: str) -> bool:
        return bool(self._subs[kind])

    def emit(self, kind: str, *args) -> None:
        for fn in self._subs[kind]:
            fn(*args)
