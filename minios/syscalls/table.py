"""The syscall table, keyed by Linux x86-64 numbers.

Handlers are ``fn(kernel, task, a0..a5)`` and return the value for RAX
(negative errno on failure), ``BLOCK`` or ``NORETURN``. They raise
``uaccess.Fault`` for a bad pointer and ``OSError`` for an errno; the
dispatcher in ``kernel.py`` turns both into -errno. A number with no entry
returns -ENOSYS and is named in the trace.
"""
from __future__ import annotations

from typing import Callable

SYSCALLS: dict[int, tuple[Callable, str]] = {}


def syscall(nr: int, name: str):
    def reg(fn):
        SYSCALLS[nr] = (fn, name)
        return fn
    return reg


# Importing the modules fills the table.
from minios.syscalls import sys_mm  # noqa: E402,F401
from minios.syscalls import sys_misc
from minios.syscalls import sys_rw, sys_fd, sys_stat, sys_tty, sys_namei, sys_poll  # noqa: F401
from minios.syscalls import sys_proc
from minios.syscalls import sys_net
from minios.syscalls import epoll
