"""``vFile:`` host I/O, read-only, on the files the debugged process sees.

gdb reads the program through it, as from gdbserver, and, knowing the real
PID (multiprocess extensions), reads /proc/PID/task/PID/maps to find the
vDSO and load its symbols from memory, as it does natively. Replies are
``F`` results; errors carry gdb's File-I/O errno values.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from minios.fs.vfs import open_path
from minios.gdbstub.packets import PACKET_SIZE, escape
from minios.uapi.errno import EBADF, EINVAL, ENAMETOOLONG, EROFS, ESRCH

if TYPE_CHECKING:
    from minios.fs.files import File
    from minios.kernel import Kernel
    from minios.proc.task import Task

# gdb's File-I/O errno values: Linux's, but for ENAMETOOLONG; others are EUNKNOWN.
_GDB_ERRNOS = {1, 2, 4, 9, 13, 14, 16, 17, 19, 20, 21, 22, 23, 24, 27, 28, 29, 30}
_GDB_ENAMETOOLONG = 91
_GDB_EUNKNOWN = 9999


def gdb_errno(err: int) -> int:
    """A Linux errno value -> gdb's File-I/O one."""
    if err == ENAMETOOLONG:
        return _GDB_ENAMETOOLONG
    return err if err in _GDB_ERRNOS else _GDB_EUNKNOWN


class VFiles:
    """gdb's open host-I/O descriptors and the packets that use them."""

    def __init__(self, k: "Kernel") -> None:
        self.k = k
        self.files: dict[int, "File"] = {}       # vFile descriptor -> open guest file

    def packet(self, task: "Task | None", body: bytes):
        """One ``vFile:OP:ARGS`` request (``body`` after ``vFile:``), as
        ``task`` would open its files. Returns the reply."""
        op, _, rest = body.partition(b":")
        args = rest.split(b",")
        try:
            if op == b"setfs":
                return "F0"
            if op == b"open":
                if int(args[1], 16) & 3:              # gdb's O_WRONLY / O_RDWR
                    return f"F-1,{gdb_errno(EROFS):x}"
                if task is None:
                    raise OSError(ESRCH, "")
                path = bytes.fromhex(args[0].decode()).decode(errors="surrogateescape")
                f = open_path(self.k, task, path, 0)
                fd = max(self.files, default=0) + 1
                self.files[fd] = f
                return f"F{fd:x}"
            if op in (b"pread", b"close"):
                f = self.files.get(int(args[0], 16))
                if f is None:
                    raise OSError(EBADF, "")
                if op == b"close":
                    del self.files[int(args[0], 16)]
                    f.close()
                    return "F0"
                n, off = int(args[1], 16), int(args[2], 16)
                data = f.pread(min(n, PACKET_SIZE), off)
                return b"F%x;" % len(data) + escape(data)
        except (OSError, ValueError, IndexError) as e:
            err = e.errno if isinstance(e, OSError) and e.errno else EINVAL
            return f"F-1,{gdb_errno(err):x}"
        return ""                                     # unsupported: gdb does without

    def close_all(self) -> None:
        """Close the descriptors gdb left open."""
        for f in self.files.values():
            f.close()
        self.files.clear()
