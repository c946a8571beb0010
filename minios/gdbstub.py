"""A GDB remote-serial-protocol stub: debug a minios guest with a real gdb.

    python3 -m minios run --gdb 127.0.0.1:1234 PROGRAM ARGS...
    gdb -ex 'target remote 127.0.0.1:1234' PROGRAM

minios boots, loads the program and waits for gdb before its first
instruction (the stop gdb sees is SIGTRAP at the ELF entry point). The stub
speaks the protocol of the GDB manual, "Remote Protocol": ``$data#cs``
packets with ``+``/``-`` acks (no-ack mode on request), ``qSupported``,
``qXfer:features:read`` (an i386:x86-64 GNU/Linux description: the general
registers, rip, eflags, the segment selectors, x87, SSE, orig_rax, fs_base,
gs_base), ``qXfer:auxv:read``, ``qXfer:exec-file:read``, ``?``, ``g G p P``,
``m M X``, ``c C s S`` and ``vCont``, ``Z0/z0`` (software breakpoints; ``Z1``
is served the same way), ``Z2/Z3/Z4`` (write/read/access watchpoints),
``qfThreadInfo``, ``qC``, ``H``, ``T``, ``qAttached``, ``QPassSignals``,
``QStartNoAckMode``, multiprocess extensions, ``k``, ``vKill``, ``D``,
``vFile:setfs/open/pread/close`` (read-only host I/O on the files the guest
sees: gdb reads the program through it, as from gdbserver), and ``^C`` (a
helper thread stops the CPU, so even a loop without syscalls is
interrupted). Stop replies carry rbp/rsp/rip, ``thread:``, ``swbreak:`` for breakpoints and
``watch:``/``rwatch:``/``awatch:`` with the data address; exits are ``W``/``X``.
Signal numbers on the wire are GDB's (SIGUSR1 is 30), translated both ways.
A bad packet gets ``E01`` (``E0e`` for an unmapped address, an empty reply
when it is not supported); nothing a debugger sends can take the machine down.

Debugging model: all-stop, one process (with its threads; registers of a
thread that is not running come from its saved context). After a fork the
stub keeps the parent, or with ``follow="child"`` switches to the child;
the other one gets its original bytes back under the breakpoints, as gdb
does when it detaches a fork. gdb is not told about forks or execs (no
fork-events). With multiprocess extensions (gdb asks for them) thread ids
are ``pPID.TID`` with the first process's PID throughout, a followed
child's threads appearing as new threads: knowing the real PID, gdb reads
/proc/PID/task/PID/maps (vFile) to find the vDSO and loads its symbols
from memory, as natively. Memory reads never allocate: a page not faulted in yet reads
as the fault would fill it. Writes are ptrace's FOLL_FORCE: they work on
read-only text and copy a frame shared with another mm first.

How it hooks into the kernel: ``kernel.debugger`` (``before_run``,
``on_trap``, ``on_signal``) plus the ``fork``, ``fault`` and ``exit`` break
hooks. The conversation with gdb only ever happens with the stopped task's
context live in the CPU and outside ``emu_start`` (in ``before_run`` or in
``on_signal``); the hooks that fire inside the CPU only record an event and
stop it.

Facts measured on Unicorn 2.1.4 that shape the code:

* ``int3`` at CPL 3 reaches the INTR hook as vector 3 with RIP *after* the
  ``0xCC``; the stub moves RIP back to the breakpoint and reports
  ``swbreak`` (so gdb does not adjust the PC itself).
* ``ctl_remove_cache(lo, hi)`` (behind ``CPU.flush_code(lo, hi)``) takes
  *virtual* addresses: Unicorn translates ``lo`` through the current page
  tables (``get_page_addr_code``). Given a physical address it invalidates
  nothing useful, and when the address is not mapped it leaves a page fault
  behind in ``old_exception`` (the guest's next fault arrives as #DF). So
  after rewriting code the stub drops all translated code
  (``flush_code()`` -> ``ctl_flush_tb``), and after faulting a page in with
  ``handle_mm_fault`` from outside a trap hook it resets old_exception.
* ``emu_start(rip, 0, count=1)`` runs one instruction only if the code is
  translated afresh: with blocks already cached it ran up to the end of a
  block. Every single step drops the translation cache first.
* Memory hooks (``UC_HOOK_MEM_READ/WRITE``) get *guest-physical* addresses
  under paging, and their ``begin``/``end`` filter is physical too; RIP in
  the hook is the accessing instruction. Watchpoints therefore hook the
  frames that currently back the watched range and are re-armed whenever
  that can change (each resume, and after a page fault on a watched page).
* ``emu_stop()`` in a memory hook stops *inside* the instruction: a write
  has been done, RIP has not moved, and resuming re-executes it (an
  ``incl`` counted twice). The stub undoes the write (the hook saved the old
  bytes), then single-steps the instruction with the watch hooks muted, and
  reports the stop after it, as x86 debug registers do. A read watchpoint
  needs only the step.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn import UcError, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_MEM_WRITE

from emu import x86
from minios.proc import signals
from minios.mm.fault import COW_COPY, COW_REUSE, handle_mm_fault, plan_write
from minios.mm.pgtable import TASK_SIZE, entry_pfn, lookup_pte, pte_index
from minios.mm.pte import pte_table_for_write, set_pte
from minios.proc.task import DEAD, RUNNING, ZOMBIE

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task

PAGE = 4096
PACKET_SIZE = 0x4000
SIGINT, SIGTRAP = signals.SIGINT, signals.SIGTRAP
EFAULT_REPLY = "E0e"       # E14: the address is not mapped

# ---------------------------------------------------------------- registers
# (name, bytes, Unicorn id or None, writable) in the order of the target
# description below, which is the order of the ``g`` packet.
_GPR = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
        "r11", "r12", "r13", "r14", "r15", "rip")
_FPU = (("fctrl", "FPCW"), ("fstat", "FPSW"), ("ftag", "FPTAG"), ("fiseg", "FCS"),
        ("fioff", "FIP"), ("foseg", "FDS"), ("fooff", "FDP"), ("fop", "FOP"))
REGS: list[tuple[str, int, int | None, bool]] = []
REGS += [(n, 8, getattr(X, "UC_X86_REG_" + n.upper()), True) for n in _GPR]
REGS += [("eflags", 4, X.UC_X86_REG_EFLAGS, True)]
REGS += [(n, 4, getattr(X, "UC_X86_REG_" + n.upper()), False)
         for n in ("cs", "ss", "ds", "es", "fs", "gs")]
REGS += [(f"st{i}", 10, X.UC_X86_REG_ST0 + i, False) for i in range(8)]
REGS += [(n, 4, getattr(X, "UC_X86_REG_" + u, None), False) for n, u in _FPU]
REGS += [(f"xmm{i}", 16, getattr(X, f"UC_X86_REG_XMM{i}"), True) for i in range(16)]
REGS += [("mxcsr", 4, X.UC_X86_REG_MXCSR, True), ("orig_rax", 8, None, False),
         ("fs_base", 8, X.UC_X86_REG_FS_BASE, True), ("gs_base", 8, X.UC_X86_REG_GS_BASE, True)]
REGNUM = {r[0]: i for i, r in enumerate(REGS)}
_FAST = set(_GPR) | {"eflags", "fs_base", "gs_base", "cs", "ss", "ds", "es", "fs", "gs"}


def _target_xml() -> str:
    def reg(name: str, bits: int, typ: str, group: str = "") -> str:
        g = f' group="{group}"' if group else ""
        return f'<reg name="{name}" bitsize="{bits}" type="{typ}" regnum="{REGNUM[name]}"{g}/>'
    flags = [("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
             ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17),
             ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21)]
    core = ['<feature name="org.gnu.gdb.i386.core">', '<flags id="i386_eflags" size="4">']
    core += [f'<field name="{n}" start="{b}" end="{b}"/>' for n, b in flags]
    core.append("</flags>")
    for n in _GPR:
        core.append(reg(n, 64, {"rbp": "data_ptr", "rsp": "data_ptr",
                                "rip": "code_ptr"}.get(n, "int64")))
    core.append(reg("eflags", 32, "i386_eflags"))
    core += [reg(n, 32, "int32") for n in ("cs", "ss", "ds", "es", "fs", "gs")]
    core += [reg(f"st{i}", 80, "i387_ext") for i in range(8)]
    core += [reg(n, 32, "int", "float") for n, _ in _FPU]
    core.append("</feature>")
    vec = [("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2), ("v16i8", "int8", 16),
           ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2)]
    sse = ['<feature name="org.gnu.gdb.i386.sse">']
    sse += [f'<vector id="{i}" type="{t}" count="{c}"/>' for i, t, c in vec]
    sse.append('<union id="vec128">')
    sse += [f'<field name="{f}" type="{i}"/>' for f, i in
            (("v4_float", "v4f"), ("v2_double", "v2d"), ("v16_int8", "v16i8"),
             ("v8_int16", "v8i16"), ("v4_int32", "v4i32"), ("v2_int64", "v2i64"),
             ("uint128", "uint128"))]
    sse.append("</union>")
    sse += [reg(f"xmm{i}", 128, "vec128") for i in range(16)]
    sse += [reg("mxcsr", 32, "int", "vector"), "</feature>"]
    linux = ['<feature name="org.gnu.gdb.i386.linux">', reg("orig_rax", 64, "int"),
             "</feature>"]
    segs = ['<feature name="org.gnu.gdb.i386.segments">', reg("fs_base", 64, "int"),
            reg("gs_base", 64, "int"), "</feature>"]
    return ('<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n'
            '<target version="1.0"><architecture>i386:x86-64</architecture>'
            "<osabi>GNU/Linux</osabi>" + "".join(core + sse + linux + segs) + "</target>")


TARGET_XML = _target_xml().encode()


# Signal numbers on the wire are GDB's own (include/gdb/signals.def), not
# Linux's: they agree up to 6 and on 8, 9, 11, 13-15 only (SIGUSR1 is 30).
_LINUX_TO_GDB = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 8, 9: 9, 10: 30, 11: 11,
                 12: 31, 13: 13, 14: 14, 15: 15, 17: 20, 18: 19, 19: 17, 20: 18, 21: 21,
                 22: 22, 23: 16, 24: 24, 25: 25, 26: 26, 27: 27, 28: 28, 29: 23, 30: 32,
                 31: 12, 32: 77, 64: 78}
_LINUX_TO_GDB.update({s: s - 33 + 45 for s in range(33, 64)})      # REALTIME_33..63
_GDB_TO_LINUX = {g: s for s, g in _LINUX_TO_GDB.items()}
_GDB_UNKNOWN = 143


def gdb_signal(sig: int) -> int:
    """Linux signal number -> GDB's."""
    return _LINUX_TO_GDB.get(sig, _GDB_UNKNOWN) if sig else 0


def host_signal(gsig: int) -> int:
    """GDB signal number -> Linux's (0 if it has none)."""
    return _GDB_TO_LINUX.get(gsig, 0)


class GdbError(Exception):
    """A request that gets an ``Exx`` reply."""

    def __init__(self, reply: str = "E01") -> None:
        super().__init__(reply)
        self.reply = reply


class _Gone(Exception):
    """gdb closed the connection (or it broke)."""


@dataclass
class _Stop:
    task: "Task"
    sig: int
    reason: str = ""            # "swbreak:;" / "watch:ADDR;" ...


@dataclass
class _Breakpoint:
    addr: int
    mm: object
    orig: bytes


@dataclass
class _Watch:
    kind: int                   # 2 write, 3 read, 4 access (the Z packet type)
    addr: int
    length: int


# ------------------------------------------------------------------ packets
def _checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


# gdb's File-I/O errno values: Linux's, but for ENAMETOOLONG; others are EUNKNOWN.
_GDB_ERRNOS = {1, 2, 4, 9, 13, 14, 16, 17, 19, 20, 21, 22, 23, 24, 27, 28, 29, 30}


def _gdb_errno(err: int) -> int:
    if err == errno.ENAMETOOLONG:
        return 91
    return err if err in _GDB_ERRNOS else 9999


def _escape(data: bytes) -> bytes:
    """Binary replies (qXfer): escape $ # } * as 0x7d, byte ^ 0x20."""
    out = bytearray()
    for b in data:
        if b in (0x23, 0x24, 0x2A, 0x7D):
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def _unescape(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            b = next(it, 0x20) ^ 0x20
        out.append(b)
    return bytes(out)


class _Conn:
    """One gdb connection: framing, checksums, acks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.noack = False
        self.last = b""
        self.interrupted = False
        self.packets = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, timeout: float | None) -> bool:
        if timeout is not None:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, OSError):
            raise _Gone from None
        if not data:
            raise _Gone
        self.buf += data
        return True

    def send(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        pkt = b"$" + payload + b"#" + _checksum(payload)
        self.last = pkt
        try:
            self.sock.sendall(pkt)
        except (ConnectionError, OSError):
            raise _Gone from None

    def _take(self) -> bytes | None:
        """One complete packet from the buffer (None if incomplete). Acks
        are consumed; ``-`` resends; ^C sets ``interrupted``."""
        buf = self.buf
        while buf:
            c = buf[0]
            if c == 0x24:                                    # '$'
                end = buf.find(b"#")
                if end < 0 or len(buf) < end + 3:
                    return None
                payload = bytes(buf[1:end])
                cs = bytes(buf[end + 1:end + 3])
                del buf[:end + 3]
                if not self.noack:
                    ok = cs.lower() == _checksum(payload)
                    try:
                        self.sock.sendall(b"+" if ok else b"-")
                    except (ConnectionError, OSError):
                        raise _Gone from None
                    if not ok:
                        continue
                return payload
            del buf[0]
            if c == 0x03:
                self.interrupted = True
            elif c == 0x2D and self.last:                    # '-': resend
                try:
                    self.sock.sendall(self.last)
                except (ConnectionError, OSError):
                    raise _Gone from None
        return None

    def get(self) -> bytes:
        while True:
            p = self._take()
            if p is not None:
                self.packets += 1
                return p
            self._recv(None)

    def poll_interrupt(self) -> bool:
        """Non-blocking: has gdb sent ^C while the guest ran?"""
        try:
            while self._recv(0):
                pass
        except _Gone:
            raise
        # keep any packet that arrived for the next get()
        i = self.buf.find(b"\x03")
        if i >= 0 and b"$" not in self.buf[:i]:
            del self.buf[i]
            self.interrupted = True
        hit, self.interrupted = self.interrupted, False
        return hit


def _hex_le(value: int, size: int) -> str:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()


# -------------------------------------------------------------------- stub
class GdbStub:
    """Serve one gdb connection for the first process the kernel runs (and,
    with ``follow="child"``, for each child it forks)."""

    def __init__(self, k: "Kernel", host: str = "127.0.0.1", port: int = 1234,
                 follow: str = "parent", log=None) -> None:
        if follow not in ("parent", "child"):
            raise ValueError("gdb follow mode must be parent or child")
        self.k = k
        self.follow = follow
        self.log = log or sys.stderr
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(1)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.conn: _Conn | None = None
        self.active = True
        self.task: "Task | None" = None          # the thread gdb sees as stopped/current
        self.group = None                         # the process being debugged
        self.gthread: "Task | None" = None        # Hg: registers of this thread
        self.pending: _Stop | None = None         # a stop not yet reported
        self.last_stop: _Stop | None = None
        self.stepping = False                     # resumed with s/S (else c/C)
        self.inject: int = 0                      # a signal gdb asked us to deliver
        self.pass_signals: set[int] = set()
        self.bps: dict[int, _Breakpoint] = {}
        self.watches: list[_Watch] = []
        self._wmap: list[tuple[int, int, int, _Watch]] = []   # pa, pa_end, va, watch
        self._whooks: list = []
        self._rearm = False
        self._mute = False                        # watch hooks off (our own steps)
        self._whit = None                         # (task, watch, va, pa, old bytes)
        self._stepover: set = set()               # other tasks stopped on our int3
        self._forks: list = []
        self._code_dirty = False
        self._auxv: bytes | None = None
        self._vfiles: dict = {}          # vFile descriptors -> open guest files
        self.multiprocess = False        # pPID.TID thread ids (qSupported)
        # The PID gdb knows: the first process's, also after following a
        # fork's child (gdb is not told of forks: a new PID would be a new
        # inferior to it), whose threads then appear as new threads.
        self.wire_pid: int | None = None
        self._stops = 0
        self._running = threading.Event()         # the guest runs (not stopped, not stepping)
        self._install_hooks()
        k.debugger = self
        self.say(f"waiting for gdb on {self.host}:{self.port}")

    # ------------------------------------------------------------ plumbing
    def say(self, msg: str) -> None:
        try:
            self.log.write(f"minios: gdb: {msg}\n")
            self.log.flush()
        except (OSError, ValueError):
            pass

    def _install_hooks(self) -> None:
        ev = self.k.events
        ev.subscribe("fork", self._on_fork)
        ev.subscribe("exit", self._on_exit)
        ev.subscribe("fault_enter", self._on_fault)

    def _ours(self, t: "Task") -> bool:
        return self.group is not None and t.group is self.group

    @property
    def mm(self):
        if self.task is not None and self.task.mm is not None:
            return self.task.mm
        return None

    def close(self, restore: bool = True) -> None:
        """Stop debugging: the guest runs on undisturbed (``restore``: with
        its original bytes under the breakpoints)."""
        if self.active:
            self.active = False
            self._clear_watch_hooks()
            if restore:
                try:
                    self._remove_all_breakpoints()
                except Exception as e:
                    self._internal(e)
            self.bps.clear()
        for f in self._vfiles.values():            # gdb's vFile descriptors left open
            f.close()
        self._vfiles.clear()
        if self.k.debugger is self:
            self.k.debugger = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        try:
            self.listener.close()
        except OSError:
            pass

    def finish(self) -> None:
        """The machine stopped: report the debugged process's end if gdb
        has not heard of it yet, and close everything."""
        if self.active and self.conn is not None and self.group is not None:
            st = self.group.exit_status if self.group.exit_status is not None \
                else self.group.group_exit
            if st is not None:
                try:
                    self._send_exit(st)
                except _Gone:
                    pass
        self.close()

    # ------------------------------------------------- kernel: debugger API
    def before_run(self, t: "Task") -> None:
        if not self.active:
            return
        try:
            self._before_run(t)
        except _Gone:
            self._disconnected()
        except Exception as e:          # a stub bug must not take the guest down
            self._internal(e)

    def on_trap(self, t: "Task", vector: int, err: int, addr: int) -> bool:
        if not self.active or vector != x86.BP:
            return False
        try:
            cpu = self.k.cpu
            at = cpu.reg("rip") - 1
            bp = self.bps.get(at)
            if bp is None or bp.mm is not t.mm:
                return False                    # not ours: SIGTRAP, as on Linux
            cpu.set_reg("rip", at)
            if self._ours(t):
                self.pending = _Stop(t, SIGTRAP, "swbreak:;")
            else:
                self._stepover.add(t)           # e.g. a vfork child on our mm
            cpu.stop()
            return True
        except Exception as e:
            self._internal(e)
            return False

    def on_signal(self, t: "Task", sig: int) -> bool:
        """True: gdb suppressed ``sig``; False: deliver it."""
        if not self.active or not self._ours(t) or sig == signals.SIGKILL:
            return False
        try:
            self._fixup_watch(t)
            if self.inject == sig:
                self.inject = 0
                return False
            if sig in self.pass_signals:
                return False
            self.pending = _Stop(t, sig)
            resume_sig = self._report_and_serve(t)
            if t.state != RUNNING:
                return True                     # killed meanwhile: nothing to deliver
            if not self.active:
                return False
            if resume_sig == sig:
                return False
            if resume_sig:
                self._inject_signal(t, resume_sig)
            return True
        except _Gone:
            self._disconnected()
            return t.state != RUNNING
        except Exception as e:
            self._internal(e)
            return False

    # ---------------------------------------------------------- kernel hooks
    def _on_fork(self, parent: "Task", child: "Task", _info) -> None:
        if not self.active or not self._ours(parent) or child.group is parent.group:
            return
        self._forks.append((parent, child, parent.mm))
        if self.follow == "child":
            self.group = child.group
            self.task = self.gthread = child

    def _on_exit(self, t: "Task", status: int) -> None:
        if not self.active or not self._ours(t):
            return
        try:
            self._send_exit(status)
        except _Gone:
            pass
        self.close(restore=False)               # the mm goes away with it

    def _on_fault(self, t: "Task", addr: int, _err: int) -> None:
        """A fault on a watched page may give it another frame: stop after
        the kernel has handled it, re-arm, then let the access happen."""
        if not self.active or not self.watches or t.mm is not self.mm:
            return
        page = addr & ~(PAGE - 1)
        for w in self.watches:
            if w.addr < page + PAGE and w.addr + w.length > page:
                self._rearm = True
                self.k.cpu.stop()
                return

    # ------------------------------------------------------------ the loop
    def _before_run(self, t: "Task") -> None:
        if self.group is None:                  # the first task: pid 1 at its entry
            self.group, self.task, self.gthread = t.group, t, t
            if self.wire_pid is None:
                self.wire_pid = t.group.tgid
            self.pending = _Stop(t, SIGTRAP)
        if self._forks:
            self._handle_forks()
            if self._code_dirty:
                self._flush_code()
        if t in self._stepover:
            self._step_over_breakpoint(t)
            return
        if not self._ours(t):
            return
        self._fixup_watch(t)
        if self.conn is not None and self.pending is None and not self.stepping \
                and self.conn.poll_interrupt():
            self.pending = _Stop(t, SIGINT)
        while self.active and t.state == RUNNING:
            if self.pending is not None and self.pending.task is t:
                sig = self._report_and_serve(t)
                if sig and self.active:
                    self._inject_signal(t, sig)     # e.g. gdb's "signal SIGUSR1"
                continue
            if self.stepping and self.task is t:
                if signals.has_pending(t):
                    stops = self._stops
                    signals.do_signal(self.k, t)
                    if self._stops == stops and self.stepping and self.active \
                            and self.pending is None and t.state == RUNNING:
                        self.pending = _Stop(t, SIGTRAP)   # at the handler, as Linux
                    continue
                self._single_step(t)
                continue
            break
        if self.active:
            if self._rearm:
                self._arm_watches()
            if self._code_dirty:
                self._flush_code()

    def _report_and_serve(self, t: "Task") -> int:
        """Report ``self.pending`` (``t`` is live) and talk to gdb until it
        resumes us. Returns the signal gdb resumed with (0: none)."""
        stop = self.pending
        self.pending = None
        self._running.clear()
        self._stops += 1
        self.task = self.gthread = t
        self.last_stop = stop
        self.stepping = False
        self._clear_watch_hooks()
        while True:
            fresh = self.conn is None
            if fresh:
                self._accept()                  # gdb asks '?' for the first stop
            else:
                self.conn.send(self._stop_reply(stop))
            try:
                sig = self._serve()
                break
            except _Gone:
                if fresh and self.conn is not None and self.conn.packets == 0:
                    self.conn.close()           # a probe, not gdb: wait for the next
                    self.conn = None
                    continue
                raise
        if self.active:
            self._arm_watches()
            self._flush_code()
            if not self.stepping:
                self._running.set()
        return sig

    def _accept(self) -> None:
        sock, peer = self.listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = _Conn(sock)
        self.say(f"connected from {peer[0]}:{peer[1]}")
        threading.Thread(target=self._watch_interrupts, args=(self.conn,),
                         name="minios-gdb-intr", daemon=True).start()

    def _watch_interrupts(self, conn: _Conn) -> None:
        """While the guest runs, a ^C (or a dropped connection) must get
        control back even from a loop without syscalls, where the kernel
        never leaves emu_start: stop the CPU, as the slice watchdog does.
        Only peeks; before_run reads the byte and reports SIGINT."""
        while self.active and self.conn is conn:
            if not self._running.wait(0.2):
                continue
            try:
                r, _, _ = select.select([conn.sock], [], [], 0.1)
                if not r:
                    continue
                data = conn.sock.recv(64, socket.MSG_PEEK)
            except (OSError, ValueError):
                return
            if not data or b"\x03" in data:
                self._running.clear()
                self.k.cpu.stop()
            else:
                time.sleep(0.05)                # stray acks: do not spin

    def _disconnected(self) -> None:
        if self.active:
            self.say("gdb went away; the program runs on")
        self.stepping = False
        self.pending = None
        self._running.clear()
        self.close()

    def _internal(self, e: BaseException) -> None:
        self.say(f"internal error: {type(e).__name__}: {e}")
        if os.environ.get("MINIOS_DEBUG"):
            traceback.print_exc()

    # ------------------------------------------------------------ stepping
    def _single_step(self, t: "Task") -> None:
        """Execute exactly one instruction of ``t`` (live) and make the stop
        pending, unless the instruction left ``t`` unable to stop here."""
        cpu, k = self.k.cpu, self.k
        for _ in range(8):
            rip = cpu.reg("rip")
            faults = k.stats["page_faults"]
            self._run_one(rip)
            if self._whit is not None and self._whit[0] is t:
                self._fixup_watch(t)
                return
            if self.pending is not None or not self.active:
                return                          # a breakpoint, an exit...
            if t.state != RUNNING or k.current is not t:
                self.pending = _Stop(t, SIGTRAP)    # reported when it runs again
                return
            if signals.has_pending(t):
                return                          # the signal stop comes first
            if cpu.reg("rip") != rip or k.stats["page_faults"] == faults:
                break
            # a page fault was resolved: the instruction did not run yet
        self.pending = _Stop(t, SIGTRAP)

    def _run_one(self, rip: int) -> None:
        cpu = self.k.cpu
        cpu.flush_code()        # cached blocks ignore count=1 (measured)
        try:
            cpu.uc.emu_start(rip, 0, count=1)
        except UcError as e:
            self._internal(e)

    def _step_over_breakpoint(self, t: "Task") -> None:
        """Another process on our mm (a vfork child) hit one of gdb's
        breakpoints: run its instruction with the original byte, invisibly."""
        self._stepover.discard(t)
        rip = self.k.cpu.reg("rip")
        bp = self.bps.get(rip)
        if bp is None or bp.mm is not t.mm:
            return
        self._write_raw(bp.mm, rip, bp.orig)
        self._mute = True
        try:
            self._run_one(rip)
        finally:
            self._mute = False
            if bp.addr in self.bps:
                self._write_raw(bp.mm, rip, b"\xcc")
            self._flush_code()

    # --------------------------------------------------------------- forks
    def _handle_forks(self) -> None:
        """Like gdb detaching the process it does not follow: that one gets
        the original bytes back under every breakpoint. Runs before either
        side's next slice (the forking parent may have run on: breakpoints
        it hits meanwhile are stepped over invisibly)."""
        forks, self._forks = self._forks, []
        for parent, child, mm in forks:
            if child.mm is mm:
                continue                        # vfork: one mm, nothing to undo
            other = parent.mm if self.follow == "child" else child.mm
            mine = [bp for bp in self.bps.values() if bp.mm is mm]
            if self.follow == "child":
                for bp in mine:
                    bp.mm = child.mm
                self._rearm = True
            if other is None or other not in self.k.mms:
                continue
            for bp in mine:
                try:
                    self._write_raw(other, bp.addr, bp.orig)
                except GdbError:
                    pass
            if self.follow == "child":
                self.say(f"following the child, pid {child.pid}")

    # -------------------------------------------------------------- memory
    def _read(self, mm, va: int, n: int, shadow: bool = True) -> bytes:
        """Guest virtual memory, without allocating anything: a page not yet
        faulted in reads as what the fault would give it (file bytes or
        zeros). Stops at the first address with no mapping."""
        k = self.k
        start = va
        out = bytearray()
        while n > 0 and 0 <= va < TASK_SIZE:
            chunk = min(n, PAGE - (va & (PAGE - 1)))
            pte, _ = lookup_pte(mm, va)
            if pte & x86.P:
                out += k.ram.read((entry_pfn(pte) << 12) | (va & (PAGE - 1)), chunk)
            else:
                vma = mm.vma_at(va)
                if vma is None:
                    break
                out += self._unfaulted(vma, va, chunk)
            va += chunk
            n -= chunk
        data = bytes(out)
        if shadow and self.bps:
            data = self._shadow(mm, start, data)
        return data

    def _shadow(self, mm, start: int, data: bytes) -> bytes:
        """Reads show the original bytes under inserted breakpoints."""
        b = None
        for bp in self.bps.values():
            if bp.mm is mm and start <= bp.addr < start + len(data):
                if b is None:
                    b = bytearray(data)
                b[bp.addr - start] = bp.orig[0]
        return bytes(b) if b is not None else data

    def _unfaulted(self, vma, va: int, n: int) -> bytes:
        k = self.k
        if vma.shm is not None:
            idx = vma.shm_pgoff + (va - vma.start) // PAGE
            f = vma.shm.frames.get(idx)
            return k.ram.read(f * PAGE + (va & (PAGE - 1)), n) if f is not None else bytes(n)
        im = vma.image
        if im is not None and va < im.end:
            off = im.offset + (va - vma.start)
            m = max(0, min(n, im.end - va))
            data = bytes(im.data[off:off + m]) if off < len(im.data) else b""
            return data.ljust(n, b"\0")
        return bytes(n)

    def _write(self, mm, va: int, data: bytes) -> None:
        """ptrace's FOLL_FORCE write: works on read-only text; a frame shared
        with another mm is copied first. Inserted breakpoints stay in."""
        b = bytearray(data)
        for bp in self.bps.values():
            if bp.mm is mm and va <= bp.addr < va + len(b):
                bp.orig = bytes((b[bp.addr - va],))
                b[bp.addr - va] = 0xCC
        self._write_raw(mm, va, bytes(b))

    def _write_raw(self, mm, va: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            a = va + pos
            chunk = min(len(data) - pos, PAGE - (a & (PAGE - 1)))
            pfn = self._private_frame(mm, a)
            self.k.ram.write((pfn << 12) | (a & (PAGE - 1)), data[pos:pos + chunk])
            pos += chunk
        self._code_dirty = True

    def _private_frame(self, mm, va: int) -> int:
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
            self._reset_cpu_exception()
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

    def _reset_cpu_exception(self) -> None:
        """handle_mm_fault asked for a code flush by physical address,
        which Unicorn took as a virtual one and may have left a pending
        page fault behind (see the module doc): clear it."""
        cpu = self.k.cpu
        reset = getattr(cpu, "_reset_exception", None)
        if reset is not None and not getattr(cpu, "_in_trap", False):
            reset(cpu.uc)

    def _flush_code(self) -> None:
        self._code_dirty = False
        self.k.cpu.flush_code()

    # ---------------------------------------------------------- breakpoints
    def _insert_breakpoint(self, addr: int) -> None:
        mm = self.mm
        if mm is None:
            raise GdbError()
        bp = self.bps.get(addr)
        if bp is not None and bp.mm is mm:
            return
        orig = self._read(mm, addr, 1, shadow=False)
        if len(orig) != 1:
            raise GdbError(EFAULT_REPLY)
        self._write_raw(mm, addr, b"\xcc")
        self.bps[addr] = _Breakpoint(addr, mm, orig)

    def _remove_breakpoint(self, addr: int) -> None:
        bp = self.bps.pop(addr, None)
        if bp is None:
            return
        if bp.mm in self.k.mms and bp.mm.users > 0:
            self._write_raw(bp.mm, addr, bp.orig)

    def _remove_all_breakpoints(self) -> None:
        for addr in list(self.bps):
            try:
                self._remove_breakpoint(addr)
            except GdbError:
                pass
        self.bps.clear()
        self._flush_code()

    # ---------------------------------------------------------- watchpoints
    def _clear_watch_hooks(self) -> None:
        uc = self.k.cpu.uc
        for h in self._whooks:
            try:
                uc.hook_del(h)
            except UcError:
                pass
        if self._whooks:
            self._code_dirty = True     # blocks were translated with the hooks
        self._whooks = []
        self._wmap = []

    def _arm_watches(self) -> None:
        """Hook the frames that back the watched ranges now."""
        self._rearm = False
        self._clear_watch_hooks()
        mm = self.mm
        if not self.watches or mm is None:
            return
        uc = self.k.cpu.uc
        for w in self.watches:
            va, end = w.addr, w.addr + w.length
            while va < end:
                chunk = min(end - va, PAGE - (va & (PAGE - 1)))
                pte, _ = lookup_pte(mm, va)
                if pte & x86.P:
                    pa = (entry_pfn(pte) << 12) | (va & (PAGE - 1))
                    self._wmap.append((pa, pa + chunk - 1, va, w))
                va += chunk
        kinds: dict[tuple[int, int], int] = {}
        for pa, pe, _, w in self._wmap:
            kinds[(pa, pe)] = kinds.get((pa, pe), 0) | (
                (UC_HOOK_MEM_WRITE if w.kind in (2, 4) else 0)
                | (UC_HOOK_MEM_READ if w.kind in (3, 4) else 0))
        for (pa, pe), types in sorted(kinds.items()):
            self._whooks.append(uc.hook_add(types, self._mem_hook, None, pa, pe))
        self._code_dirty = True

    def _mem_hook(self, uc, access: int, addr: int, size: int, value: int, _data) -> None:
        if self._mute or self._whit is not None:
            return
        try:
            t = self.k.current
            if t is None or t.mm is not self.mm:
                return
            write = access == UC_MEM_WRITE
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
                self._whit = (t, w, hit, addr, old)
                uc.emu_stop()
                return
        except Exception as e:
            self._internal(e)

    def _fixup_watch(self, t: "Task") -> None:
        """A watch hook stopped ``t`` inside the accessing instruction: undo
        its write, run it once with the hooks muted, and make the stop
        pending with RIP after it."""
        hit = self._whit
        if hit is None or hit[0] is not t:
            return
        self._whit = None
        _, w, va, pa, old = hit
        if old is not None:
            self.k.ram.write(pa, old)
        self._mute = True
        try:
            self._run_one(self.k.cpu.reg("rip"))
        finally:
            self._mute = False
        if self.pending is None and self.active:
            kind = {2: "watch", 3: "rwatch", 4: "awatch"}[w.kind]
            self.pending = _Stop(t, SIGTRAP, f"{kind}:{max(va, w.addr):x};")
        self._code_dirty = True

    # --------------------------------------------------------------- replies
    def _stop_reply(self, stop: _Stop) -> str:
        t = stop.task
        regs = "".join(f"{REGNUM[n]:02x}:{self._reg_hex(t, REGNUM[n])};"
                       for n in ("rbp", "rsp", "rip"))
        return f"T{gdb_signal(stop.sig):02x}{regs}thread:{self._tid(t)};{stop.reason}"

    def _tid(self, t: "Task") -> str:
        """A thread id on the wire: ``pPID.TID`` once gdb and the stub
        agreed on multiprocess extensions, else the bare TID."""
        return f"p{self.wire_pid:x}.{t.tid:x}" if self.multiprocess else f"{t.tid:x}"

    def _send_exit(self, status: int) -> None:
        if self.conn is None:
            return
        pid = f";process:{self.wire_pid:x}" if self.multiprocess and self.wire_pid else ""
        if status & 0x7F:
            self.conn.send(f"X{gdb_signal(status & 0x7F):02x}{pid}")
        else:
            self.conn.send(f"W{(status >> 8) & 0xFF:02x}{pid}")

    # ------------------------------------------------------------ registers
    def _live(self, t: "Task") -> bool:
        return t is self.k.current

    def _reg_value(self, t: "Task", i: int) -> int:
        name, size, rid, _ = REGS[i]
        if name == "orig_rax":
            return -1
        if rid is None:
            return 0
        try:
            if self._live(t):
                if name in _FAST:
                    return self.k.cpu.reg(name)
                v = self.k.cpu.uc.reg_read(rid)
            else:
                v = t.ctx.reg_read(rid)
        except (UcError, KeyError, ValueError, TypeError):
            return 0
        if isinstance(v, tuple):                # x87: (mantissa, exponent)
            v = v[0] | (v[1] << 64)
        return int(v)

    def _reg_hex(self, t: "Task", i: int) -> str:
        return _hex_le(self._reg_value(t, i), REGS[i][1])

    def _set_reg(self, t: "Task", i: int, value: int) -> None:
        name, size, rid, writable = REGS[i]
        if not writable or rid is None:
            return                               # selectors, x87, orig_rax: ignored
        value &= (1 << (8 * size)) - 1
        if self._live(t):
            if name in _FAST:
                self.k.cpu.set_regs(**{name: value})
            else:
                self.k.cpu.uc.reg_write(rid, value)
        else:
            t.ctx.reg_write(rid, value)

    def _all_regs(self, t: "Task") -> str:
        return "".join(self._reg_hex(t, i) for i in range(len(REGS)))

    def _write_all_regs(self, t: "Task", hexdata: bytes) -> None:
        raw = bytes.fromhex(hexdata.decode())
        pos = 0
        for i, (_, size, _, _) in enumerate(REGS):
            if pos + size > len(raw):
                break
            self._set_reg(t, i, int.from_bytes(raw[pos:pos + size], "little"))
            pos += size

    # -------------------------------------------------------------- the serve loop
    def _serve(self) -> int:
        """Answer packets until gdb resumes the guest; returns the signal
        to resume with."""
        conn = self.conn
        while self.active:
            pkt = conn.get()
            try:
                res = self._dispatch(pkt)
            except GdbError as e:
                conn.send(e.reply)
                continue
            except _Gone:
                raise
            except (ValueError, IndexError, KeyError, struct.error):
                conn.send("E01")                # a malformed packet
                continue
            except Exception as e:
                self._internal(e)
                conn.send("E01")
                continue
            if isinstance(res, _Resume):
                return res.sig
            if res is not None:
                conn.send(res)
        return 0

    def _dispatch(self, pkt: bytes):
        if not pkt:
            return ""
        c = chr(pkt[0])
        body = pkt[1:]
        if c == "?":
            return self._stop_reply(self.last_stop) if self.last_stop else "S05"
        if c == "g":
            return self._all_regs(self._reg_thread())
        if c == "G":
            self._write_all_regs(self._reg_thread(), body)
            return "OK"
        if c == "p":
            i = int(body, 16)
            if i >= len(REGS):
                raise GdbError()
            return self._reg_hex(self._reg_thread(), i)
        if c == "P":
            n, _, v = body.partition(b"=")
            i = int(n, 16)
            if i >= len(REGS):
                raise GdbError()
            self._set_reg(self._reg_thread(), i,
                          int.from_bytes(bytes.fromhex(v.decode()), "little"))
            return "OK"
        if c == "m":
            a, _, n = body.partition(b",")
            addr, n = int(a, 16), min(int(n, 16), PACKET_SIZE // 2 - 16)
            data = self._read(self._mm(), addr, n) if n else b""
            if n and not data:
                raise GdbError(EFAULT_REPLY)
            return data.hex()
        if c in "MX":
            head, _, data = body.partition(b":")
            a, _, n = head.partition(b",")
            addr, n = int(a, 16), int(n, 16)
            raw = bytes.fromhex(data.decode()) if c == "M" else _unescape(data)
            if len(raw) != n:
                raise GdbError()
            if n:
                self._write(self._mm(), addr, raw)
            return "OK"
        if c in "cCsS":
            return self._resume_simple(c, body)
        if c in "Zz":
            return self._breakpoint_packet(c == "Z", body)
        if c == "H":
            return self._set_thread(body)
        if c == "T":
            return "OK" if self._thread_by_id(body) is not None else "E01"
        if c == "k":
            self._kill()
            raise _Gone
        if c == "D":
            self.conn.send("OK")
            self.say("gdb detached")
            self.close()
            return _Resume(0)
        if c == "v":
            return self._v_packet(body)
        if c == "q":
            return self._query(body)
        if c == "Q":
            return self._set_packet(body)
        return ""

    def _mm(self):
        mm = self.mm
        if mm is None:
            raise GdbError()
        return mm

    def _reg_thread(self) -> "Task":
        t = self.gthread
        if t is None or t.group is not self.group or t.state in (DEAD, ZOMBIE):
            t = self.task
        if t is None:
            raise GdbError()
        return t

    def _thread_by_id(self, tid: bytes) -> "Task | None":
        if tid.startswith(b"p"):                     # pPID.TID, pPID.-1, pPID
            pid, _, tid = tid[1:].partition(b".")
            try:
                if self.group is None or int(pid, 16) not in (-1, self.wire_pid):
                    return None
            except ValueError:
                return None
            tid = tid or b"-1"
        try:
            n = int(tid, 16)
        except ValueError:
            return None
        if self.group is None:
            return None
        if n in (0, -1):
            return self.task
        for th in self.group.threads:
            if th.tid == n:
                return th
        return None

    def _set_thread(self, body: bytes) -> str:
        op, tid = chr(body[0]) if body else "g", body[1:]
        if tid in (b"-1", b"0", b""):
            if op == "g":
                self.gthread = self.task
            return "OK"
        th = self._thread_by_id(tid)
        if th is None:
            return "E01"
        if op == "g":
            self.gthread = th
        return "OK"

    # ---------------------------------------------------------------- resume
    def _resume_simple(self, c: str, body: bytes) -> "_Resume":
        sig = 0
        if c in "CS":
            s, _, addr = body.partition(b";")
            sig = host_signal(int(s, 16))
        else:
            addr = body
        if addr and self.task is not None:
            self._set_reg(self.task, REGNUM["rip"], int(addr, 16))
        return self._resume(c.lower() == "s", sig)

    def _resume(self, step: bool, sig: int) -> "_Resume":
        self.stepping = step
        return _Resume(sig)

    def _v_packet(self, body: bytes):
        if body == b"Cont?":
            return "vCont;c;C;s;S"
        if body.startswith(b"Cont;"):
            # The first action that applies to a thread of ours wins (all
            # other threads simply run: this is all-stop with one CPU).
            chosen = b"c"
            for act in body[5:].split(b";"):
                a, _, tid = act.partition(b":")
                if not a:
                    continue
                if tid and tid not in (b"-1", b"0"):
                    th = self._thread_by_id(tid)
                    if th is None:
                        continue
                    self.task = th
                chosen = a
                break
            kind = chr(chosen[0])
            if kind not in "cCsS":
                raise GdbError()
            sig = host_signal(int(chosen[1:3], 16)) if kind in "CS" else 0
            return self._resume(kind in "sS", sig)
        if body.startswith(b"Kill"):
            self._kill()
            self.conn.send("OK")
            raise _Gone
        if body == b"MustReplyEmpty":
            return ""
        if body.startswith(b"File:"):
            return self._vfile(body[5:])
        return ""

    def _vfile(self, body: bytes):
        """Host I/O (``vFile:``), read-only, on the files the debugged
        process sees: gdb reads /proc/PID/task/PID/maps this way to find
        the vDSO and load its symbols from memory, as it does natively."""
        from minios.fs.vfs import open_path
        op, _, rest = body.partition(b":")
        args = rest.split(b",")
        try:
            if op == b"setfs":
                return "F0"
            if op == b"open":
                if int(args[1], 16) & 3:              # gdb's O_WRONLY / O_RDWR
                    return f"F-1,{_gdb_errno(errno.EROFS):x}"
                if self.task is None:
                    raise OSError(errno.ESRCH, "")
                path = bytes.fromhex(args[0].decode()).decode(errors="surrogateescape")
                f = open_path(self.k, self.task, path, 0)
                fd = max(self._vfiles, default=0) + 1
                self._vfiles[fd] = f
                return f"F{fd:x}"
            if op in (b"pread", b"close"):
                f = self._vfiles.get(int(args[0], 16))
                if f is None:
                    raise OSError(errno.EBADF, "")
                if op == b"close":
                    del self._vfiles[int(args[0], 16)]
                    f.close()
                    return "F0"
                n, off = int(args[1], 16), int(args[2], 16)
                data = f.pread(min(n, PACKET_SIZE), off)
                return b"F%x;" % len(data) + _escape(data)
        except (OSError, ValueError, IndexError) as e:
            err = e.errno if isinstance(e, OSError) and e.errno else errno.EINVAL
            return f"F-1,{_gdb_errno(err):x}"
        return ""                                     # unsupported: gdb does without

    def _kill(self) -> None:
        from minios.proc.exit import do_group_exit
        self.say("killed by gdb")
        t = self.task
        group = self.group
        self.active = False
        self._clear_watch_hooks()
        if t is not None and group is not None and group.threads:
            do_group_exit(self.k, group.threads[0], signals.SIGKILL)
            self.k.cpu.stop()

    def _inject_signal(self, t: "Task", sig: int) -> None:
        """gdb resumed with a signal the task did not stop for (``signal
        SIGUSR1``): queue it, and let it through when it comes out."""
        if not 0 < sig < 65:
            return
        t.pending[sig] = {"signo": sig, "code": signals.SI_USER}
        self.inject = sig

    # ---------------------------------------------------------- breakpoints
    def _breakpoint_packet(self, insert: bool, body: bytes) -> str:
        parts = body.split(b";")[0].split(b",")
        if len(parts) < 3:
            raise GdbError()
        kind, addr, length = int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)
        if kind in (0, 1):
            if insert:
                self._insert_breakpoint(addr)
            else:
                self._remove_breakpoint(addr)
            return "OK"
        if kind in (2, 3, 4):
            if not 0 < length <= PAGE or not 0 <= addr < TASK_SIZE:
                raise GdbError()
            w = _Watch(kind, addr, length)
            if insert:
                if w not in self.watches:
                    self.watches.append(w)
            elif w in self.watches:
                self.watches.remove(w)
            return "OK"
        return ""

    # --------------------------------------------------------------- queries
    def _query(self, body: bytes):
        if body.startswith(b"Supported"):
            # Multiprocess extensions tell gdb the real PID, which it needs
            # to read /proc/PID/task/PID/maps and load the vDSO's symbols.
            self.multiprocess = b"multiprocess+" in body.split(b":", 1)[-1].split(b";")
            return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;qXfer:auxv:read+;"
                    "qXfer:exec-file:read+;swbreak+;QPassSignals+;QStartNoAckMode+;"
                    "vContSupported+" + (";multiprocess+" if self.multiprocess else ""))
        if body.startswith(b"Xfer:"):
            return self._xfer(body[5:])
        if body == b"Attached" or body.startswith(b"Attached:"):
            return "0"
        if body == b"C":
            return f"QC{self._tid(self.task)}" if self.task is not None else ""
        if body == b"fThreadInfo":
            if self.group is None or not self.group.threads:
                return "l"
            return "m" + ",".join(self._tid(th) for th in self.group.threads)
        if body == b"sThreadInfo":
            return "l"
        if body.startswith(b"ThreadExtraInfo,"):
            th = self._thread_by_id(body.split(b",")[1])
            if th is None:
                raise GdbError()
            return f"{th.group.comm or 'minios'} pid {th.pid}".encode().hex()
        if body.startswith(b"Symbol"):
            return "OK"
        return ""

    def _xfer(self, body: bytes):
        parts = body.split(b":")
        if len(parts) != 4 or parts[1] != b"read":
            return ""
        obj, annex, span = parts[0], parts[2], parts[3]
        off, _, length = span.partition(b",")
        off, length = int(off, 16), int(length, 16)
        if obj == b"features":
            if annex != b"target.xml":
                raise GdbError("E00")
            data = TARGET_XML
        elif obj == b"auxv":
            data = self._auxv_bytes()
        elif obj == b"exec-file":
            mm = self.mm
            data = (mm.exe if mm is not None and mm.exe else "").encode()
        else:
            return ""
        chunk = data[off:off + min(length, PACKET_SIZE // 2)]
        more = off + len(chunk) < len(data)
        return (b"m" if more else b"l") + _escape(chunk)

    def _auxv_bytes(self) -> bytes:
        """The auxiliary vector on the initial stack (argc, argv, envp,
        then the pairs), read without faulting anything in."""
        if self._auxv is not None:
            return self._auxv
        mm = self._mm()
        sp = mm.start_stack
        rd = lambda a: struct.unpack("<Q", self._read(mm, a, 8, shadow=False).ljust(8, b"\0"))[0]
        argc = rd(sp)
        p = sp + 8 + 8 * (argc + 1)
        for _ in range(1 << 16):
            if rd(p) == 0:
                break
            p += 8
        p += 8
        out = bytearray()
        for _ in range(64):
            a, v = rd(p), rd(p + 8)
            out += struct.pack("<QQ", a, v)
            p += 16
            if a == 0:
                break
        self._auxv = bytes(out)
        return self._auxv

    def _set_packet(self, body: bytes):
        if body.startswith(b"PassSignals:"):
            sigs = set()
            for s in body[12:].split(b";"):
                if s:
                    sigs.add(host_signal(int(s, 16)))
            self.pass_signals = sigs
            return "OK"
        if body.startswith(b"ProgramSignals:"):
            return "OK"
        if body == b"StartNoAckMode":
            self.conn.send("OK")
            self.conn.noack = True
            return None
        return ""


@dataclass
class _Resume:
    sig: int


def parse_address(spec: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port)."""
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = "", spec
    host = host.strip("[]") or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"bad gdb address {spec!r} (use HOST:PORT)") from None
    if not 0 <= p < 65536:
        raise ValueError(f"bad gdb port {p}")
    return host, p
