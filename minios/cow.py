"""Fork's page-table copy, and copy-on-write PTE tables (the RFC, finished).

``copy_page_range`` duplicates an address space one PMD table (1 GiB) at a
time with numpy, never one Python step per page:

* COW PTE (``share=True``): the child's PMD entry points at the parent's PTE
  table, the table's share count (its frame refcount) goes up, and both PMD
  entries lose RW, so every write below them traps. Work per 1 GiB: a few
  array operations, whatever the number of pages.
* Plain fork: every PTE table is copied (as whole 4 KiB rows), private
  entries are write-protected on both sides, and page refcounts go up.

Ownership: ``kernel.pt_owner[table]`` is the physical address of the PMD
entry that owns a PTE table. The owner's mm carries the table's RSS and its
4 KiB of VmPTE, so counters are never multiplied by sharing. When the owner
leaves (breaks away, unmaps, exits) ownership moves to a remaining sharer.

``break_cow_pte`` is called only from ``pgtable.pte_table_for_write``: reuse
when the share count is 1, else copy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.frames import ONE, TABLE
from minios.mm import MMF_COW_PGTABLE
from minios.pgtable import (ADDR, UPPER, _PMD_COW, PMD_SHIFT, PMD_SIZE, PUD_SHIFT, entry_pfn,
                            pgd_index, pte_table_for_write, register_pmd_table, slot_va,
                            walk_pmd)

if TYPE_CHECKING:
    from minios.mm import MM

_P = np.uint64(x86.P)
_RW = np.uint64(x86.RW)
_NOT_RW = np.uint64(~x86.RW & 0xFFFF_FFFF_FFFF_FFFF)
_ADDR = np.uint64(ADDR)
_SHIFT = np.uint64(PAGE_SHIFT)
_COW_PMD = np.uint64(_PMD_COW)
_UPPER = np.uint64(UPPER)


def _pfns(entries: np.ndarray) -> np.ndarray:
    return ((entries & _ADDR) >> _SHIFT).astype(np.int64)


def _wrprotect(block: np.ndarray) -> np.ndarray:
    """Clear RW in the present entries of ``block`` (any shape)."""
    return np.where((block & _P) != 0, block & _NOT_RW, block)


def _pmd_mm(kernel, slot: int) -> "MM":
    return kernel.pmd_mm[slot >> PAGE_SHIFT]


def _count_present(kernel, table: int) -> int:
    return int(np.count_nonzero(kernel.ram.t[table] & _P))


def find_sharer(kernel, table: int, va: int) -> int | None:
    """The address of some PMD entry still pointing at ``table``, which maps
    ``va``. Fork shares a table only between the same addresses, and mremap
    breaks a share before moving, so only that PMD entry of each COW mm can
    hold it: a walk per mm, no scan of every table."""
    q = kernel.ram.q
    for mm in kernel.mms:
        if not mm.flags & MMF_COW_PGTABLE:
            continue
        slot = walk_pmd(mm, va, False)
        if slot is not None:
            e = int(q[slot >> 3])
            if e & x86.P and entry_pfn(e) == table:
                return slot
    return None


def _move_owner(kernel, table: int, va: int, present: int | None = None) -> None:
    """The current owner stops owning ``table``; a remaining
    sharer takes over its RSS and page-table bytes."""
    slot = find_sharer(kernel, table, va)
    if slot is None:             # cannot happen while refcount > 0
        raise AssertionError(f"shared PTE table {table} has no sharer left")
    _move_owner_to(kernel, table, slot, present)


def break_cow_pte(mm: "MM", slot: int) -> int:
    """Give ``mm`` a private PTE table in place of the shared one at PMD entry
    ``slot``; returns its frame. OutOfMemory leaves everything unchanged."""
    k = mm.kernel
    q, fr = k.ram.q, k.frames
    table = entry_pfn(int(q[slot >> 3]))
    if fr.refcount[table] == 1:
        # Last user: take the table back. Entries other sharers copied were
        # write-protected then, so those pages stay COW at page level.
        if k.pt_owner[table] != slot:
            _move_owner_to(k, table, slot)
        q[slot >> 3] = (table << PAGE_SHIFT) | UPPER
        k.stats["cow_pte_reuse"] += 1
        k.trace_fault_note = "PTE table share broken by reuse"
        return table
    new = fr.alloc(TABLE)                      # may raise: nothing changed yet
    t = k.ram.t
    block = t[table]
    block &= _NOT_RW                           # other sharers: page-level COW
    t[new] = block
    frames = _pfns(block[(block & _P) != 0])
    fr.refcount[frames] += 1                   # a table maps a private page once
    fr.mapcount[frames] += 1
    was_owner = k.pt_owner[table] == slot
    q[slot >> 3] = (new << PAGE_SHIFT) | UPPER
    k.pt_owner[new] = slot
    fr.refcount[table] -= 1
    mm.nr_tables += 1
    mm.nr_ptes += 1
    mm.rss += len(frames)
    if was_owner:
        _move_owner(k, table, slot_va(k, slot), len(frames))
    k.cpu.flush_tlb()                          # entries were downgraded
    k.stats["cow_pte_copy"] += 1
    k.trace_fault_note = "PTE table share broken by copy"
    return new


def _move_owner_to(k, table: int, slot: int, present: int | None = None) -> None:
    """Hand ``table`` (``present`` entries, counted if not given) and its
    accounting to the PMD entry at ``slot``."""
    old = _pmd_mm(k, int(k.pt_owner[table]))
    new = _pmd_mm(k, slot)
    n = _count_present(k, table) if present is None else present
    old.rss -= n
    old.nr_tables -= 1
    old.nr_ptes -= 1
    new.rss += n
    new.nr_tables += 1
    new.nr_ptes += 1
    k.pt_owner[table] = slot


def drop_pte_table(mm: "MM", slot: int) -> None:
    """Remove the whole PTE table under PMD entry ``slot`` from ``mm``:
    a shared table just loses a reference (no break needed), a private one
    has its pages released and is freed."""
    k = mm.kernel
    q, fr = k.ram.q, k.frames
    table = entry_pfn(int(q[slot >> 3]))
    q[slot >> 3] = 0
    if fr.refcount[table] > 1:
        fr.refcount[table] -= 1
        if k.pt_owner[table] == slot:
            _move_owner(k, table, slot_va(k, slot))
        return
    block = k.ram.t[table]
    frames = _pfns(block[(block & _P) != 0])
    np.subtract.at(fr.mapcount, frames, ONE)
    fr.put_many(frames)
    mm.rss -= len(frames)
    mm.nr_tables -= 1
    mm.nr_ptes -= 1
    fr.put(table)


def _special_slots(mm: "MM", live: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) in ``live`` of the present PMD entries whose 2 MiB holds
    MAP_SHARED or MADV_DONTFORK memory: those tables are copied entry by
    entry. Rows follow ``mm.pmd_tables``. Plain ints: such VMAs are few."""
    out: list[tuple[int, int]] = []
    if not any(v.shared or v.dontfork for v in mm.vmas):
        return out
    row_of = {b >> PUD_SHIFT: r for r, b in enumerate(mm.pmd_tables.values())}
    seen: set[int] = set()
    for v in mm.vmas:
        if not (v.shared or v.dontfork):
            continue
        for s in range(v.start >> PMD_SHIFT, ((v.end - 1) >> PMD_SHIFT) + 1):
            r = row_of.get(s >> 9)
            if s not in seen and r is not None and live[r, s & 511]:
                seen.add(s)
                out.append((r, s & 511))
    return out


def _copy_special_table(parent: "MM", child: "MM", table: int, va: int) -> int:
    """Entry-by-VMA copy of one table overlapping MAP_SHARED/DONTFORK memory."""
    k = parent.kernel
    fr = k.frames
    src = k.ram.t[table]
    vas = va + np.arange(512, dtype=np.int64) * PAGE_SIZE
    keep = np.zeros(512, dtype=bool)
    private = np.zeros(512, dtype=bool)
    for v in parent.overlapping(va, va + PMD_SIZE):
        inside = (vas >= v.start) & (vas < v.end)
        if not v.dontfork:
            keep |= inside
            if not v.shared:
                private |= inside
    present = (src & _P) != 0
    wp = present & private
    src[wp] &= _NOT_RW
    new = fr.alloc(TABLE)
    dst = np.where(keep & present, src, np.uint64(0))
    k.ram.t[new] = dst
    frames = _pfns(dst[(dst & _P) != 0])
    np.add.at(fr.refcount, frames, ONE)
    np.add.at(fr.mapcount, frames, ONE)
    child.rss += len(frames)
    return new


def _child_pmd_tables(child: "MM", bases: list[int]) -> np.ndarray:
    """Give a fresh child a PMD table at each of ``bases`` (1 GiB aligned),
    with the PUD tables above them: allocated at once, all or nothing."""
    k = child.kernel
    q = k.ram.w
    slots = sorted({pgd_index(b) for b in bases})
    got = k.frames.alloc_tables(len(slots) + len(bases))
    child.nr_tables += len(got)
    pud_of = dict(zip(slots, got))
    for i, pud in pud_of.items():
        q[child.pgd * 512 + i] = (pud << PAGE_SHIFT) | UPPER
    pmds = got[len(slots):]
    for b, pmd in zip(bases, pmds):
        q[pud_of[pgd_index(b)] * 512 + ((b >> PUD_SHIFT) & 511)] = (pmd << PAGE_SHIFT) | UPPER
        register_pmd_table(child, pmd, b)
    return np.array(pmds, dtype=np.int64)


def copy_page_range(parent: "MM", child: "MM", share: bool) -> tuple[int, int]:
    """Duplicate ``parent``'s user page tables into ``child`` (fork).
    Returns (PTE tables shared, PTE tables copied).

    All of the parent's PMD tables are gathered into one (n, 512) array, so
    a fork costs the same dozen numpy calls for 2 MiB or 4 GiB of memory.
    Every present PMD entry lies under some VMA (``unmap_vmas`` frees the
    tables it leaves uncovered), so only MAP_SHARED and MADV_DONTFORK
    memory needs looking at VMAs; everything else is inherited whole."""
    k = parent.kernel
    t, fr = k.ram.t, k.frames
    if share:         # later forks of either side share too; find_sharer looks here
        parent.flags |= MMF_COW_PGTABLE
        child.flags |= MMF_COW_PGTABLE
    if not parent.pmd_tables:
        return 0, 0
    src = np.fromiter(parent.pmd_tables.keys(), dtype=np.int64)
    bases = list(parent.pmd_tables.values())
    dst = _child_pmd_tables(child, bases)
    ents = t[src]                                    # (n, 512) copy
    live = (ents & _P) != 0
    special = _special_slots(parent, live)
    for r, c in special:
        live[r, c] = False
    sel = ents[live]
    n = len(sel)
    if share:
        # COW PTE: point at the same tables, one more share each, and
        # write-protect both PMD entries. No page is looked at.
        fr.refcount[(sel & _ADDR) >> _SHIFT] += 1
        ents[live] = (sel & _NOT_RW) | _COW_PMD
        t[src] = ents
        for r, c in special:
            ents[r, c] = 0
        t[dst] = ents              # the rest of a fresh child table is zero
        copied = 0
    elif n:
        # Plain fork: copy whole tables, write-protect, count pages. A
        # private page is mapped once per mm, so ``frames`` has no repeats
        # and a fancy-index increment is exact.
        old = _pfns(sel)
        new = np.array(fr.alloc_tables(n), dtype=np.int64)
        block = _wrprotect(t[old])
        t[old] = block
        t[new] = block
        frames = _pfns(block[(block & _P) != 0])
        fr.refcount[frames] += 1
        fr.mapcount[frames] += 1
        child.rss += len(frames)
        cents = np.zeros_like(ents)
        cents[live] = (new.astype(np.uint64) << _SHIFT) | _UPPER
        t[dst] = cents
        rows, cols = np.nonzero(live)
        k.pt_owner[new] = dst[rows] * PAGE_SIZE + cols * 8
        child.nr_tables += n
        child.nr_ptes += n
        copied = n
    else:
        copied = 0
    for r, c in special:
        va = bases[r] + (c << PMD_SHIFT)
        if not child.overlapping(va, va + PMD_SIZE):
            continue                  # only MADV_DONTFORK memory here: no table
        # The parent's entries get write-protected: through the choke
        # point, which breaks the table first if it is COW-shared.
        new = _copy_special_table(parent, child,
                                  pte_table_for_write(parent, va, create=False), va)
        t[dst[r], c] = (new << PAGE_SHIFT) | UPPER
        k.pt_owner[new] = int(dst[r]) * PAGE_SIZE + c * 8
        child.nr_tables += 1
        child.nr_ptes += 1
        copied += 1
    k.cpu.flush_tlb()                 # the parent's entries were downgraded
    return (n if share else 0), copied
