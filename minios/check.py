"""The invariant checker: recompute every counter from the page tables
themselves and compare with what the kernel keeps incrementally.

Checked, for the whole machine:
* each data frame's refcount = PTE tables mapping it + MAP_SHARED objects
  holding it; its mapcount = PTE tables mapping it;
* each table frame's refcount = upper-level entries pointing at it (the share
  count of a COW-shared PTE table), and its owner is one of those entries;
* each mm's RSS and page-table count = what the tables it owns hold;
* frame kinds agree with use, the free count with the FREE frames;
* safety: no user PTE is effectively writable (PTE and PMD both RW) onto a
  private page that another table also maps; a table shared by two PMD
  entries is write-protected in both; every present PTE lies in a VMA;
  every PTE table lies under a VMA and is shared only at one address.
Raises :class:`InvariantError` naming the first mismatch.
"""
from __future__ import annotations

import numpy as np

from emu import x86
from minios.frames import DATA, FREE, TABLE
from minios.pgtable import _PMD_COW, entry_pfn, lookup_pte

_P, _RW, _US = np.uint64(x86.P), np.uint64(x86.RW), np.uint64(x86.US)
_ADDR, _SH = np.uint64(x86.ADDR_MASK), np.uint64(12)


class InvariantError(AssertionError):
    pass


def _pfn(e):
    return ((e & _ADDR) >> _SH).astype(np.int64)


def check_invariants(k) -> None:
    ram, fr = k.ram, k.frames
    n = fr._next                 # frames above the high-water mark were never used
    table_refs = np.zeros(fr.nframes, dtype=np.int64)
    pte_tables: dict[int, list] = {}        # table -> [(mm, pmd slot addr, pmd entry)]
    owned_tables = {}
    for mm in k.mms:
        count = 1                            # the pgd
        for i in range(256):
            e = int(ram.q[mm.pgd * 512 + i])
            if not e & x86.P:
                continue
            pud = e >> 12 & 0xFFFFFFFFFF
            table_refs[pud] += 1
            count += 1
            for j in np.flatnonzero(ram.t[pud] & _P).tolist():
                pmd = int(ram.q[pud * 512 + j]) >> 12 & 0xFFFFFFFFFF
                table_refs[pmd] += 1
                count += 1
                if k.pmd_mm.get(pmd) is not mm or mm.pmd_tables.get(pmd) != (i << 39) | (j << 30) \
                        or mm.pmd_at.get((i << 9) | j) != pmd:
                    raise InvariantError(f"PMD table {pmd} of mm {id(mm):x} not registered"
                                         " at the address it maps")
                for s in np.flatnonzero(ram.t[pmd] & _P).tolist():
                    pe = int(ram.q[pmd * 512 + s])
                    pt = pe >> 12 & 0xFFFFFFFFFF
                    table_refs[pt] += 1
                    base = (i << 39) | (j << 30) | (s << 21)
                    pte_tables.setdefault(pt, []).append((mm, pmd * 4096 + s * 8, pe, base))
        owned_tables[id(mm)] = count
        if len(mm.pmd_at) != len(mm.pmd_tables):
            raise InvariantError(f"mm {id(mm):x}: stale PMD table records")
    expect_rss = {id(mm): 0 for mm in k.mms}
    expect_ptes = {id(mm): 0 for mm in k.mms}
    all_frames: list = [np.zeros(0, dtype=np.int64)]
    for pt, users in pte_tables.items():
        owner = int(k.pt_owner[pt])
        slots = [u[1] for u in users]
        if owner not in slots:
            raise InvariantError(f"PTE table {pt}: owner {owner:#x} is not among the PMD "
                                 f"entries using it {[hex(x) for x in slots]}")
        if len({u[3] for u in users}) > 1:      # find_sharer relies on this
            raise InvariantError(f"PTE table {pt} is shared at different addresses "
                                 f"{sorted(hex(u[3]) for u in users)}")
        if len(users) > 1:
            for mm, slot, pe, _ in users:
                if pe & x86.RW or not pe & _PMD_COW:
                    raise InvariantError(f"PTE table {pt} shared by {len(users)} but PMD entry "
                                         f"{slot:#x} is writable / not marked COW")
        ents = ram.t[pt]
        live = ents[(ents & _P) != 0]
        frames = _pfn(live)
        all_frames.append(frames)
        owner_mm = k.pmd_mm[owner >> 12]
        expect_rss[id(owner_mm)] += len(frames)
        expect_ptes[id(owner_mm)] += 1
        _check_vmas(k, pt, users, ents)
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
        want_tables = owned_tables[id(mm)] + expect_ptes[id(mm)]
        if mm.rss != expect_rss[id(mm)]:
            raise InvariantError(f"mm {id(mm):x} (exe {mm.exe}): rss {mm.rss}, "
                                 f"tables it owns map {expect_rss[id(mm)]}")
        if mm.nr_tables != want_tables or mm.nr_ptes != expect_ptes[id(mm)]:
            raise InvariantError(f"mm {id(mm):x}: nr_tables {mm.nr_tables}/{want_tables}, "
                                 f"nr_ptes {mm.nr_ptes}/{expect_ptes[id(mm)]}")
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
    # COW safety: an effectively writable private PTE must be the only mapping.
    for pt, users in pte_tables.items():
        ents = ram.t[pt]
        w = np.flatnonzero(((ents & _P) != 0) & ((ents & _RW) != 0))
        if not len(w):
            continue
        multi = w[fr.refcount[_pfn(ents[w])] > 1]
        for mm, slot, pe, base in users:
            if not pe & x86.RW:
                continue
            for idx in multi.tolist():
                va = base + idx * 4096
                v = mm.vma_at(va)
                if v is not None and not v.shared:
                    f = int(_pfn(ents[idx]))
                    raise InvariantError(f"va {va:#x} in mm {id(mm):x} is writable onto frame "
                                         f"{f} that {fr.refcount[f]} tables map")


def _check_vmas(k, pt: int, users, ents) -> None:
    for mm, slot, pe, base in users:          # copy_page_range relies on this
        if not mm.overlapping(base, base + (1 << 21)):
            raise InvariantError(f"mm {id(mm):x}: PTE table {pt} at {base:#x} lies under "
                                 "no VMA")
    present = np.flatnonzero(ents & _P)
    if not len(present):
        return
    for mm, slot, pe, base in users:
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
