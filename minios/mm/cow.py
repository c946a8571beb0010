"""Copy-on-write page tables (the RFC, finished: sharing at every level
below the PGD, as its TODO list asked): what sharing a table means, and
how a share is broken.

A table is shared by a COW fork (``minios.mm.fork``): the entries pointing
at it, in each sharer, lose RW and gain ``TABLE_COW``, so the CPU traps
every write below them, and its share count (its frame refcount) counts
those entries. A write below a shared table breaks the shares on its way
down, one level at a time (``break_cow``, called only from the choke point
``minios.mm.pte.table_for_write``): a table whose share count is 1 is
reused; otherwise it is copied and the entries of both copies are
write-protected, so what lies below becomes shared one level further down
(a PTE table's pages become COW pages). :func:`break_kind` is that rule,
for the break and for ``minios.mm.fault.plan_write``, which predicts a
write without making it.

Ownership: ``kernel.pt_owner[table]`` is the id of the mm that carries a
table's 4 KiB of VmPTE and, for a PTE table, its pages' RSS, so counters are
never multiplied by sharing. The owner always reaches the table. When it
stops reaching it (breaks away, unmaps, exits), what it owned there moves
to an mm that still does. Sharing happens only at equal addresses (fork
shares a table where it is, mremap breaks before moving), so finding such
an mm is one walk per COW mm (``find_sharer``).

Lent rows: the PMD table fork builds for the child on the path to the
stack holds, beside the stack's PTE table, every other PTE table of that
GiB (with a large mapping, hundreds), shared. Their share counts are not
raised at fork: the child's entries are *lent* (``k.uncounted``: table ->
(va >> 30, mask of such entries)), and are counted only when something
is about to read or lower the count of a PTE table in that GiB
(``settle``: the choke point, a PTE-table break, a release of PTE
tables). A child that exits or execs before that (fork + exec, fork +
exit) frees its table and forgets the mask: its entries never held a
count. Until then a lent table's count is one short of its entries,
which is safe because every path that acts on the count settles first,
and the parent's entries are write-protected like any shared one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emu import x86
from emu.ram import PAGE_SHIFT
from minios.mm.frames import ONE, TABLE
from minios.mm.mm_types import MMF_COW_PGTABLE
from minios.mm.pgtable import (ADDR, LEVEL_NAME, PUD_SHIFT, TABLE_COW, UPPER, entry_pfn, pfns,
                               present_entries, walk_entry)

if TYPE_CHECKING:
    from minios.mm.fault import VmFault
    from minios.mm.mm_types import MM

# 0-d arrays, not numpy scalars: a ufunc takes them for less (see frames.ONE).
_P = np.array(x86.P, dtype=np.uint64)
_NOT_RW = np.array(~x86.RW & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64)
_SHIFT = np.array(PAGE_SHIFT, dtype=np.uint64)
_COW = np.array(TABLE_COW, dtype=np.uint64)

FEW = 8           # tables in a level below which plain ints beat numpy calls
FEW_PAGES = 16    # present entries of one table below which plain ints beat numpy calls

REUSE, COPY = "reuse", "copy"


def break_kind(sharers: int) -> str:
    """The copy-or-reuse rule of a table break: the last sharer takes the
    table back (REUSE); with others left it gets a copy (COPY), and every
    table below is then shared once more (below a PTE table: each page
    gains a reference and its entries lose RW in both copies)."""
    return REUSE if sharers <= 1 else COPY


def find_sharer(k, table: int, shift: int, va: int, exclude: "MM") -> "MM | None":
    """Some mm other than ``exclude`` that reaches ``table`` (of entries of
    ``shift``, mapping ``va``): one walk per COW mm, no scan of tables."""
    q = k.ram.w
    for mm in k.mms:
        if mm is exclude or not mm.flags & MMF_COW_PGTABLE:
            continue
        w = walk_entry(mm, va, shift + 9)
        if w is not None:
            e = q[w[0]]
            if e & x86.P and entry_pfn(e) == table:
                return mm
    return None


def settle(k, key: int) -> None:
    """Give the lent entries of the GiB ``key`` (va >> 30) their share
    counts (see "Lent rows"), before anything reads or lowers the count of
    a PTE table there. One row's entries name distinct tables, so a
    fancy-index increment is exact."""
    rc, t = k.frames.refcount, k.ram.t
    for table, (gib, mask) in list(k.uncounted.items()):
        if gib == key:
            rc[pfns(t[table][mask])] += 1
            del k.uncounted[table]
            k.stats["lent_rows_settled"] += 1


def share_count(k, table: int) -> int:
    """How many entries point at ``table``: its share count plus the lent
    entries naming it (for the debugger and ptdump)."""
    n = int(k.frames.refcount_at[table])
    for row, (_, mask) in k.uncounted.items():
        n += int(np.count_nonzero(pfns(k.ram.t[row][mask]) == table))
    return n


def move_tables(k, tables, shift: int, old: "MM", new: "MM", present: int | None = None) -> None:
    """Hand ``tables`` (one frame, or an array of them, of entries of
    ``shift``; ``present`` pages in all, counted if not given) and their
    accounting from ``old`` to ``new``."""
    n = 1 if isinstance(tables, int) else len(tables)
    k.pt_owner[tables] = new.id
    old.nr_tables -= n
    new.nr_tables += n
    if shift == PAGE_SHIFT:
        if present is None:
            present = int(np.count_nonzero(k.ram.t[tables] & _P))
        old.nr_ptes -= n
        new.nr_ptes += n
        old.rss -= present
        new.rss += present


def heir(k, table: int, shift: int, va: int, old: "MM") -> "MM":
    """The mm that takes over what ``old`` owned in the shared ``table``."""
    m = find_sharer(k, table, shift, va, old)
    if m is None:                       # cannot happen while the table is shared
        raise AssertionError(f"shared {LEVEL_NAME[shift]} table {table} has no sharer left")
    return m


def break_cow(mm: "MM", i: int, shift: int, va: int, vmf: "VmFault | None" = None) -> int:
    """Give ``mm`` a private table (of entries of ``shift``) in place of the
    shared one under its entry ``ram.q[i]``; returns its frame, and records
    the break in ``vmf`` (a fault's) if given. OutOfMemory leaves everything
    unchanged."""
    k = mm.kernel
    if shift == PAGE_SHIFT and k.uncounted:       # the count decides below
        settle(k, va >> PUD_SHIFT)
    q, fr = k.ram.w, k.frames
    table = entry_pfn(q[i])
    name = LEVEL_NAME[shift]
    owner = k.pt_owner_at[table]
    sharers = fr.refcount_at[table]
    if break_kind(sharers) is REUSE:
        # Last user: take the table back. Entries other sharers copied were
        # write-protected then, so what lies below stays COW one level down.
        if owner != mm.id:
            move_tables(k, table, shift, k.mm_ids[owner], mm)
        q[i] = (table << PAGE_SHIFT) | UPPER
        k.stats[_REUSE_STAT[shift]] += 1
        if vmf is not None:
            vmf.broke(name, REUSE, sharers)
        return table
    new = fr.alloc(TABLE)                      # may raise: nothing changed yet
    present = None
    if shift == PAGE_SHIFT:
        present = copy_pte_tables(k, table, new, mm)
        mm.nr_ptes += 1
    else:                                      # what lies below: shared once more
        share_row(k, table, new, 512, [])
    k.pt_owner_at[new] = mm.id
    mm.nr_tables += 1
    q[i] = (new << PAGE_SHIFT) | UPPER
    fr.refcount_at[table] -= 1
    if owner == mm.id:
        move_tables(k, table, shift, mm, heir(k, table, shift, va, mm), present)
    # No TLB flush: no translation changed. Every mm reaching the old table
    # reached it through a COW entry, so its pages were already read-only
    # for all of them, and they stay so; mm's path now goes through a copy
    # holding the same entries. (The CPU caches translations, not tables.)
    k.stats[_COPY_STAT[shift]] += 1
    if vmf is not None:
        vmf.broke(name, COPY, sharers)
    return new


_REUSE_STAT = {s: f"cow_{n.lower()}_reuse" for s, n in LEVEL_NAME.items()}
_COPY_STAT = {s: f"cow_{n.lower()}_copy" for s, n in LEVEL_NAME.items()}


def copy_pte_tables(k, tables, new, mm: "MM") -> int:
    """Copy the PTE tables ``tables`` of private memory (one frame, or an
    array of them) into ``new`` (of ``mm``): their pages become COW,
    write-protected in both, one more reference and mapping each (an mm
    maps a private page once, so a fancy-index increment is exact).
    Returns how many pages they map. One table with few pages (fork's
    stack table, most breaks) goes entry by entry: fewer calls than the
    bulk path; ``new`` is zeroed then."""
    t, fr = k.ram.t, k.frames
    if type(tables) is int:
        live = t[tables].astype(bool).nonzero()[0]       # (see present_entries)
        if len(live) <= FEW_PAGES:
            w, rc, mc = k.ram.w, fr.refcount_at, fr.mapcount_at
            p, c = tables * 512, new * 512
            for j in live.tolist():
                e = w[p + j] & ~x86.RW
                w[p + j] = w[c + j] = e
                f = (e & ADDR) >> PAGE_SHIFT
                rc[f] += 1
                mc[f] += 1
            mm.rss += len(live)
            return len(live)
    block = t[tables] & _NOT_RW               # an absent entry is 0: no mask needed
    t[tables] = block
    t[new] = block
    frames = present_entries(block)[0]
    fr.refcount[frames] += 1
    fr.mapcount[frames] += 1
    mm.rss += len(frames)
    return len(frames)


def share_row(k, ptab: int, ctab: int, n: int, marks: list[tuple[int, int]],
               lend: int = -1) -> tuple[int, list[int]]:
    """Share the tables under the first ``n`` entries of ``ptab`` with the
    fresh table ``ctab``: one more reference each, and the entries in both
    lose RW and gain COW. Entries in the ``marks`` ranges [lo, hi] are left
    alone (and 0 in ``ctab``). Returns (how many shared, the present marked
    entries). A full table costs a handful of numpy calls, no mask gather.
    ``lend`` (the GiB of a PMD table, va >> 30): many entries are lent
    instead of counted (see "Lent rows")."""
    t, w = k.ram.t, k.ram.w
    p, c = ptab * 512, ctab * 512
    row = t[ptab, :n]
    nz = row.astype(bool)                    # (see present_entries)
    live = nz.nonzero()[0]
    if len(live) <= FEW_PAGES:              # upper levels: a few entries, plain ints
        down = []
        rc = k.frames.refcount_at
        for j in live.tolist():
            for lo, hi in marks:
                if lo <= j <= hi:
                    down.append(j)
                    break
            else:
                e = (w[p + j] & ~x86.RW) | TABLE_COW
                w[p + j] = w[c + j] = e
                rc[(e & ADDR) >> PAGE_SHIFT] += 1
        return len(live) - len(down), down
    kept = []
    for lo, hi in marks:
        kept += [j for j in range(lo, hi + 1) if w[p + j]]
    if len(marks) > 1:                       # ranges may overlap
        kept = list(dict.fromkeys(kept))
    saved = [w[p + j] for j in kept]
    # Share every present entry, then put the marked ones back. An upper
    # entry holds no bit above its address: a shift gives the frame; an
    # absent one gives frame 0 (reserved), whose count is put back too.
    rc = k.frames.refcount_at
    if lend < 0:
        rc0 = rc[0]
        np.add.at(k.frames.refcount, (row >> _SHIFT).view(np.int64), ONE)
        rc[0] = rc0
    np.bitwise_or(row & _NOT_RW, _COW, out=row, where=nz)
    t[ctab, :n] = row
    for j, e in zip(kept, saved):   # the parent's as they were, none in ctab
        w[p + j], w[c + j] = e, 0
        if lend < 0:
            rc[(e & ADDR) >> PAGE_SHIFT] -= 1
    if lend >= 0:
        for j in kept:            # (a fancy index converts the list first)
            nz[j] = False
        k.uncounted[ctab] = (lend, nz)
        k.stats["fork_lent_rows"] += 1
    return len(live) - len(kept), kept


