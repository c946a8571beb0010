"""Page-table range operations behind munmap, mprotect, madvise, brk, mremap,
execve and exit. Each works one PTE table (2 MiB) at a time, gets the table
through the choke point ``pte_table_for_write`` (breaking a COW share), and
changes its entries with numpy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.mm.frames import ONE
from minios.mm.cow import _FEW, _P, _NOT_RW, drop_table, release_tables
from minios.mm.pgtable import (PGDIR_SHIFT, PMD_SHIFT, PMD_SIZE, PUD_SHIFT, TASK_SIZE, entry_pfn,
                            lookup_pte, pmd_entry_for_write, present_entries, pte_index,
                            pte_table_for_write)
from minios.mm.mm_types import MMF_COW_PGTABLE, PROT_EXEC, PROT_WRITE

if TYPE_CHECKING:
    from minios.mm.mm_types import MM, VMA

_NX = np.uint64(x86.NX)
_RW = np.uint64(x86.RW)
_US = np.uint64(x86.US)


def _chunks(start: int, end: int):
    """(chunk_start, chunk_end, whole_table) per 2 MiB table in [start, end)."""
    va = start
    while va < end:
        nxt = min((va | (PMD_SIZE - 1)) + 1, end)
        yield va, nxt, (va & (PMD_SIZE - 1)) == 0 and nxt - va == PMD_SIZE
        va = nxt


def _has_table(mm: "MM", va: int) -> bool:
    """A PTE table covers ``va`` (looked up, nothing broken)."""
    return bool(lookup_pte(mm, va)[1] & x86.P)


def zap_range(mm: "MM", start: int, end: int) -> None:
    """Unmap every page in [start, end) and free tables left wholly empty."""
    k = mm.kernel
    q, fr = k.ram.w, k.frames
    gone: list[int] = []
    at: list[int] = []
    for lo, hi, whole in _chunks(start, end):
        if not _has_table(mm, lo):
            continue
        if whole:                 # the whole table goes: shared, just one reference less
            i = pmd_entry_for_write(mm, lo, create=False)
            gone.append(entry_pfn(q[i]))
            at.append(lo)
            q[i] = 0
            continue
        table = pte_table_for_write(mm, lo, create=False)
        row = k.ram.t[table][pte_index(lo):pte_index(lo) + ((hi - lo) >> PAGE_SHIFT)]
        frames = present_entries(row)[0]
        if len(frames):
            np.subtract.at(fr.mapcount, frames, ONE)
            fr.put_many(frames)
            mm.rss -= len(frames)
        row[:] = 0
    if gone:
        release_tables(mm, np.array(gone, dtype=np.int64), np.array(at, dtype=np.int64),
                       PAGE_SHIFT)
    k.cpu.flush_tlb()


def break_range(mm: "MM", start: int, end: int) -> None:
    """Unshare every PTE table over [start, end) now, so a later change of
    the range cannot fail half-way for lack of memory."""
    for lo, _hi, _ in _chunks(start, end):
        if _has_table(mm, lo):
            pte_table_for_write(mm, lo, create=False)


def change_protection(mm: "MM", vma: "VMA", start: int, end: int) -> None:
    """Make the present PTEs in [start, end) follow ``vma.prot``. Private
    writable pages are left read-only: the write fault decides between reuse
    and copy, exactly as for a fresh COW page."""
    k = mm.kernel
    for lo, hi, _ in _chunks(start, end):
        if not _has_table(mm, lo):
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
    for lo, hi, _ in _chunks(old, old + length):
        if _has_table(mm, lo):
            pte_table_for_write(mm, lo, create=False)
            for dlo, _h, _w in _chunks(new + (lo - old), new + (hi - old)):
                pte_table_for_write(mm, dlo)
    for off in range(0, length, PAGE_SIZE):
        if not _has_table(mm, old + off):
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


def free_pgtables(mm: "MM") -> None:
    """Release every user table of ``mm`` (its last user is gone: exit,
    or execve dropping the old mm), in bulk: shared tables just lose a
    reference (what this mm owned below them moves to another sharer),
    private ones are freed with their pages. No TLB flush: no CPU runs
    ``mm`` any more (see ``mm_release``)."""
    k = mm.kernel
    w = k.ram.w
    base = mm.pgd * 512
    if not mm.flags & MMF_COW_PGTABLE and len(mm.pmd_at) <= _FEW:
        # Never shared: pmd_at lists every PMD table, and the PUD tables
        # are the PGD entries above them, unless an OutOfMemory left one
        # without PMD tables: then the count is off and the PGD is scanned.
        puds: dict[int, int] = {}
        for key in mm.pmd_at:
            if key >> 9 not in puds:
                puds[key >> 9] = entry_pfn(w[base + (key >> 9)])
        if 1 + len(puds) + len(mm.pmd_at) + mm.nr_ptes == mm.nr_tables:
            for i in puds:
                w[base + i] = 0
            uppers = list(puds.values())
            ptes = _pte_tables_by_vma(mm)
            if ptes is None:             # the PMD tables are scanned for them
                release_tables(mm, list(mm.pmd_at.values()), None, PMD_SHIFT, True, uppers)
            else:
                uppers += mm.pmd_at.values()
                release_tables(mm, ptes, None, PAGE_SHIFT, True, uppers)
            mm.pmd_at.clear()
            return
    user = k.ram.t[mm.pgd][:256]
    tables, idx = present_entries(user)
    user[:] = 0
    release_tables(mm, tables, idx << PGDIR_SHIFT, PUD_SHIFT, True)
    mm.pmd_at.clear()


def _pte_tables_by_vma(mm: "MM") -> list[int] | None:
    """The PTE tables of a never-shared ``mm`` (its PMD tables all in
    ``pmd_at``), read from the PMD entries its VMAs cover, as Linux finds
    them: every present PMD entry lies under some VMA (see
    ``free_uncovered``). A few entries read one by one cost less than
    scanning whole PMD tables. None if the VMAs span more than a few
    2 MiB slots, or if fewer tables than ``nr_ptes`` turn up (the
    invariant broken: the caller scans instead)."""
    w = mm.kernel.ram.w
    pmd_at = mm.pmd_at
    found: list[int] = []
    budget = _FEW                    # slots read before a scan is cheaper
    nxt = 0                          # slots below this were read (VMAs are sorted)
    for v in mm.vmas:
        hi = (v.end - 1) >> PMD_SHIFT
        if hi < nxt:
            continue                 # within the slots of the VMAs before it
        lo = v.start >> PMD_SHIFT
        if lo < nxt:
            lo = nxt
        budget -= hi + 1 - lo
        if budget < 0:
            return None
        for slot in range(lo, hi + 1):
            pmd = pmd_at.get(slot >> 9)
            if pmd is not None:
                e = w[pmd * 512 + (slot & 511)]
                if e:
                    found.append(entry_pfn(e))
        nxt = hi + 1
    return found if len(found) == mm.nr_ptes else None


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


def free_uncovered(mm: "MM", start: int, end: int) -> None:
    """Drop the PTE tables over [start, end) whose 2 MiB no VMA touches, as
    Linux's free_pgtables does after munmap. This keeps an invariant fork
    relies on: every present PMD entry lies under some VMA, so
    ``copy_page_range`` inherits tables without looking at VMAs."""
    for lo, _hi, _ in _chunks(start, end):
        base = lo & ~(PMD_SIZE - 1)
        if _has_table(mm, lo) and not mm.overlapping(base, base + PMD_SIZE):
            drop_table(mm, pmd_entry_for_write(mm, lo, create=False), PAGE_SHIFT, base)


def release_shm(k, vma: "VMA") -> None:
    shm = vma.shm
    shm.users -= 1
    if shm.users == 0:
        for f in shm.frames.values():
            k.frames.put(f)
        shm.frames.clear()


def valid_user_range(start: int, length: int) -> bool:
    return 0 <= start and length >= 0 and start + length <= TASK_SIZE
