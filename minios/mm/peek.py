"""Reading user memory without faulting: the one place that does it.

Observers (the tracer, the debugger, the GDB stub) look at a process's
memory as the CPU would see it now, through its page tables, and must
change nothing: a page that is not present is not faulted in, a COW page is
not broken, no count moves. Syscalls use ``uaccess`` instead, which faults.
"""
from __future__ import annotations

from emu import x86
from minios.mm.pgtable import TASK_SIZE, lookup_pte

def peek(mm, va: int, n: int) -> bytes | None:
    """``n`` bytes of user memory at ``va`` read through ``mm``'s page tables,
    never faulting anything in: the bytes up to the first page that is not
    present (None if that is the first)."""
    if va <= 0 or va >= TASK_SIZE or n < 0:
        return None
    ram = mm.kernel.ram
    out = []
    while n > 0:
        pte, _ = lookup_pte(mm, va)
        if not pte & x86.P or not pte & x86.US:
            break
        chunk = min(n, 4096 - (va & 0xFFF))
        out.append(ram.read(((pte & x86.ADDR_MASK) | (va & 0xFFF)), chunk))
        va += chunk
        n -= chunk
    if not out:
        return None
    return b"".join(out)


def peek_str(mm, va: int, limit: int = 4096) -> bytes | None:
    """A NUL-terminated string (without the NUL), or None if unreadable."""
    out = []
    total = 0
    while total < limit:
        chunk = 4096 - (va & 0xFFF) if va else 0
        data = peek(mm, va, chunk)
        if data is None:
            return b"".join(out) if out else None
        i = data.find(b"\0")
        if i >= 0:
            out.append(data[:i])
            return b"".join(out)
        out.append(data)
        total += len(data)
        va += len(data)
    return b"".join(out)
