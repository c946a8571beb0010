"""The invariant checker (minios/mm/check.py) catches each kind of corruption
it claims to.

Each test builds a small, consistent machine in-process (no guest code: a
Kernel, MMs, VMAs, and user memory written through ``copy_to_user``, as in
test_frames_pgtable.py and test_cow_model.py), checks that the checker
passes, corrupts one thing behind the kernel's back, and asserts the
checker's message. One test per way ``check_invariants`` can fail, in the
order check.py tests them; a test fails if an earlier branch fires instead.

Not tested: ``_check_vmas``'s "maps pages but has no VMA". It cannot fire:
the loop just before it has already required every mm reaching the table
to have a VMA overlapping it.
"""
from __future__ import annotations

import numpy as np
import pytest

from emu import x86
from minios.kernel import Kernel
from minios.mm.check import InvariantError, check_invariants
from minios.mm.frames import FREE
from minios.mm.mm_types import MM, VMA, PROT_READ, PROT_WRITE
from minios.mm.pgtable import TABLE_COW, entry_pfn, lookup_pte, walk_entry
from minios.mm.uaccess import copy_to_user
from minios.mm.fork import dup_mm

from test_cow_model import _lent_pair

PAGE = 4096
BASE = 0x40_0000                       # one PTE table's worth of address space
NPAGES = 8


def _machine(pages: int = NPAGES) -> tuple[Kernel, MM]:
    """One mm, one rw VMA of ``pages`` pages at BASE, every page written."""
    k = Kernel(mem=64 << 20)
    mm = MM(k)
    mm.insert_vma(VMA(BASE, BASE + pages * PAGE, PROT_READ | PROT_WRITE))
    for i in range(pages):
        copy_to_user(mm, BASE + i * PAGE, b"page %d" % i)
    check_invariants(k)
    return k, mm


def _forked(share: bool) -> tuple[Kernel, MM, MM]:
    """``_machine`` and its fork: COW-shared page tables (``share``) or
    copied tables whose pages are shared read-only."""
    k, parent = _machine()
    child = dup_mm(parent, share)
    check_invariants(k)
    return k, parent, child


def _slot(mm: MM, va: int, shift: int) -> int:
    """The RAM word index of the entry mapping ``va`` at level ``shift``
    (39 PGD, 30 PUD, 21 PMD, 12 PTE)."""
    return walk_entry(mm, va, shift)[0]


def _fails(k: Kernel, message: str) -> None:
    with pytest.raises(InvariantError, match=message):
        check_invariants(k)


# ------------------------------------------------------------ the page tables

def test_non_zero_absent_upper_entry():
    """Fork finds entries by nonzero: an absent PGD/PUD/PMD entry must be 0."""
    k, mm = _machine()
    k.ram.w[mm.pgd * 512 + 7] = 0x1000            # a frame number, but no P bit
    _fails(k, rf"PGD table {mm.pgd} holds a non-zero absent entry")


def test_lent_row_not_at_its_gib():
    k, parent, child, pages, lent = _lent_pair()
    row, (gib, mask) = next(iter(k.uncounted.items()))
    k.uncounted[row] = (gib + 1, mask)
    _fails(k, rf"lent row {row} is not a PMD table reached at {(gib + 1) << 30:#x}")


def test_lent_entry_writable():
    k, parent, child, pages, lent = _lent_pair()
    row, (gib, mask) = next(iter(k.uncounted.items()))
    j = int(np.flatnonzero(mask)[0])
    k.ram.w[row * 512 + j] |= x86.RW
    _fails(k, rf"PMD table {row}: a lent entry is absent, writable or not COW")


def test_table_held_only_by_lent_entries():
    """A PTE table whose counted entry is gone while a lent one still names it."""
    k, parent, child, pages, lent = _lent_pair()
    q, pmd = k.ram.w, parent.pmd_at[1]
    j = next(j for j in range(512) if q[pmd * 512 + j] and entry_pfn(q[pmd * 512 + j]) == lent[0])
    q[pmd * 512 + j] = 0
    _fails(k, rf"PTE table {int(lent[0])} is held only by lent entries")


def test_pgd_owned_by_another_mm():
    k, parent, child = _forked(share=True)
    k.pt_owner[child.pgd] = parent.id
    _fails(k, rf"its PGD {child.pgd} is owned by {parent.id}, not {child.id}")


def test_table_owner_does_not_reach_it():
    k, mm = _machine()
    pud = entry_pfn(k.ram.w[_slot(mm, BASE, 39)])
    k.pt_owner[pud] = 999
    _fails(k, rf"PUD table {pud}: owner 999 does not reach it")


def test_table_shared_at_two_addresses():
    """A table may be shared only at one address (find_sharer relies on it)."""
    k, mm = _machine()
    pgd_slot = _slot(mm, BASE, 39)
    k.ram.w[pgd_slot + 1] = k.ram.w[pgd_slot]      # the same PUD table at +512 GiB
    _fails(k, r"PUD table \d+ is shared at different addresses")


def test_shared_table_entry_writable():
    """Two entries naming one table must both be COW and read-only."""
    k, parent, child = _forked(share=True)
    slot = _slot(child, BASE, 39)
    assert k.ram.w[slot] & TABLE_COW and not k.ram.w[slot] & x86.RW
    k.ram.w[slot] |= x86.RW
    pud = entry_pfn(k.ram.w[slot])
    _fails(k, rf"PUD table {pud} is shared by 2 entries but the one at {slot * 8:#x} "
              "is writable / not marked COW")


def test_table_reached_by_two_mms_writable():
    """A table that two mms reach through one entry (a shared upper table;
    here a second MM aliasing the first's PGD) must not be writable through
    either: a write would land in the other mm too."""
    k, mm = _machine()
    alias = MM(k)
    alias.pgd, alias.id = mm.pgd, mm.id
    pud = entry_pfn(k.ram.w[_slot(mm, BASE, 39)])
    _fails(k, rf"PUD table {pud} is reached by 2 mms but writable through one of them")


def test_non_zero_absent_pte():
    """Bulk copies rely on absent PTEs being 0."""
    k, mm = _machine()
    slot = _slot(mm, BASE + NPAGES * PAGE, 12)      # past the written pages
    assert k.ram.w[slot] == 0
    k.ram.w[slot] = x86.RW
    _fails(k, rf"PTE table {slot // 512} holds a non-zero absent entry")


def test_pte_table_under_no_vma():
    k, mm = _machine()
    mm.remove_vma(mm.vmas[0])
    _fails(k, rf"PTE table \d+ at {BASE:#x} lies under no VMA")


def test_page_mapped_outside_every_vma():
    k, mm = _machine()
    mm.vmas[0].end = BASE + 4 * PAGE                 # the VMA shrunk, its pages kept
    _fails(k, rf"page at {BASE + 4 * PAGE:#x} is mapped outside every VMA")


def test_writable_pte_onto_a_page_another_table_maps():
    """After a plain fork both PTE tables map the pages read-only; a writable
    one would let the parent's write reach the child."""
    k, parent, child = _forked(share=False)
    slot = _slot(parent, BASE, 12)
    k.ram.w[slot] |= x86.RW
    frame = entry_pfn(k.ram.w[slot])
    _fails(k, rf"va {BASE:#x} in mm [0-9a-f]+ is writable onto frame {frame} that 2 "
              "tables map")


# ------------------------------------------------------------ frame counters

def test_data_frame_mapcount():
    k, mm = _machine()
    frame = entry_pfn(lookup_pte(mm, BASE)[0])
    k.frames.mapcount[frame] += 1
    _fails(k, rf"data frame {frame}: refcount 1 \(expected 1\), mapcount 2 \(expected 1\)")


def test_table_frame_refcount():
    k, mm = _machine()
    pte_table = _slot(mm, BASE, 12) // 512
    k.frames.refcount[pte_table] += 1
    _fails(k, rf"table frame {pte_table}: refcount 2, 1 entries point at it")


def test_mapped_frame_of_wrong_kind():
    k, mm = _machine()
    frame = entry_pfn(lookup_pte(mm, BASE)[0])
    k.frames.kind[frame] = FREE
    _fails(k, rf"frame {frame} is mapped but its kind is {FREE}")


def test_data_frame_nothing_maps():
    k, mm = _machine()
    frame = k.frames.alloc()
    k.frames.refcount[frame] = 0                  # refcount agrees; nothing maps it
    _fails(k, rf"data frame {frame} is allocated but nothing maps it")


def test_free_frame_counter():
    k, mm = _machine()
    k.frames.nr_free += 1
    _fails(k, rf"free frames: counter {k.frames.nr_free}, actually {k.frames.nr_free - 1}")


def test_table_frame_counter():
    k, mm = _machine()
    k.frames.nr_tables -= 1
    _fails(k, rf"table frames: counter {k.frames.nr_tables}, actually {k.frames.nr_tables + 1}")


# ------------------------------------------------------------ per-mm counters

def test_mm_rss():
    k, mm = _machine()
    mm.rss += 1
    _fails(k, rf"mm [0-9a-f]+ \(exe \): rss {NPAGES + 1}, tables it owns map {NPAGES}")


def test_mm_table_counts():
    k, mm = _machine()
    mm.nr_ptes += 1
    _fails(k, r"nr_tables 4/4, nr_ptes 2/1")


def test_pmd_cache_of_an_mm_that_never_shared():
    """Plain fork copies ``pmd_at``: it must list every PMD table the mm
    reaches, and only those."""
    k, mm = _machine()
    (key, pmd), = mm.pmd_at.items()
    del mm.pmd_at[key]
    _fails(k, rf"never shared but pmd_at lists PMD tables \[\], it has \[{pmd}\]")


def test_pmd_cache_not_on_a_private_path():
    """After a COW fork the parent reaches its PMD table through a shared
    PUD table: caching it would let a write skip the break."""
    k, parent, child = _forked(share=True)
    assert not parent.pmd_at
    pmd = entry_pfn(k.ram.w[_slot(parent, BASE, 30)])
    parent.pmd_at[BASE >> 30] = pmd
    _fails(k, rf"pmd_at caches PMD table {pmd} at {BASE >> 30 << 30:#x}, "
              "not a private path to it")


def test_stale_kernel_tlb_entry():
    """uaccess's TLB must agree with the tables, or the kernel would read or
    write a frame the page no longer maps."""
    k, mm = _machine()
    assert mm.utlb_gen == k.cpu.tlb_gen
    key = (BASE >> 12) << 1 | 1
    other = entry_pfn(lookup_pte(mm, BASE + PAGE)[0])
    assert mm.utlb[key] >> 12 != other
    mm.utlb[key] = other << 12
    _fails(k, rf"kernel TLB maps {BASE:#x} \(write\) to frame {other}, "
              rf"the tables say {lookup_pte(mm, BASE)[0]:#x}")
