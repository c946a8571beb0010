"""What a fault says it did: ``handle_mm_fault``'s VmFault (the page action,
each COW-shared table it broke with its sharer count, the VM_FAULT_* failure
and signal), its ``describe()`` (the fault trace's text), and ``plan_write``
predicting exactly what a real write then does. Bare kernels, no guest code."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from minios.kernel import Kernel
from minios.mm.check import check_invariants
from minios.mm import cow, teardown
from minios.mm.cow import COPY, REUSE
from minios.mm.fault import (COW_COPY, COW_REUSE, DEMAND_ZERO, FILE_PAGE, FILE_PAGE_CACHED,
                             MAKE_WRITABLE, SHARED_PAGE, VM_FAULT_OOM, VM_FAULT_SIGBUS,
                             VM_FAULT_SIGSEGV, handle_mm_fault, plan_write)
from minios.mm.fork import dup_mm
from minios.mm.mm_types import (MM, VMA, FileImage, PROT_READ, PROT_WRITE, SharedObject)
from minios.mm.teardown import mmput
from minios.mm.uaccess import copy_to_user

PAGE = 4096
BASE = 0x40_0000                       # far from any stack: no lent rows
SIGBUS, SIGSEGV = 7, 11


@pytest.fixture
def k():
    return Kernel(mem=128 << 20)


def _mm(k, *vmas) -> MM:
    mm = MM(k)
    for v in vmas:
        mm.insert_vma(v)
    return mm


def _rw(start: int = BASE, npages: int = 16, **kw) -> VMA:
    return VMA(start, start + npages * PAGE, PROT_READ | PROT_WRITE, **kw)


def _write(mm, va: int):
    """A write fault at ``va``, checked against what plan_write said first."""
    plan = plan_write(mm, va)
    vmf = handle_mm_fault(mm, va, True, False)
    assert (plan.breaks, plan.action, plan.flags) == (vmf.breaks, vmf.action, vmf.flags)
    return vmf


# ------------------------------------------------------------ page actions
def test_demand_zero(k):
    mm = _mm(k, _rw())
    vmf = _write(mm, BASE + 5)
    assert (vmf.address, vmf.write, vmf.fetch) == (BASE + 5, True, False)
    assert vmf.action == DEMAND_ZERO and vmf.breaks is None and vmf.flags == 0
    assert vmf.describe() == "demand-zero"
    again = handle_mm_fault(mm, BASE, True, False)    # present and writable: retry
    assert again.action is None and again.describe() == "nothing to do"
    mmput(mm)


def test_file_pages_and_page_cache(k):
    data = bytes(range(256)) * 64                       # 4 pages of file
    im = lambda: FileImage(data, 0, BASE + len(data), "f")   # noqa: E731
    a = _mm(k, VMA(BASE, BASE + 8 * PAGE, PROT_READ, image=im()))
    b = _mm(k, VMA(BASE, BASE + 8 * PAGE, PROT_READ, image=im()))
    first = handle_mm_fault(a, BASE, False, False)
    assert first.action == FILE_PAGE and first.describe() == "file page"
    second = handle_mm_fault(b, BASE, False, False)
    assert second.action == FILE_PAGE_CACHED
    assert second.describe() == "file page (page cache)"
    bss = handle_mm_fault(a, BASE + 6 * PAGE, False, False)   # past the image: zeroes
    assert bss.action == DEMAND_ZERO
    mmput(a)
    mmput(b)


def test_shared_page(k):
    mm = _mm(k, _rw(shared=True, shm=SharedObject(users=1)))
    vmf = _write(mm, BASE)
    assert vmf.action == SHARED_PAGE and vmf.describe() == "shared page"
    mmput(mm)


def test_cow_copy_then_reuse(k):
    parent = _mm(k, _rw())
    copy_to_user(parent, BASE, b"x")
    child = dup_mm(parent, False)                     # plain fork: pages COW
    vmf = _write(child, BASE)
    assert vmf.action == COW_COPY and vmf.breaks is None
    assert vmf.describe() == "COW copy"
    vmf = _write(parent, BASE)                         # the last user takes it back
    assert vmf.action == COW_REUSE and vmf.describe() == "COW reuse"
    check_invariants(k)
    mmput(child)
    mmput(parent)


def test_shared_mapping_page_made_writable(k):
    """A read-only PTE of a shared mapping is made writable: the trace has
    never named that, so describe() says nothing of it."""
    data = bytes(PAGE)
    mm = _mm(k, VMA(BASE, BASE + PAGE, PROT_READ | PROT_WRITE, shared=True,
                    image=FileImage(data, 0, BASE + PAGE, "f")))
    assert handle_mm_fault(mm, BASE, False, False).action == FILE_PAGE
    vmf = _write(mm, BASE)
    assert vmf.action == MAKE_WRITABLE and vmf.describe() == "nothing to do"
    mmput(mm)


# ------------------------------------------------------------ table breaks
def test_three_level_break_with_sharer_counts(k):
    """Two COW forks share the parent's PUD table three ways. The first
    child's write copies it (3 sharers); its copy shares the PMD table
    once more (2), whose copy shares the PTE table (2), whose copy makes
    the page COW: copied. The parent, last, reuses."""
    parent = _mm(k, _rw())
    copy_to_user(parent, BASE, b"p")
    c1 = dup_mm(parent, True)
    c2 = dup_mm(parent, True)
    vmf = _write(c1, BASE)
    assert vmf.breaks == [("PUD", COPY, 3), ("PMD", COPY, 2), ("PTE", COPY, 2)]
    assert vmf.action == COW_COPY
    assert vmf.describe() == (
        "PUD table share broken by copy (was shared by 3), "
        "PMD table share broken by copy (was shared by 2), "
        "PTE table share broken by copy (was shared by 2), COW copy")
    vmf = _write(c2, BASE)
    assert vmf.breaks[0] == ("PUD", COPY, 2)
    vmf = _write(parent, BASE)
    assert vmf.breaks[0] == ("PUD", REUSE, 1)
    assert vmf.describe().startswith("PUD table share broken by reuse (last sharer)")
    check_invariants(k)
    for mm in (c1, c2, parent):
        mmput(mm)


# ---------------------------------------------------------------- failures
def test_sigsegv(k):
    mm = _mm(k, VMA(BASE, BASE + PAGE, PROT_READ))
    vmf = handle_mm_fault(mm, 0x10, False, False)
    assert (vmf.flags, vmf.signal, vmf.si_code) == (VM_FAULT_SIGSEGV, SIGSEGV, 1)
    assert vmf.describe() == "SIGSEGV"
    vmf = handle_mm_fault(mm, BASE, True, False)                 # read-only
    assert (vmf.flags, vmf.signal, vmf.si_code) == (VM_FAULT_SIGSEGV, SIGSEGV, 2)
    assert plan_write(mm, BASE).flags == VM_FAULT_SIGSEGV
    assert not plan_write(mm, BASE, force=True).flags           # FOLL_FORCE
    mmput(mm)


def test_sigbus_past_end_of_file(k):
    mm = _mm(k, VMA(BASE, BASE + 2 * PAGE, PROT_READ,
                    image=FileImage(b"abc", 0, BASE + 3, "f", sigbus_past_end=True)))
    vmf = handle_mm_fault(mm, BASE + PAGE, False, False)
    assert (vmf.flags, vmf.signal, vmf.si_code) == (VM_FAULT_SIGBUS, SIGBUS, 2)
    assert vmf.describe() == "SIGBUS"
    mmput(mm)


def test_out_of_memory_after_a_break(k):
    """A break made before memory runs out is reported, then SIGBUS."""
    parent = _mm(k, _rw())
    copy_to_user(parent, BASE, b"p")
    child = dup_mm(parent, True)
    k.frames.limit = 1                    # the PUD table copy, then nothing
    vmf = handle_mm_fault(child, BASE, True, False)
    k.frames.limit = None
    assert (vmf.flags, vmf.signal) == (VM_FAULT_OOM, SIGBUS)
    assert vmf.describe() == "PUD table share broken by copy (was shared by 2), SIGBUS"
    check_invariants(k)
    mmput(child)
    mmput(parent)


# ------------------------------------------------- plan_write, in general
_PAGES = [0, 1, 96, 97, 511, 512, 513, 700, 1023, 1024, 1027]   # touched or not, 3 tables
_ops = st.lists(st.tuples(st.sampled_from(["write", "write", "write", "fork", "cowfork",
                                           "cowfork-stack", "exit"]),
                          st.integers(0, 7), st.sampled_from(_PAGES)),
                min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops, st.booleans())
def test_plan_write_predicts_the_write(ops, bulk):
    """Random forks (plain, COW, COW with the stack in the arena: the path
    to it is copied), exits and writes over three PTE tables:
    before every write, plan_write says exactly which tables the write
    breaks, with what sharer counts, and what it does with the page.
    ``bulk``: rows are shared in bulk (``FEW_PAGES`` = 0), so a COW fork
    lends the stack's PMD table's other entries (cow.py, "Lent rows"),
    which the plan counts and the write settles."""
    saved = cow.FEW_PAGES
    if bulk:
        cow.FEW_PAGES = teardown.FEW_PAGES = 0
    try:
        _plan_write_run(ops)
    finally:
        cow.FEW_PAGES = teardown.FEW_PAGES = saved


def _plan_write_run(ops) -> None:
    k = Kernel(mem=64 << 20)
    npages = 2 * 512 + 4
    root = _mm(k, _rw(npages=npages))
    for i in range(0, npages, 97):            # some pages present, some not
        copy_to_user(root, BASE + i * PAGE, b"r")
    mms = [root]
    for op, who, page in ops:
        mm = mms[who % len(mms)]
        va = BASE + page * PAGE
        if op == "write":
            _write(mm, va)
        elif op != "exit" and len(mms) < 6:     # a stack in the arena: a path private
            mms.append(dup_mm(mm, op != "fork", va + PAGE if op == "cowfork-stack" else -1))
        elif op == "exit" and len(mms) > 1:
            mms.remove(mm)
            mmput(mm)
    check_invariants(k)
    for mm in mms:
        mmput(mm)
