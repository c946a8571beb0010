"""x86-64 page tables in guest RAM: walk, allocate, and change them.

Four levels, 512 entries each: pgd -> pud -> pmd -> pte. A table is named
here by the shift of the entries it holds: the PGD's entries map 1 << 39
bytes each, a PUD table's 1 << 30, a PMD table's 1 << 21, a PTE table's
1 << 12 (one page).

Upper-level entries are P|RW|US (permissions live in the PTE), except an
entry pointing at a COW-shared table: it has RW clear and ``TABLE_COW`` set,
so the CPU itself faults on every write below it. Any table below the PGD
may be COW-shared (``minios.mm.cow``).

The one rule: an entry is changed only in a table got through
:func:`pte_table_for_write` or :func:`pmd_entry_for_write`, which break
every shared table on the way down first. Nothing else writes an entry, so
no path can forget to break a share.

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


def _table_for_write(mm: "MM", i: int, shift: int, va: int, create: bool) -> int | None:
    """The frame of the table (of entries of ``shift``) under entry ``q[i]``,
    which lies in a table private to ``mm``, made private too: a shared one
    is broken, a missing one created if ``create`` (OutOfMemory leaves
    everything as it was)."""
    q = mm.kernel.ram.w
    e = q[i]
    if not e & x86.P:
        if not create:
            return None
        pfn = alloc_table(mm, shift)
        q[i] = (pfn << PAGE_SHIFT) | UPPER
        return pfn
    if e & TABLE_COW:
        return _break_cow(mm, i, shift, va)
    return entry_pfn(e)


def _break_cow(mm: "MM", i: int, shift: int, va: int) -> int:
    """cow.break_cow, bound on first use (cow imports this module), so a
    table break does not pay an import statement each time."""
    global _break_cow
    from minios.mm.cow import break_cow
    _break_cow = break_cow
    return break_cow(mm, i, shift, va)


def _settle(k, key: int) -> None:
    """cow.settle, bound on first use (as ``_break_cow``)."""
    global _settle
    from minios.mm.cow import settle
    _settle = settle
    settle(k, key)


def pmd_entry_for_write(mm: "MM", va: int, create: bool = True) -> int | None:
    """Index in ``ram.q`` of the PMD entry covering ``va``, in a PMD table
    private to ``mm`` (shared PUD and PMD tables above it are broken first),
    or None where a table is missing and ``create`` is false."""
    if mm.kernel.uncounted and mm.cow_pgtable:    # it may change or drop a PMD entry
        _settle(mm.kernel, va >> PUD_SHIFT)           # (only a COW mm reaches lent ones)
    pmd = mm.pmd_at.get(va >> PUD_SHIFT)
    if pmd is None:
        i = mm.pgd * 512 + pgd_index(va)
        for shift in (PUD_SHIFT, PMD_SHIFT):
            pmd = _table_for_write(mm, i, shift, va, create)
            if pmd is None:
                return None
            i = pmd * 512 + ((va >> shift) & 511)
        mm.pmd_at[va >> PUD_SHIFT] = pmd
    return pmd * 512 + pmd_index(va)


def pte_table_for_write(mm: "MM", va: int, create: bool = True) -> int | None:
    """THE choke point: the frame of a PTE table covering ``va`` that ``mm``
    may change. Every COW-shared table on the way is broken first (copied
    or reused); missing tables are allocated when ``create``. Returns None
    if there is no table and ``create`` is false."""
    pmd = mm.pmd_at.get(va >> PUD_SHIFT)
    if pmd is not None:             # a private path: the common case, without calls
        e = mm.kernel.ram.w[pmd * 512 + ((va >> PMD_SHIFT) & 511)]
        if e & x86.P and not e & TABLE_COW:
            return (e & ADDR) >> PAGE_SHIFT
    i = pmd_entry_for_write(mm, va, create)
    if i is None:
        return None
    return _table_for_write(mm, i, PAGE_SHIFT, va, create)


def set_pte(mm: "MM", table: int, va: int, value: int) -> int:
    """Write one PTE of a table got from :func:`pte_table_for_write`,
    keeping reference/map counts and RSS exact. Returns the old value.
    The caller flushes the TLB when it downgraded a present entry."""
    k = mm.kernel
    i = table * 512 + pte_index(va)
    old = k.ram.w[i]
    if old & x86.P:
        f = entry_pfn(old)
        k.frames.mapcount_at[f] -= 1
        k.frames.put(f)
        mm.rss -= 1
    if value & x86.P:
        f = entry_pfn(value)
        k.frames.mapcount_at[f] += 1
        mm.rss += 1
    k.ram.w[i] = value
    return old


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
