"""Fork's page-table copy, and copy-on-write page tables (the RFC, finished:
sharing at every level below the PGD, as its TODO list asked).

``copy_page_range`` duplicates an address space without one Python step
per page:

* COW (``share=True``): the child's PGD entries point at the parent's PUD
  tables, each table's share count (its frame refcount) goes up, and both
  entries lose RW and gain ``TABLE_COW``, so the CPU traps every write below
  them. A fork costs one PGD, whatever the size. Only the few paths down to
  MAP_SHARED or MADV_DONTFORK memory, and to the forking thread's stack,
  are built for the child, down to those PTE tables, which are copied as a
  plain fork copies them.
* Plain fork: every PTE table is copied (as whole 4 KiB rows), private
  entries are write-protected on both sides, and page refcounts go up.

A write below a shared table breaks the shares on its way down, one level at
a time (``break_cow``, called only from ``pgtable._table_for_write``): a
table whose share count is 1 is reused; otherwise it is copied and the
entries of both copies are write-protected, so what lies below becomes
shared one level further down (a PTE table's pages become COW pages).

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
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.mm.frames import ONE, TABLE, OutOfMemory
from minios.mm.mm_types import MMF_COW_PGTABLE, PROT_EXEC, PROT_WRITE
from minios.mm.pgtable import (ADDR, LEVEL_NAME, PGDIR_SHIFT, PMD_SHIFT, PMD_SIZE, PUD_SHIFT,
                            TABLE_COW, UPPER, _table_for_write, alloc_table, entry_pfn,
                            lookup_pte, pfns, pmd_entry_for_write, present_entries,
                            pte_index, pte_table_for_write, walk_entry)

if TYPE_CHECKING:
    from minios.mm.mm_types import MM

# 0-d arrays, not numpy scalars: a ufunc takes them for less (see frames.ONE).
_P = np.array(x86.P, dtype=np.uint64)
_NOT_RW = np.array(~x86.RW & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64)
_SHIFT = np.array(PAGE_SHIFT, dtype=np.uint64)
_COW = np.array(TABLE_COW, dtype=np.uint64)
_UPPER = np.array(UPPER, dtype=np.uint64)


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


def _forget(k, tables) -> None:
    """``tables`` (PMD tables) are being freed: their lent entries held no
    count, so they are cleared instead of released."""
    for tab in tables if isinstance(tables, list) else tables.tolist():
        lent = k.uncounted.pop(tab, None)
        if lent is not None:
            k.ram.t[tab][lent[1]] = 0


def _move(k, tables, shift: int, old: "MM", new: "MM", present: int | None = None) -> None:
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


def _heir(k, table: int, shift: int, va: int, old: "MM") -> "MM":
    heir = find_sharer(k, table, shift, va, old)
    if heir is None:                    # cannot happen while the table is shared
        raise AssertionError(f"shared {LEVEL_NAME[shift]} table {table} has no sharer left")
    return heir


def _orphan(k, tables: np.ndarray, vas: np.ndarray, shift: int, old: "MM") -> None:
    """``old`` no longer reaches the shared ``tables`` (entries of
    ``shift``, mapping from ``vas``): what it owned in and below each goes
    to an mm that still reaches that table (and so all below it)."""
    if shift == PAGE_SHIFT:              # no subtree: look at the owned ones only
        mine = k.pt_owner[tables] == old.id
        for tab, va in zip(tables[mine].tolist(), vas[mine].tolist()):
            _move(k, tab, shift, old, _heir(k, tab, shift, va, old))
        return
    for tab, va in zip(tables.tolist(), vas.tolist()):
        level, s, heir = np.array([tab], dtype=np.int64), shift, None
        while len(level):
            mine = level[k.pt_owner[level] == old.id]
            if len(mine):
                if heir is None:
                    heir = _heir(k, tab, shift, va, old)
                _move(k, mine, s, old, heir)
            if s == PAGE_SHIFT:
                break
            level, s = present_entries(k.ram.t[level])[0], s - 9


def break_cow(mm: "MM", i: int, shift: int, va: int) -> int:
    """Give ``mm`` a private table (of entries of ``shift``) in place of the
    shared one under its entry ``ram.q[i]``; returns its frame. OutOfMemory
    leaves everything unchanged."""
    k = mm.kernel
    if shift == PAGE_SHIFT and k.uncounted:       # the count decides below
        settle(k, va >> PUD_SHIFT)
    q, fr = k.ram.w, k.frames
    table = entry_pfn(q[i])
    name = LEVEL_NAME[shift]
    owner = k.pt_owner_at[table]
    if fr.refcount_at[table] == 1:
        # Last user: take the table back. Entries other sharers copied were
        # write-protected then, so what lies below stays COW one level down.
        if owner != mm.id:
            _move(k, table, shift, k.mm_ids[owner], mm)
        q[i] = (table << PAGE_SHIFT) | UPPER
        k.stats[f"cow_{name.lower()}_reuse"] += 1
        k.trace_fault_note = f"{name} table share broken by reuse"
        return table
    new = fr.alloc(TABLE)                      # may raise: nothing changed yet
    present = None
    if shift == PAGE_SHIFT:
        present = _copy_pte_tables(k, table, new, mm)
        mm.nr_ptes += 1
    else:                                      # what lies below: shared once more
        _share_row(k, table, new, 512, [])
    k.pt_owner_at[new] = mm.id
    mm.nr_tables += 1
    q[i] = (new << PAGE_SHIFT) | UPPER
    fr.refcount_at[table] -= 1
    if owner == mm.id:
        _move(k, table, shift, mm, _heir(k, table, shift, va, mm), present)
    # No TLB flush: no translation changed. Every mm reaching the old table
    # reached it through a COW entry, so its pages were already read-only
    # for all of them, and they stay so; mm's path now goes through a copy
    # holding the same entries. (The CPU caches translations, not tables.)
    k.stats[f"cow_{name.lower()}_copy"] += 1
    k.trace_fault_note = f"{name} table share broken by copy"
    return new


def _copy_pte_tables(k, tables, new, mm: "MM") -> int:
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
        if len(live) <= _FEW_PAGES:
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


_FEW = 8          # tables in a level below which plain ints beat numpy calls
_FEW_PAGES = 16   # present entries of one table below which plain ints beat numpy calls


def release_tables(mm: "MM", tables, vas, shift: int, whole: bool = False,
                   dead: list[int] | None = None) -> None:
    """``mm`` stops using ``tables`` (of entries of ``shift``, each mapping
    from the address in ``vas``), whose entries were cleared already: a
    shared table loses one reference and what ``mm`` owned below it moves
    to a remaining sharer; a private one is freed with everything below it
    and its pages released. A few numpy calls per level, whatever the size:
    exit is as hot as fork. A level of at most ``_FEW`` tables goes table by
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
        few = len(tables) <= _FEW
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
            if sum(map(len, present)) > _FEW_PAGES:    # e.g. a COW child's stack PMD table
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


def _share_row(k, ptab: int, ctab: int, n: int, marks: list[tuple[int, int]],
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
    if len(live) <= _FEW_PAGES:              # upper levels: a few entries, plain ints
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
    shared, down = _share_row(k, ptab, ctab, n, marks,
                              base >> PUD_SHIFT if shift == PMD_SHIFT else -1)
    copied = 0
    hot_j = (hot - base) >> shift if hot >= 0 else -1
    for j in down:
        va = base + (j << shift)
        if j != hot_j and not child.overlapping(va, va + (1 << shift)):
            continue                  # only MADV_DONTFORK memory here: no table
        # The parent's side goes through the choke point, which breaks the
        # table first if it is COW-shared: its entries get write-protected.
        psub = _table_for_write(parent, ptab * 512 + j, shift - 9, va, False)
        if shift == PMD_SHIFT:
            if any(s < va + PMD_SIZE and e > va for s, e in special):
                new = _copy_special_table(parent, child, psub, va)
            else:                     # only the stack: private memory
                new = alloc_table(child, PAGE_SHIFT)
                _copy_pte_tables(k, psub, new, child)
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
        new = fr.alloc_tables(n, zero=False)           # _copy_pte_tables fills them
        _copy_pte_tables(k, pfns(e[f]), new, child)
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
