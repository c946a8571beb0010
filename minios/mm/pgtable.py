"""x86-64 page tables in guest RAM: read them, and make fresh ones.

Four levels, 512 entries each: pgd -> pud -> pmd -> pte. A table is named
here by the shift of the entries it holds: the PGD's entries map 1 << 39
bytes each, a PUD table's 1 << 30, a PMD table's 1 << 21, a PTE table's
1 << 12 (one page).

Upper-level entries are P|RW|US (permissions live in the PTE), except an
entry pointing at a COW-shared table: it has RW clear and ``TABLE_COW`` set,
so the CPU itself faults on every write below it. Any table below the PGD
may be COW-shared (``minios.mm.cow``).

Nothing here changes an entry of a table in use: the walks and lookups
only read, and :func:`alloc_table` / :func:`pgd_alloc` make fresh tables.
The one rule: an entry is changed only in a table got through the choke
point in ``minios.mm.pte`` (:func:`~minios.mm.pte.pte_table_for_write`,
:func:`~minios.mm.pte.pmd_entry_for_write`), which breaks every shared
table on the way down first. Nothing else writes an entry, so no path can
forget to break a share.

``mm.pmd_at`` caches, per 1 GiB (va >> 30), the PMD table an mm reaches
through private tables only: such a path stays private until the mm forks
(which clears the cache), so a hit needs no walk, for reading or writing.
Every PMD table is created through it, so for an mm that never shared it
lists them all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT
from minios.mm.frames import TABLE

if TYPE_CHECKING:
    from minios.mm.mm_types import MM

ADDR = x86.ADDR_MASK
TABLE_COW = x86.SW1                     # software bit: the table below is COW-shared
UPPER = x86.P | x86.RW | x86.US         # flags of every private upper-level entry
TASK_SIZE = 1 << 47                     # user half of the address space

PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT = 39, 30, 21
PMD_SIZE = 1 << PMD_SHIFT
LEVEL_NAME = {PUD_SHIFT: "PUD", PMD_SHIFT: "PMD", PAGE_SHIFT: "PTE"}   # by entries' shift


def pgd_index(va: int) -> int:
    return (va >> PGDIR_SHIFT) & 511


def pmd_index(va: int) -> int:
    return (va >> PMD_SHIFT) & 511


def pte_index(va: int) -> int:
    return (va >> PAGE_SHIFT) & 511


def entry_pfn(e: int) -> int:
    return (e & ADDR) >> PAGE_SHIFT


def alloc_table(mm: "MM", shift: int) -> int:
    """A zeroed table frame (holding entries of ``shift``) owned and
    accounted to ``mm`` (VmPTE)."""
    k = mm.kernel
    pfn = k.frames.alloc(TABLE)
    k.pt_owner_at[pfn] = mm.id
    mm.nr_tables += 1
    if shift == PAGE_SHIFT:
        mm.nr_ptes += 1
    return pfn


def pgd_alloc(mm: "MM") -> int:
    pfn = alloc_table(mm, PGDIR_SHIFT)
    mm.kernel.ram.w[pfn * 512 + 511] = mm.kernel.cpu.kernel_pgd_entry
    return pfn


def walk_entry(mm: "MM", va: int, shift: int) -> tuple[int, int] | None:
    """Read-only walk: (index in ``ram.q`` of the entry of ``shift`` covering
    ``va``, the AND of the RW bits and OR of the COW bits above it), or None
    where a table on the way is missing. Breaks nothing."""
    q = mm.kernel.ram.w
    i = mm.pgd * 512 + pgd_index(va)
    rw, cow = x86.RW, 0
    for s in (PUD_SHIFT, PMD_SHIFT, PAGE_SHIFT):
        if s < shift:
            break
        e = q[i]
        if not e & x86.P:
            return None
        rw &= e
        cow |= e & TABLE_COW
        i = entry_pfn(e) * 512 + ((va >> s) & 511)
    return i, rw | cow


def lookup_pte(mm: "MM", va: int) -> tuple[int, int]:
    """(pte, effective pmd entry) for ``va``; zeros where nothing is mapped.
    The pmd value has RW only if every entry above the PTE has it, and
    ``TABLE_COW`` if any table on the way is COW-shared."""
    q = mm.kernel.ram.w
    pmd = mm.pmd_at.get(va >> PUD_SHIFT)
    if pmd is not None:                 # a private path: the PMD entry says it all
        e = q[pmd * 512 + ((va >> PMD_SHIFT) & 511)]
    else:
        w = walk_entry(mm, va, PMD_SHIFT)
        if w is None:
            return 0, 0
        e = q[w[0]]
        e = (e & ~x86.RW) | (e & w[1] & x86.RW) | (w[1] & TABLE_COW)
    if not e & x86.P:
        return 0, e
    return q[((e & ADDR) >> PAGE_SHIFT) * 512 + ((va >> PAGE_SHIFT) & 511)], e


def has_pte_table(mm: "MM", va: int) -> bool:
    """A PTE table covers ``va`` (looked up, nothing broken)."""
    return bool(lookup_pte(mm, va)[1] & x86.P)


def pte_table_ranges(start: int, end: int):
    """(lo, hi, whole) per 2 MiB PTE table's part of [start, end); ``whole``
    if the part is the table's whole range. How range operations go one
    PTE table at a time."""
    va = start
    while va < end:
        nxt = min((va | (PMD_SIZE - 1)) + 1, end)
        yield va, nxt, (va & (PMD_SIZE - 1)) == 0 and nxt - va == PMD_SIZE
        va = nxt


def flush_tlb_mm(mm: "MM") -> None:
    """After downgrading or remapping translations of ``mm`` (Linux's
    flush_tlb_mm): the CPU's TLB is flushed only if ``mm`` is the address
    space it runs, since it caches no other (every switch between address
    spaces flushes); the kernel's own TLB of ``mm`` (uaccess) is emptied
    either way. Changing a child's tables at fork flushes nothing."""
    k = mm.kernel
    cur = k.current
    if cur is not None and cur.mm is mm:
        k.cpu.flush_tlb()
    else:
        mm.utlb_gen = -1


# 0-d arrays, not numpy scalars: a ufunc takes them for a third less.
_ADDR = np.array(ADDR, dtype=np.uint64)
_SHIFT = np.array(PAGE_SHIFT, dtype=np.uint64)


def pfns(entries: np.ndarray) -> np.ndarray:
    """Frame numbers of ``entries`` (any shape), as int64 (a view: they
    are below 2**52)."""
    return ((entries & _ADDR) >> _SHIFT).view(np.int64)


def present_entries(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, positions) of the present entries of ``block``: one table
    or several, taken flat (position // 512 is the table's row). An absent
    entry is 0 (the checker says so). A 1-D nonzero: the 2-D one costs
    several times more; and of booleans: numpy's nonzero of integers calls
    a function per element, so the cast first costs less in total."""
    e = block.ravel()
    f = e.astype(bool).nonzero()[0]
    return pfns(e[f]), f
