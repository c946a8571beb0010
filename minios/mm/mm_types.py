"""Address spaces: an ``mm`` is a page-table root plus a sorted list of VMAs.

The VMA operations here (map, unmap, protect, split, brk, mremap) change the
VMA list and then ask ``minios.mm.memory`` to change the page tables, always per
PTE table and always through the choke point in ``minios.mm.pgtable``.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from emu.ram import PAGE_SIZE
from minios.mm.pgtable import pgd_alloc
from minios.uapi.mman import MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE  # noqa: F401

if TYPE_CHECKING:
    from minios.kernel import Kernel

MMF_COW_PGTABLE = 1 << 29

STACK_TOP = 0x7FFF_FFFF_F000
MMAP_BASE = 0x7FFF_F7FF_F000
STACK_LIMIT = 8 << 20


def page_down(x: int) -> int:
    return x & ~(PAGE_SIZE - 1)


def page_up(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass(eq=False)
class SharedObject:
    """Frames behind a MAP_SHARED anonymous mapping, by page offset. It holds
    one reference per frame, so the memory lives as long as any mapping."""
    frames: dict[int, int] = field(default_factory=dict)
    users: int = 0


@dataclass(eq=False)
class FileImage:
    """Bytes a private file mapping is filled from, page by page on fault."""
    data: bytes
    offset: int          # offset in ``data`` of the VMA's first byte
    end: int             # virtual address where file bytes stop (bss after)
    path: str = ""
    sigbus_past_end: bool = False   # mmap of a file: pages past EOF are SIGBUS


def _vma_end(v: "VMA") -> int:
    return v.end


@dataclass(eq=False)
class VMA:
    start: int
    end: int
    prot: int
    shared: bool = False
    grows_down: bool = False
    dontfork: bool = False
    name: str = ""
    shm: SharedObject | None = None
    shm_pgoff: int = 0           # page offset of ``start`` in ``shm``
    image: FileImage | None = None
    # Linux's vm_pgoff for anonymous memory: the page number the mapping was
    # created at. It moves with mremap, so a moved VMA does not merge with
    # its new neighbours (see MM.merge_vmas), exactly as on Linux.
    pgoff: int = -1
    # Linux's anon_vma, as far as merging cares: set by the first write
    # fault, shared by the parts of a split, new in a fork's child, whose
    # chain then also holds the parent's (``anon_forked``) so that it no
    # longer merges with fresh mappings (mm/vma.c is_mergeable_anon_vma).
    anon: object | None = None
    anon_forked: bool = False

    def __post_init__(self) -> None:
        if self.pgoff < 0:
            self.pgoff = self.start // PAGE_SIZE

    def split_copy(self, at: int) -> "VMA":
        """The part of this VMA from ``at`` on (this VMA keeps the rest)."""
        tail = VMA(at, self.end, self.prot, self.shared, self.grows_down,
                   self.dontfork, self.name, self.shm,
                   self.shm_pgoff + (at - self.start) // PAGE_SIZE, None,
                   self.pgoff + (at - self.start) // PAGE_SIZE, self.anon, self.anon_forked)
        if self.image:
            im = self.image
            tail.image = replace(im, offset=im.offset + (at - self.start))
        if self.shm:
            self.shm.users += 1
        self.end = at
        return tail


def _anon_private(v: VMA) -> bool:
    return v.image is None and v.shm is None and not v.shared


def _anon_mergeable(a: VMA, b: VMA) -> bool:
    if a.anon is None or b.anon is None:
        return not (a.anon_forked or b.anon_forked)
    return a.anon is b.anon


class MM:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.vmas: list[VMA] = []
        self._vcache: VMA | None = None
        self.rss = 0            # pages mapped by PTE tables this mm owns
        self.nr_tables = 0      # table frames this mm owns (VmPTE)
        self.nr_ptes = 0        # of which PTE tables
        self.pmd_at: dict[int, int] = {}       # va >> 30 -> PMD table on a private path
        self.utlb: dict[int, int] = {}         # uaccess's translations (uaccess._phys)
        self.utlb_gen = -1                     # ... valid while cpu.tlb_gen equals this
        self.flags = 0
        self.users = 1          # tasks using this mm (threads, vfork)
        self.start_brk = self.brk = 0
        self.mmap_base = MMAP_BASE
        self.start_stack = 0
        self.arg_start = self.arg_end = self.env_start = self.env_end = 0
        self.exe = ""
        self.id = kernel.next_mm_id      # what kernel.pt_owner records
        kernel.next_mm_id += 1
        self.pgd = pgd_alloc(self)       # may raise OutOfMemory: not registered yet
        kernel.mm_ids[self.id] = self
        kernel.mms[self] = None

    # ----------------------------------------------------------- lookup
    def find_vma(self, addr: int) -> VMA | None:
        """The first VMA with end > addr (it may start above addr), as Linux.
        The last hit is cached (Linux's vmacache): faults cluster."""
        v = self._vcache
        if v is not None and v.start <= addr < v.end:
            return v
        i = bisect.bisect_right(self.vmas, addr, key=_vma_end)   # (no list of ends)
        v = self.vmas[i] if i < len(self.vmas) else None
        self._vcache = v
        return v

    def remove_vma(self, vma: VMA) -> None:
        self.vmas.remove(vma)
        self._vcache = None

    def vma_at(self, addr: int) -> VMA | None:
        v = self.find_vma(addr)
        return v if v is not None and v.start <= addr else None

    def insert_vma(self, vma: VMA) -> None:
        bisect.insort(self.vmas, vma, key=lambda v: v.start)

    def overlapping(self, start: int, end: int) -> list[VMA]:
        return [v for v in self.vmas if v.start < end and v.end > start]

    def is_mapped(self, start: int, end: int) -> bool:
        """Every page of [start, end) belongs to some VMA."""
        return self.mapped_prefix(start, end - start) >= end - start

    def mapped_prefix(self, va: int, n: int, prot: int = 0) -> int:
        """How many of the ``n`` bytes at ``va`` lie in VMAs (with one of the
        ``prot`` bits, if given) before the first byte that does not."""
        pos, end = va, va + n
        while pos < end:
            v = self.find_vma(pos)
            if v is None or v.start > pos or (prot and not v.prot & prot):
                break
            pos = v.end
        return min(pos, end) - va

    def merge_vmas(self) -> None:
        """Join neighbours Linux keeps as one VMA: anonymous private memory
        end to end with the same protection and flags and contiguous
        ``pgoff``. mremap's "within one VMA" rule and /proc/PID/maps then
        see what Linux shows."""
        out: list[VMA] = []
        for v in self.vmas:
            p = out[-1] if out else None
            if p is not None and p.end == v.start and _anon_private(p) and _anon_private(v) \
                    and (p.prot, p.grows_down, p.dontfork, p.name) == \
                    (v.prot, v.grows_down, v.dontfork, v.name) \
                    and p.pgoff + (p.end - p.start) // PAGE_SIZE == v.pgoff \
                    and _anon_mergeable(p, v):
                p.end = v.end
            else:
                out.append(v)
        if len(out) != len(self.vmas):
            self.vmas = out
            self._vcache = None

    def split_at(self, addr: int) -> None:
        """Make ``addr`` a VMA boundary if it falls inside one."""
        v = self.vma_at(addr)
        if v is not None and v.start < addr:
            self.insert_vma(v.split_copy(addr))

    def get_unmapped_area(self, length: int, hint: int = 0) -> int | None:
        """Top-down search below mmap_base, as Linux's default layout."""
        if hint and hint + length <= self.mmap_base and not self.overlapping(hint, hint + length):
            return hint
        top = self.mmap_base
        for v in reversed(self.vmas):
            if v.start >= top:
                continue
            if v.end <= top - length:
                return top - length
            top = min(top, v.start)
        return top - length if top - length >= 0x10000 else None

    @property
    def cow_pgtable(self) -> bool:
        return bool(self.flags & MMF_COW_PGTABLE)

    def total_vm(self) -> int:
        return sum(v.end - v.start for v in self.vmas)
