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
from minios.pgtable import (ADDR, UPPER, _PMD_COW, PMD_SIZE, PUD_SIZE,
                            entry_pfn, walk_pmd)

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


def find_sharer(kernel, table: int) -> int | None:
    """The address of some PMD entry still pointing at ``table``."""
    pmds = np.fromiter((p for mm in kernel.mms for p in mm.pmd_tables), dtype=np.int64)
    if len(pmds) == 0:
        return None
    ents = kernel.ram.t[pmds]
    hit = np.argwhere(((ents & _P) != 0) & (_pfns(ents) == table))
    if len(hit) == 0:
        return None
    return int(pmds[hit[0][0]]) * PAGE_SIZE + int(hit[0][1]) * 8


def _move_owner(kernel, table: int) -> None:
    """The current owner stops owning ``table``; a remaining
    sharer takes over its RSS and page-table bytes."""
    slot = find_sharer(kernel, table)
    if slot is None:             # cannot happen while refcount > 0
        raise AssertionError(f"shared PTE table {table} has no sharer left")
    _move_owner_to(kernel, table, slot)


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
    block = _wrprotect(k.ram.t[table])
    k.ram.t[table] = block                     # other sharers: page-level COW
    k.ram.t[new] = block
    frames = _pfns(block[(block & _P) != 0])
    np.add.at(fr.refcount, frames, ONE)
    np.add.at(fr.mapcount, frames, ONE)
    was_owner = k.pt_owner[table] == slot
    q[slot >> 3] = (new << PAGE_SHIFT) | UPPER
    k.pt_owner[new] = slot
    fr.refcount[table] -= 1
    mm.nr_tables += 1
    mm.nr_ptes += 1
    mm.rss += len(frames)
    if was_owner:
        _move_owner(k, table)
    k.cpu.flush_tlb()                          # entries were downgraded
    k.stats["cow_pte_copy"] += 1
    k.trace_fault_note = "PTE table share broken by copy"
    return new


def _move_owner_to(k, table: int, slot: int) -> None:
    old = _pmd_mm(k, int(k.pt_owner[table]))
    new = _pmd_mm(k, slot)
    n = _count_present(k, table)
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
            _move_owner(k, table)
        return
    block = k.ram.t[table]
    frames = _pfns(block[(block & _P) != 0])
    np.subtract.at(fr.mapcount, frames, ONE)
    fr.put_many(frames)
    mm.rss -= len(frames)
    mm.nr_tables -= 1
    mm.nr_ptes -= 1
    fr.put(table)


def _gib_masks(vmas, base: int):
    """Per PMD slot of the 1 GiB at ``base``: covered by a VMA the child
    inherits, and needing per-entry treatment (MAP_SHARED or MADV_DONTFORK)."""
    covered = np.zeros(512, dtype=bool)
    special = np.zeros(512, dtype=bool)
    for v in vmas:
        if v.end <= base or v.start >= base + PUD_SIZE:
            continue
        lo = max(v.start - base, 0) // PMD_SIZE
        hi = (min(v.end - base, PUD_SIZE) + PMD_SIZE - 1) // PMD_SIZE
        covered[lo:hi] = True
        if v.shared or v.dontfork:
            special[lo:hi] = True
    return covered, special


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


def _alloc_tables(fr, n: int) -> list[int]:
    """n table frames, or none at all (OutOfMemory) so nothing leaks."""
    got: list[int] = []
    try:
        for _ in range(n):
            got.append(fr.alloc(TABLE))
    except Exception:
        for f in got:
            fr.free(f)
        raise
    return got


def copy_page_range(parent: "MM", child: "MM", share: bool) -> tuple[int, int]:
    """Duplicate ``parent``'s user page tables into ``child`` (fork).
    Returns (PTE tables shared, PTE tables copied)."""
    k = parent.kernel
    q, t, fr = k.ram.q, k.ram.t, k.frames
    vmas = parent.vmas
    shared_n = copied_n = 0
    for i in np.flatnonzero(t[parent.pgd][:256] & _P).tolist():    # user half
        pud = entry_pfn(int(q[parent.pgd * 512 + i]))
        for j in np.flatnonzero(t[pud] & _P).tolist():
            base = (i << 39) | (j << 30)
            covered, special = _gib_masks(vmas, base)
            if not covered.any():
                continue
            ppmd = entry_pfn(int(q[pud * 512 + j]))
            cpmd = walk_pmd(child, base, True) >> PAGE_SHIFT
            ents = t[ppmd]                      # a view: changes land in RAM
            present = (ents & _P) != 0
            has_special = special.any()
            bulk = present & covered
            if has_special:
                bulk &= ~special
            idx = np.flatnonzero(bulk)
            if share and len(idx):
                # COW PTE: point at the same tables, one more share each,
                # and write-protect both PMD entries. No page is looked at.
                sel = ents[idx]
                fr.refcount[(sel & _ADDR) >> _SHIFT] += 1
                sel = (sel & _NOT_RW) | _COW_PMD
                ents[idx] = sel
                t[cpmd, idx] = sel
                shared_n += len(idx)
            elif len(idx):
                # Plain fork: copy whole tables, write-protect, count pages.
                # A private page is mapped once per mm, so ``frames`` has no
                # repeats and a fancy-index increment is exact.
                src = _pfns(ents[idx])
                new = np.array(_alloc_tables(fr, len(idx)), dtype=np.int64)
                block = _wrprotect(t[src])
                t[src] = block
                t[new] = block
                frames = _pfns(block[(block & _P) != 0])
                fr.refcount[frames] += 1
                fr.mapcount[frames] += 1
                child.rss += len(frames)
                t[cpmd, idx] = (new.astype(np.uint64) << _SHIFT) | _UPPER
                k.pt_owner[new] = cpmd * PAGE_SIZE + idx * 8
                child.nr_tables += len(idx)
                child.nr_ptes += len(idx)
                copied_n += len(idx)
            if not has_special:
                continue
            for s in np.flatnonzero(present & covered & special).tolist():
                new = _copy_special_table(parent, child, entry_pfn(int(ents[s])),
                                          base + s * PMD_SIZE)
                t[cpmd, s] = (new << PAGE_SHIFT) | UPPER
                k.pt_owner[new] = cpmd * PAGE_SIZE + s * 8
                child.nr_tables += 1
                child.nr_ptes += 1
                copied_n += 1
    k.cpu.flush_tlb()                 # the parent's entries were downgraded
    return shared_n, copied_n
