"""Page-table range operations behind munmap, mprotect, madvise, brk and
mremap. Each works one PTE table (2 MiB) at a time, gets the table through
the choke point ``pte_table_for_write`` (breaking a COW share), and changes
its entries with numpy. What takes pages and tables away is in
``minios.mm.teardown``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.mm.mm_types import PROT_EXEC, PROT_WRITE
from minios.mm.pgtable import TASK_SIZE, has_pte_table, pte_index, pte_table_ranges
from minios.mm.pte import pte_table_for_write
from minios.mm.teardown import free_uncovered, release_shm, zap_range

if TYPE_CHECKING:
    from minios.mm.mm_types import MM, VMA

_P = np.array(x86.P, dtype=np.uint64)
_NOT_RW = np.array(~x86.RW & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64)
_NX = np.uint64(x86.NX)
_RW = np.uint64(x86.RW)
_US = np.uint64(x86.US)


def break_range(mm: "MM", start: int, end: int) -> None:
    """Unshare every PTE table over [start, end) now, so a later change of
    the range cannot fail half-way for lack of memory."""
    for lo, _hi, _ in pte_table_ranges(start, end):
        if has_pte_table(mm, lo):
            pte_table_for_write(mm, lo, create=False)


def change_protection(mm: "MM", vma: "VMA", start: int, end: int) -> None:
    """Make the present PTEs in [start, end) follow ``vma.prot``. Private
    writable pages are left read-only: the write fault decides between reuse
    and copy, exactly as for a fresh COW page."""
    k = mm.kernel
    for lo, hi, _ in pte_table_ranges(start, end):
        if not has_pte_table(mm, lo):
            continue
        table = pte_table_for_write(mm, lo, create=False)
        row = k.ram.t[table][pte_index(lo):pte_index(lo) + ((hi - lo) >> PAGE_SHIFT)]
        p = (row & _P) != 0
        new = row & _NOT_RW
        if vma.shared and vma.prot & PROT_WRITE:
            new |= _RW
        new = new & ~_NX if vma.prot & PROT_EXEC else new | _NX
        # PROT_NONE keeps the page (and its accounting) but denies user access.
        new = new | _US if vma.prot else new & ~_US
        row[p] = new[p]
    k.cpu.flush_tlb()


def move_range(mm: "MM", old: int, new: int, length: int) -> None:
    """Move the PTEs of [old, old+length) to [new, ...) (mremap MAYMOVE).
    Entries move with their references, so nothing is copied or counted."""
    k = mm.kernel
    q = k.ram.q
    # Every allocation first (breaking shared source tables, creating the
    # destination ones), so OutOfMemory cannot strike with a page in flight.
    for lo, hi, _ in pte_table_ranges(old, old + length):
        if has_pte_table(mm, lo):
            pte_table_for_write(mm, lo, create=False)
            for dlo, _h, _w in pte_table_ranges(new + (lo - old), new + (hi - old)):
                pte_table_for_write(mm, dlo)
    for off in range(0, length, PAGE_SIZE):
        if not has_pte_table(mm, old + off):
            continue
        src = pte_table_for_write(mm, old + off, create=False)
        e = int(q[src * 512 + pte_index(old + off)])
        if not e & x86.P:
            continue
        q[src * 512 + pte_index(old + off)] = 0
        mm.rss -= 1
        dst = pte_table_for_write(mm, new + off)
        q[dst * 512 + pte_index(new + off)] = e
        mm.rss += 1
    k.cpu.flush_tlb()


def unmap_vmas(mm: "MM", start: int, end: int) -> None:
    """munmap's core: split at the edges, zap, drop the VMAs, then free the
    PTE tables no VMA touches any more."""
    mm.split_at(start)
    mm.split_at(end)
    gone = [v for v in mm.vmas if v.start >= start and v.end <= end]
    if not gone:
        return
    for v in gone:
        zap_range(mm, v.start, v.end)
        mm.remove_vma(v)
        if v.shm:
            release_shm(mm.kernel, v)
    for v in gone:                      # zap_range dropped the whole tables
        free_uncovered(mm, v.start, v.start + 1)
        free_uncovered(mm, v.end - 1, v.end)


def valid_user_range(start: int, length: int) -> bool:
    return 0 <= start and length >= 0 and start + length <= TASK_SIZE
