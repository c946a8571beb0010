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


def peek_process_vm(mm, va: int, n: int) -> bytes:
    """What a debugger reads at ``va`` (ptrace's access_process_vm), still
    without faulting or allocating anything: a present page reads as it is,
    even without user access (PROT_NONE), and a page not faulted in yet as
    the fault would fill it (shared memory, file bytes or zeros). Stops at
    the first address no VMA covers; may return b""."""
    ram = mm.kernel.ram
    out = bytearray()
    while n > 0 and 0 <= va < TASK_SIZE:
        chunk = min(n, 4096 - (va & 0xFFF))
        pte, _ = lookup_pte(mm, va)
        if pte & x86.P:
            out += ram.read((pte & x86.ADDR_MASK) | (va & 0xFFF), chunk)
        else:
            vma = mm.vma_at(va)
            if vma is None:
                break
            out += _unfaulted(ram, vma, va, chunk)
        va += chunk
        n -= chunk
    return bytes(out)


def _unfaulted(ram, vma, va: int, n: int) -> bytes:
    """``n`` bytes at ``va`` (within one page) of a page of ``vma`` that is
    not present, as a fault would fill it."""
    if vma.shm is not None:
        idx = vma.shm_pgoff + (va - vma.start) // 4096
        f = vma.shm.frames.get(idx)
        return ram.read(f * 4096 + (va & 0xFFF), n) if f is not None else bytes(n)
    im = vma.image
    if im is not None and va < im.end:
        off = im.offset + (va - vma.start)
        m = max(0, min(n, im.end - va))
        data = bytes(im.data[off:off + m]) if off < len(im.data) else b""
        return data.ljust(n, b"\0")
    return bytes(n)
