"""Guest memory as gdb sees it: ``m`` reads and ``M``/``X`` writes.

Reads never allocate: a page not faulted in yet reads as the fault would
fill it (``minios.mm.peek``). Writes are ptrace's FOLL_FORCE: they work on
read-only text, and a frame shared with another mm (COW, or a shared PTE
table) is copied first, so only the debugged process sees them.

Writes change code the CPU may have translated already; ``code_dirty``
says so until :meth:`Memory.flush_code`. Unicorn's ranged flush takes
*virtual* addresses (it translates them through the current page tables,
and an unmapped one leaves a page fault pending: the guest's next fault
arrives as #DF), so the stub always drops all translated code.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu import x86
from minios.gdbstub.packets import EFAULT_REPLY, GdbError
from minios.mm.fault import COW_COPY, COW_REUSE, handle_mm_fault, plan_write
from minios.mm.peek import peek_process_vm
from minios.mm.pgtable import TASK_SIZE, entry_pfn, lookup_pte, pte_index
from minios.mm.pte import pte_table_for_write, set_pte

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.mm.mm_types import MM

PAGE = 4096


class Memory:
    """Reads and forced writes of a debugged process's memory."""

    def __init__(self, k: "Kernel") -> None:
        self.k = k
        self.code_dirty = False         # code was rewritten or hooks changed

    def read(self, mm: "MM", va: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``va``, stopping at the first address with
        no mapping; nothing is faulted in."""
        return peek_process_vm(mm, va, n)

    def write(self, mm: "MM", va: int, data: bytes) -> None:
        """FOLL_FORCE write of ``data`` at ``va`` (GdbError(E14) at the first
        unmapped page: the pages before it are written)."""
        pos = 0
        while pos < len(data):
            a = va + pos
            chunk = min(len(data) - pos, PAGE - (a & (PAGE - 1)))
            pfn = self._private_frame(mm, a)
            self.k.ram.write((pfn << 12) | (a & (PAGE - 1)), data[pos:pos + chunk])
            pos += chunk
        self.code_dirty = True

    def _private_frame(self, mm: "MM", va: int) -> int:
        """The frame backing ``va`` in ``mm``, present and not shared with
        any other mm (copied if it was). GdbError(E14) if unmapped. The
        write is planned as the fault handler would make it (``plan_write``,
        forced past the protection as ptrace's FOLL_FORCE is): the shared
        tables on the way are broken, and the page is copied where a COW
        fault would copy it, or where it would reuse a page-cache frame
        (kept unchanged for its other readers)."""
        k = self.k
        if not 0 <= va < TASK_SIZE:
            raise GdbError(EFAULT_REPLY)
        vma = mm.vma_at(va)
        if vma is None:
            raise GdbError(EFAULT_REPLY)
        pte, _ = lookup_pte(mm, va)
        if not pte & x86.P:
            vmf = handle_mm_fault(mm, va, False, not vma.prot & 1)
            # It may have flushed code by a physical address, which Unicorn
            # took as a virtual one, leaving a page fault pending.
            k.cpu.abandon_exception()
            if vmf.flags:
                raise GdbError(EFAULT_REPLY)
        page = va & ~(PAGE - 1)
        plan = plan_write(mm, page, force=True)
        table = pte_table_for_write(mm, page)      # breaks the shared tables
        pte = int(k.ram.q[table * 512 + pte_index(page)])
        if not pte & x86.P:
            raise GdbError(EFAULT_REPLY)
        pfn = entry_pfn(pte)
        if plan.action is COW_COPY or (plan.action is COW_REUSE and k.frames.cached[pfn]):
            new = k.frames.alloc()
            k.ram.copy_frame(new, pfn)
            set_pte(mm, table, page, (new << 12) | (pte & ~x86.ADDR_MASK))
            k.cpu.flush_tlb()
            pfn = new
        return pfn

    def flush_code(self) -> None:
        """Drop all translated code (see the module doc)."""
        self.code_dirty = False
        self.k.cpu.flush_code()
