"""Fork's copy of an address space: ``dup_mm`` builds the child's mm,
``copy_page_range`` duplicates the page tables without one Python step
per page:

* COW (``share=True``): the child's PGD entries point at the parent's PUD
  tables, each table's share count (its frame refcount) goes up, and both
  entries lose RW and gain ``TABLE_COW``, so the CPU traps every write below
  them (``minios.mm.cow``: what sharing means, how a write breaks it). A
  fork costs one PGD, whatever the size. Only the few paths down to
  MAP_SHARED or MADV_DONTFORK memory, and to the forking thread's stack,
  are built for the child, down to those PTE tables, which are copied as a
  plain fork copies them; the PMD table on the stack's path lends its
  other entries (``cow``, "Lent rows").
* Plain fork: every PTE table is copied (as whole 4 KiB rows), private
  entries are write-protected on both sides, and page refcounts go up.
"""
from __future__ import annotations

import time

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.mm.cow import copy_pte_tables, share_row
from minios.mm.frames import ONE, OutOfMemory
from minios.mm.mm_types import MM, MMF_COW_PGTABLE, PROT_EXEC, PROT_WRITE, VMA
from minios.mm.pgtable import (PGDIR_SHIFT, PMD_SHIFT, PMD_SIZE, PUD_SHIFT, UPPER, alloc_table,
                               entry_pfn, lookup_pte, pfns, present_entries, pte_index)
from minios.mm.pte import pmd_entry_for_write, pte_table_for_write, table_for_write
from minios.mm.teardown import mmput

# 0-d arrays, not numpy scalars: a ufunc takes them for less (see frames.ONE).
_P = np.array(x86.P, dtype=np.uint64)
_NOT_RW = np.array(~x86.RW & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64)
_SHIFT = np.array(PAGE_SHIFT, dtype=np.uint64)
_UPPER = np.array(UPPER, dtype=np.uint64)


def dup_mm(parent: MM, share: bool, stack: int = -1, settid: int = -1) -> MM:
    """The child's mm for fork (``stack``, ``settid``: see copy_page_range).
    On OutOfMemory the half-built child is released and the parent is left
    consistent (its downgraded entries just take a COW fault that reuses
    the page). ``kernel.last_fork`` says what the copy did and took."""
    mm = MM(parent.kernel)
    try:
        return _fill_mm(parent, mm, share, stack, settid)
    except OutOfMemory:
        mmput(mm)
        raise


def _fill_mm(parent: MM, mm: MM, share: bool, stack: int, settid: int) -> MM:
    new, vmas = VMA.__new__, mm.vmas
    for v in parent.vmas:
        if v.dontfork:
            continue
        nv = new(VMA)
        nv.__dict__ = d = v.__dict__.copy()  # (cheaper than __init__ or update)
        if d["anon"] is not None:            # the child's own anon_vma, chained
            d["anon"], d["anon_forked"] = object(), True
        if d["shm"] is not None:
            v.shm.users += 1
        vmas.append(nv)
    mm.start_brk, mm.brk, mm.mmap_base = parent.start_brk, parent.brk, parent.mmap_base
    mm.start_stack, mm.arg_start, mm.arg_end = parent.start_stack, parent.arg_start, parent.arg_end
    mm.env_start, mm.env_end, mm.exe = parent.env_start, parent.env_end, parent.exe
    t0 = time.perf_counter_ns()
    shared, copied = copy_page_range(parent, mm, share, stack, settid)
    parent.kernel.last_fork = {"shared": shared, "copied": copied,
                               "ns": time.perf_counter_ns() - t0}
    return mm


def _copy_special_table(parent: "MM", child: "MM", table: int, va: int) -> int:
    """Entry-by-VMA copy of one PTE table overlapping MAP_SHARED/DONTFORK
    memory, owned by ``child``."""
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
    new = alloc_table(child, PAGE_SHIFT)
    dst = np.where(keep & present, src, np.uint64(0))
    k.ram.t[new] = dst
    frames = present_entries(dst)[0]
    np.add.at(fr.refcount, frames, ONE)
    np.add.at(fr.mapcount, frames, ONE)
    child.rss += len(frames)
    return new


def _special(mm: "MM") -> list[tuple[int, int]]:
    """[start, end) of the VMAs fork must look into: MAP_SHARED memory stays
    shared, MADV_DONTFORK memory is left out; the rest is inherited whole."""
    return [(v.start, v.end) for v in mm.vmas if v.shared or v.dontfork]


def _special_and_hot(mm: "MM", va: int) -> tuple[list[tuple[int, int]], int]:
    """(``_special(mm)``, ``_hot(mm, va)``) in one pass over the VMAs."""
    special, hot = [], -1
    for v in mm.vmas:
        if v.shared or v.dontfork:
            special.append((v.start, v.end))
        elif v.start <= va < v.end and _hot_vma(v):
            hot = va
    return special, hot


def _share_tables(parent: "MM", child: "MM", ptab: int, ctab: int, shift: int, base: int,
                  special: list[tuple[int, int]], hot: int) -> tuple[int, int]:
    """COW fork of one table ``ptab`` of ``parent`` (entries of ``shift``,
    mapping from ``base``, private to the parent) into the child's fresh
    ``ctab``: share every table below, except on the paths down to
    ``special`` memory and to the PTE table at ``hot``. Returns (tables
    shared, PTE tables copied)."""
    k = parent.kernel
    w = k.ram.w
    n = 256 if shift == PGDIR_SHIFT else 512          # the PGD's user half
    marks = [((hot - base) >> shift,) * 2] if 0 <= hot - base < n << shift else []
    for s, e in special:
        lo, hi = max((s - base) >> shift, 0), min((e - 1 - base) >> shift, n - 1)
        if lo <= hi:
            marks.append((lo, hi))
    shared, down = share_row(k, ptab, ctab, n, marks,
                              base >> PUD_SHIFT if shift == PMD_SHIFT else -1)
    copied = 0
    hot_j = (hot - base) >> shift if hot >= 0 else -1
    for j in down:
        va = base + (j << shift)
        if j != hot_j and not child.overlapping(va, va + (1 << shift)):
            continue                  # only MADV_DONTFORK memory here: no table
        # The parent's side goes through the choke point, which breaks the
        # table first if it is COW-shared: its entries get write-protected.
        psub = table_for_write(parent, ptab * 512 + j, shift - 9, va, False)
        if shift == PMD_SHIFT:
            if any(s < va + PMD_SIZE and e > va for s, e in special):
                new = _copy_special_table(parent, child, psub, va)
            else:                     # only the stack: private memory
                new = alloc_table(child, PAGE_SHIFT)
                copy_pte_tables(k, psub, new, child)
                _copy_hot_page(k, psub, new, hot)
            copied += 1
        else:
            new = alloc_table(child, shift - 9)
            if shift == PUD_SHIFT:    # both paths to this PMD table stay private
                parent.pmd_at[va >> PUD_SHIFT], child.pmd_at[va >> PUD_SHIFT] = psub, new
            a, b = _share_tables(parent, child, psub, new, shift - 9, va, special, hot)
            shared, copied = shared + a, copied + b
        w[ctab * 512 + j] = (new << PAGE_SHIFT) | UPPER
    return shared, copied


def _pmd_tables(mm: "MM") -> tuple[np.ndarray, np.ndarray]:
    """(frames, base addresses) of every PMD table ``mm`` reaches."""
    t = mm.kernel.ram.t
    puds, i = present_entries(t[mm.pgd][:256])
    pmds, f = present_entries(t[puds])
    return pmds, (i[f >> 9] << PGDIR_SHIFT) | ((f & 511) << PUD_SHIFT)


def _copy_tables(parent: "MM", child: "MM") -> int:
    """Plain fork: copy every PTE table, in bulk. All of the parent's PMD
    tables are gathered into one (n, 512) array, so a fork costs the same
    dozen numpy calls for 2 MiB or 4 GiB of memory; the child's few PUD and
    PMD tables are made one by one. Every present PMD entry lies under some
    VMA (``unmap_vmas`` frees the tables it leaves uncovered), so only
    special memory needs looking at VMAs."""
    k = parent.kernel
    t, fr = k.ram.t, k.frames
    if parent.flags & MMF_COW_PGTABLE:           # (the kernel always shares then)
        src, bases = _pmd_tables(parent)
        slots, src = (bases >> PUD_SHIFT).tolist(), src.tolist()
    else:                         # never shared: pmd_at lists every PMD table
        slots, src = list(parent.pmd_at), list(parent.pmd_at.values())
    if not src:
        return 0
    dst = [pmd_entry_for_write(child, slot << PUD_SHIFT) >> 9 for slot in slots]
    ents = t[src]                                    # (n, 512) copy
    e = ents.ravel()
    f = e.astype(bool).nonzero()[0]                  # (see present_entries)
    special: list[tuple[int, int]] = []              # (row, column) of special tables
    for s, end in _special(parent):
        for slot in range(s >> PMD_SHIFT, ((end - 1) >> PMD_SHIFT) + 1):
            if slot >> 9 in slots:
                rc = (slots.index(slot >> 9), slot & 511)
                if e[rc[0] * 512 + rc[1]] and rc not in special:
                    special.append(rc)
    if special:
        f = np.setdiff1d(f, [r * 512 + c for r, c in special], assume_unique=True)
    n = len(f)
    if n:
        new = fr.alloc_tables(n, zero=False)           # copy_pte_tables fills them
        copy_pte_tables(k, pfns(e[f]), new, child)
        e[f] = (new.view(np.uint64) << _SHIFT) | _UPPER
        k.pt_owner[new] = child.id
        child.nr_tables += n
        child.nr_ptes += n
    for r, c in special:
        e[r * 512 + c] = 0
    t[dst] = ents
    for r, c in special:
        va = (slots[r] << PUD_SHIFT) + (c << PMD_SHIFT)
        if not child.overlapping(va, va + PMD_SIZE):
            continue                  # only MADV_DONTFORK memory here: no table
        new = _copy_special_table(parent, child,
                                  pte_table_for_write(parent, va, create=False), va)
        t[dst[r], c] = (new << PAGE_SHIFT) | UPPER
        n += 1
    return n


def _copy_hot_page(k, ptable: int, ctable: int, va: int) -> None:
    """Give the child its own copy of the page at ``va``, in its fresh PTE
    table ``ctable`` copied from the parent's private ``ptable``, now: for
    a page both sides write as soon as fork returns (just below the stack
    pointer; the child's TID for CLONE_CHILD_SETTID), waiting only buys
    faults (the first writer copies, the other reuses) for the same end
    state. Only a private page that no third mm maps."""
    q, fr = k.ram.w, k.frames
    i = pte_index(va)
    pte = q[ptable * 512 + i]
    f = entry_pfn(pte)
    rc, mc = fr.refcount_at, fr.mapcount_at
    if not pte & x86.P or rc[f] != 2 or mc[f] != 2 or fr.cached_at[f]:
        return
    try:
        new = fr.alloc(zero=False)
    except OutOfMemory:
        return                        # the write faults will do it
    k.ram.copy_frame(new, f)
    q[ctable * 512 + i] = (new << PAGE_SHIFT) | (pte & 0xFFF & ~x86.A) | x86.RW | x86.D \
        | (pte & x86.NX)
    q[ptable * 512 + i] = pte | x86.RW | x86.D
    rc[f] -= 1
    mc[f] -= 1
    mc[new] += 1
    k.stats["fork_hot_copy"] += 1


def _hot_vma(v) -> bool:
    """Private writable memory fork hands down (not executable: a copy
    would need had_code kept): where fork may copy a page at once."""
    return not (v.shared or v.dontfork) and v.prot & (PROT_WRITE | PROT_EXEC) == PROT_WRITE


def _hot(mm: "MM", va: int) -> int:
    """``va`` if it lies in memory :func:`_hot_vma` accepts; else -1."""
    v = mm.vma_at(va) if va >= 0 else None
    return va if v is not None and _hot_vma(v) else -1


def _private_pte_table(mm: "MM", va: int) -> int:
    """The PTE table covering ``va`` if ``mm`` reaches it through private
    tables only (writable entries all the way), else -1."""
    pmd = lookup_pte(mm, va)[1]          # RW only if RW at every level
    return entry_pfn(pmd) if pmd & x86.P and pmd & x86.RW else -1


def _copy_hot_at(parent: "MM", child: "MM", vas: tuple[int, ...]) -> None:
    """:func:`_copy_hot_page` at each of ``vas`` where both sides reach its
    PTE table through private paths (a shared table is left to the fault
    path). ``pmd_at`` names such a path's PMD table without a walk: after
    a plain fork it always does (the parent never shared, the child is
    new); after a COW fork, for the paths fork built."""
    q = parent.kernel.ram.w
    private = x86.P | x86.RW
    for va in vas:
        if _hot(parent, va) < 0:
            continue
        p, c = parent.pmd_at.get(va >> PUD_SHIFT), child.pmd_at.get(va >> PUD_SHIFT)
        if p is not None and c is not None:
            j = (va >> PMD_SHIFT) & 511
            pe, ce = q[p * 512 + j], q[c * 512 + j]
            if pe & ce & private == private:
                _copy_hot_page(parent.kernel, entry_pfn(pe), entry_pfn(ce), va)
            continue
        ptable, ctable = _private_pte_table(parent, va), _private_pte_table(child, va)
        if ptable >= 0 and ctable >= 0:
            _copy_hot_page(parent.kernel, ptable, ctable, va)


def copy_page_range(parent: "MM", child: "MM", share: bool,
                    stack: int = -1, settid: int = -1) -> tuple[int, int]:
    """Duplicate ``parent``'s user page tables into ``child`` (fork).
    Returns (tables shared, PTE tables copied).

    With ``share``, the PTE table holding ``stack`` (the forking thread's
    stack pointer) is copied, not shared: both sides write it at once (the
    return from fork pushes and pops there), so sharing it would only buy,
    in each process, a break of every table on the way down to it. In
    both modes the page just below ``stack``, and the one at ``settid``
    (where fork writes the child's TID), are copied for the child at once
    (``_copy_hot_page``)."""
    k = parent.kernel
    hot = (stack - 8,)                            # the next push lands there
    if settid >= 0 and settid >> PAGE_SHIFT != (stack - 8) >> PAGE_SHIFT:
        hot += (settid,)
    if share:         # later forks of either side share too; find_sharer looks here
        parent.flags |= MMF_COW_PGTABLE
        child.flags |= MMF_COW_PGTABLE
        parent.pmd_at.clear()         # its paths are about to be shared
        counts = _share_tables(parent, child, parent.pgd, child.pgd, PGDIR_SHIFT, 0,
                               *_special_and_hot(parent, stack - 8))
        hot = hot[1:]                             # _share_tables copied that one
    else:
        counts = 0, _copy_tables(parent, child)
    _copy_hot_at(parent, child, hot)
    k.cpu.flush_tlb()                 # the parent's entries were downgraded
    return counts
