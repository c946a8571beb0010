"""The invariant checker: recompute every counter from the page tables
themselves and compare with what the kernel keeps incrementally.

Checked, for the whole machine:
* each data frame's refcount = PTE tables mapping it + MAP_SHARED objects
  holding it; its mapcount = PTE tables mapping it;
* each table frame's refcount = entries pointing at it (its share count),
  but for lent entries (``k.uncounted``), which are COW, name a PTE table
  that some counted entry holds, and lie in a PMD table at their GiB;
  its owner is an mm that reaches it; a PGD is owned by its mm;
* each mm's RSS, page-table and PTE-table counts = what the tables it owns
  hold; ``mm.pmd_at`` names only PMD tables the mm reaches privately, and
  all of them for an mm that never shared (plain fork copies that list);
* frame kinds agree with use, the free count with the FREE frames;
* safety: a table with two entries pointing at it is marked COW and
  write-protected in both; a table reached by two mms is writable through
  neither; no user PTE is effectively writable onto a private page that
  another table also maps; a table is shared only at one address; every
  present PTE lies in a VMA and every PTE table under one; an absent PTE
  is 0.
Raises :class:`InvariantError` naming the first mismatch.
"""
from __future__ import annotations

import numpy as np

from emu import x86
from minios.mm.frames import DATA, FREE, TABLE
from minios.mm.mm_types import MMF_COW_PGTABLE
from minios.mm.pgtable import LEVEL_NAME, TABLE_COW, entry_pfn, lookup_pte, pfns, walk_entry

_P, _RW = np.uint64(x86.P), np.uint64(x86.RW)


class InvariantError(AssertionError):
    pass


def _walk_tables(k):
    """Every table below a PGD: {table: (shift of its entries, [(mm reaching
    it, base address, writable all the way, index of the entry pointing at
    it, that entry)])}, the number of distinct counted entries pointing at
    each frame, and of all entries (lent ones too)."""
    ram = k.ram
    refs = np.zeros(k.frames.nframes, dtype=np.int64)
    every = np.zeros(k.frames.nframes, dtype=np.int64)
    lent = {row * 512 + j for row, (_, mask) in k.uncounted.items()
            for j in np.flatnonzero(mask).tolist()}
    seen: set[int] = set()
    reach: dict[int, tuple[int, list]] = {}

    def visit(mm, table: int, shift: int, base: int, rw: bool) -> None:
        ents = ram.t[table][:256] if table == mm.pgd else ram.t[table]
        live = ents & _P
        if (ents[live == 0] != 0).any():     # fork finds entries by nonzero
            raise InvariantError(f"{LEVEL_NAME.get(shift, 'PGD')} table {table} holds a non-zero "
                                 "absent entry")
        for j in np.flatnonzero(live).tolist():
            slot = table * 512 + j
            e = int(ram.q[slot])
            sub, b, w = entry_pfn(e), base | (j << shift), rw and bool(e & x86.RW)
            if slot not in seen:
                seen.add(slot)
                every[sub] += 1
                if slot not in lent:
                    refs[sub] += 1
            got = reach.setdefault(sub, (shift - 9, []))
            got[1].append((mm, b, w, slot, e))
            if shift - 9 > 12:
                visit(mm, sub, shift - 9, b, w)

    for mm in k.mms:
        visit(mm, mm.pgd, 39, 0, True)
    return reach, refs, every


def _check_lent(k, reach, table_refs) -> None:
    """Lent rows: in a PMD table reached at their GiB, present, COW, each
    naming a PTE table that a counted entry keeps alive."""
    for row, (gib, mask) in k.uncounted.items():
        where = reach.get(row)
        if where is None or where[0] != 21 or any(u[1] >> 30 != gib for u in where[1]):
            raise InvariantError(f"lent row {row} is not a PMD table reached at {gib << 30:#x}")
        ents = k.ram.t[row][mask]
        if ((ents & _P) == 0).any() or (ents & _RW).any() or not (ents & np.uint64(TABLE_COW)).all():
            raise InvariantError(f"PMD table {row}: a lent entry is absent, writable or not COW")
        tables = pfns(ents)
        orphans = tables[table_refs[tables] < 1]
        if len(orphans):
            raise InvariantError(f"PTE table {int(orphans[0])} is held only by "
                                 f"lent entries (of PMD table {row})")


def check_invariants(k) -> None:
    ram, fr = k.ram, k.frames
    n = fr._next                 # frames above the high-water mark were never used
    reach, table_refs, every_ref = _walk_tables(k)
    _check_lent(k, reach, table_refs)
    expect = {id(mm): [1, 0, 0] for mm in k.mms}      # tables (the pgd), PTE tables, rss
    all_frames: list = [np.zeros(0, dtype=np.int64)]
    for mm in k.mms:
        if k.pt_owner[mm.pgd] != mm.id:
            raise InvariantError(f"mm {id(mm):x}: its PGD {mm.pgd} is owned by "
                                 f"{k.pt_owner[mm.pgd]}, not {mm.id}")
    for table, (shift, users) in reach.items():
        name = LEVEL_NAME[shift]
        owner = k.mm_ids.get(int(k.pt_owner[table]))
        if owner is None or all(u[0] is not owner for u in users):
            raise InvariantError(f"{name} table {table}: owner {k.pt_owner[table]} does not "
                                 f"reach it (reached by {sorted(u[0].id for u in users)})")
        if len({u[1] for u in users}) > 1:      # find_sharer relies on this
            raise InvariantError(f"{name} table {table} is shared at different addresses "
                                 f"{sorted(hex(u[1]) for u in users)}")
        if every_ref[table] > 1:
            for u in users:
                if u[4] & x86.RW or not u[4] & TABLE_COW:
                    raise InvariantError(f"{name} table {table} is shared by "
                                         f"{every_ref[table]} entries but the one at "
                                         f"{u[3] * 8:#x} is writable / not marked COW")
        if len(users) > 1 and any(u[2] for u in users):
            raise InvariantError(f"{name} table {table} is reached by {len(users)} mms but "
                                 "writable through one of them")
        counts = expect[id(owner)]
        counts[0] += 1
        if shift != 12:
            continue
        ents = ram.t[table]
        present = (ents & _P) != 0
        if (ents[~present] != 0).any():          # bulk copies rely on this
            raise InvariantError(f"PTE table {table} holds a non-zero absent entry")
        frames = pfns(ents[present])
        all_frames.append(frames)
        counts[1] += 1
        counts[2] += len(frames)
        _check_vmas(k, table, users, ents)
        _check_cow_pages(k, table, users, ents)
    data_refs = np.bincount(np.concatenate(all_frames), minlength=n)[:n]
    mapcount = data_refs.copy()
    seen_shm = set()
    for mm in k.mms:
        for v in mm.vmas:
            if v.shm is not None and id(v.shm) not in seen_shm:
                seen_shm.add(id(v.shm))
                for f in v.shm.frames.values():
                    data_refs[f] += 1
    # Counters per frame.
    kinds = fr.kind[:n]
    table_refs = table_refs[:n]
    bad = np.flatnonzero((kinds == DATA) & ((fr.refcount[:n] != data_refs) | (fr.mapcount[:n] != mapcount)))
    if len(bad):
        f = int(bad[0])
        raise InvariantError(f"data frame {f}: refcount {fr.refcount[f]} (expected {data_refs[f]}),"
                             f" mapcount {fr.mapcount[f]} (expected {mapcount[f]})")
    bad = np.flatnonzero((kinds == TABLE) & (fr.refcount[:n] != np.maximum(table_refs, 1)))
    if len(bad):
        f = int(bad[0])
        raise InvariantError(f"table frame {f}: refcount {fr.refcount[f]}, "
                             f"{table_refs[f]} entries point at it")
    stray = np.flatnonzero((kinds != DATA) & (kinds != TABLE) & ((data_refs > 0) | (table_refs > 0)))
    if len(stray):
        raise InvariantError(f"frame {int(stray[0])} is mapped but its kind is {kinds[stray[0]]}")
    leaked = np.flatnonzero((kinds == DATA) & (data_refs == 0))
    if len(leaked):
        raise InvariantError(f"data frame {int(leaked[0])} is allocated but nothing maps it")
    nfree = int(np.count_nonzero(kinds == FREE)) + fr.nframes - n
    if nfree != fr.nr_free:
        raise InvariantError(f"free frames: counter {fr.nr_free}, actually {nfree}")
    ntab = int(np.count_nonzero(kinds == TABLE))
    if ntab != fr.nr_tables:
        raise InvariantError(f"table frames: counter {fr.nr_tables}, actually {ntab}")
    # Counters per mm.
    for mm in k.mms:
        tables, ptes, rss = expect[id(mm)]
        if mm.rss != rss:
            raise InvariantError(f"mm {id(mm):x} (exe {mm.exe}): rss {mm.rss}, "
                                 f"tables it owns map {rss}")
        if mm.nr_tables != tables or mm.nr_ptes != ptes:
            raise InvariantError(f"mm {id(mm):x}: nr_tables {mm.nr_tables}/{tables}, "
                                 f"nr_ptes {mm.nr_ptes}/{ptes}")
        if not mm.flags & MMF_COW_PGTABLE:     # plain fork copies what it lists
            got = sorted(mm.pmd_at.values())
            want = sorted(t for t, (sh, us) in reach.items() if sh == 21
                          and any(u[0] is mm for u in us))
            if got != want:
                raise InvariantError(f"mm {id(mm):x} never shared but pmd_at lists PMD tables "
                                     f"{got}, it has {want}")
        for key, pmd in mm.pmd_at.items():
            w = walk_entry(mm, key << 30, 30)
            e = int(ram.q[w[0]]) if w is not None else 0
            if w is None or not w[1] & x86.RW or w[1] & TABLE_COW or e & TABLE_COW \
                    or not e & x86.RW or entry_pfn(e) != pmd:
                raise InvariantError(f"mm {id(mm):x}: pmd_at caches PMD table {pmd} at "
                                     f"{key << 30:#x}, not a private path to it")
    # The kernel's user-access TLB (uaccess._phys): every live entry must
    # still be what the tables say, or a read or write would hit a stale frame.
    for mm in k.mms:
        if mm.utlb_gen != k.cpu.tlb_gen:
            continue
        for key, base in mm.utlb.items():
            va, write = (key >> 1) << 12, key & 1
            pte, pmd = lookup_pte(mm, va)
            ok = pte & x86.P and pte & x86.US and (not write or (pte & x86.RW and pmd & x86.RW))
            if not ok or entry_pfn(pte) != base >> 12:
                raise InvariantError(f"mm {id(mm):x}: kernel TLB maps {va:#x} "
                                     f"({'write' if write else 'read'}) to frame {base >> 12}, "
                                     f"the tables say {pte:#x}")


def _check_cow_pages(k, pt: int, users, ents) -> None:
    """An effectively writable private PTE must be the only mapping."""
    fr = k.frames
    w = np.flatnonzero(((ents & _P) != 0) & ((ents & _RW) != 0))
    if not len(w):
        return
    multi = w[fr.refcount[pfns(ents[w])] > 1]
    for mm, base, writable, _, _ in users:
        if not writable:
            continue
        for idx in multi.tolist():
            va = base + idx * 4096
            v = mm.vma_at(va)
            if v is not None and not v.shared:
                f = int(pfns(ents[idx]))
                raise InvariantError(f"va {va:#x} in mm {id(mm):x} is writable onto frame "
                                     f"{f} that {fr.refcount[f]} tables map")


def _check_vmas(k, pt: int, users, ents) -> None:
    for mm, base, *_ in users:          # copy_page_range relies on this
        if not mm.overlapping(base, base + (1 << 21)):
            raise InvariantError(f"mm {id(mm):x}: PTE table {pt} at {base:#x} lies under "
                                 "no VMA")
    present = np.flatnonzero(ents & _P)
    if not len(present):
        return
    for mm, base, *_ in users:
        if not mm.vmas:
            raise InvariantError(f"mm {id(mm):x} maps pages but has no VMA")
        starts, ends = _bounds(mm)
        vas = base + present.astype(np.int64) * 4096
        i = np.searchsorted(starts, vas, side="right") - 1
        ok = (i >= 0) & (vas < ends[np.maximum(i, 0)])
        if not ok.all():
            va = int(vas[np.flatnonzero(~ok)[0]])
            raise InvariantError(f"mm {id(mm):x}: page at {va:#x} is mapped outside every VMA")


def _bounds(mm):
    key = tuple((v.start, v.end) for v in mm.vmas)
    cached = getattr(mm, "_check_bounds", None)
    if cached is None or cached[0] != key:
        cached = (key, np.array([s for s, _ in key], dtype=np.int64),
                  np.array([e for _, e in key], dtype=np.int64))
        mm._check_bounds = cached
    return cached[1], cached[2]
