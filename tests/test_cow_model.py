"""Kernel-level model test of copy-on-write PTE tables (no guest code).

A hypothesis state machine drives several address spaces (``MM`` objects)
through the real syscall handlers (mmap private/shared, munmap, mprotect,
madvise DONTNEED/DONTFORK/DOFORK, mremap shrink/grow/move), the
real fork (``dup_mm``, sharing PTE tables or copying them), the real exit
(``mmput``), and reads/writes user memory with ``copy_to_user`` /
``copy_from_user``, which go through the same fault handler as the CPU
(demand-zero, COW copy/reuse, PTE-table break). A Python model keeps, per
process, every mapped page's protection and contents (private pages per
process; MAP_SHARED anonymous pages in shared stores). After every step the
invariant checker runs and each process's memory is compared with the model;
at teardown every process exits and all frames must be free again.

The arena is 6.5 MiB starting 768 KiB into a PTE table just below the 1 GiB
line, so it spans four PTE tables (first and last partial) and two PMD tables.

Also: directed out-of-memory tests (a frame allocation failing during a COW
PTE-table break, a page copy, a range operation or a fork must leave the
kernel consistent), and xfail(strict) reproductions of kernel bugs found
while writing these tests.
"""
from __future__ import annotations

import random
import types

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from emu import x86
from minios.mm import cow, teardown
from minios.mm.check import InvariantError, check_invariants
from minios.mm.teardown import mmput
from minios.mm.fault import handle_mm_fault
from minios.mm.frames import OutOfMemory
from minios.kernel import Kernel
from minios.mm.mm_types import MM
from minios.mm.pgtable import entry_pfn, lookup_pte, pfns
from minios.syscalls.sys_mm import sys_madvise, sys_mmap, sys_mprotect, sys_mremap, sys_munmap
from minios.mm.fork import dup_mm
from minios.mm.uaccess import Fault, copy_from_user, copy_to_user

PAGE = 4096
MB = 1 << 20
TABLE = 2 * MB
ARENA = (1 << 30) - 3 * MB - 256 * 1024      # 768 KiB into a PTE table
NPAGES = (6 * MB + 512 * 1024) // PAGE         # 6.5 MiB: 4 PTE tables, 2 PMD tables
ARENA_END = ARENA + NPAGES * PAGE
ZERO = bytes(PAGE)

PROT_NONE, PROT_READ, PROT_RW = 0, 1, 3
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANON = 0x01, 0x02, 0x10, 0x20
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK = 4, 10, 11
ENOMEM = 12
MAX_MMS = 6

assert ARENA % TABLE == 768 * 1024


def task(mm):
    """The syscall handlers only use ``t.mm``."""
    return types.SimpleNamespace(mm=mm)


class Proc:
    """Model of one address space: page number -> (prot, backing, dontfork)
    where backing is None (private anonymous) or (store id, page index in
    store) and dontfork is MADV_DONTFORK's mark; ``priv``: contents of
    private pages that are not all zero."""

    def __init__(self, mm):
        self.mm = mm
        self.pages: dict[int, tuple[int, tuple | None, bool]] = {}
        self.priv: dict[int, bytes] = {}

    def fork(self, mm) -> "Proc":
        c = Proc(mm)
        c.pages = {pg: e for pg, e in self.pages.items() if not e[2]}
        c.priv = {pg: d for pg, d in self.priv.items() if pg in c.pages}
        return c


class CowModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.k = Kernel(mem=128 << 20, cow_pte="always")
        self.procs: list[Proc] = []
        self.stores: dict[int, dict[int, bytes]] = {}
        self.next_store = 0
        self.steps = 0

    # ------------------------------------------------------------ helpers
    def expected(self, p: Proc, pg: int) -> bytes:
        prot, back, _ = p.pages[pg]
        if back is None:
            return p.priv.get(pg, ZERO)
        return self.stores[back[0]].get(back[1], ZERO)

    def store(self, p: Proc, pg: int, data: bytes) -> None:
        _, back, _ = p.pages[pg]
        if back is None:
            p.priv[pg] = data
        else:
            self.stores[back[0]][back[1]] = data

    def unmap_model(self, p: Proc, lo: int, hi: int) -> None:
        for pg in range(lo, hi):
            p.pages.pop(pg, None)
            p.priv.pop(pg, None)

    def map_model(self, p: Proc, lo: int, hi: int, shared: bool) -> None:
        self.unmap_model(p, lo, hi)
        if shared:
            sid = self.next_store
            self.next_store += 1
            self.stores[sid] = {}
        for i, pg in enumerate(range(lo, hi)):
            p.pages[pg] = (PROT_RW, (sid, i) if shared else None, False)

    def new_proc(self) -> Proc:
        mm = MM(self.k)
        p = Proc(mm)
        assert sys_mmap(self.k, task(mm), ARENA, NPAGES * PAGE, PROT_RW,
                        MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0) == ARENA
        self.map_model(p, ARENA // PAGE, ARENA_END // PAGE, False)
        # Populate every PTE table so that forks have something to share.
        for i in range(0, NPAGES, 23):
            pg = ARENA // PAGE + i
            data = bytearray(PAGE)
            data[:8] = pg.to_bytes(8, "little")
            data[-3:] = b"end"
            copy_to_user(mm, pg * PAGE, bytes(data))
            p.priv[pg] = bytes(data)
        return p

    def pick_range(self, data, p: Proc | None = None, max_pages: int = 900):
        """(first page, page count): mostly inside the arena, sometimes
        within the process's current mappings (mremap may have moved them)."""
        if p is not None and p.pages and data.draw(st.booleans(), label="in mapping"):
            pages = sorted(p.pages)
            lo = pages[data.draw(st.integers(0, len(pages) - 1), label="from")]
        else:
            lo = ARENA // PAGE + data.draw(st.integers(0, NPAGES - 1), label="from")
        n = data.draw(st.integers(1, max_pages), label="pages")
        return lo, n

    def readable(self, p: Proc, pg: int) -> bool:
        return pg in p.pages and p.pages[pg][0] & PROT_READ

    # --------------------------------------------------------------- rules
    @initialize()
    def start(self):
        self.procs.append(self.new_proc())

    @precondition(lambda self: len(self.procs) < MAX_MMS)
    @rule(data=st.data(), share=st.booleans(),
          stack=st.one_of(st.just(-1), st.integers(0, NPAGES - 1)))
    def fork(self, data, share, stack):
        """``stack``: the page just below the stack pointer fork is given:
        fork copies its PTE table (COW) and the page itself for the child,
        as it does at the forking thread's stack (-1: none)."""
        p = data.draw(st.sampled_from(self.procs), label="parent")
        mm = dup_mm(p.mm, share, ARENA + (stack + 1) * PAGE if stack >= 0 else -1)
        self.procs.append(p.fork(mm))

    @precondition(lambda self: len(self.procs) < MAX_MMS)
    @rule()
    def spawn(self):
        self.procs.append(self.new_proc())

    @precondition(lambda self: len(self.procs) > 1)
    @rule(data=st.data())
    def exit(self, data):
        i = data.draw(st.integers(0, len(self.procs) - 1), label="exiting")
        p = self.procs.pop(i)
        mmput(p.mm)

    @rule(data=st.data(), payload=st.binary(min_size=1, max_size=64))
    def write(self, data, payload):
        p = data.draw(st.sampled_from(self.procs), label="proc")
        pg, _ = self.pick_range(data, p, 1)
        off = data.draw(st.integers(0, PAGE - len(payload)), label="offset")
        va = pg * PAGE + off
        ok = pg in p.pages and p.pages[pg][0] == PROT_RW
        if not ok:
            with pytest.raises(Fault):
                copy_to_user(p.mm, va, payload)
            return
        copy_to_user(p.mm, va, payload)
        old = self.expected(p, pg)
        self.store(p, pg, old[:off] + payload + old[off + len(payload):])

    @rule(data=st.data(), byte=st.integers(1, 255), stride=st.integers(1, 40))
    def write_many(self, data, byte, stride):
        """One byte into many pages: breaks several PTE tables at once."""
        p = data.draw(st.sampled_from(self.procs), label="proc")
        lo, n = self.pick_range(data, p)
        for pg in range(lo, lo + n, stride):
            if pg in p.pages and p.pages[pg][0] == PROT_RW:
                copy_to_user(p.mm, pg * PAGE + 100, bytes([byte]))
                old = self.expected(p, pg)
                self.store(p, pg, old[:100] + bytes([byte]) + old[101:])

    @rule(data=st.data(), payload=st.binary(min_size=1, max_size=16),
          limit=st.integers(0, 2))
    def write_oom(self, data, payload, limit):
        """A write with at most ``limit`` frames left: it succeeds or fails
        (SIGBUS -> Fault) with nothing changed."""
        p = data.draw(st.sampled_from(self.procs), label="proc")
        pg, _ = self.pick_range(data, p, 1)
        if not (pg in p.pages and p.pages[pg][0] == PROT_RW):
            return
        self.k.frames.limit = limit
        try:
            copy_to_user(p.mm, pg * PAGE, payload)
            done = True
        except Fault:
            done = False
        finally:
            self.k.frames.limit = None
        if done:
            old = self.expected(p, pg)
            self.store(p, pg, payload + old[len(payload):])

    @rule(data=st.data(), shared=st.booleans())
    def mmap_fixed(self, data, shared):
        p = data.draw(st.sampled_from(self.procs), label="proc")
        lo, n = self.pick_range(data, p)
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANON | MAP_FIXED
        assert sys_mmap(self.k, task(p.mm), lo * PAGE, n * PAGE, PROT_RW, flags, -1, 0) == lo * PAGE
        self.map_model(p, lo, lo + n, shared)

    @rule(data=st.data())
    def munmap(self, data):
        p = data.draw(st.sampled_from(self.procs), label="proc")
        lo, n = self.pick_range(data, p)
        assert sys_munmap(self.k, task(p.mm), lo * PAGE, n * PAGE) == 0
        self.unmap_model(p, lo, lo + n)

    @rule(data=st.data(), prot=st.sampled_from([PROT_NONE, PROT_READ, PROT_RW]))
    def mprotect(self, data, prot):
        p = data.draw(st.sampled_from(self.procs), label="proc")
        lo, n = self.pick_range(data, p)
        r = sys_mprotect(self.k, task(p.mm), lo * PAGE, n * PAGE, prot)
        # Linux changes the pages before the first hole, then says ENOMEM.
        hole = next((pg for pg in range(lo, lo + n) if pg not in p.pages), None)
        assert r == (0 if hole is None else -ENOMEM)
        for pg in range(lo, lo + n if hole is None else hole):
            p.pages[pg] = (prot, *p.pages[pg][1:])

    @rule(data=st.data())
    def madvise_dontneed(self, data):
        p = data.draw(st.sampled_from(self.procs), label="proc")
        lo, n = self.pick_range(data, p)
        r = sys_madvise(self.k, task(p.mm), lo * PAGE, n * PAGE, MADV_DONTNEED)
        # Linux applies advice to every mapped page and reports holes after.
        mapped = [pg for pg in range(lo, lo + n) if pg in p.pages]
        assert r == (0 if len(mapped) == n else -ENOMEM)
        for pg in mapped:
            if p.pages[pg][1] is None:          # private: reads back zero
                p.priv.pop(pg, None)            # shared: keeps its data

    @rule(data=st.data(), dontfork=st.booleans())
    def madvise_dontfork(self, data, dontfork):
        """MADV_DONTFORK / MADV_DOFORK: forks then copy the PTE tables
        holding such pages entry by entry instead of sharing them."""
        p = data.draw(st.sampled_from(self.procs), label="proc")
        lo, n = self.pick_range(data, p)
        r = sys_madvise(self.k, task(p.mm), lo * PAGE, n * PAGE,
                        MADV_DONTFORK if dontfork else MADV_DOFORK)
        mapped = [pg for pg in range(lo, lo + n) if pg in p.pages]
        assert r == (0 if len(mapped) == n else -ENOMEM)
        for pg in mapped:
            p.pages[pg] = (*p.pages[pg][:2], dontfork)

    @rule(data=st.data(), mode=st.sampled_from(["shrink", "grow", "fixed"]))
    def mremap(self, data, mode):
        p = data.draw(st.sampled_from(self.procs), label="proc")
        vmas = list(p.mm.vmas)
        if not vmas:
            return
        v = data.draw(st.sampled_from(vmas), label="vma")
        vpages = (v.end - v.start) // PAGE
        first = data.draw(st.integers(0, vpages - 1), label="first")
        old_n = data.draw(st.integers(1, vpages - first), label="old pages")
        old = v.start // PAGE + first
        if mode == "shrink":
            if old_n < 2:
                return
            new_n = data.draw(st.integers(1, old_n - 1), label="new pages")
            assert sys_mremap(self.k, task(p.mm), old * PAGE, old_n * PAGE, new_n * PAGE,
                              0, 0) == old * PAGE
            self.unmap_model(p, old + new_n, old + old_n)
            return
        if mode == "grow":
            if v.shared:          # growing shared anon past its object: not modelled
                return
            new_n = old_n + data.draw(st.integers(1, 700), label="more pages")
            r = sys_mremap(self.k, task(p.mm), old * PAGE, old_n * PAGE, new_n * PAGE,
                           MREMAP_MAYMOVE, 0)
            assert r > 0 and r % PAGE == 0, r
            dest = r // PAGE
        else:
            new_n = old_n
            dest = ARENA // PAGE + data.draw(st.integers(0, NPAGES - 1), label="dest")
            if dest < old + old_n and old < dest + new_n:
                return            # overlapping: Linux says EINVAL (see test below)
            r = sys_mremap(self.k, task(p.mm), old * PAGE, old_n * PAGE, new_n * PAGE,
                           MREMAP_MAYMOVE | MREMAP_FIXED, dest * PAGE)
            assert r == dest * PAGE, r
        # The model: move old pages (unless in place), then the grown tail.
        moved = [(p.pages[pg], p.priv.get(pg)) for pg in range(old, old + old_n)]
        if dest != old:
            self.unmap_model(p, old, old + old_n)
            if mode == "fixed":           # MREMAP_FIXED unmaps the destination
                self.unmap_model(p, dest, dest + new_n)
            for pg in range(dest, dest + new_n):
                assert pg not in p.pages, f"mremap put page {pg:#x} over a live mapping"
            for i, (ent, content) in enumerate(moved):
                p.pages[dest + i] = ent
                if content is not None:
                    p.priv[dest + i] = content
        prot, _, dontfork = moved[-1][0]
        for pg in range(dest + old_n, dest + new_n):
            assert pg not in p.pages, f"mremap grew over a live mapping at page {pg:#x}"
            p.pages[pg] = (prot, None, dontfork)

    @rule(data=st.data())
    def read(self, data):
        """A read through uaccess: faults the page in like the CPU would
        (a not-present page under a shared PTE table breaks the share)."""
        p = data.draw(st.sampled_from(self.procs), label="proc")
        pg, _ = self.pick_range(data, p, 1)
        if self.readable(p, pg):
            assert copy_from_user(p.mm, pg * PAGE, PAGE) == self.expected(p, pg)
        else:
            with pytest.raises(Fault):
                copy_from_user(p.mm, pg * PAGE, 1)

    # ---------------------------------------------------------- invariants
    def peek(self, p: Proc, pg: int) -> bytes:
        """What the process would read at page ``pg``, without faulting
        anything in (so checking does not break shared PTE tables): the
        mapped frame, else the MAP_SHARED object's frame, else zeros."""
        k = self.k
        pte, _ = lookup_pte(p.mm, pg * PAGE)
        if pte & x86.P:
            return k.ram.read(entry_pfn(pte) * PAGE, PAGE)
        v = p.mm.vma_at(pg * PAGE)
        if v is not None and v.shm is not None:
            f = v.shm.frames.get(v.shm_pgoff + (pg * PAGE - v.start) // PAGE)
            if f is not None:
                return k.ram.read(f * PAGE, PAGE)
        return ZERO

    @invariant()
    def consistent(self):
        check_invariants(self.k)
        self.steps += 1
        rng = random.Random(self.steps)
        for p in self.procs:
            covered = set()           # the kernel's VMAs cover exactly the model's pages
            for v in p.mm.vmas:
                covered.update(range(v.start // PAGE, v.end // PAGE))
            assert covered == set(p.pages), "VMAs differ from the model"
            written = set(p.priv)
            written.update(pg for pg, (prot, back, _) in p.pages.items()
                           if back is not None and back[1] in self.stores[back[0]])
            mapped = sorted(p.pages)
            written.update(rng.sample(mapped, min(16, len(mapped))))
            for pg in written:
                assert self.peek(p, pg) == self.expected(p, pg), \
                    f"page {pg * PAGE:#x}: contents differ from the model"

    def teardown(self):
        for p in self.procs:
            mmput(p.mm)
        self.procs.clear()
        check_invariants(self.k)
        assert not self.k.mms
        assert self.k.frames.nr_free == self.k.boot_free


CowModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestCowModel = CowModel.TestCase


class LentRowsModel(CowModel):
    """The same machine with every row shared in bulk (``FEW_PAGES`` = 0
    in ``cow`` and ``teardown``), as fork shares the hundreds of PTE tables of a large mapping: a
    fork given a stack then lends the rest of the stack's PMD table to the
    child (cow.py, "Lent rows"), and every later step must settle or
    forget those entries correctly."""

    def __init__(self):
        super().__init__()
        self.saved_few = cow.FEW_PAGES
        cow.FEW_PAGES = teardown.FEW_PAGES = 0

    def teardown(self):
        try:
            super().teardown()
        finally:
            cow.FEW_PAGES = teardown.FEW_PAGES = self.saved_few


LentRowsModel.TestCase.settings = CowModel.TestCase.settings
TestLentRowsModel = LentRowsModel.TestCase


# ------------------------------------------------------------------ directed

def _cow_pair(cow_pte="always", share=True):
    """A process with an arena populated in every PTE table, and its fork."""
    k = Kernel(mem=128 << 20, cow_pte=cow_pte)
    parent = MM(k)
    assert sys_mmap(k, task(parent), ARENA, NPAGES * PAGE, PROT_RW,
                    MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0) == ARENA
    pages = {}
    for i in range(0, NPAGES, 16):
        va = ARENA + i * PAGE
        data = b"P%06d" % i
        copy_to_user(parent, va, data)
        pages[va] = data
    child = dup_mm(parent, share)
    check_invariants(k)
    return k, parent, child, pages


def _intact(mm, pages, changed=()):
    for va, data in pages.items():
        if va not in changed:
            assert copy_from_user(mm, va, len(data)) == data, f"{va:#x} changed"


def _release_all(k):
    for mm in list(k.mms):
        mmput(mm)
    check_invariants(k)
    assert k.frames.nr_free == k.boot_free


def test_cow_fork_shares_tables():
    """The arena's 4 PTE tables lie under one PGD entry: the fork shares that
    PUD table and the child owns nothing but its PGD."""
    k, parent, child, pages = _cow_pair()
    assert k.last_fork["shared"] == 1 and k.last_fork["copied"] == 0
    assert child.nr_tables == 1 and child.rss == 0 and child.nr_ptes == 0
    _release_all(k)


def test_write_breaks_each_level_once_then_reuses():
    """The child's first write copies the PUD, PMD and PTE table on its way
    down (3 tables, accounted to it); its next write in another PTE table
    of the same 1 GiB copies only that one. The parent, left the only sharer of the old
    tables, takes each back without copying."""
    k, parent, child, pages = _cow_pair()
    st, tables = k.stats, k.frames.nr_tables
    va = ARENA + TABLE                       # a whole PTE table
    assert not handle_mm_fault(child, va, True, False).flags
    assert (st["cow_pud_copy"], st["cow_pmd_copy"], st["cow_pte_copy"]) == (1, 1, 1)
    assert k.frames.nr_tables == tables + 3 and child.nr_tables == 1 + 3
    assert not handle_mm_fault(child, ARENA, True, False).flags    # same 1 GiB
    assert (st["cow_pud_copy"], st["cow_pmd_copy"], st["cow_pte_copy"]) == (1, 1, 2)
    check_invariants(k)
    assert not handle_mm_fault(parent, va, True, False).flags
    assert (st["cow_pud_reuse"], st["cow_pmd_reuse"], st["cow_pte_reuse"]) == (1, 1, 1)
    assert k.frames.nr_tables == tables + 4
    check_invariants(k)
    _intact(parent, pages)
    _intact(child, pages)
    _release_all(k)


@pytest.mark.parametrize("first", ["parent", "child"])
def test_exit_hands_owned_subtree_to_the_sharer(first):
    """The owner exits first: the sharer inherits every table below the PUD
    table they shared, with its pages' RSS. The sharer exits first: the
    owner keeps everything. Counters stay exact either way."""
    k, parent, child, pages = _cow_pair()
    tables, rss = parent.nr_tables - 1, parent.rss          # all but its PGD
    gone, stays = (parent, child) if first == "parent" else (child, parent)
    mmput(gone)
    check_invariants(k)
    assert stays.nr_tables == tables + 1 and stays.rss == rss
    _intact(stays, pages)
    _release_all(k)


@pytest.mark.parametrize("limit", [0, 1, 2, 3])
@pytest.mark.parametrize("who", ["child", "parent"])
def test_oom_during_cow_break(who, limit):
    """No frame for the PUD, PMD or PTE table copy (limit 0, 1, 2: the
    levels above are broken already) or for the page copy (limit 3): the
    write fault gets SIGBUS, the kernel stays consistent, both sides keep
    their data; with memory back the write succeeds."""
    k, parent, child, pages = _cow_pair()
    mm = child if who == "child" else parent
    va = ARENA + TABLE            # a page in a whole, shared PTE table
    assert va in pages
    k.frames.limit = limit
    res = handle_mm_fault(mm, va, True, False)
    k.frames.limit = None
    assert (res.signal, res.si_code) == (7, 2)          # SIGBUS, BUS_ADRERR
    check_invariants(k)
    _intact(parent, pages)
    _intact(child, pages)
    with pytest.raises(Fault):    # the same through uaccess
        k.frames.limit = 0
        try:
            copy_to_user(mm, va + 16 * PAGE, b"x")
        finally:
            k.frames.limit = None
    check_invariants(k)
    assert not handle_mm_fault(mm, va, True, False).flags
    copy_to_user(mm, va, b"NEW")
    check_invariants(k)
    assert copy_from_user(mm, va, 3) == b"NEW"
    _intact(parent, pages, changed={va} if mm is parent else ())
    _intact(child, pages, changed={va} if mm is child else ())
    _release_all(k)


def test_oom_after_owner_exit():
    """The owner exits; the remaining sharer's break (reuse) needs no frame."""
    k, parent, child, pages = _cow_pair()
    mmput(parent)
    check_invariants(k)
    k.frames.limit = 0
    try:
        va = ARENA + TABLE
        # Reuse of the table needs no frame; the page itself is now only
        # mapped by one table, so COW reuses it too.
        assert not handle_mm_fault(child, va, True, False).flags
    finally:
        k.frames.limit = None
    check_invariants(k)
    _intact(child, pages)
    _release_all(k)


@pytest.mark.parametrize("op", ["munmap", "mprotect", "madvise"])
@pytest.mark.parametrize("limit", [0, 1, 2])
def test_oom_during_range_op(op, limit):
    """munmap/mprotect/madvise of a range that partly covers shared PTE
    tables must break them; if the break fails for lack of memory the kernel
    must stay consistent (nothing lost, nothing doubled) and the other
    process must keep its data."""
    k, parent, child, pages = _cow_pair()
    t = task(child)
    lo, n = ARENA + MB, 3 * MB
    k.frames.limit = limit
    try:
        if op == "munmap":
            sys_munmap(k, t, lo, n)
        elif op == "mprotect":
            sys_mprotect(k, t, lo, n, PROT_READ)
        else:
            sys_madvise(k, t, lo, n, MADV_DONTNEED)
    except OutOfMemory:
        pass
    finally:
        k.frames.limit = None
    check_invariants(k)
    _intact(parent, pages)
    _release_all(k)


@pytest.mark.parametrize("limit", [1, 2])
def test_oom_during_mremap_move(limit):
    k, parent, child, pages = _cow_pair()
    t = task(child)
    k.frames.limit = limit
    try:
        r = sys_mremap(k, t, ARENA, NPAGES * PAGE, NPAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
                       ARENA + 64 * MB)
    except OutOfMemory:
        r = None
    finally:
        k.frames.limit = None
    check_invariants(k)
    _intact(parent, pages)
    if r is None or r < 0:        # failed: the child keeps everything in place
        _intact(child, pages)
    _release_all(k)


@pytest.mark.parametrize("share", [True, False])
def test_oom_during_fork_of_sharer(share):
    """Fork a process whose PTE tables are all COW-shared, with the allocator
    failing at every possible point: either a complete child, or OutOfMemory
    with the half-built child released (nothing leaked, nothing changed)."""
    k, parent, child, pages = _cow_pair()
    outcomes = set()
    for limit in range(0, 12):
        mms, free = set(k.mms), k.frames.nr_free
        k.frames.limit = limit
        try:
            grandchild = dup_mm(child, share)
        except OutOfMemory:
            grandchild = None
        finally:
            k.frames.limit = None
        check_invariants(k)
        if grandchild is None:
            outcomes.add("oom")
            assert set(k.mms) == mms and k.frames.nr_free == free
        else:
            outcomes.add("ok")
            _intact(grandchild, pages)
            mmput(grandchild)
        _intact(parent, pages)
        _intact(child, pages)
    assert outcomes == {"oom", "ok"}
    _release_all(k)


def test_mremap_fixed_overlap_einval():
    k = Kernel(mem=128 << 20, cow_pte="always")
    mm = MM(k)
    a = sys_mmap(k, task(mm), ARENA, 4 * MB, PROT_RW, MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0)
    for i in range(0, 1024, 64):
        copy_to_user(mm, a + i * PAGE, bytes([i // 64 + 1]))
    r = sys_mremap(k, task(mm), a, 2 * MB, 2 * MB, MREMAP_MAYMOVE | MREMAP_FIXED, a + MB)
    assert r == -22


@pytest.mark.parametrize("share", [True, False])
def test_mremap_of_file_mapping_after_fork_keeps_other_side(share):
    from minios.mm.mm_types import VMA, FileImage
    k = Kernel(mem=128 << 20, cow_pte="always")
    parent = MM(k)
    data = bytes((i * 7 + 1) & 255 for i in range(8 * PAGE))
    start = ARENA
    parent.insert_vma(VMA(start, start + len(data), PROT_RW,
                          image=FileImage(data, 0, start + len(data), "file")))
    child = dup_mm(parent, share)
    dest = ARENA - 64 * MB
    assert sys_mremap(k, task(child), start, len(data), len(data),
                      MREMAP_MAYMOVE | MREMAP_FIXED, dest) == dest
    assert copy_from_user(child, dest, len(data)) == data
    assert copy_from_user(parent, start, len(data)) == data
    _release_all(k)


def test_brk_growth_is_writable_after_mprotect_of_heap_top():
    from minios.syscalls.sys_mm import sys_brk
    k = Kernel(mem=128 << 20)
    mm = MM(k)
    t = task(mm)
    mm.start_brk = mm.brk = 0x600000
    assert sys_brk(k, t, 0x610000) == 0x610000
    assert sys_mprotect(k, t, 0x60F000, PAGE, PROT_READ) == 0
    assert sys_brk(k, t, 0x620000) == 0x620000
    copy_to_user(mm, 0x618000, b"heap")


def test_mprotect_none_failing_on_oom_leaves_no_readable_pte():
    k, parent, child, pages = _cow_pair()
    k.frames.limit = 0
    try:
        sys_mprotect(k, task(child), ARENA, NPAGES * PAGE, PROT_NONE)
    except OutOfMemory:
        pass
    finally:
        k.frames.limit = None
    check_invariants(k)
    if any(v.prot == PROT_NONE for v in child.vmas):
        va = next(iter(pages))
        pte, _ = lookup_pte(child, va)
        assert not (pte & x86.P and pte & x86.US), "PROT_NONE VMA with a user-readable PTE"


# ------------------------------------------------------------- lent rows

BIG = 1 << 30                       # a 40 MiB mapping in the GiB from 1 GiB, as
BIG_LEN = 40 * MB                   # fork_bench's memory lies in its stack's GiB
BIG_STACK = BIG + BIG_LEN - 64      # "stack pointer" in the last PTE table


def _lent_pair():
    """A process with one page written in each of 20 PTE tables, and its
    COW fork given a stack there: the child's PMD table is lent the other
    19 PTE tables (cow.py, "Lent rows")."""
    k = Kernel(mem=256 << 20, cow_pte="always")
    parent = MM(k)
    assert sys_mmap(k, task(parent), BIG, BIG_LEN, PROT_RW,
                    MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0) == BIG
    pages = {}
    for va in range(BIG, BIG + BIG_LEN, TABLE):
        pages[va + 8 * PAGE] = b"T%08x" % va
        copy_to_user(parent, va + 8 * PAGE, pages[va + 8 * PAGE])
    counts = k.frames.refcount.copy()
    child = dup_mm(parent, True, BIG_STACK)
    assert k.stats["fork_lent_rows"] == 1 and len(k.uncounted) == 1
    row, (gib, mask) = next(iter(k.uncounted.items()))
    assert gib == 1 and int(mask.sum()) == 19
    lent = pfns(k.ram.t[row][mask])
    assert (k.frames.refcount[lent] == counts[lent]).all()   # not counted at fork
    check_invariants(k)
    return k, parent, child, pages, lent


def test_lent_row_forgotten_when_the_child_exits():
    """fork + exit: the lent entries never get counted, and every count is
    back where it was before the fork."""
    k, parent, child, pages, lent = _lent_pair()
    mmput(child)
    assert not k.uncounted and k.stats["lent_rows_settled"] == 0
    assert (k.frames.refcount[lent] == 1).all()
    check_invariants(k)
    _intact(parent, pages)
    _release_all(k)


@pytest.mark.parametrize("op", ["parent_write", "child_write", "child_munmap_table",
                                "parent_munmap_table", "child_munmap_part", "parent_exit",
                                "child_mprotect", "parent_mremap"])
def test_lent_row_settled_before_its_counts_matter(op):
    """Every operation that reads or lowers a lent PTE table's count first
    gives the lent entries their counts; the other side never sees it."""
    k, parent, child, pages, lent = _lent_pair()
    va = BIG + 4 * TABLE + 8 * PAGE           # a page in a lent table
    whole = BIG + 4 * TABLE
    changed = {parent: set(), child: set()}   # pages each side no longer has as they were
    if op == "parent_write":
        copy_to_user(parent, va, b"parent")
        assert copy_from_user(parent, va, 6) == b"parent"
        changed[parent] = {va}
    elif op == "child_write":
        copy_to_user(child, va, b"child!")
        assert copy_from_user(child, va, 6) == b"child!"
        changed[child] = {va}
    elif op in ("child_munmap_table", "parent_munmap_table"):
        actor = child if op.startswith("child") else parent
        assert sys_munmap(k, task(actor), whole, TABLE) == 0
        with pytest.raises(Fault):
            copy_from_user(actor, va, 1)
        changed[actor] = {va}
    elif op == "child_munmap_part":
        assert sys_munmap(k, task(child), whole, 16 * PAGE) == 0
        changed[child] = {va}
    elif op == "child_mprotect":
        assert sys_mprotect(k, task(child), whole, TABLE, PROT_READ) == 0
    elif op == "parent_mremap":
        new = sys_mremap(k, task(parent), whole, TABLE, TABLE, MREMAP_MAYMOVE | MREMAP_FIXED,
                         BIG + BIG_LEN + 64 * MB)
        assert new == BIG + BIG_LEN + 64 * MB
        assert copy_from_user(parent, new + 8 * PAGE, 9) == pages[va]
        changed[parent] = {va}
    else:                                      # parent_exit
        mmput(parent)
        del changed[parent]
    assert not k.uncounted and k.stats["lent_rows_settled"] == 1
    check_invariants(k)
    for mm, gone in changed.items():
        _intact(mm, pages, gone)
    _release_all(k)


def test_lent_row_lent_again_by_the_child():
    """The child forks with its stack in the same GiB: its lent row is lent
    on (the grandchild's entries uncounted too), and any exit order leaves
    every count exact."""
    k, parent, child, pages, lent = _lent_pair()
    grandchild = dup_mm(child, True, BIG_STACK)
    assert len(k.uncounted) == 2
    check_invariants(k)
    copy_to_user(grandchild, BIG + 8 * PAGE, b"grandchild")
    check_invariants(k)
    mmput(parent)
    check_invariants(k)
    _intact(child, pages)
    mmput(child)
    check_invariants(k)
    _intact(grandchild, pages, {BIG + 8 * PAGE})
    _release_all(k)


def test_checker_catches_a_table_held_only_by_lent_entries():
    """The checker is what guards lent rows: a PTE table whose counted
    entry is gone while a lent one still names it must be reported."""
    k, parent, child, pages, lent = _lent_pair()
    q, pmd = k.ram.w, parent.pmd_at[1]
    j = next(j for j in range(512) if q[pmd * 512 + j] and entry_pfn(q[pmd * 512 + j]) == lent[0])
    q[pmd * 512 + j] = 0                    # behind the kernel's back
    with pytest.raises(InvariantError, match="held only by lent entries"):
        check_invariants(k)
