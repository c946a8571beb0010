"""``Z``/``z``: software breakpoints and watchpoints.

A software breakpoint is an ``int3`` written into the text with a forced
write; reads show the original byte. On Unicorn 2.1.4 ``int3`` at CPL 3
reaches the INTR hook as vector 3 with RIP *after* the ``0xCC``: the stub
moves RIP back and reports ``swbreak`` (so gdb does not adjust the PC).
Another process on the same mm (a vfork child) that hits one is stepped
over it invisibly, with the original byte put back for one instruction.

Watchpoints use memory hooks. Under paging those get *guest-physical*
addresses, and their range filter is physical too; RIP in the hook is the
accessing instruction. So the stub hooks the frames that back the watched
range now and re-arms them whenever that can change (each resume, and
after a page fault on a watched page). A stop from a memory hook lands
*inside* the instruction: a write is done, RIP has not moved, and resuming
would run it again (an ``incl`` counted twice). So the write is undone
(the hook saved the old bytes), the instruction is single-stepped with the
hooks muted, and the stop is reported after it, as x86 debug registers
do. A read watchpoint needs only the step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from emu import x86
from emu.cpu import CPUError
from minios.gdbstub.memory import PAGE, Memory
from minios.gdbstub.packets import EFAULT_REPLY, GdbError
from minios.mm.pgtable import TASK_SIZE, entry_pfn, lookup_pte

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.mm.mm_types import MM
    from minios.proc.task import Task


@dataclass
class Breakpoint:
    addr: int
    mm: "MM"
    orig: bytes                 # the byte under the int3


@dataclass
class Watch:
    kind: int                   # 2 write, 3 read, 4 access (the Z packet type)
    addr: int
    length: int


_WATCH_NAME = {2: "watch", 3: "rwatch", 4: "awatch"}


def parse_z(body: bytes) -> tuple[int, int, int]:
    """``TYPE,ADDR,KIND[;cond...]`` -> (type, addr, length or kind)."""
    parts = body.split(b";")[0].split(b",")
    if len(parts) < 3:
        raise GdbError()
    return int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)


class Breakpoints:
    """gdb's software breakpoints, by address (in one mm each)."""

    def __init__(self, k: "Kernel", mem: Memory) -> None:
        self.k = k
        self.mem = mem
        self.bps: dict[int, Breakpoint] = {}
        self.stepover: set["Task"] = set()     # other tasks stopped on our int3

    def insert(self, mm: "MM", addr: int) -> None:
        bp = self.bps.get(addr)
        if bp is not None and bp.mm is mm:
            return
        orig = self.mem.read(mm, addr, 1)
        if len(orig) != 1:
            raise GdbError(EFAULT_REPLY)
        self.mem.write(mm, addr, b"\xcc")
        self.bps[addr] = Breakpoint(addr, mm, orig)

    def remove(self, addr: int) -> None:
        bp = self.bps.pop(addr, None)
        if bp is None:
            return
        if bp.mm in self.k.mms and bp.mm.users > 0:
            self.mem.write(bp.mm, addr, bp.orig)

    def remove_all(self) -> None:
        for addr in list(self.bps):
            try:
                self.remove(addr)
            except GdbError:
                pass
        self.bps.clear()
        self.mem.flush_code()

    def at(self, mm: "MM", addr: int) -> Breakpoint | None:
        """The breakpoint at ``addr`` in ``mm``, if any."""
        bp = self.bps.get(addr)
        return bp if bp is not None and bp.mm is mm else None

    def shadow(self, mm: "MM", start: int, data: bytes) -> bytes:
        """``data`` read at ``start`` with the original bytes shown under
        inserted breakpoints."""
        b = None
        for bp in self.bps.values():
            if bp.mm is mm and start <= bp.addr < start + len(data):
                if b is None:
                    b = bytearray(data)
                b[bp.addr - start] = bp.orig[0]
        return bytes(b) if b is not None else data

    def write(self, mm: "MM", va: int, data: bytes) -> None:
        """gdb's write: inserted breakpoints stay in (what gdb wrote over
        one becomes its original byte)."""
        b = bytearray(data)
        for bp in self.bps.values():
            if bp.mm is mm and va <= bp.addr < va + len(b):
                bp.orig = bytes((b[bp.addr - va],))
                b[bp.addr - va] = 0xCC
        self.mem.write(mm, va, bytes(b))

    def put_back(self, bps: list[Breakpoint], other: "MM") -> None:
        """Write the original bytes under ``bps`` into ``other``, a fork's
        copy that is no longer debugged."""
        for bp in bps:
            try:
                self.mem.write(other, bp.addr, bp.orig)
            except GdbError:
                pass

    def step_over(self, t: "Task", step: Callable[[], None]) -> None:
        """``t``, another process on a debugged mm (a vfork child), hit one
        of gdb's breakpoints: ``step()`` runs its instruction with the
        original byte in."""
        self.stepover.discard(t)
        rip = self.k.cpu.reg("rip")
        bp = self.at(t.mm, rip)
        if bp is None:
            return
        self.mem.write(bp.mm, rip, bp.orig)
        try:
            step()
        finally:
            if bp.addr in self.bps:
                self.mem.write(bp.mm, rip, b"\xcc")
            self.mem.flush_code()


class Watchpoints:
    """gdb's watchpoints, served by memory hooks on the backing frames."""

    def __init__(self, k: "Kernel", mem: Memory, debugged_mm: Callable[[], "MM | None"],
                 internal: Callable[[BaseException], None]) -> None:
        self.k = k
        self.mem = mem
        self.debugged_mm = debugged_mm          # the mm of the thread gdb sees
        self.internal = internal                # report a stub bug
        self.watches: list[Watch] = []
        self._wmap: list[tuple[int, int, int, Watch]] = []   # pa, pa_end, va, watch
        self._hooks: list = []
        self.rearm = False                      # the backing frames may have changed
        self.mute = False                       # hooks off (the stub's own steps)
        self.hit: tuple | None = None           # (task, watch, va, pa, old bytes)

    def packet(self, insert: bool, kind: int, addr: int, length: int) -> None:
        """Z2/Z3/Z4 (insert) or z2/z3/z4."""
        if not 0 < length <= PAGE or not 0 <= addr < TASK_SIZE:
            raise GdbError()
        w = Watch(kind, addr, length)
        if insert:
            if w not in self.watches:
                self.watches.append(w)
        elif w in self.watches:
            self.watches.remove(w)

    def covers_page(self, addr: int) -> bool:
        """Does a watch touch the page of ``addr``?"""
        page = addr & ~(PAGE - 1)
        return any(w.addr < page + PAGE and w.addr + w.length > page for w in self.watches)

    def clear_hooks(self) -> None:
        cpu = self.k.cpu
        for h in self._hooks:
            cpu.del_mem_hook(h)
        if self._hooks:
            self.mem.code_dirty = True  # blocks were translated with the hooks
        self._hooks = []
        self._wmap = []

    def arm(self) -> None:
        """Hook the frames that back the watched ranges now."""
        self.rearm = False
        self.clear_hooks()
        mm = self.debugged_mm()
        if not self.watches or mm is None:
            return
        for w in self.watches:
            va, end = w.addr, w.addr + w.length
            while va < end:
                chunk = min(end - va, PAGE - (va & (PAGE - 1)))
                pte, _ = lookup_pte(mm, va)
                if pte & x86.P:
                    pa = (entry_pfn(pte) << 12) | (va & (PAGE - 1))
                    self._wmap.append((pa, pa + chunk - 1, va, w))
                va += chunk
        kinds: dict[tuple[int, int], tuple[bool, bool]] = {}
        for pa, pe, _, w in self._wmap:
            r, wr = kinds.get((pa, pe), (False, False))
            kinds[(pa, pe)] = (r or w.kind in (3, 4), wr or w.kind in (2, 4))
        cpu = self.k.cpu
        for (pa, pe), (r, wr) in sorted(kinds.items()):
            self._hooks.append(cpu.add_mem_hook(pa, pe, r, wr, self._access))
        self.mem.code_dirty = True

    def _access(self, write: bool, addr: int, size: int) -> None:
        """The memory hook: record the first hit and stop the CPU."""
        if self.mute or self.hit is not None:
            return
        try:
            t = self.k.current
            if t is None or t.mm is not self.debugged_mm():
                return
            for pa, pe, va, w in self._wmap:
                if addr > pe or addr + size <= pa:
                    continue
                if (write and w.kind == 3) or (not write and w.kind == 2):
                    continue
                hit = va + max(addr, pa) - pa
                pte, _ = lookup_pte(t.mm, hit)
                if not pte & x86.P or entry_pfn(pte) != pa >> 12:
                    continue                    # stale: the page moved
                old = self.k.ram.read(addr, size) if write else None
                self.hit = (t, w, hit, addr, old)
                self.k.cpu.stop()
                return
        except Exception as e:
            self.internal(e)

    def fixup(self, t: "Task") -> str | None:
        """A hook stopped ``t`` inside the accessing instruction: undo its
        write and run it once with the hooks muted. Returns the stop
        reason (``watch:ADDR;``...), None if no hit of ``t`` is pending."""
        hit = self.hit
        if hit is None or hit[0] is not t:
            return None
        self.hit = None
        _, w, va, pa, old = hit
        if old is not None:
            self.k.ram.write(pa, old)
        self.mute = True
        try:
            step_one(self.k, self.internal)
        finally:
            self.mute = False
        self.mem.code_dirty = True
        return f"{_WATCH_NAME[w.kind]}:{max(va, w.addr):x};"


def step_one(k: "Kernel", internal: Callable[[BaseException], None]) -> None:
    """Run one instruction of the live task (the kernel's hooks fire as
    usual); a step Unicorn refuses is reported, not raised."""
    try:
        k.cpu.step()
    except CPUError as e:
        internal(e)
