"""The page-fault handler (Linux's mm/memory.c, in miniature).

``handle_mm_fault`` returns None when the access can be retried, or a
``(signal, si_code)`` pair when the task must get SIGSEGV or SIGBUS. Every
PTE it installs goes through ``pte_table_for_write``; a write through a
COW-shared PTE table breaks the share there first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu import x86
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.mm.frames import OutOfMemory
from minios.mm.mm_types import PROT_EXEC, PROT_READ, PROT_WRITE, STACK_LIMIT, page_down, page_up
from minios.mm.pgtable import entry_pfn, flush_tlb_mm, pte_index, pte_table_for_write, set_pte

if TYPE_CHECKING:
    from minios.mm.mm_types import MM, VMA

SIGBUS, SIGSEGV = 7, 11
SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR = 1, 2, 2


def _pte_flags(vma: "VMA", writable: bool) -> int:
    f = x86.P | x86.US
    if writable:
        f |= x86.RW | x86.D
    if not vma.prot & PROT_EXEC:
        f |= x86.NX
    return f


def _expand_stack(mm: "MM", vma: "VMA", addr: int) -> bool:
    new_start = page_down(addr)
    if vma.end - new_start > STACK_LIMIT:
        return False
    prev = [v for v in mm.vmas if v.end <= vma.start and v.end > new_start]
    if prev:
        return False
    vma.pgoff -= (vma.start - new_start) // PAGE_SIZE
    vma.start = new_start
    return True


def handle_mm_fault(mm: "MM", addr: int, write: bool, fetch: bool, by_cpu: bool = False):
    """Resolve a fault at ``addr``: None, or the (signal, si_code) to send.
    ``by_cpu``: the faulting access is the CPU's own, which it retries; the
    retry refills its TLB entry for this page (replacing any read-only one
    for the old frame), so remapping this page alone needs no flush. An
    access by the kernel (uaccess) has no such retry."""
    vma = mm.find_vma(addr)
    if vma is None:
        return SIGSEGV, SEGV_MAPERR
    if addr < vma.start:
        if not (vma.grows_down and _expand_stack(mm, vma, addr)):
            return SIGSEGV, SEGV_MAPERR
    if (write and not vma.prot & PROT_WRITE) or (fetch and not vma.prot & PROT_EXEC) \
            or not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
        return SIGSEGV, SEGV_ACCERR
    va = addr & ~(PAGE_SIZE - 1)
    if write and vma.anon is None and not vma.shared:
        vma.anon = object()                      # Linux's anon_vma_prepare
    im = vma.image
    if im is not None and im.sigbus_past_end and va >= page_up(im.end):
        return SIGBUS, BUS_ADRERR                # a mapped file's pages past EOF
    try:
        table = pte_table_for_write(mm, va)
        pte = mm.kernel.ram.w[table * 512 + ((va >> PAGE_SHIFT) & 511)]
        if not pte & x86.P:
            do_fault(mm, vma, table, va, write)
        elif write and not pte & x86.RW:
            do_wp_page(mm, vma, table, va, pte, by_cpu)
        else:
            mm.kernel.cpu.flush_tlb()          # a stale translation: retry
    except OutOfMemory:
        return SIGBUS, BUS_ADRERR
    return None


def do_fault(mm: "MM", vma: "VMA", table: int, va: int, write: bool) -> None:
    """Not present: demand-zero, a file image page, or a MAP_SHARED page."""
    k = mm.kernel
    fr = k.frames
    if vma.shm is not None:
        idx = vma.shm_pgoff + (va - vma.start) // PAGE_SIZE
        f = vma.shm.frames.get(idx)
        if f is None:
            f = fr.alloc()
            vma.shm.frames[idx] = f
        fr.refcount_at[f] += 1
        set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, bool(vma.prot & PROT_WRITE)))
        k.trace_fault_note = "shared page"
        return
    im = vma.image
    if im is not None and va < im.end:
        off = im.offset + (va - vma.start)
        n = min(PAGE_SIZE, im.end - va)
        if not write and not vma.shared and type(im.data) is bytes:
            f = _cached_file_page(k, im.data, off, n)
            set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, False))
        else:
            f = fr.alloc()
            if off < len(im.data):
                k.ram.write(f * PAGE_SIZE, im.data[off:off + n])
            k.frames.file[f] = True
            k.trace_fault_note = "file page"
            set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, write))
    else:
        f = fr.alloc()
        k.trace_fault_note = "demand-zero"
        set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, write))
    if vma.prot & PROT_EXEC:
        fr.had_code[f] = True           # refilling it later flushes translations


def _cached_file_page(k, data: bytes, off: int, n: int) -> int:
    """The page-cache frame holding ``data[off:off + n]`` (zero-filled past
    ``n``), with one more reference for the caller's mapping. ``data`` is
    immutable and kept alive by the VMAs mapping it, so its id is a safe
    key while any frame of it is cached. Sharing the frame also shares the
    CPU's translations of it: an exec of a binary already running costs no
    code translation."""
    fr = k.frames
    key = (id(data), off, n)
    f = fr.cache.get(key)
    if f is not None:
        fr.refcount_at[f] += 1
        k.trace_fault_note = "file page (page cache)"
        return f
    f = fr.alloc()
    if off < len(data):
        k.ram.write(f * PAGE_SIZE, data[off:off + n])
    fr.file[f] = True
    fr.cache_add(f, key)
    k.trace_fault_note = "file page"
    return f


def do_wp_page(mm: "MM", vma: "VMA", table: int, va: int, pte: int,
               by_cpu: bool = False) -> None:
    """Write to a present read-only page of a writable VMA: COW."""
    k = mm.kernel
    fr = k.frames
    f = entry_pfn(pte)
    i = table * 512 + pte_index(va)
    if vma.shared:
        k.ram.w[i] = pte | x86.RW | x86.D
        return
    if fr.refcount_at[f] == 1:
        if fr.cached_at[f]:
            fr.uncache(f)                           # now this mm's private page
        k.ram.w[i] = pte | x86.RW | x86.D           # upgrade: no flush
        fr.file[f] = False
        k.stats["cow_reuse"] += 1
        k.trace_fault_note = "COW reuse"
        return
    new = fr.alloc(zero=False)     # copied over whole
    k.ram.copy_frame(new, f)
    if vma.prot & PROT_EXEC:
        fr.had_code[new] = True
    # set_pte, unrolled (every fork's child takes this path): the old frame
    # keeps a reference (it had two or more), so nothing is freed, and RSS
    # stays (one page out, one in).
    rc, mc = fr.refcount_at, fr.mapcount_at
    rc[f] -= 1
    mc[f] -= 1
    mc[new] += 1
    k.ram.w[i] = (new << PAGE_SHIFT) | (pte & 0xFFF & ~x86.A) | x86.RW | x86.D | (pte & x86.NX)
    if not by_cpu:                                  # remapped: drop the old frame
        flush_tlb_mm(mm)
    else:
        mm.utlb.pop((va >> 12) << 1, None)          # the kernel's own TLB (a read entry)
    k.stats["cow_copy"] += 1
    k.trace_fault_note = "COW copy"
