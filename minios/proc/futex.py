"""Futexes: wait queues keyed by the futex word's address. Private futexes
are keyed by (mm, virtual address); shared ones by physical address, so
MAP_SHARED memory works across processes."""
from __future__ import annotations

from minios.mm.pgtable import lookup_pte, entry_pfn


def key(mm, addr: int, private: bool):
    if private:
        return (id(mm), addr)
    pte, _ = lookup_pte(mm, addr)
    if pte & 1:
        return ("phys", (entry_pfn(pte) << 12) | (addr & 0xFFF))
    return (id(mm), addr)


def wake(k, mm, addr: int, n: int, private: bool = False, bitset: int = 0xFFFFFFFF) -> int:
    woken = 0
    for kk in {key(mm, addr, True), key(mm, addr, private)}:
        q = k.futexes.get(kk)
        while q and woken < n:
            t, bits = q.pop(0)
            if not bits & bitset:
                continue
            t.futex_woken = True
            k.wake(t)
            woken += 1
        if q is not None and not q:
            k.futexes.pop(kk, None)
    return woken
