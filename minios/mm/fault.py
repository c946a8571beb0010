"""The page-fault handler (Linux's mm/memory.c, in miniature).

``handle_mm_fault`` returns a :class:`VmFault`, Linux's ``struct
vm_fault`` with its ``VM_FAULT_*`` result: what the fault did (each
COW-shared table it broke on the way down, and what it did with the page)
and, when it failed, the signal the task must get. Every PTE it installs
goes through ``pte_table_for_write``; a write through a COW-shared table
breaks the share there first.

:func:`plan_write` predicts, without changing anything, what a write
would do: the debugger's walk and the GDB stub's forced writes ask it.
It follows the rules the fault itself follows (``cow.break_kind`` for a
table, :func:`wp_page_kind` for the page).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu import x86
from emu.ram import PAGE_SHIFT, PAGE_SIZE
from minios.mm.cow import COPY, break_kind, share_count
from minios.mm.frames import OutOfMemory
from minios.mm.mm_types import PROT_EXEC, PROT_READ, PROT_WRITE, STACK_LIMIT, page_down, page_up
from minios.mm.pgtable import (LEVEL_NAME, PMD_SHIFT, PUD_SHIFT, TABLE_COW, entry_pfn,
                               flush_tlb_mm, pgd_index, pte_index)
from minios.mm.pte import pte_table_for_write, set_pte

if TYPE_CHECKING:
    from minios.mm.mm_types import MM, VMA

SIGBUS, SIGSEGV = 7, 11
SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR = 1, 2, 2

# Linux's VM_FAULT_* bits a fault here can end with (0: resolved, retry).
VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV = 0x1, 0x2, 0x40

# What a fault did with the page (VmFault.action), as the fault trace
# names it; None: nothing (a stale translation, or a failure).
DEMAND_ZERO = "demand-zero"
FILE_PAGE = "file page"
FILE_PAGE_CACHED = "file page (page cache)"
SHARED_PAGE = "shared page"
COW_REUSE = "COW reuse"
COW_COPY = "COW copy"
MAKE_WRITABLE = "make writable"    # a read-only page of a shared mapping


class VmFault:
    """One page fault: Linux's ``struct vm_fault`` plus its ``VM_FAULT_*``
    result. ``address``, ``write``, ``fetch``: the access; ``error_code``:
    the CPU's page-fault error code (x86.PF_*) if the CPU raised it, else
    0 (an access by the kernel, or a plan). ``breaks``: per
    COW-shared table broken on the way down, top first, (level name, COPY
    or REUSE, how many shared it before), or None for none. ``action``:
    what was done with the page (the constants above, or None).
    ``flags``: VM_FAULT_* bits, 0 when the access can be retried; then
    ``signal`` and ``si_code`` say what the task must get.
    A fault allocates this one small object and nothing more, and sets
    only what happened: the outcome fields start as class defaults (a
    demand-zero fault pays for the access and its action, nothing else)."""

    breaks: list[tuple[str, str, int]] | None = None
    action: str | None = None
    flags = 0
    signal = 0
    si_code = 0

    def __init__(self, address: int, write: bool, fetch: bool, error_code: int = 0) -> None:
        self.address = address
        self.write = write
        self.fetch = fetch
        self.error_code = error_code

    def broke(self, level: str, kind: str, sharers: int) -> None:
        """Record a table break (``cow.break_cow`` calls this)."""
        if self.breaks is None:
            self.breaks = []
        self.breaks.append((level, kind, sharers))

    def fail(self, flags: int, signal: int, si_code: int) -> "VmFault":
        """End the fault with VM_FAULT_* ``flags``: the task gets ``signal``."""
        self.flags, self.signal, self.si_code = flags, signal, si_code
        return self

    def describe(self) -> str:
        """What the fault did, as the fault trace prints it after ``->``:
        e.g. ``PUD table share broken by copy (was shared by 2), PMD table
        share broken by reuse (last sharer), COW copy``, ``SIGSEGV``,
        ``nothing to do``. (Making a shared mapping's page writable has
        never been named there.)"""
        notes = []
        for level, kind, n in self.breaks or ():
            notes.append(f"{level} table share broken by copy (was shared by {n})"
                         if kind == COPY else
                         f"{level} table share broken by reuse (last sharer)")
        if self.flags:
            notes.append("SIGSEGV" if self.signal == SIGSEGV else "SIGBUS")
        elif self.action is not None and self.action != MAKE_WRITABLE:
            notes.append(self.action)
        return ", ".join(notes) or "nothing to do"

    def __repr__(self) -> str:
        return (f"VmFault({self.address:#x}, {'write' if self.write else 'read'}"
                f"{', fetch' if self.fetch else ''}: {self.describe()})")


def _pte_flags(vma: "VMA", writable: bool) -> int:
    f = x86.P | x86.US
    if writable:
        f |= x86.RW | x86.D
    if not vma.prot & PROT_EXEC:
        f |= x86.NX
    return f


def _can_expand(mm: "MM", vma: "VMA", addr: int) -> bool:
    """The stack VMA ``vma`` may grow down to ``addr``."""
    new_start = page_down(addr)
    if vma.end - new_start > STACK_LIMIT:
        return False
    return not any(v.end <= vma.start and v.end > new_start for v in mm.vmas)


def _expand_stack(mm: "MM", vma: "VMA", addr: int) -> bool:
    if not _can_expand(mm, vma, addr):
        return False
    new_start = page_down(addr)
    vma.pgoff -= (vma.start - new_start) // PAGE_SIZE
    vma.start = new_start
    return True


def access_error(vma: "VMA", write: bool, fetch: bool) -> bool:
    """The access is one ``vma``'s protection forbids (SEGV_ACCERR).
    (handle_mm_fault has this test inline: a call costs a demand-zero
    fault 2% more.)"""
    return bool((write and not vma.prot & PROT_WRITE) or (fetch and not vma.prot & PROT_EXEC)
                or not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC))


def handle_mm_fault(mm: "MM", addr: int, write: bool, fetch: bool,
                    error_code: int = 0) -> VmFault:
    """Resolve a fault at ``addr``; the VmFault says what was done, or
    (``flags`` set) which signal the task must get. ``error_code`` (not 0):
    the CPU raised the fault, with this error code. Then the faulting
    access is the CPU's own, which it retries; the retry refills
    its TLB entry for this page (replacing any read-only one for the old
    frame), so remapping this page alone needs no flush. An access by the
    kernel (uaccess) has no such retry."""
    vmf = VmFault(addr, write, fetch, error_code)
    vma = mm.find_vma(addr)
    if vma is None:
        return vmf.fail(VM_FAULT_SIGSEGV, SIGSEGV, SEGV_MAPERR)
    if addr < vma.start:
        if not (vma.grows_down and _expand_stack(mm, vma, addr)):
            return vmf.fail(VM_FAULT_SIGSEGV, SIGSEGV, SEGV_MAPERR)
    if (write and not vma.prot & PROT_WRITE) or (fetch and not vma.prot & PROT_EXEC) \
            or not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):   # access_error, inline
        return vmf.fail(VM_FAULT_SIGSEGV, SIGSEGV, SEGV_ACCERR)
    va = addr & ~(PAGE_SIZE - 1)
    if write and vma.anon is None and not vma.shared:
        vma.anon = object()                      # Linux's anon_vma_prepare
    im = vma.image
    if im is not None and im.sigbus_past_end and va >= page_up(im.end):
        return vmf.fail(VM_FAULT_SIGBUS, SIGBUS, BUS_ADRERR)   # a mapped file's pages past EOF
    try:
        table = pte_table_for_write(mm, va, True, vmf)
        pte = mm.kernel.ram.w[table * 512 + ((va >> PAGE_SHIFT) & 511)]
        if not pte & x86.P:
            do_fault(mm, vma, table, va, write, vmf)
        elif write and not pte & x86.RW:
            do_wp_page(mm, vma, table, va, pte, bool(error_code), vmf)
        else:
            mm.kernel.cpu.flush_tlb()          # a stale translation: retry
    except OutOfMemory:                        # (Linux would call the OOM killer)
        return vmf.fail(VM_FAULT_OOM, SIGBUS, BUS_ADRERR)
    return vmf


def nopage_kind(vma: "VMA", va: int) -> str:
    """What a fault on the absent page ``va`` of ``vma`` maps: a MAP_SHARED
    object's page, a file image's page, or a zeroed one (the bss past the
    image too). A write never maps a page-cache frame. (do_fault makes the
    same tests inline, in the same order: a call costs a demand-zero
    fault 2% more.)"""
    if vma.shm is not None:
        return SHARED_PAGE
    im = vma.image
    if im is not None and va < im.end:
        return FILE_PAGE
    return DEMAND_ZERO


def wp_page_kind(vma: "VMA", refcount: int) -> str:
    """The copy-or-reuse rule for a write to a present read-only page of
    ``vma`` whose frame has ``refcount`` references: a shared mapping's
    page is just made writable; the last user of a private page takes it
    back; any other user gets a copy."""
    if vma.shared:
        return MAKE_WRITABLE
    return COW_REUSE if refcount == 1 else COW_COPY


def do_fault(mm: "MM", vma: "VMA", table: int, va: int, write: bool, vmf: VmFault) -> None:
    """Not present: demand-zero, a file image page, or a MAP_SHARED page."""
    k = mm.kernel
    fr = k.frames
    if vma.shm is not None:                     # (the tests of nopage_kind)
        idx = vma.shm_pgoff + (va - vma.start) // PAGE_SIZE
        f = vma.shm.frames.get(idx)
        if f is None:
            f = fr.alloc()
            vma.shm.frames[idx] = f
        fr.refcount_at[f] += 1
        set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, bool(vma.prot & PROT_WRITE)))
        vmf.action = SHARED_PAGE
        return
    im = vma.image
    if im is not None and va < im.end:
        off = im.offset + (va - vma.start)
        n = min(PAGE_SIZE, im.end - va)
        if not write and not vma.shared and type(im.data) is bytes:
            f = _cached_file_page(k, im.data, off, n, vmf)
            set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, False))
        else:
            f = fr.alloc()
            if off < len(im.data):
                k.ram.write(f * PAGE_SIZE, im.data[off:off + n])
            k.frames.file[f] = True
            vmf.action = FILE_PAGE
            set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, write))
    else:
        f = fr.alloc()
        vmf.action = DEMAND_ZERO
        set_pte(mm, table, va, (f << PAGE_SHIFT) | _pte_flags(vma, write))
    if vma.prot & PROT_EXEC:
        fr.had_code[f] = True           # refilling it later flushes translations


def _cached_file_page(k, data: bytes, off: int, n: int, vmf: VmFault) -> int:
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
        vmf.action = FILE_PAGE_CACHED
        return f
    f = fr.alloc()
    if off < len(data):
        k.ram.write(f * PAGE_SIZE, data[off:off + n])
    fr.file[f] = True
    fr.cache_add(f, key)
    vmf.action = FILE_PAGE
    return f


def do_wp_page(mm: "MM", vma: "VMA", table: int, va: int, pte: int,
               by_cpu: bool, vmf: VmFault) -> None:
    """Write to a present read-only page of a writable VMA: COW."""
    k = mm.kernel
    fr = k.frames
    f = entry_pfn(pte)
    i = table * 512 + pte_index(va)
    kind = wp_page_kind(vma, fr.refcount_at[f])
    vmf.action = kind
    if kind is MAKE_WRITABLE:
        k.ram.w[i] = pte | x86.RW | x86.D
        return
    if kind is COW_REUSE:
        if fr.cached_at[f]:
            fr.uncache(f)                           # now this mm's private page
        k.ram.w[i] = pte | x86.RW | x86.D           # upgrade: no flush
        fr.file[f] = False
        k.stats["cow_reuse"] += 1
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


def plan_write(mm: "MM", addr: int, force: bool = False) -> VmFault:
    """What a write at ``addr`` would do, predicted without changing
    anything: a VmFault as ``handle_mm_fault(mm, addr, True, False)`` would
    return it now (a write needing no fault gives one with nothing done).
    ``force``: ptrace's FOLL_FORCE (the GDB stub's writes), which ignores
    the VMA's protection.

    The walk applies the fault's own rules with the counts the real walk
    would meet: each COW-shared table is broken by ``cow.break_kind`` of
    its share count (lent entries included: the real walk settles them
    first); a copy shares every table below once more (one more sharer,
    and below a copied PTE table each page has one more reference and its
    entry loses RW); then the page by :func:`nopage_kind` or
    :func:`wp_page_kind`."""
    vmf = VmFault(addr, True, False)
    vma = mm.find_vma(addr)
    if vma is None or (addr < vma.start and not (vma.grows_down
                                                 and _can_expand(mm, vma, addr))):
        return vmf.fail(VM_FAULT_SIGSEGV, SIGSEGV, SEGV_MAPERR)
    if not force and access_error(vma, True, False):
        return vmf.fail(VM_FAULT_SIGSEGV, SIGSEGV, SEGV_ACCERR)
    va = addr & ~(PAGE_SIZE - 1)
    im = vma.image
    if im is not None and im.sigbus_past_end and va >= page_up(im.end):
        return vmf.fail(VM_FAULT_SIGBUS, SIGBUS, BUS_ADRERR)
    k = mm.kernel
    q = k.ram.w
    pte, extra = 0, 0                   # extra: the table above was copied
    i = mm.pgd * 512 + pgd_index(va)
    for shift in (PUD_SHIFT, PMD_SHIFT, PAGE_SHIFT):
        e = q[i]
        if not e & x86.P:              # missing tables are created: nothing below
            break
        table = entry_pfn(e)
        if e & TABLE_COW or extra:
            n = share_count(k, table) + extra
            kind = break_kind(n)
            vmf.broke(LEVEL_NAME[shift], kind, n)
            extra = int(kind is COPY)
        i = table * 512 + ((va >> shift) & 511)
    else:
        pte = q[i]
    if not pte & x86.P:
        vmf.action = nopage_kind(vma, va)
        return vmf
    if extra and not vma.shared:       # a copied PTE table write-protects its pages
        pte &= ~x86.RW
    if not pte & x86.RW:
        vmf.action = wp_page_kind(vma, k.frames.refcount_at[entry_pfn(pte)] + extra)
    return vmf
