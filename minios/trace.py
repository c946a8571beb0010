"""strace-like formatting of syscalls for ``--trace``."""
from __future__ import annotations

from minios.errno import ERRNO_NAMES
from minios.task import BLOCK, NORETURN
from minios.uaccess import Fault, strncpy_from_user

# Which arguments are C strings, per syscall name (index list).
_STRINGS = {"open": [0], "openat": [1], "execve": [0], "stat": [0], "lstat": [0],
            "newfstatat": [1], "readlink": [0], "readlinkat": [1], "access": [0],
            "faccessat": [1], "faccessat2": [1], "chdir": [0], "mkdir": [0],
            "mkdirat": [1], "unlink": [0], "unlinkat": [1], "execveat": [1]}
_NARGS = {"exit": 1, "exit_group": 1, "getpid": 0, "gettid": 0, "brk": 1, "close": 1,
          "write": 3, "read": 3, "fork": 0, "vfork": 0, "clone3": 2, "wait4": 4,
          "arch_prctl": 2, "set_tid_address": 1, "uname": 1, "getuid": 0, "getppid": 0,
          "sched_yield": 0, "rt_sigreturn": 0, "pipe2": 2, "dup2": 2, "kill": 2}


def _arg(k, t, name: str, i: int, v: int) -> str:
    if i in _STRINGS.get(name, ()):
        if name in ("openat", "newfstatat", "readlinkat", "faccessat", "faccessat2",
                    "unlinkat", "mkdirat", "execveat") and False:
            pass
        try:
            s = strncpy_from_user(t.mm, v, 4096)
            return '"' + s.decode(errors="backslashreplace").replace('"', '\\"') + '"'
        except Fault:
            return hex(v)
    if i == 0 and name in ("openat", "newfstatat", "readlinkat", "faccessat", "unlinkat",
                           "mkdirat", "faccessat2", "execveat") and v == 0xFFFFFF9C:
        return "AT_FDCWD"
    if v >= 1 << 63:
        return str(v - (1 << 64))
    return hex(v) if v > 4096 else str(v)


def _result(r) -> str:
    if r is NORETURN:
        return "?"
    if r is BLOCK:
        return "<unfinished ...>"
    if isinstance(r, int) and -4096 < r < 0:
        return f"-1 {ERRNO_NAMES.get(-r, str(-r))}"
    return hex(r) if isinstance(r, int) and r > 0xFFFF else str(r)


def format_syscall(k, t, nr: int, r) -> str:
    ent = k.syscalls.get(nr)
    name = ent[1] if ent else f"syscall_{nr}"
    n = _NARGS.get(name, 6 if ent is None else 3)
    args = ", ".join(_arg(k, t, name, i, v) for i, v in enumerate(t.syscall_args[:n]))
    line = f"[pid {t.tid}] {name}({args})"
    if r is BLOCK:
        return line + " <unfinished ...>"
    res = _result(r)
    if ent is None:
        return f"{line} = {res} (not implemented)"
    return f"{line} = {res}"


def format_resumed(k, t, r) -> str:
    ent = k.syscalls.get(t.syscall_nr)
    name = ent[1] if ent else str(t.syscall_nr)
    return f"[pid {t.tid}] <... {name} resumed> = {_result(r)}"
