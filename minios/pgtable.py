"""x86-64 page tables in guest RAM: walk, allocate, and change them.

Four levels, 512 entries each: pgd -> pud -> pmd -> pte. Upper-level entries
are always P|RW|US (permissions live in the PTE) except a PMD entry whose PTE
table is COW-shared: that one has RW clear and ``_PMD_COW`` set, so the CPU
itself faults on every write below it.

The one rule: a PTE is changed only through :func:`pte_table_for_write`,
which breaks a shared table first (see ``minios.cow``). Nothing else in the
kernel writes a PTE, so no path can forget to break a share.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT
from minios.frames import TABLE

if TYPE_CHECKING:
    from minios.mm import MM

ADDR = x86.ADDR_MASK
_PMD_COW = x86.SW1                      # software bit: PTE table is COW-shared
UPPER = x86.P | x86.RW | x86.US         # flags of every upper-level entry
TASK_SIZE = 1 << 47                     # user half of the address space

PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT = 39, 30, 21
PMD_SIZE = 1 << PMD_SHIFT
PUD_SIZE = 1 << PUD_SHIFT


def pgd_index(va: int) -> int:
    return (va >> PGDIR_SHIFT) & 511


def pud_index(va: int) -> int:
    return (va >> PUD_SHIFT) & 511


def pmd_index(va: int) -> int:
    return (va >> PMD_SHIFT) & 511


def pte_index(va: int) -> int:
    return (va >> PAGE_SHIFT) & 511


def entry_pfn(e: int) -> int:
    return (e & ADDR) >> PAGE_SHIFT


def alloc_table(mm: "MM") -> int:
    """A zeroed table frame, accounted to ``mm`` (VmPTE)."""
    pfn = mm.kernel.frames.alloc(TABLE)
    mm.nr_tables += 1
    return pfn


def pgd_alloc(mm: "MM") -> int:
    pfn = alloc_table(mm)
    mm.kernel.ram.q[pfn * 512 + 511] = mm.kernel.cpu.kernel_pgd_entry
    return pfn


def walk_pmd(mm: "MM", va: int, create: bool) -> int | None:
    """Physical address of the PMD entry covering ``va``, or None.

    With ``create`` missing PUD and PMD tables are allocated (OutOfMemory
    propagates; nothing is left half-built because each level is installed
    only once it exists)."""
    pmd = mm.pmd_at.get(va >> PUD_SHIFT)
    if pmd is not None:                 # the common case: no walk at all
        return pmd * 4096 + ((va >> PMD_SHIFT) & 511) * 8
    q = mm.kernel.ram.w
    slot = mm.pgd * 512 + pgd_index(va)
    for shift in (PUD_SHIFT, PMD_SHIFT):
        e = int(q[slot])
        if not e & x86.P:
            if not create:
                return None
            pfn = alloc_table(mm)
            if shift == PMD_SHIFT:
                register_pmd_table(mm, pfn, va)
            q[slot] = (pfn << PAGE_SHIFT) | UPPER
            e = int(q[slot])
        slot = entry_pfn(e) * 512 + ((va >> shift) & 511)
    return slot * 8


def register_pmd_table(mm: "MM", pfn: int, va: int) -> None:
    """Record that PMD table ``pfn`` of ``mm`` maps the 1 GiB holding ``va``
    (the lookups walk_pmd, slot_va and fork use)."""
    mm.pmd_tables[pfn] = va & ~(PUD_SIZE - 1)
    mm.pmd_at[va >> PUD_SHIFT] = pfn
    mm.kernel.pmd_mm[pfn] = mm


def slot_va(k, slot: int) -> int:
    """The virtual address a PMD entry (by physical address) maps."""
    pmd = slot >> PAGE_SHIFT
    return k.pmd_mm[pmd].pmd_tables[pmd] + (((slot & 0xFFF) >> 3) << PMD_SHIFT)


def lookup_pte(mm: "MM", va: int) -> tuple[int, int]:
    """(pte value, pmd entry value) for ``va``; zeros where nothing is mapped."""
    slot = walk_pmd(mm, va, False)
    if slot is None:
        return 0, 0
    q = mm.kernel.ram.w
    pmd = int(q[slot >> 3])
    if not pmd & x86.P:
        return 0, pmd
    return int(q[entry_pfn(pmd) * 512 + pte_index(va)]), pmd


def pte_table_for_write(mm: "MM", va: int, create: bool = True) -> int | None:
    """THE choke point: the frame of a PTE table covering ``va`` that ``mm``
    may change. A COW-shared table is broken first (copied or reused); a
    missing table is allocated when ``create``. Returns None if there is no
    table and ``create`` is false."""
    slot = walk_pmd(mm, va, create)
    if slot is None:
        return None
    q = mm.kernel.ram.w
    pmd = q[slot >> 3]
    if not pmd & x86.P:
        if not create:
            return None
        pfn = alloc_table(mm)
        mm.nr_ptes += 1
        mm.kernel.pt_owner[pfn] = slot
        q[slot >> 3] = (pfn << PAGE_SHIFT) | UPPER
        return pfn
    if pmd & _PMD_COW:
        from minios.cow import break_cow_pte
        return break_cow_pte(mm, slot)
    return entry_pfn(pmd)


def set_pte(mm: "MM", table: int, va: int, value: int) -> int:
    """Write one PTE of a table got from :func:`pte_table_for_write`,
    keeping reference/map counts and RSS exact. Returns the old value.
    The caller flushes the TLB when it downgraded a present entry."""
    k = mm.kernel
    i = table * 512 + pte_index(va)
    old = k.ram.w[i]
    if old & x86.P:
        f = entry_pfn(old)
        k.frames.mapcount[f] -= 1
        k.frames.put(f)
        mm.rss -= 1
    if value & x86.P:
        f = entry_pfn(value)
        k.frames.mapcount[f] += 1
        mm.rss += 1
    k.ram.w[i] = value
    return old


def present_frames(ram, tables: np.ndarray) -> np.ndarray:
    """Frame numbers mapped by the present entries of ``tables`` (bulk)."""
    e = ram.t[tables].ravel()
    e = e[(e & np.uint64(x86.P)) != 0]
    return ((e & np.uint64(ADDR)) >> np.uint64(PAGE_SHIFT)).astype(np.int64)
