"""Kernel access to user memory through the current page tables.

Like Linux's copy_{from,to}_user: each page is translated by walking the
task's tables; a missing or read-only page is faulted in exactly as the CPU
would (demand-zero, COW break); an address the task could not touch raises
:class:`Fault`, which the syscall layer turns into -EFAULT.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from emu import x86
from emu.ram import PAGE_SIZE
from minios.mm.fault import handle_mm_fault
from minios.mm.mm_types import PROT_EXEC, PROT_READ, PROT_WRITE
from minios.mm.pgtable import TASK_SIZE, lookup_pte, entry_pfn

if TYPE_CHECKING:
    from minios.mm.mm_types import MM


UTLB_SIZE = 64                  # entries of an mm's kernel TLB (see _phys)


class Fault(Exception):
    """A user pointer the task could not access (-> EFAULT)."""


def _phys(mm: "MM", va: int, write: bool) -> int:
    """The physical address the task reaches at ``va``, faulting the page in
    as the CPU would. Hits come from ``mm.utlb``, the kernel's own small TLB
    (virtual page, plus write permission, -> frame): the kernel changes a
    translation only by a downgrade or a remap, each followed by a TLB
    flush, and a flush (``cpu.tlb_gen``) empties it, as it empties the
    CPU's. The checker compares every entry with the tables."""
    if va < 0 or va >= TASK_SIZE:
        raise Fault(va)
    key = (va >> 12) << 1 | write
    gen = mm.kernel.cpu.tlb_gen
    if mm.utlb_gen == gen:
        base = mm.utlb.get(key)
        if base is not None:
            return base | (va & 0xFFF)
    for _ in range(3):
        pte, _pmd = lookup_pte(mm, va)
        if pte & x86.P and pte & x86.US and (not write or (pte & x86.RW and _pmd & x86.RW)):
            gen = mm.kernel.cpu.tlb_gen
            if mm.utlb_gen != gen or len(mm.utlb) >= UTLB_SIZE - 1:
                mm.utlb.clear()
                mm.utlb_gen = gen
            base = entry_pfn(pte) << 12
            mm.utlb[key] = base
            if write:                        # what may be written may be read
                mm.utlb[key - 1] = base
            return base | (va & 0xFFF)
        if handle_mm_fault(mm, va, write, False).flags:
            raise Fault(va)
    raise Fault(va)


def user_prefix(mm: "MM", va: int, n: int, write: bool) -> int:
    """How many of the ``n`` bytes at ``va`` the task may read (or write)
    before the first unmapped or forbidden page: where Linux's copy to or
    from user memory would stop short. By VMA, so nothing is faulted in."""
    return mm.mapped_prefix(va, n, PROT_WRITE if write else PROT_READ | PROT_WRITE | PROT_EXEC)


def copy_from_user(mm: "MM", va: int, n: int) -> bytes:
    if n <= 0:
        return b""
    ram = mm.kernel.ram
    if (va & 0xFFF) + n <= PAGE_SIZE:         # the common case: one page
        p = _phys(mm, va, False)
        return ram.buf[p:p + n]
    out = []
    while n > 0:
        chunk = min(n, PAGE_SIZE - (va & 0xFFF))
        p = _phys(mm, va, False)
        out.append(ram.read(p, chunk))
        va += chunk
        n -= chunk
    return b"".join(out)


def copy_to_user(mm: "MM", va: int, data: bytes) -> None:
    ram = mm.kernel.ram
    pos, n = 0, len(data)
    while pos < n:
        chunk = min(n - pos, PAGE_SIZE - (va & 0xFFF))
        p = _phys(mm, va, True)
        ram.buf[p:p + chunk] = data if chunk == n else data[pos:pos + chunk]
        if mm.kernel.frames.had_code_at[p >> 12]:
            mm.kernel.cpu.flush_code()        # e.g. read() into code it has run
        va += chunk
        pos += chunk


def strncpy_from_user(mm: "MM", va: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string (without the NUL); Fault past ``limit``."""
    ram = mm.kernel.ram
    out = []
    total = 0
    while total < limit:
        chunk = PAGE_SIZE - (va & 0xFFF)
        p = _phys(mm, va, False)
        data = ram.read(p, chunk)
        i = data.find(b"\0")
        if i >= 0:
            out.append(data[:i])
            return b"".join(out)
        out.append(data)
        total += chunk
        va += chunk
    raise Fault(va)


def get_u64(mm: "MM", va: int) -> int:
    return struct.unpack("<Q", copy_from_user(mm, va, 8))[0]


def put_u64(mm: "MM", va: int, v: int) -> None:
    copy_to_user(mm, va, struct.pack("<Q", v & 0xFFFF_FFFF_FFFF_FFFF))


def get_u32(mm: "MM", va: int) -> int:
    return struct.unpack("<I", copy_from_user(mm, va, 4))[0]


def put_u32(mm: "MM", va: int, v: int) -> None:
    copy_to_user(mm, va, struct.pack("<I", v & 0xFFFF_FFFF))


def read_ptr_array(mm: "MM", va: int, limit: int = 1 << 16) -> list[bytes]:
    """argv/envp style: NULL-terminated array of string pointers."""
    out = []
    while va:
        p = get_u64(mm, va)
        if p == 0:
            return out
        out.append(strncpy_from_user(mm, p, 1 << 17))
        if len(out) > limit:
            raise OverflowError
        va += 8
    return out
