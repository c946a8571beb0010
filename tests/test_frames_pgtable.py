"""Unit tests of the kernel's memory core, without running any guest code:
the frame allocator, page tables and the fault handler, user-memory access,
and fork's page-table copy (plain and COW PTE)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from emu import x86
from minios.mm.teardown import mmput
from minios.mm.fault import handle_mm_fault
from minios.mm.frames import DATA, FREE, TABLE, OutOfMemory
from minios.kernel import Kernel
from minios.mm.mm_types import MM, VMA, PROT_EXEC, PROT_READ, PROT_WRITE
from minios.mm.pgtable import TASK_SIZE, lookup_pte
from minios.mm.uaccess import Fault, copy_from_user, copy_to_user

try:
    from minios.mm.check import check_invariants
except ImportError:                    # the checker is optional
    check_invariants = None

PAGE = 4096
SIGBUS, SIGSEGV = 7, 11
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BASE = 0x40_0000


@pytest.fixture
def k():
    return Kernel(mem=256 << 20)


def _sig(vmf) -> tuple[int, int]:
    """The (signal, si_code) a failed fault sends."""
    assert vmf.flags, vmf
    return vmf.signal, vmf.si_code


def check(k):
    if check_invariants is not None:
        check_invariants(k)


def new_mm(k, *vmas):
    mm = MM(k)
    for v in vmas:
        mm.insert_vma(v)
    return mm


def rw_vma(start=BASE, npages=16, **kw):
    return VMA(start, start + npages * PAGE, PROT_READ | PROT_WRITE, **kw)


def all_free(k):
    return k.frames.nr_free == k.boot_free


# ----------------------------------------------------------- frames
def test_alloc_put_returns_to_start(k):
    fr = k.frames
    start = fr.nr_free
    pfns = [fr.alloc() for _ in range(10)]
    assert len(set(pfns)) == 10
    assert fr.nr_free == start - 10
    for p in pfns:
        assert fr.refcount[p] == 1 and fr.kind[p] == DATA
        assert p >= fr.reserved
    for p in pfns:
        fr.put(p)
        assert fr.kind[p] == FREE and fr.refcount[p] == 0
    assert fr.nr_free == start


def test_refcount(k):
    fr = k.frames
    start = fr.nr_free
    p = fr.alloc()
    fr.refcount[p] += 2
    fr.put(p)
    fr.put(p)
    assert fr.refcount[p] == 1 and fr.kind[p] == DATA and fr.nr_free == start - 1
    fr.put(p)
    assert fr.kind[p] == FREE and fr.nr_free == start


def test_recycled_frame_is_zeroed(k):
    fr = k.frames
    p = fr.alloc()
    k.ram.write(p * PAGE, b"\xAA" * PAGE)
    fr.put(p)
    q = fr.alloc()
    assert q == p                       # the recycled frame comes back first
    assert k.ram.read(q * PAGE, PAGE) == bytes(PAGE)
    fr.put(q)


def test_table_kind_counted(k):
    fr = k.frames
    n = fr.nr_tables
    p = fr.alloc(TABLE)
    assert fr.kind[p] == TABLE and fr.nr_tables == n + 1
    fr.put(p)
    assert fr.nr_tables == n


def test_put_many_with_repeats(k):
    fr = k.frames
    start = fr.nr_free
    a, b, c = fr.alloc(), fr.alloc(), fr.alloc(TABLE)
    fr.refcount[a] += 2                 # a: 3 references
    fr.refcount[c] += 1                 # c: 2 references
    fr.put_many(np.array([a, a, b, c], dtype=np.int64))
    assert fr.refcount[a] == 1 and fr.kind[a] == DATA
    assert fr.kind[b] == FREE
    assert fr.refcount[c] == 1 and fr.kind[c] == TABLE
    assert fr.nr_free == start - 2
    fr.put_many(np.array([a, c], dtype=np.int64))
    fr.put_many(np.array([], dtype=np.int64))
    assert fr.nr_free == start
    assert fr.kind[[a, b, c]].tolist() == [FREE] * 3
    # A frame freed by put_many is handed out again exactly once.
    again = {fr.alloc() for _ in range(3)}
    assert again == {a, b, c}
    fr.put_many(np.array(sorted(again), dtype=np.int64))
    assert fr.nr_free == start


def test_out_of_memory(k):
    fr = k.frames
    fr.limit = 2
    p, q = fr.alloc(), fr.alloc()
    with pytest.raises(OutOfMemory):
        fr.alloc()
    fr.limit = None
    fr.put(p)
    fr.put(q)
    assert all_free(k)


def test_exhaust_all_frames():
    k = Kernel(mem=64 << 20)
    fr = k.frames
    got = []
    with pytest.raises(OutOfMemory):
        while True:
            got.append(fr.alloc())
    assert len(got) == k.boot_free and fr.nr_free == 0
    assert len(set(got)) == len(got)
    fr.put_many(np.array(got, dtype=np.int64))
    assert all_free(k)


# ------------------------------------------------- page tables and faults
def test_write_fault_maps_writable_user_page(k):
    mm = new_mm(k, rw_vma())
    addr = BASE + 3 * PAGE + 0x123
    assert lookup_pte(mm, addr) == (0, 0)
    assert not handle_mm_fault(mm, addr, write=True, fetch=False).flags
    pte, pmd = lookup_pte(mm, addr)
    assert pte & x86.P and pte & x86.RW and pte & x86.US
    assert pte & x86.NX                          # no PROT_EXEC
    assert pmd & x86.P and pmd & x86.RW and pmd & x86.US
    assert mm.rss == 1
    assert mm.nr_tables == 4                     # pgd, pud, pmd, pte
    f = (pte & x86.ADDR_MASK) >> 12
    assert k.frames.refcount[f] == 1 and k.frames.mapcount[f] == 1
    assert lookup_pte(mm, addr + PAGE) == (0, pmd)     # only the one page
    check(k)
    mmput(mm)
    assert all_free(k)


def test_read_fault_then_write_reuses_frame(k):
    mm = new_mm(k, rw_vma())
    addr = BASE + 5 * PAGE
    assert not handle_mm_fault(mm, addr, write=False, fetch=False).flags
    pte, _ = lookup_pte(mm, addr)
    assert pte & x86.P and not pte & x86.RW
    assert not handle_mm_fault(mm, addr, write=True, fetch=False).flags
    pte2, _ = lookup_pte(mm, addr)
    assert pte2 & x86.RW and (pte2 & x86.ADDR_MASK) == (pte & x86.ADDR_MASK)
    assert mm.rss == 1
    check(k)
    mmput(mm)
    assert all_free(k)


def test_exec_vma_maps_executable(k):
    mm = new_mm(k, VMA(BASE, BASE + PAGE, PROT_READ | PROT_EXEC))
    assert not handle_mm_fault(mm, BASE, write=False, fetch=True).flags
    pte, _ = lookup_pte(mm, BASE)
    assert pte & x86.P and not pte & x86.NX and not pte & x86.RW
    mmput(mm)
    assert all_free(k)


def test_fault_outside_vma_is_maperr(k):
    mm = new_mm(k, rw_vma())
    assert _sig(handle_mm_fault(mm, 0x10, write=True, fetch=False)) == (SIGSEGV, SEGV_MAPERR)
    assert _sig(handle_mm_fault(mm, BASE - 1, write=False, fetch=False)) == (SIGSEGV, SEGV_MAPERR)
    assert _sig(handle_mm_fault(mm, BASE + 16 * PAGE, write=False, fetch=False)) == \
        (SIGSEGV, SEGV_MAPERR)
    assert mm.rss == 0
    mmput(mm)
    assert all_free(k)


def test_write_to_readonly_vma_is_accerr(k):
    mm = new_mm(k, VMA(BASE, BASE + 4 * PAGE, PROT_READ))
    assert _sig(handle_mm_fault(mm, BASE + 8, write=True, fetch=False)) == (SIGSEGV, SEGV_ACCERR)
    assert not handle_mm_fault(mm, BASE + 8, write=False, fetch=False).flags
    assert _sig(handle_mm_fault(mm, BASE + 8, write=True, fetch=False)) == (SIGSEGV, SEGV_ACCERR)
    mmput(mm)
    assert all_free(k)


def test_prot_none_and_fetch_are_accerr(k):
    mm = new_mm(k, VMA(BASE, BASE + PAGE, 0), rw_vma(BASE + 2 * PAGE, 1))
    assert _sig(handle_mm_fault(mm, BASE, write=False, fetch=False)) == (SIGSEGV, SEGV_ACCERR)
    assert _sig(handle_mm_fault(mm, BASE + 2 * PAGE, write=False, fetch=True)) == \
        (SIGSEGV, SEGV_ACCERR)
    mmput(mm)
    assert all_free(k)


def test_stack_grows_down(k):
    top = 0x7FFF_FFFF_F000
    stack = VMA(top - 4 * PAGE, top, PROT_READ | PROT_WRITE, grows_down=True)
    mm = new_mm(k, stack)
    below = top - 10 * PAGE + 8
    assert not handle_mm_fault(mm, below, write=True, fetch=False).flags
    assert stack.start == top - 10 * PAGE
    # Further than the 8 MiB stack limit: no growth.
    assert _sig(handle_mm_fault(mm, top - (9 << 20), write=True, fetch=False)) == \
        (SIGSEGV, SEGV_MAPERR)
    mmput(mm)
    assert all_free(k)


def test_out_of_memory_in_fault_is_sigbus(k):
    mm = new_mm(k, rw_vma())
    k.frames.limit = 0
    assert _sig(handle_mm_fault(mm, BASE, write=True, fetch=False)) == (SIGBUS, 2)
    k.frames.limit = None
    assert not handle_mm_fault(mm, BASE, write=True, fetch=False).flags
    check(k)
    mmput(mm)
    assert all_free(k)


def test_many_pages_and_tables_freed(k):
    # Two VMAs 1 GiB apart: separate PUD entries and PTE tables.
    a = rw_vma(BASE, 600)
    b = rw_vma(BASE + (1 << 30), 3)
    mm = new_mm(k, a, b)
    for i in range(600):
        assert not handle_mm_fault(mm, BASE + i * PAGE, write=True, fetch=False).flags
    for i in range(3):
        assert not handle_mm_fault(mm, b.start + i * PAGE, write=False, fetch=False).flags
    assert mm.rss == 603
    check(k)
    mmput(mm)
    assert all_free(k)
    assert k.frames.nr_tables == 0


@pytest.mark.parametrize("case", ["by_vma", "many_slots", "table_outside_vmas"])
def test_exit_finds_every_pte_table(k, case):
    # Exit finds a never-shared mm's PTE tables from its VMAs; with too many
    # 2 MiB slots to read, or a table no VMA covers, it scans the PMD tables.
    vmas = [rw_vma(BASE, 3), rw_vma(BASE + 8 * PAGE, 2), rw_vma(0x7fff_0000_0000, 4)]
    if case == "many_slots":
        vmas.append(rw_vma(0x1000_0000, 16 * 512))       # 32 MiB
    mm = new_mm(k, *vmas)
    for v in vmas:
        for va in range(v.start, v.end, 97 * PAGE):
            assert not handle_mm_fault(mm, va, write=True, fetch=False).flags
    check(k)
    if case == "table_outside_vmas":
        mm.vmas.remove(vmas[2])          # its table stays: only the count tells
    mmput(mm)
    assert all_free(k)
    assert k.frames.nr_tables == 0


# ------------------------------------------------------------- uaccess
def test_copy_round_trip_across_page_boundary(k):
    mm = new_mm(k, rw_vma())
    addr = BASE + PAGE - 5
    data = b"0123456789abcdef"
    copy_to_user(mm, addr, data)
    assert copy_from_user(mm, addr, len(data)) == data
    assert mm.rss == 2
    # Neighbouring bytes are still zero.
    assert copy_from_user(mm, addr - 3, 3) == b"\0\0\0"
    assert copy_from_user(mm, addr + len(data), 4) == b"\0" * 4
    big = bytes(range(256)) * 40                 # 10240 bytes, three pages
    copy_to_user(mm, BASE + 2 * PAGE + 100, big)
    assert copy_from_user(mm, BASE + 2 * PAGE + 100, len(big)) == big
    check(k)
    mmput(mm)
    assert all_free(k)


def test_copy_from_unmapped_faults(k):
    mm = new_mm(k, rw_vma())
    with pytest.raises(Fault):
        copy_from_user(mm, 0x1000, 8)
    with pytest.raises(Fault):
        copy_to_user(mm, 0x1000, b"x")
    # Partly mapped: the tail runs past the VMA's end.
    with pytest.raises(Fault):
        copy_from_user(mm, BASE + 16 * PAGE - 4, 8)
    for bad in (TASK_SIZE, TASK_SIZE - 2, 0xFFFF_8000_0000_0000):
        with pytest.raises(Fault):
            copy_from_user(mm, bad, 4)
    assert copy_from_user(mm, 0x1000, 0) == b""
    mmput(mm)
    assert all_free(k)


def test_copy_to_readonly_faults(k):
    mm = new_mm(k, VMA(BASE, BASE + PAGE, PROT_READ))
    assert copy_from_user(mm, BASE, 4) == b"\0" * 4
    with pytest.raises(Fault):
        copy_to_user(mm, BASE, b"x")
    mmput(mm)
    assert all_free(k)


def test_kernel_tlb_follows_the_tables(k):
    """uaccess caches translations (mm.utlb); a COW fork's write-protect, a
    COW copy and munmap-style zaps must all be seen through it."""
    from minios.mm.teardown import zap_range
    parent = new_mm(k, rw_vma())
    copy_to_user(parent, BASE, b"parent")
    assert parent.utlb                                 # the write was cached
    child = fork_mm(parent, share=False)
    copy_to_user(child, BASE, b"child!")              # COW copy in the child
    copy_to_user(parent, BASE, b"PARENT")              # ... and in the parent
    assert copy_from_user(child, BASE, 6) == b"child!"
    assert copy_from_user(parent, BASE, 6) == b"PARENT"
    check(k)
    zap_range(parent, BASE, BASE + PAGE)               # the page is gone...
    assert copy_from_user(parent, BASE, 6) == b"\0" * 6   # ... a fresh zero page
    check(k)
    if check_invariants is not None:                   # a stale entry is caught
        key = next(iter(parent.utlb))
        parent.utlb[key] ^= 1 << 12
        with pytest.raises(Exception, match="kernel TLB"):
            check_invariants(k)
        parent.utlb[key] ^= 1 << 12
    mmput(child)
    mmput(parent)
    assert all_free(k)


# ---------------------------------------------- fork: plain and COW PTE
def fork_mm(parent: MM, share: bool) -> MM:
    """What fork does to memory: copy the VMA list, then the page tables."""
    from minios.mm.fork import copy_page_range
    child = MM(parent.kernel)
    for v in parent.vmas:
        child.vmas.append(copy.copy(v))
    copy_page_range(parent, child, share)
    return child


@pytest.mark.parametrize("share", [False, True], ids=["plain", "cow_pte"])
def test_fork_isolation_and_teardown(k, share):
    parent = new_mm(k, rw_vma(BASE, 1024))
    for i in range(0, 1024, 3):
        copy_to_user(parent, BASE + i * PAGE, b"P%d" % i)
    rss = parent.rss
    child = fork_mm(parent, share)
    check(k)
    assert child.rss + parent.rss == 2 * rss or share
    # The child writes: only it sees the change.
    copy_to_user(child, BASE, b"child!")
    copy_to_user(child, BASE + 9 * PAGE, b"c9")
    check(k)
    assert copy_from_user(parent, BASE, 6) == b"P0\0\0\0\0"
    assert copy_from_user(parent, BASE + 9 * PAGE, 2) == b"P9"
    assert copy_from_user(child, BASE, 6) == b"child!"
    # The parent writes: only it sees the change.
    copy_to_user(parent, BASE + 3 * PAGE, b"parent")
    assert copy_from_user(child, BASE + 3 * PAGE, 6) == b"P3\0\0\0\0"
    # Untouched shared pages read the same on both sides.
    assert copy_from_user(child, BASE + 6 * PAGE, 2) == b"P6"
    # A fresh page in the child does not appear in the parent.
    copy_to_user(child, BASE + PAGE, b"new")
    assert copy_from_user(parent, BASE + PAGE, 3) == b"\0\0\0"
    check(k)
    mmput(parent)
    check(k)
    assert copy_from_user(child, BASE + 6 * PAGE, 2) == b"P6"
    copy_to_user(child, BASE + 6 * PAGE, b"C6")          # now the sole owner
    mmput(child)
    assert all_free(k)
    assert k.frames.nr_tables == 0


@pytest.mark.parametrize("share", [False, True], ids=["plain", "cow_pte"])
def test_fork_child_exits_first(k, share):
    parent = new_mm(k, rw_vma(BASE, 8))
    copy_to_user(parent, BASE, b"data")
    child = fork_mm(parent, share)
    mmput(child)
    check(k)
    copy_to_user(parent, BASE, b"DATA")
    assert copy_from_user(parent, BASE, 4) == b"DATA"
    assert parent.rss == 1
    mmput(parent)
    assert all_free(k)


# Random scripts: touch, fork (plain/COW PTE), write, read back, exit.
_op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3), st.integers(0, 2047), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("fork"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("exit"), st.integers(0, 3)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, min_size=1, max_size=25))
def test_random_fork_write_exit(ops):
    k = Kernel(mem=64 << 20)
    # 2048 pages = 8 MiB: spans several PTE tables (2 MiB each).
    mms = [new_mm(k, rw_vma(BASE, 2048))]
    shadow = [dict()]                      # page -> expected bytes at offset 0
    for op in ops:
        i = op[1] % len(mms) if mms else None
        if op[0] == "write" and mms:
            page, data = op[2], op[3]
            copy_to_user(mms[i], BASE + page * PAGE, data)
            old = shadow[i].get(page, b"")
            shadow[i][page] = data + old[len(data):]
        elif op[0] == "fork" and mms and len(mms) < 6:
            mms.append(fork_mm(mms[i], op[2]))
            shadow.append(dict(shadow[i]))
        elif op[0] == "exit" and mms:
            mmput(mms.pop(i))
            shadow.pop(i)
        check(k)
        for mm, sh in zip(mms, shadow):
            for page, data in sh.items():
                assert copy_from_user(mm, BASE + page * PAGE, len(data)) == data
    for mm in mms:
        mmput(mm)
    check(k)
    assert all_free(k)


# ------------------------------------------------------------ page cache
def _file_vma(data: bytes, prot=PROT_READ | PROT_WRITE, npages=2):
    from minios.mm.mm_types import FileImage
    return VMA(BASE, BASE + npages * PAGE, prot, image=FileImage(data, 0, BASE + len(data)))


def _pfn(mm, va=BASE):
    from minios.mm.pgtable import entry_pfn
    return entry_pfn(lookup_pte(mm, va)[0])


def test_page_cache_shares_file_pages_until_written(k):
    data = bytes(range(256)) * 16 + b"second page"          # 4 KiB + 11 bytes
    a = new_mm(k, _file_vma(data))
    b = new_mm(k, _file_vma(data))
    assert copy_from_user(a, BASE, 4) == data[:4]
    assert copy_from_user(b, BASE + PAGE, 11) == b"second page"
    assert copy_from_user(b, BASE, 4) == data[:4]
    fa, fb = _pfn(a), _pfn(b)
    assert fa == fb and k.frames.cached[fa] and k.frames.refcount[fa] == 2
    assert not lookup_pte(a, BASE)[0] & x86.RW            # shared read-only
    check(k)
    copy_to_user(a, BASE, b"AAAA")                        # a's private copy
    assert copy_from_user(b, BASE, 4) == data[:4]
    assert _pfn(a) != fb and k.frames.refcount[fb] == 1
    copy_to_user(b, BASE, b"BBBB")                        # last user: reused,
    assert not k.frames.cached[fb]                        # so no longer cached
    c = new_mm(k, _file_vma(data))
    assert copy_from_user(c, BASE, 4) == data[:4]         # a fresh cached copy
    check(k)
    for mm in (a, b, c):
        mmput(mm)
    assert all_free(k) and not k.frames.cache


def test_page_cache_reused_code_frame_flushes_translations(k):
    """A frame that held code is refilled only after a translation flush."""
    flushes = []
    k.frames.on_code_reuse = lambda: flushes.append(1)
    data = b"\xc3" * PAGE
    a = new_mm(k, _file_vma(data, PROT_READ | PROT_EXEC, 1))
    assert not handle_mm_fault(a, BASE, False, True).flags
    f = _pfn(a)
    assert k.frames.had_code[f]
    mmput(a)
    assert all_free(k) and not flushes
    while k.frames._next < k.frames.nframes:               # use up fresh frames
        k.frames.alloc()
    g = k.frames.alloc()                                   # only code frames left
    assert flushes and not k.frames.had_code[g]
