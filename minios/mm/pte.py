"""The choke point: the one way to get a page table whose entries may be
written, and the one function that writes a PTE with its accounting.

The one rule: an entry is changed only in a table got through
:func:`pte_table_for_write` or :func:`pmd_entry_for_write` (or, one level
at a time, :func:`table_for_write`), which break every COW-shared table on
the way down first (``minios.mm.cow.break_cow``) and create missing ones.
Nothing else writes an entry, so no path can forget to break a share.

This module sits above ``cow`` (the break) and ``pgtable`` (the reads), as
Linux's memory.c holds both the walks that allocate and the COW break: the
imports go down only.

A fault passes its ``VmFault`` down (``vmf``): each break records there
what it did. Other callers (range operations, fork, uaccess) pass None.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu import x86
from emu.ram import PAGE_SHIFT
from minios.mm.cow import break_cow, settle
from minios.mm.pgtable import (ADDR, PMD_SHIFT, PUD_SHIFT, TABLE_COW, UPPER, alloc_table,
                               entry_pfn, pgd_index, pmd_index, pte_index)

if TYPE_CHECKING:
    from minios.mm.fault import VmFault
    from minios.mm.mm_types import MM


def table_for_write(mm: "MM", i: int, shift: int, va: int, create: bool,
                    vmf: "VmFault | None" = None) -> int | None:
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
        return break_cow(mm, i, shift, va, vmf)
    return entry_pfn(e)


def pmd_entry_for_write(mm: "MM", va: int, create: bool = True,
                        vmf: "VmFault | None" = None) -> int | None:
    """Index in ``ram.q`` of the PMD entry covering ``va``, in a PMD table
    private to ``mm`` (shared PUD and PMD tables above it are broken first),
    or None where a table is missing and ``create`` is false."""
    if mm.kernel.uncounted and mm.cow_pgtable:    # it may change or drop a PMD entry
        settle(mm.kernel, va >> PUD_SHIFT)           # (only a COW mm reaches lent ones)
    pmd = mm.pmd_at.get(va >> PUD_SHIFT)
    if pmd is None:
        i = mm.pgd * 512 + pgd_index(va)
        for shift in (PUD_SHIFT, PMD_SHIFT):
            pmd = table_for_write(mm, i, shift, va, create, vmf)
            if pmd is None:
                return None
            i = pmd * 512 + ((va >> shift) & 511)
        mm.pmd_at[va >> PUD_SHIFT] = pmd
    return pmd * 512 + pmd_index(va)


def pte_table_for_write(mm: "MM", va: int, create: bool = True,
                        vmf: "VmFault | None" = None) -> int | None:
    """THE choke point: the frame of a PTE table covering ``va`` that ``mm``
    may change. Every COW-shared table on the way is broken first (copied
    or reused); missing tables are allocated when ``create``. Returns None
    if there is no table and ``create`` is false."""
    pmd = mm.pmd_at.get(va >> PUD_SHIFT)
    if pmd is not None:             # a private path: the common case, without calls
        e = mm.kernel.ram.w[pmd * 512 + ((va >> PMD_SHIFT) & 511)]
        if e & x86.P and not e & TABLE_COW:
            return (e & ADDR) >> PAGE_SHIFT
    i = pmd_entry_for_write(mm, va, create, vmf)
    if i is None:
        return None
    return table_for_write(mm, i, PAGE_SHIFT, va, create, vmf)


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
