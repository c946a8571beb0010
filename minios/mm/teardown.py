"""Teardown: taking page tables and pages away. ``zap_range`` empties a
range (munmap, madvise), ``free_uncovered`` frees the PTE tables no VMA
touches any more, ``free_pgtables`` releases every user table of a dying
mm, all through ``release_tables``, which knows what sharing means for a
table going away: a shared one just loses a reference (and what its mm
owned below it moves to a remaining sharer), a private one is freed with
everything below it. ``mmput`` drops a user of an mm and, with the last,
``exit_mmap`` frees it all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu.ram import PAGE_SHIFT
from minios.mm.cow import FEW, FEW_PAGES, heir, move_tables, settle
from minios.mm.frames import ONE
from minios.mm.mm_types import MMF_COW_PGTABLE
from minios.mm.pgtable import (PGDIR_SHIFT, PMD_SHIFT, PMD_SIZE, PUD_SHIFT, entry_pfn,
                               has_pte_table, pfns, present_entries, pte_index,
                               pte_table_ranges)
from minios.mm.pte import pmd_entry_for_write, pte_table_for_write

if TYPE_CHECKING:
    from minios.mm.mm_types import MM, VMA


def _forget(k, tables) -> None:
    """``tables`` (PMD tables) are being freed: their lent entries held no
    count, so they are cleared instead of released."""
    for tab in tables if isinstance(tables, list) else tables.tolist():
        lent = k.uncounted.pop(tab, None)
        if lent is not None:
            k.ram.t[tab][lent[1]] = 0


def _orphan(k, tables: np.ndarray, vas: np.ndarray, shift: int, old: "MM") -> None:
    """``old`` no longer reaches the shared ``tables`` (entries of
    ``shift``, mapping from ``vas``): what it owned in and below each goes
    to an mm that still reaches that table (and so all below it)."""
    if shift == PAGE_SHIFT:              # no subtree: look at the owned ones only
        mine = k.pt_owner[tables] == old.id
        for tab, va in zip(tables[mine].tolist(), vas[mine].tolist()):
            move_tables(k, tab, shift, old, heir(k, tab, shift, va, old))
        return
    for tab, va in zip(tables.tolist(), vas.tolist()):
        level, s, new = np.array([tab], dtype=np.int64), shift, None
        while len(level):
            mine = level[k.pt_owner[level] == old.id]
            if len(mine):
                if new is None:
                    new = heir(k, tab, shift, va, old)
                move_tables(k, mine, s, old, new)
            if s == PAGE_SHIFT:
                break
            level, s = present_entries(k.ram.t[level])[0], s - 9


def release_tables(mm: "MM", tables, vas, shift: int, whole: bool = False,
                   dead: list[int] | None = None) -> None:
    """``mm`` stops using ``tables`` (of entries of ``shift``, each mapping
    from the address in ``vas``), whose entries were cleared already: a
    shared table loses one reference and what ``mm`` owned below it moves
    to a remaining sharer; a private one is freed with everything below it
    and its pages released. A few numpy calls per level, whatever the size:
    exit is as hot as fork. A level of at most ``FEW`` tables goes table by
    table in plain ints (one nonzero each), as a small process's all do.
    ``tables`` and ``vas`` are arrays or lists; without MMF_COW_PGTABLE
    nothing is shared and ``vas`` is not looked at (it may be None).
    ``whole``: every user table of ``mm`` goes (exit), so what it owns
    under the shared ones is known from its count once its private ones
    are gone. ``dead``: private tables of ``mm`` freed along with these.
    Lent entries (see "Lent rows") are settled before PTE tables' counts
    are lowered, and forgotten with a PMD table that is freed."""
    k = mm.kernel
    t, w, fr = k.ram.t, k.ram.w, k.frames
    rc = fr.refcount
    cow = mm.flags & MMF_COW_PGTABLE
    dead = [] if dead is None else dead
    shared_at: list[tuple] = []          # (tables, vas, shift) left to other sharers
    while len(tables):
        few = len(tables) <= FEW
        if few:
            if not isinstance(tables, list):
                tables = tables.tolist()
                vas = vas.tolist() if cow else None
        elif isinstance(tables, list):
            tables = np.array(tables, dtype=np.int64)
            vas = np.array(vas, dtype=np.int64) if cow else None
        if cow and shift == PAGE_SHIFT and k.uncounted:     # counts are lowered below
            for key in {va >> PUD_SHIFT for va in (vas if few else vas.tolist())}:
                settle(k, key)
        if cow:
            if few:
                private, pvas, shared, svas = [], [], [], []
                rca = fr.refcount_at
                for tab, va in zip(tables, vas):
                    rca[tab] -= 1            # one entry per table in this mm: exact
                    if rca[tab]:
                        shared.append(tab)
                        svas.append(va)
                    else:
                        private.append(tab)
                        pvas.append(va)
                if shared:
                    shared_at.append((np.array(shared, dtype=np.int64),
                                      np.array(svas, dtype=np.int64), shift))
                    tables, vas = private, pvas
            else:
                rc[tables] -= 1
                shared = rc[tables] > 0
                if shared.any():
                    shared_at.append((tables[shared], vas[shared], shift))
                    tables, vas = tables[~shared], vas[~shared]
        dead += tables if few else tables.tolist()
        if shift == PMD_SHIFT and k.uncounted:
            _forget(k, tables)
        if shift == PAGE_SHIFT:
            if few:
                if not tables:
                    break
                # take: indexing with a list converts it first, at twice the cost
                frames = present_entries(t[tables[0]] if len(tables) == 1
                                         else t.take(tables, axis=0))[0]
            else:
                frames = present_entries(t[tables])[0]
            if len(frames):
                np.subtract.at(fr.mapcount, frames, ONE)   # a file page may repeat
                fr.put_many(frames)
                mm.rss -= len(frames)
            mm.nr_ptes -= len(tables)
            break
        if few:
            present = [t[tab].astype(bool).nonzero()[0] for tab in tables]  # (present_entries)
            if sum(map(len, present)) > FEW_PAGES:    # e.g. a COW child's stack PMD table
                below = [pfns(t[tab][js]) for tab, js in zip(tables, present)]
                if cow:
                    vas = np.concatenate([va + (js << shift) for va, js in zip(vas, present)])
                tables = np.concatenate(below)
            else:
                below, bvas = [], []
                for i, tab in enumerate(tables):
                    base = tab * 512
                    for j in present[i].tolist():
                        below.append(entry_pfn(w[base + j]))
                        if cow:
                            bvas.append(vas[i] + (j << shift))
                tables, vas = below, bvas
        else:
            below, f = present_entries(t[tables])
            if cow:
                vas = vas[f >> 9] + ((f & 511) << shift)
            tables = below
        shift -= 9
    # What mm owned under the tables it leaves to others moves to one of
    # them. At exit, once its private tables are gone (all its own: only it
    # reached them), anything it still owns but its PGD lies there.
    if shared_at and (mm.nr_tables - len(dead) > 1 if whole else mm.nr_tables > 1):
        for tabs, tvas, s in shared_at:
            _orphan(k, tabs, tvas, s, mm)
    fr.free_tables(dead)
    mm.nr_tables -= len(dead)


def drop_table(mm: "MM", i: int, shift: int, va: int) -> None:
    """Clear the entry ``ram.q[i]`` (in a table private to ``mm``) and
    release the table under it: a shared one just loses a reference (no
    break needed), a private one is freed with its pages."""
    q = mm.kernel.ram.w
    table = entry_pfn(q[i])
    q[i] = 0
    release_tables(mm, np.array([table], dtype=np.int64), np.array([va], dtype=np.int64),
                   shift)


def zap_range(mm: "MM", start: int, end: int) -> None:
    """Unmap every page in [start, end) and free tables left wholly empty."""
    k = mm.kernel
    q, fr = k.ram.w, k.frames
    gone: list[int] = []
    at: list[int] = []
    for lo, hi, whole in pte_table_ranges(start, end):
        if not has_pte_table(mm, lo):
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


def free_uncovered(mm: "MM", start: int, end: int) -> None:
    """Drop the PTE tables over [start, end) whose 2 MiB no VMA touches, as
    Linux's free_pgtables does after munmap. This keeps an invariant fork
    relies on: every present PMD entry lies under some VMA, so
    ``copy_page_range`` inherits tables without looking at VMAs."""
    for lo, _hi, _ in pte_table_ranges(start, end):
        base = lo & ~(PMD_SIZE - 1)
        if has_pte_table(mm, lo) and not mm.overlapping(base, base + PMD_SIZE):
            drop_table(mm, pmd_entry_for_write(mm, lo, create=False), PAGE_SHIFT, base)


def free_pgtables(mm: "MM") -> None:
    """Release every user table of ``mm`` (its last user is gone: exit,
    or execve dropping the old mm), in bulk: shared tables just lose a
    reference (what this mm owned below them moves to another sharer),
    private ones are freed with their pages. No TLB flush: no CPU runs
    ``mm`` any more (see ``exit_mmap``)."""
    k = mm.kernel
    w = k.ram.w
    base = mm.pgd * 512
    if not mm.flags & MMF_COW_PGTABLE and len(mm.pmd_at) <= FEW:
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
    budget = FEW                    # slots read before a scan is cheaper
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


def release_shm(k, vma: "VMA") -> None:
    """``vma`` stops using its MAP_SHARED object; the last user frees it."""
    shm = vma.shm
    shm.users -= 1
    if shm.users == 0:
        for f in shm.frames.values():
            k.frames.put(f)
        shm.frames.clear()


def exit_mmap(mm: "MM") -> None:
    """Free everything ``mm`` holds: its last user is gone. No TLB flush:
    no task runs mm any more. If the CPU is still on its tables (its last
    task exits, or is reaped after a failed spawn), the next task gets on
    through a context switch that loads CR3 and flushes (the old task is
    dead) before any guest instruction; execve loaded the new CR3 before
    releasing the old mm. Frames freed here were reached by mm only, so no
    other mm's translations go stale. Its own kernel TLB goes, in case
    anything still reads through it."""
    k = mm.kernel
    free_pgtables(mm)
    mm.utlb.clear()
    for v in mm.vmas:
        if v.shm:
            release_shm(k, v)
    mm.vmas.clear()
    mm._vcache = None
    k.frames.put(mm.pgd)
    mm.nr_tables -= 1
    k.mms.pop(mm, None)
    k.mm_ids.pop(mm.id, None)


def mmput(mm: "MM") -> None:
    """Drop one user of ``mm`` (a task exits or execs, or a half-built mm
    is abandoned); the last one frees everything it holds (Linux's mmput)."""
    mm.users -= 1
    if mm.users <= 0:
        exit_mmap(mm)
