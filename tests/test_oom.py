"""Out of memory in the middle of fork and of a PTE-table break: the kernel
must stay consistent (checker passes, nothing leaks) at every failure point."""
import pytest

from minios.mm.check import check_invariants
from minios.mm.teardown import mmput
from minios.mm.fault import handle_mm_fault
from minios.mm.frames import OutOfMemory
from minios.kernel import Kernel
from minios.mm.mm_types import MM, VMA, PROT_READ, PROT_WRITE
from minios.mm.fork import dup_mm
from minios.mm.uaccess import copy_from_user, copy_to_user

BASE = 0x4000_0000
SIZE = 16 << 20


def _sig(vmf) -> tuple[int, int]:
    """The (signal, si_code) a failed fault sends."""
    assert vmf.flags, vmf
    return vmf.signal, vmf.si_code


def _parent(k):
    mm = MM(k)
    mm.insert_vma(VMA(BASE, BASE + SIZE, PROT_READ | PROT_WRITE))
    for off in range(0, SIZE, 256 << 10):
        copy_to_user(mm, BASE + off, off.to_bytes(8, "little"))
    return mm


@pytest.mark.parametrize("share", [False, True])
def test_fork_fails_cleanly_at_every_allocation(share):
    k = Kernel(mem=128 << 20)
    mm = _parent(k)
    outcomes = set()
    for limit in range(0, 24):
        k.frames.limit = limit
        try:
            child = dup_mm(mm, share)
        except OutOfMemory:
            outcomes.add("oom")
            child = None
        finally:
            k.frames.limit = None
        check_invariants(k)
        if child is not None:
            outcomes.add("ok")
            mmput(child)
        for off in range(0, SIZE, 256 << 10):
            assert copy_from_user(mm, BASE + off, 8) == off.to_bytes(8, "little")
    assert outcomes == {"oom", "ok"}
    mmput(mm)
    assert k.frames.nr_free == k.boot_free


def test_table_break_out_of_memory_gives_sigbus_and_keeps_both_sides():
    k = Kernel(mem=128 << 20, cow_pte="always")
    parent = _parent(k)
    child = dup_mm(parent, True)
    assert child.nr_ptes == 0                      # every PTE table is shared
    k.frames.limit = 0
    assert _sig(handle_mm_fault(child, BASE, True, False)) == (7, 2)   # SIGBUS, BUS_ADRERR
    k.frames.limit = None
    check_invariants(k)
    copy_to_user(child, BASE, b"child!!!")
    check_invariants(k)
    assert copy_from_user(parent, BASE, 8) == (0).to_bytes(8, "little")
    assert copy_from_user(child, BASE, 8) == b"child!!!"
    mmput(child)
    mmput(parent)
    assert k.frames.nr_free == k.boot_free
