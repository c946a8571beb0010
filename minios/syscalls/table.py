"""The syscall table, keyed by Linux x86-64 numbers: one declaration per
call, on its handler::

    @syscall(0, "read", FD, OUT_BUF, SIZE)
    def sys_read(k, t, fd, buf, n, *_): ...

The declaration names the call and says what each argument register holds
(``minios.syscalls.kinds``) and, where it is not a plain number, what the
result is (``ret=``); a call whose arguments depend on each other declares
``format=``. The dispatcher uses the handler; the tracer, ``--break
syscall:NAME`` and tests use the rest.

Handlers are ``fn(kernel, task, a0..a5)``: they name the declared
arguments (``*_`` takes the unused registers) and return the value for RAX
(negative errno on failure), ``BLOCK`` or ``NORETURN``. They raise
``uaccess.Fault`` for a bad pointer and ``OSError`` for an errno; the
dispatcher in ``kernel.py`` turns both into -errno. A number with no entry
returns -ENOSYS and is named in the trace. ``minios.syscalls.all`` imports
every handler module, filling the table.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from minios.syscalls.kinds import RET, CallFormat, Kind, Ret


class Syscall(NamedTuple):
    """One table entry. ``fn`` and ``name`` come first: the dispatcher
    reads ``entry[0]``."""
    fn: Callable
    name: str
    nr: int
    args: tuple[Kind, ...]
    ret: Ret
    format: CallFormat | None


SYSCALLS: dict[int, Syscall] = {}
_BY_NAME: dict[str, Syscall] = {}


def syscall(nr: int, name: str, *args: Kind, ret: Ret = RET,
            format: CallFormat | None = None) -> Callable[[Callable], Callable]:
    """Declare the handler of syscall ``nr``: its name, argument kinds,
    result kind and (for calls shown as a whole) its format."""
    def reg(fn: Callable) -> Callable:
        if nr in SYSCALLS or name in _BY_NAME:
            raise ValueError(f"syscall {nr} {name} declared twice")
        ent = Syscall(fn, name, nr, tuple(args), ret, format)
        SYSCALLS[nr] = ent
        _BY_NAME[name] = ent
        return fn
    return reg


def lookup(what: int | str) -> Syscall | None:
    """The declaration of a syscall by number, name, or number as text
    (``59``, ``"execve"``, ``"59"``); None if minios has none."""
    if isinstance(what, str):
        if not what.isdigit():
            return _BY_NAME.get(what)
        what = int(what)
    return SYSCALLS.get(what)
