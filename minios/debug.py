"""Stepping the kernel: break hooks that drop into a Python debugger, and
helpers that show page tables, registers, code and VMAs.

``minios run --break SPEC`` (repeatable) or ``Machine.add_break(SPEC)``
stops *inside the kernel*, before it handles the event, by calling
``sys.breakpointhook()`` - pdb by default; ``PYTHONBREAKPOINT`` picks
another debugger (``ipdb.set_trace``, an IDE's, or ``0`` to disable). SPEC:

* ``fault`` - every page fault; ``fault@LO-HI`` (hex or decimal, HI
  exclusive) or ``fault@ADDR`` (that page) for an address range;
  ``fault:cow-pte`` only faults below a COW-shared page table (the ones
  that break a share).
* ``syscall:NAME`` (``syscall:openat``, or a number), ``syscall`` for all.
* ``signal:NAME`` (``signal:SIGSEGV``, ``signal:SEGV`` or ``signal:11``).
* ``fork`` (after the child exists), ``exit`` (a process starting to exit).

A kind can be followed by ``:FILTER`` and ``@RANGE``; ``pid=N`` after a
comma limits a spec to one process (``fault@0x7f0000000000-0x7fff00000000,pid=2``).

At the stop, the debugger's frame has these locals::

    k, task, kind, what, addr      the kernel, the task, the event
    walk(addr=None, pid=None)      4-level walk of one address (default: the
                                   faulting address, else rip), every entry decoded
    ptdump(pid=None, all=False, tables=False)
                                   the address space as ranges, shared tables marked
    regs(pid=None)                 general registers
    disas(addr=None, n=10)         disassemble guest memory (default: at rip)
    mm(pid=None)                   the VMAs, as /proc/PID/maps
    ps()                           every task: pid, state, mm, rss, tables
    nobreak()                      remove every break and continue freely

``c`` continues the guest, ``n``/``s`` step through the kernel's own code,
``q`` stops the machine (``minios run`` exits with 130).
``minios.debug.session`` is the same helper set (``session.walk(...)``),
for debuggers started some other way (``PYTHONBREAKPOINT=mymodule.hook``)
and for frames you step into after leaving the stop (it stays set until
the next stop).

The helpers exist as plain functions of the kernel too, returning strings:
``walk(k, addr, pid=None)``, ``ptdump(k, pid=None)``, ``regs(k, pid=None)``,
``disas(k, addr=None, n=10, pid=None)``, ``vmas(k, pid=None)``, ``ps(k)``.
Nothing here changes guest state: memory is read through the page tables
without faulting anything in.
"""
from __future__ import annotations

import bdb
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from emu import x86
from minios.mm.cow import COPY
from minios.mm.fault import (COW_COPY, COW_REUSE, DEMAND_ZERO, FILE_PAGE, MAKE_WRITABLE,
                             SHARED_PAGE, SIGSEGV, plan_write)
from minios.mm.peek import peek
from minios.fs.procfs import maps
from minios.mm.pgtable import LEVEL_NAME, TABLE_COW, entry_pfn, lookup_pte
from minios.syscalls.all import lookup
from minios.trace.events import format_exit
from minios.trace.format import signame
from minios.uapi.signal import NAMES as SIGNALS

_P = np.uint64(x86.P)
_ADDR = np.uint64(x86.ADDR_MASK)
_KEYMASK = np.uint64(x86.P | x86.RW | x86.US | x86.NX)

session: "Session | None" = None      # the helpers of the current stop


class DebugQuit(KeyboardInterrupt):
    """``q`` in the debugger: stop the machine (a KeyboardInterrupt, so
    ``minios run`` exits with 130 and a Python caller sees ^C)."""


class BreakSpecError(ValueError):
    pass


# ------------------------------------------------------------------ tasks

def _task(k, pid=None):
    """The task for ``pid`` (a tid or a tgid); None: the current task, else
    the lowest pid alive."""
    if pid is None:
        if k.current is not None:
            return k.current
        if not k.tasks:
            raise LookupError("no task is alive")
        return k.tasks[min(k.tasks)]
    t = k.tasks.get(pid)
    if t is None:
        g = k.groups.get(pid)
        if g is not None and g.threads:
            t = g.threads[0]
    if t is None:
        raise LookupError(f"no task with pid {pid}")
    return t


def mm_users(k, mm) -> list[int]:
    """Pids (tids) of the tasks using ``mm``."""
    return sorted(t.tid for t in k.tasks.values() if t.mm is mm)


def mm_name(k, mm) -> str:
    pids = mm_users(k, mm)
    if not pids:
        return f"mm {id(mm) & 0xFFFFFF:06x} (no task left)"
    if len(pids) == 1:
        return f"pid {pids[0]}"
    return "pids " + ",".join(map(str, pids))


def table_owner(k, table: int) -> str:
    """Who owns page table ``table``: ``pid 1``."""
    mm = k.mm_ids.get(int(k.pt_owner[table]))
    return mm_name(k, mm) if mm is not None else "no owner"


# ----------------------------------------------------------- entry flags

_FLAGS = ((x86.P, "P"), (x86.RW, "RW"), (x86.US, "US"), (x86.A, "A"), (x86.D, "D"),
          (x86.PS, "PS"), (x86.NX, "NX"))


def entry_flags(e: int, level: str = "PTE") -> str:
    """``P RW US A D -- NX`` (absent bits as dashes); ``COW`` for an upper
    entry whose table is COW-shared (the software bit ``TABLE_COW``)."""
    out = [name if e & bit else "-" * len(name) for bit, name in _FLAGS]
    if level != "PTE" and e & TABLE_COW:
        out.append("COW")
    return " ".join(out)


# ------------------------------------------------------------------- walk

def walk(k, addr: int, pid: int | None = None) -> str:
    """The 4-level walk of ``addr`` in a task's address space: each entry's
    physical slot, raw value and flags; for each table below the PGD whether
    it is COW-shared, its share count and owner; for the PTE the page's
    refcount and mapcount; the VMA; what a write there would do."""
    t = _task(k, pid)
    mm = t.mm
    q, fr = k.ram.q, k.frames
    lines = [f"walk {addr:#x} in pid {t.tid}: pgd frame {mm.pgd:#x}"
             f"{' (cr3)' if k.current is not None and k.current.mm is mm else ''}"]
    table = mm.pgd
    names = ("PGD", "PUD", "PMD", "PTE")
    for level, shift in zip(names, (39, 30, 21, 12)):
        idx = (addr >> shift) & 511
        slot = table * 512 + idx
        e = int(q[slot])
        head = f"  {level}[{idx:3d}] @{slot * 8:#011x} = {e:#018x}  {entry_flags(e, level)}"
        if not e & x86.P:
            lines.append(head + "  (not present)")
            break
        nxt = entry_pfn(e)
        if level == "PTE":
            kind = "file" if fr.file[nxt] else "anon"
            head += (f"\n           -> page {nxt:#x} ({kind}, refcount {int(fr.refcount[nxt])}, "
                     f"mapcount {int(fr.mapcount[nxt])})")
        else:
            rc = int(fr.refcount[nxt])
            state = (f"COW-shared, share count {rc}" if e & TABLE_COW else
                     f"private (share count {rc})")
            head += (f"\n           -> {LEVEL_NAME[shift - 9]} table {nxt:#x}: {state}, "
                     f"owner {table_owner(k, nxt)}")
        lines.append(head)
        table = nxt
    v = mm.vma_at(addr)
    if v is None:
        lines.append("  VMA: none (an access faults with SIGSEGV)")
    else:
        one = [ln for ln in maps(k, t).splitlines() if ln.startswith(f"{v.start:08x}-")]
        lines.append("  VMA: " + (one[0] if one else f"{v.start:#x}-{v.end:#x}"))
    lines.append("  a write here: " + _predict_write(mm, addr))
    return "\n".join(lines)


_WRITE_STEPS = {DEMAND_ZERO: "demand-zero page", FILE_PAGE: "file page", SHARED_PAGE: "shared page",
                MAKE_WRITABLE: "make the shared page writable", COW_COPY: "COW copy of the page",
                COW_REUSE: "COW reuse of the page (last user)"}


def _predict_write(mm, addr: int) -> str:
    """What the fault handler will do for a write at ``addr``
    (``plan_write``): break each shared table on the way down (a copy
    makes every table below it shared once more), then the page."""
    plan = plan_write(mm, addr)
    if plan.flags:
        return ("SIGSEGV (no writable VMA)" if plan.signal == SIGSEGV else
                "SIGBUS (past the end of the mapped file)")
    steps = [f"break the {level} table share by " +
             (f"copy ({n} sharers)" if kind == COPY else "reuse (last sharer)")
             for level, kind, n in plan.breaks or ()]
    if plan.action is not None:
        steps.append(_WRITE_STEPS[plan.action])
    if not steps:
        return "no fault (writable)"
    return ", then ".join(steps)


# ----------------------------------------------------------------- ptdump

def _size(n: int) -> str:
    for unit, sh in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << sh and n % (1 << sh) == 0:
            return f"{n >> sh}{unit}"
    return f"{n >> 10}K"


def _pte_tables(k, mm):
    """(va of the table's first page, share note, table frame) for each
    PTE table of ``mm``'s user half, in address order. The note names the
    highest COW-shared table on the way: its level and share count."""
    q, t, rc = k.ram.q, k.ram.t, k.frames.refcount

    def shared(e: int, name: str, above: str) -> str:
        return above or (f"x{int(rc[entry_pfn(e)])} at {name}" if e & TABLE_COW else "")

    for i in np.flatnonzero(t[mm.pgd][:256] & _P).tolist():
        e1 = int(q[mm.pgd * 512 + i])
        n1 = shared(e1, "PUD", "")
        for j in np.flatnonzero(t[entry_pfn(e1)] & _P).tolist():
            e2 = int(q[entry_pfn(e1) * 512 + j])
            n2 = shared(e2, "PMD", n1)
            for s in np.flatnonzero(t[entry_pfn(e2)] & _P).tolist():
                e = int(q[entry_pfn(e2) * 512 + s])
                yield (i << 39) | (j << 30) | (s << 21), shared(e, "PTE", n2), entry_pfn(e)


def ptdump_mm(k, mm, title: str = "", tables: bool = False) -> str:
    """One address space as Linux's page-table dump prints one: ranges of
    pages with the same flags (``USR``, ``RW``/``ro``, ``NX``/``x``), each
    with its PTE tables: private, or COW-shared (the highest shared table on
    the way: its level and share count) and their owner.
    The flags are the PTE's own: below a COW-shared table every write
    faults whatever they say. ``tables=True``: one line per run of PTE
    tables with the same sharing instead (2 MiB each)."""
    out = []
    runs = []                    # [start, end, key, note]
    trows = []                   # [start, end, note, [tables], pages]
    ntables = nshared = npages = 0
    for base, share, table in _pte_tables(k, mm):
        ntables += 1
        if share:
            nshared += 1
            note = f"COW-shared {share}, owner {table_owner(k, table)}"
        else:
            note = "private"
        ents = k.ram.t[table]
        present = (ents & _P) != 0
        idx = np.flatnonzero(present)
        npages += len(idx)
        if tables:
            if trows and trows[-1][1] == base and trows[-1][2] == note:
                trows[-1][1] = base + (1 << 21)
                trows[-1][3].append(table)
                trows[-1][4] += len(idx)
            else:
                trows.append([base, base + (1 << 21), note, [table], len(idx)])
            continue
        if not len(idx):
            continue
        keys = (ents[idx] & _KEYMASK)
        # split where the index jumps or the key changes
        brk = np.flatnonzero((np.diff(idx) != 1) | (keys[1:] != keys[:-1])) + 1
        starts = np.concatenate(([0], brk))
        ends = np.concatenate((brk, [len(idx)]))
        for a, b in zip(starts.tolist(), ends.tolist()):
            lo = base + int(idx[a]) * 4096
            hi = base + (int(idx[b - 1]) + 1) * 4096
            key = int(keys[a])
            if runs and runs[-1][1] == lo and runs[-1][2] == key and runs[-1][3][0] == note:
                r = runs[-1]
                r[1] = hi
                if r[3][-1] != table:
                    r[3].append(table)
            else:
                runs.append([lo, hi, key, [note, table]])
    head = title or mm_name(k, mm)
    out.append(f"---[ {head}: pgd {mm.pgd:#x}, {ntables} PTE tables ({nshared} COW-shared), "
               f"{npages} pages mapped, rss {mm.rss}, VmPTE {mm.nr_tables * 4} kB ]---")
    for lo, hi, note, tabs, n in trows:
        tdesc = (f"table {tabs[0]:#x}" if len(tabs) == 1 else
                 f"{len(tabs)} tables {tabs[0]:#x}..{tabs[-1]:#x}")
        out.append(f"{lo:#018x}-{hi:#018x} {_size(hi - lo):>7} {tdesc:<26} {n:>7} pages  {note}")
    for lo, hi, key, info in runs:
        note, tables = info[0], info[1:]
        perms = ("USR " if key & x86.US else "    ") + ("RW " if key & x86.RW else "ro ") \
            + ("NX" if key & x86.NX else "x ")
        tdesc = (f"table {tables[0]:#x}" if len(tables) == 1 else
                 f"{len(tables)} tables {tables[0]:#x}..{tables[-1]:#x}")
        out.append(f"{lo:#018x}-{hi:#018x} {_size(hi - lo):>7} {perms} pte  [{tdesc} {note}]")
    return "\n".join(out)


def ptdump(k, pid: int | None = None, all: bool = False, tables: bool = False) -> str:
    """The page-table dump of one process (default: the current one), or
    of every address space with ``all=True`` (see :func:`ptdump_mm`)."""
    if all:
        seen, parts = set(), []
        for tid in sorted(k.tasks):
            m = k.tasks[tid].mm
            if id(m) not in seen:
                seen.add(id(m))
                parts.append(ptdump_mm(k, m, _title(k, m), tables))
        return "\n".join(parts) if parts else "(no process alive)"
    t = _task(k, pid)
    return ptdump_mm(k, t.mm, _title(k, t.mm), tables)


def _title(k, mm) -> str:
    pids = mm_users(k, mm)
    comm = k.tasks[pids[0]].group.comm if pids else ""
    return f"{mm_name(k, mm)}" + (f" ({comm})" if comm else "")


# ------------------------------------------------------- regs, disas, vmas

_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
         "r12", "r13", "r14", "r15", "rip", "eflags", "fs_base", "gs_base")


def reg_values(k, pid: int | None = None) -> dict[str, int]:
    t = _task(k, pid)
    if t is k.current:
        return {r: k.cpu.reg(r) for r in _REGS}
    return {r: k.cpu.read_register(r, t.ctx) for r in _REGS}


def regs(k, pid: int | None = None) -> str:
    t = _task(k, pid)
    v = reg_values(k, t.tid)
    rows = []
    names = _REGS[:16]
    for i in range(0, 16, 4):
        rows.append("  ".join(f"{n:>3} {v[n]:016x}" for n in names[i:i + 4]))
    rows.append(f"rip {v['rip']:016x}  eflags {v['eflags']:08x}  fs_base {v['fs_base']:x}"
                f"  (pid {t.tid}, {'running' if t is k.current else 'saved context'})")
    return "\n".join(rows)


def read_memory(k, addr: int, n: int, pid: int | None = None) -> bytes | None:
    """Guest memory through the page tables, without faulting (see
    ``mm.peek``): bytes up to the first non-present page."""
    return peek(_task(k, pid).mm, addr, n)


def disas(k, addr: int | None = None, n: int = 10, pid: int | None = None) -> str:
    """``n`` instructions at ``addr`` (default: the task's rip), with
    capstone; ``=>`` marks rip. Pages not present are not faulted in."""
    import capstone
    t = _task(k, pid)
    rip = reg_values(k, t.tid)["rip"]
    if addr is None:
        addr = rip
    code = read_memory(k, addr, n * 15, t.tid)
    if code is None:
        return f"{addr:#x}: page not present (nothing faulted in yet)"
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    out = []
    for ins in md.disasm(code, addr):
        mark = "=>" if ins.address == rip else "  "
        out.append(f"{mark} {ins.address:#x}: {ins.bytes.hex():<20} {ins.mnemonic} {ins.op_str}".rstrip())
        if len(out) >= n:
            break
    if not out:
        out.append(f"{addr:#x}: cannot decode {code[:16].hex()}")
    return "\n".join(out)


def vmas(k, pid: int | None = None) -> str:
    """The VMAs of a process, as ``/proc/PID/maps``, after a summary line."""
    t = _task(k, pid)
    mm = t.mm
    head = (f"pid {t.tid}: {len(mm.vmas)} VMAs, {mm.total_vm() >> 10} kB, rss {mm.rss} pages, "
            f"brk {mm.brk:#x}{', COW PTE fork' if mm.cow_pgtable else ''}")
    return head + "\n" + maps(k, t).rstrip("\n")


def ps(k) -> str:
    rows = [f"{'PID':>5} {'TGID':>5} {'PPID':>5} S {'RSS':>7} {'VmPTE':>7}  MM      COMM"]
    for tid in sorted(k.tasks):
        t = k.tasks[tid]
        g = t.group
        ppid = g.parent.tgid if g.parent else 0
        cur = "*" if t is k.current else " "
        rows.append(f"{tid:>5} {g.tgid:>5} {ppid:>5} {t.state} {t.mm.rss:>7} "
                    f"{t.mm.nr_tables * 4:>5}kB  {id(t.mm) & 0xFFFFFF:06x}{cur} {g.comm}"
                    + (f"  (waiting: {t.wait_channel})" if t.state == "S" else ""))
    return "\n".join(rows)


# ---------------------------------------------------------------- session

class Session:
    """The helpers bound to a kernel and the task of a stop; each prints
    (returning None, so pdb shows the output once)."""

    def __init__(self, k, task=None, kind: str | None = None, what=None) -> None:
        self.k, self.task, self.kind, self.what = k, task, kind, what

    def _pid(self, pid):
        if pid is not None:
            return pid
        if self.task is not None and self.task.tid in self.k.tasks:
            return self.task.tid
        return None

    def walk(self, addr: int | None = None, pid: int | None = None) -> None:
        if addr is None:                  # the faulting address, else the task's rip
            addr = self.what if self.kind == "fault" else \
                reg_values(self.k, self._pid(pid))["rip"]
        print(walk(self.k, addr, self._pid(pid)))

    def ptdump(self, pid: int | None = None, all: bool = False, tables: bool = False) -> None:
        print(ptdump(self.k, self._pid(pid), all, tables))

    def regs(self, pid: int | None = None) -> None:
        print(regs(self.k, self._pid(pid)))

    def disas(self, addr: int | None = None, n: int = 10, pid: int | None = None) -> None:
        print(disas(self.k, addr, n, self._pid(pid)))

    def mm(self, pid: int | None = None) -> None:
        print(vmas(self.k, self._pid(pid)))

    def ps(self) -> None:
        print(ps(self.k))

    def nobreak(self) -> None:
        clear_breaks(self.k)
        print("minios: every break removed")


def describe(kind: str, what, task) -> str:
    if kind == "fault":
        return f"page fault at {what:#x}"
    if kind == "syscall":
        return f"syscall {what}"
    if kind == "signal":
        return f"signal {signame(what)}"
    if kind == "fork":
        return f"fork, child pid {what.tid}"
    if kind == "exit":
        return "exit (" + format_exit(task, what).split("+++ ")[1].rstrip(" +") + ")"
    return f"{kind} {what}"


def stop(k, kind: str, what, task) -> None:
    """A break: print where we are and call ``sys.breakpointhook()`` with
    the helpers in this frame's locals."""
    global session
    s = Session(k, task, kind, what)
    walk, ptdump, regs, disas, mm, ps, nobreak = (s.walk, s.ptdump, s.regs, s.disas,  # noqa: F841
                                                  s.mm, s.ps, s.nobreak)
    addr = what if kind == "fault" else None                                          # noqa: F841
    session = s          # stays after the stop: minios.debug.session.walk() while stepping
    if os.environ.get("PYTHONBREAKPOINT") != "0":
        print(f"minios: break on {describe(kind, what, task)} in pid {task.tid} "
              f"(rip {k.cpu.reg('rip'):#x}). Helpers: walk(addr) ptdump() regs() disas() mm() "
              f"ps() nobreak(); k, task, what; 'c' continues.", file=sys.stderr, flush=True)
    try:
        sys.breakpointhook()
        pass    # <- minios break, inside the kernel: walk(addr) ptdump() regs() disas() mm()
    except bdb.BdbQuit:
        clear_breaks(k)
        raise DebugQuit("quit from the debugger") from None


# ----------------------------------------------------------- break specs

@dataclass
class Break:
    kind: str
    filter: str = ""
    lo: int | None = None
    hi: int | None = None
    pid: int | None = None
    text: str = ""
    action: Callable | None = None
    extra: dict = field(default_factory=dict)

    def matches(self, k, what, task) -> bool:
        if self.pid is not None and task.tid != self.pid and task.pid != self.pid:
            return False
        if self.kind == "fault":
            if self.lo is not None and not self.lo <= what < self.hi:
                return False
            f = self.filter
            if f == "cow-pte":
                _, pmd = lookup_pte(task.mm, what)
                return bool(pmd & x86.P and pmd & TABLE_COW)
            return True
        if self.kind == "syscall":
            return not self.filter or self.filter == what or self.filter == str(task.syscall_nr)
        if self.kind == "signal":
            return not self.filter or self.extra["signo"] == what
        return True


KINDS = ("fault", "syscall", "signal", "fork", "exit")


def _num(s: str) -> int:
    return int(s.replace("_", ""), 0)


def parse_break(spec: str) -> Break:
    """``KIND[:FILTER][@LO-HI|@ADDR][,pid=N]`` -> Break (BreakSpecError)."""
    text = spec
    pid = None
    if "," in spec:
        spec, _, rest = spec.partition(",")
        for opt in rest.split(","):
            key, _, val = opt.partition("=")
            if key.strip() != "pid":
                raise BreakSpecError(f"{text}: unknown option {opt!r} (pid=N)")
            try:
                pid = int(val)
            except ValueError:
                raise BreakSpecError(f"{text}: bad pid {val!r}") from None
    rng = None
    if "@" in spec:
        spec, _, rng = spec.partition("@")
    kind, _, filt = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise BreakSpecError(f"{text}: unknown event {kind!r} (one of {', '.join(KINDS)})")
    b = Break(kind, filt.strip(), pid=pid, text=text)
    if rng is not None:
        if kind != "fault":
            raise BreakSpecError(f"{text}: only fault takes an @address range")
        try:
            if "-" in rng:
                lo, _, hi = rng.partition("-")
                b.lo, b.hi = _num(lo), _num(hi)
            else:
                b.lo = _num(rng) & ~0xFFF
                b.hi = b.lo + 0x1000
        except ValueError:
            raise BreakSpecError(f"{text}: bad address range {rng!r} (LO-HI or ADDR)") from None
        if b.hi <= b.lo:
            raise BreakSpecError(f"{text}: empty address range")
    if kind == "fault" and b.filter not in ("", "cow-pte"):
        raise BreakSpecError(f"{text}: the fault filter is cow-pte")
    if kind == "signal" and b.filter:
        f = b.filter.upper()
        byname = {v: n for n, v in SIGNALS.items()}
        if f.isdigit():
            b.extra["signo"] = int(f)
        elif f in byname or "SIG" + f in byname:
            b.extra["signo"] = byname.get(f) or byname["SIG" + f]
        else:
            raise BreakSpecError(f"{text}: unknown signal {b.filter!r}")
    if kind == "syscall" and b.filter:
        decl = lookup(b.filter)          # a name, or a number (kept if minios has none)
        if decl is None and not b.filter.isdigit():
            raise BreakSpecError(f"{text}: minios has no syscall {b.filter!r}")
        if decl is not None:
            b.filter = decl.name
    if kind in ("fork", "exit") and b.filter:
        raise BreakSpecError(f"{text}: {kind} takes no filter")
    return b


# A break kind -> (the kernel event it observes, fn(event args) -> (what, task)).
_EVENTS: dict[str, tuple[str, Callable]] = {
    "fault": ("fault_enter", lambda t, addr, err: (addr, t)),
    "syscall": ("syscall_enter", lambda t, nr: (syscall_name(nr), t)),
    "signal": ("signal", lambda t, sig, info: (sig, t)),
    "fork": ("fork", lambda parent, child, info: (child, parent)),
    "exit": ("exit", lambda t, status: (status, t)),
}


def syscall_name(nr: int) -> str:
    """What a syscall break sees: the call's name, or its number if unknown."""
    decl = lookup(nr)
    return decl.name if decl is not None else str(nr)


def add_break(k, spec: str | Break, action: Callable | None = None) -> Break:
    """Install a break on kernel ``k``. ``action(k, kind, what, task)``
    runs at each matching event (default :func:`stop`: the debugger).
    Several breaks on one kind share one event subscription; the first
    match acts."""
    b = parse_break(spec) if isinstance(spec, str) else spec
    b.action = action or stop
    breaks = k.breaks
    if b.kind not in breaks:
        kind = b.kind
        event, unpack = _EVENTS[kind]
        lst: list[Break] = []

        def hook(*args, _lst=lst, _kind=kind, _unpack=unpack):
            what, task = _unpack(*args)
            for br in _lst:
                if br.matches(k, what, task):
                    try:
                        br.action(k, _kind, what, task)
                    except bdb.BdbQuit:        # pdb raises it on the stop frame's return
                        clear_breaks(k)
                        raise DebugQuit("quit from the debugger") from None
                    return
        k.events.subscribe(event, hook)
        breaks[kind] = (lst, event, hook)
    breaks[b.kind][0].append(b)
    return b


def clear_breaks(k) -> None:
    """Remove every break (the tracer's subscriptions stay)."""
    for lst, event, hook in k.breaks.values():
        k.events.unsubscribe(event, hook)
    k.breaks.clear()

