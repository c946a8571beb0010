"""The CPU: Unicorn 2.1.4 in 64-bit long mode, paging from CR3, CPL 3 guests.

The kernel talks to the hardware through this class only:

* ``on_syscall()`` and ``on_trap(vector, error_code, cr2)`` are called from
  inside :meth:`run` when the guest executes ``syscall`` or raises an
  exception; they may change registers and memory and may call :meth:`stop`.
* :meth:`set_cr3`, :meth:`flush_tlb`, :meth:`flush_code` are the MMU controls.
* :meth:`switch_context` switches whole register contexts (and CR3).
* :meth:`syscall_args`, :meth:`set_syscall_result`, ``reg``/``set_reg`` are
  the fast register paths (ctypes batches on the raw handle, not the binding).
* :meth:`save_context`/:meth:`load_context` snapshot the whole state (FPU
  and SSE included: signal frames).
* For debuggers, off the hot paths: :meth:`read_register`/
  :meth:`write_register` (any register by name, live or saved),
  :meth:`step`, :meth:`add_mem_hook` (watch physical ranges) and
  :meth:`abandon_exception`.

The firmware owns the first ``RESERVED_FRAMES`` physical frames: the GDT,
the ``iretq`` trampoline that first enters CPL 3, a boot stack and the tables
that map them supervisor-only at ``KERNEL_VA``. Every address space must carry
``kernel_pgd_entry`` in PGD slot 511 so the GDT stays reachable.

Every quirk listed in docs/unicorn-x86-notes.md is handled here and checked
by :meth:`_self_test` at boot, which raises if the build behaves otherwise.

The hottest register traffic (syscall arguments and results, a fault's
error code and CR2, the old_exception reset) goes straight to Unicorn's live
CPU state when :meth:`_find_env` can locate and prove it at boot; otherwise
the same work goes through the API (ctypes batches and context copies).
"""
from __future__ import annotations

import bisect
import ctypes
import os
import struct
import threading
import time
from typing import Callable

from unicorn import Uc, UcError, UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL
from unicorn import UC_HOOK_INTR, UC_HOOK_INSN, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE
from unicorn.unicorn_const import (UC_CTL_TLB_FLUSH, UC_CTL_TB_FLUSH, UC_CTL_IO_WRITE,
                                   UC_MEM_WRITE)
from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uclib

from emu import x86
from emu.ram import RAM, PAGE_SIZE

KERNEL_VA = 0xFFFF_FF80_0000_0000          # PGD slot 511
RESERVED_FRAMES = 16
_GDT, _TRAMP, _STACK, _KPUD, _KPMD, _KPTE = 0, 1, 2, 3, 4, 5
_TEST_PGD, _TEST_PUD, _TEST_PMD, _TEST_PTE, _TEST_CODE, _TEST_DATA = 8, 9, 10, 11, 12, 13

# Offsets into Unicorn's context blob (uc_context header, then CPUX86State).
# Verified at boot by _self_test; see the notes on the double-fault bug.
_ENV = 40
_ERROR_CODE = _ENV + 5384
_OLD_EXCEPTION = _ENV + 5496

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags")
REG = {name: getattr(X, "UC_X86_REG_" + name.upper()) for name in GPRS}
REG.update(fs_base=X.UC_X86_REG_FS_BASE, gs_base=X.UC_X86_REG_GS_BASE,
           cs=X.UC_X86_REG_CS, ss=X.UC_X86_REG_SS, ds=X.UC_X86_REG_DS,
           es=X.UC_X86_REG_ES, fs=X.UC_X86_REG_FS, gs=X.UC_X86_REG_GS,
           cr2=X.UC_X86_REG_CR2, cr3=X.UC_X86_REG_CR3)

# Indices of registers in a context blob, in 8-byte words after the header:
# CPUX86State starts with regs[16] in x86 encoding order, then eip. CR3's
# index is found at boot (_check_ctx_layout).
CTX = {name: i for i, name in enumerate(
    ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
     "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"))}
_CTX_CR3 = -1
_RF_VM = 0x30000                       # EFLAGS.RF and VM: never set at CPL 3 here
# RAX, RDX, RSI, RDI, R8, R9, R10 and RIP from the start of the live state
# (regs[16] in x86 order, then eip): the others are skipped, not unpacked.
_ENV_SYSCALL = struct.Struct("<Q8xQ24xQQQQQ40xQ")
_ENV_GPR = {name: i for name, i in CTX.items() if name != "rip"}   # (RIP is kept lazily)
_ENV_LOC: tuple[int, int] | None = None   # (uc_struct word, offset from it) of the state

_SYSCALL_IN = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9", "rip", "eflags")
_SYSCALL_OUT = ("rax", "rcx", "r11")


class Trap(Exception):
    """The hardware could not be brought up as documented (a self-test failed)."""


class CPUError(Exception):
    """Unicorn refused a debugger's request (a register it cannot read or
    write, a step it cannot start): its UcError, as the CPU's own type."""


def _arch_id(name: str) -> int:
    """Unicorn's id of the register called ``name`` (any case)."""
    rid = getattr(X, "UC_X86_REG_" + name.upper(), None)
    if rid is None:
        raise KeyError(name)
    return rid


# PYFUNCTYPE keeps the GIL across the call: these calls are short.
_PROTO = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_int)


def _raw(fn) -> "ctypes._CFuncPtr":
    """The C function without the binding's argtypes: plain ints are passed
    straight through, which makes a call ~3x cheaper."""
    return _PROTO(ctypes.cast(fn, ctypes.c_void_p).value)


_READ_BATCH = _raw(uclib.uc_reg_read_batch)
_WRITE_BATCH = _raw(uclib.uc_reg_write_batch)
_CTX_WRITE_BATCH = _raw(uclib.uc_context_reg_write_batch)
_CTX_PROTO = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_CTX_SAVE = _CTX_PROTO(ctypes.cast(uclib.uc_context_save, ctypes.c_void_p).value)
_CTX_RESTORE = _CTX_PROTO(ctypes.cast(uclib.uc_context_restore, ctypes.c_void_p).value)
# uc_ctl(uc, code) with no variadic arguments: a TLB or translation flush.
_CTL0 = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)(
    ctypes.cast(uclib.uc_ctl, ctypes.c_void_p).value)
_CTL_TLB_FLUSH = (UC_CTL_IO_WRITE << 30) | UC_CTL_TLB_FLUSH
_CTL_TB_FLUSH = (UC_CTL_IO_WRITE << 30) | UC_CTL_TB_FLUSH
_POOL_MAX = 256


def _adopt(ctx):
    """Keep the blob's address and its register words on ``ctx`` itself:
    a task switch then costs no binding property and no ctypes cast."""
    p = ctx.context
    ctx._ptr = p = p.value if hasattr(p, "value") else p
    ctx._regs = (ctypes.c_uint64 * (ctx.size // 8)).from_address(p + _ENV)
    return ctx


class _Batch:
    """A fixed list of registers read or written with one ctypes call; the
    values go through one struct (un)pack of the buffer, not n ctypes items."""

    def __init__(self, uch, names: tuple[str, ...]) -> None:
        n = len(names)
        self.n = n
        self.ids = (ctypes.c_int * n)(*[REG[x] for x in names])
        self.vals = (ctypes.c_uint64 * n)()
        self._st = struct.Struct(f"<{n}Q")
        base = ctypes.addressof(self.vals)
        self.ptrs = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])
        h = uch.value if hasattr(uch, "value") else uch
        self._args = (h, ctypes.addressof(self.ids), ctypes.addressof(self.ptrs), n)

    def read(self) -> tuple[int, ...]:
        _READ_BATCH(*self._args)
        return self._st.unpack_from(self.vals)

    def write(self, *values: int) -> None:
        self._st.pack_into(self.vals, 0, *[v & 0xFFFF_FFFF_FFFF_FFFF for v in values])
        _WRITE_BATCH(*self._args)

    def write3(self, a: int, b: int, c: int) -> None:
        """write() for the syscall return path, without the generic loop."""
        self._st.pack_into(self.vals, 0, a & 0xFFFF_FFFF_FFFF_FFFF, b, c)
        _WRITE_BATCH(*self._args)


class CPU:
    def __init__(self, ram_size: int) -> None:
        self.ram = RAM(ram_size)
        self.uc = uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map_ptr(0, ram_size, UC_PROT_ALL, self.ram.ptr)
        self.on_syscall: Callable[[], None] = lambda: None
        self.on_trap: Callable[[int, int, int], None] = lambda v, e, a: None
        self._uch = uc._uch
        self._in = _Batch(self._uch, _SYSCALL_IN)
        self._out = _Batch(self._uch, _SYSCALL_OUT)
        self._one = {name: _Batch(self._uch, (name,)) for name in REG}
        self._xctx = uc.context_save()      # scratch context for the trap path
        blob = self._xctx.context
        blob = blob.value if hasattr(blob, "value") else blob
        uch = self._uch.value if hasattr(self._uch, "value") else self._uch
        self._xargs = (uch, blob, ctypes.c_int32.from_address(blob + _ERROR_CODE),
                       ctypes.c_int32.from_address(blob + _OLD_EXCEPTION))
        self._in_trap = False
        self._in_hook = False       # inside the syscall or trap hook (see flush_tlb)
        self._tlb_pending = False
        self._env = None            # the live CPUX86State, if found (_find_env)
        self._read_eflags = None
        self.tlb_gen = 0            # flushes so far (see flush_tlb)
        self._h = uch
        self._ctx_pool: list = []       # contexts of exited tasks, for reuse
        self._code_flushes: list = []
        self._watchdog = None
        self._run_gen = 0
        self._armed = False
        self.async_stops = 0        # watchdog stops (see run())
        self._build_firmware()
        self._add_raw_hooks()
        self.user_template = self._self_test()
        self._check_ctx_layout()
        self._find_env()

    # ----------------------------------------------------------------- firmware
    def _build_firmware(self) -> None:
        """GDT, trampoline and boot stack mapped supervisor-only at KERNEL_VA."""
        ram, uc = self.ram, self.uc
        gdt = [0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0,
               0x00CFFB000000FFFF, 0x00CFF3000000FFFF, 0x00AFFB000000FFFF]
        ram.write(_GDT * PAGE_SIZE, struct.pack("<7Q", *gdt))
        ram.write(_TRAMP * PAGE_SIZE, b"\x48\xcf")            # iretq
        kflags = x86.P | x86.RW | x86.G
        ram.q[_KPUD * 512 + 0] = (_KPMD * PAGE_SIZE) | x86.P | x86.RW
        ram.q[_KPMD * 512 + 0] = (_KPTE * PAGE_SIZE) | x86.P | x86.RW
        for f in (_GDT, _TRAMP, _STACK):
            ram.q[_KPTE * 512 + f] = (f * PAGE_SIZE) | kflags
        self.kernel_pgd_entry = (_KPUD * PAGE_SIZE) | x86.P | x86.RW
        uc.reg_write(X.UC_X86_REG_GDTR, (0, KERNEL_VA + _GDT * PAGE_SIZE, 7 * 8 - 1, 0))

    def _enable_paging(self, pgd_pfn: int) -> None:
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_CR3, pgd_pfn * PAGE_SIZE)
        uc.reg_write(X.UC_X86_REG_CR4, x86.CR4_PAE | x86.CR4_OSFXSR | x86.CR4_OSXMMEXCPT)
        efer = uc.reg_read(X.UC_X86_REG_MSR, x86.EFER_MSR)
        uc.reg_write(X.UC_X86_REG_MSR, (x86.EFER_MSR, efer | x86.EFER_NXE | x86.EFER_SCE))
        uc.reg_write(X.UC_X86_REG_CR0, x86.CR0_PG | x86.CR0_WP | x86.CR0_NE
                     | x86.CR0_ET | x86.CR0_MP | x86.CR0_PE)

    def _enter_user(self, rip: int, rsp: int) -> None:
        """Reach CPL 3 as hardware does: iretq from CPL 0 with a user frame.
        Runs until a hook stops the CPU."""
        stack_top = KERNEL_VA + (_STACK + 1) * PAGE_SIZE
        frame = struct.pack("<5Q", rip, x86.USER_CS, 0x202, rsp, x86.USER_DS)
        self.ram.write((_STACK + 1) * PAGE_SIZE - len(frame), frame)
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_RSP, stack_top - len(frame))
        tramp = KERNEL_VA + _TRAMP * PAGE_SIZE
        uc.emu_start(tramp, 0, timeout=2_000_000)

    def _self_test(self):
        """Boot a tiny CPL 3 program and check every quirk minios relies on.

        It takes three page faults (read, write, fetch of an NX page), then
        a ``syscall``. Without the old_exception reset the 2nd would arrive as
        a double fault and the 3rd would silently stop the CPU.
        """
        ram, uc = self.ram, self.uc
        u = x86.P | x86.RW | x86.US
        ram.q[_TEST_PGD * 512 + 0] = (_TEST_PUD * PAGE_SIZE) | u
        ram.q[_TEST_PGD * 512 + 511] = self.kernel_pgd_entry
        ram.q[_TEST_PUD * 512 + 0] = (_TEST_PMD * PAGE_SIZE) | u
        ram.q[_TEST_PMD * 512 + 2] = (_TEST_PTE * PAGE_SIZE) | u       # 4 MiB
        ram.q[_TEST_PTE * 512 + 0] = (_TEST_CODE * PAGE_SIZE) | x86.P | x86.US
        code = bytes.fromhex(
            "488b042500104000"      # mov rax, [0x401000]   read fault (not present)
            "4889042500104000"      # mov [0x401000], rax   write fault (read-only)
            "ff142500204000"        # call [0x402000]       load, then fetch NX page
            "b827000000"            # mov eax, 39
            "0f05"                  # syscall
            "0f05")
        ram.write(_TEST_CODE * PAGE_SIZE, code)
        ram.write(_TEST_DATA * PAGE_SIZE, struct.pack("<Q", 0x403000))
        self._enable_paging(_TEST_PGD)
        seen: list[tuple] = []
        pte = _TEST_PTE * 512

        def trap(vector: int, err: int, cr2: int) -> None:
            seen.append((vector, err, cr2, self.reg("cs") & 3))
            if vector != x86.PF or len(seen) > 5:
                self.stop()
            elif cr2 == 0x401000 and not err & x86.PF_P:
                ram.q[pte + 1] = (_TEST_DATA * PAGE_SIZE) | x86.P | x86.US
            elif cr2 == 0x401000:
                ram.q[pte + 1] |= x86.RW         # upgrade: no flush needed
                self.flush_code()
            elif cr2 == 0x402000:
                ram.q[pte + 2] = (_TEST_DATA * PAGE_SIZE) | x86.P | x86.US
            elif cr2 == 0x403000 and not err & x86.PF_P:
                ram.q[pte + 3] = (_TEST_CODE * PAGE_SIZE) | x86.P | x86.US | x86.NX
            else:                                 # the NX fetch: skip to mov eax
                ram.q[pte + 3] &= ~x86.NX & 0xFFFF_FFFF_FFFF_FFFF
                self.flush_tlb()
                self.set_reg("rip", 0x400000 + 23)
                self.set_reg("rsp", self.reg("rsp") + 8)

        calls: list[list[int]] = []

        def syscall() -> None:
            calls.append(self.syscall_args())
            self.stop()

        self.on_trap, self.on_syscall = trap, syscall
        self._enter_user(0x400000, 0x401800)
        want = [(14, 4, 0x401000, 3), (14, 7, 0x401000, 3), (14, 4, 0x402000, 3),
                (14, 0x14, 0x403000, 3), (14, 0x15, 0x403000, 3)]
        if seen != want:
            raise Trap(f"self-test: faults {seen}, expected {want} (error code /"
                       " old_exception offsets wrong for this Unicorn build?)")
        if len(calls) != 1 or calls[0][0] != 39 or calls[0][7] != 0x400000 + 28:
            raise Trap(f"self-test: syscall hook saw {calls}")
        if self.reg("rip") != 0x400000 + 30:
            raise Trap("self-test: RIP after emu_stop in a syscall hook moved")
        template = uc.context_save()
        for f in range(_TEST_PGD, _TEST_DATA + 1):
            ram.zero_frame(f)
        self.on_trap = self.on_syscall = None   # the kernel installs its own
        return template

    # ------------------------------------------------------------------- hooks
    def _add_raw_hooks(self) -> None:
        """Register the two hooks as bare ctypes callbacks. The binding's
        hook_add wraps each in two more Python frames; every syscall and
        fault pays for them. An exception escaping a hook (a kernel bug) is
        handed to the binding, which stops and re-raises it from emu_start,
        as its own wrapper would."""
        uc = self.uc

        def failed(e: BaseException) -> None:
            if uc._hook_exception is None:
                uc._hook_exception = e
            uc.emu_stop()

        def intr(_h, intno: int, _data) -> None:
            try:
                self._hook_intr(uc, intno, None)
            except BaseException as e:
                failed(e)

        def syscall() -> None:
            self._in_hook = True
            try:
                self.on_syscall()
            except BaseException as e:
                failed(e)
            self._in_hook = False
            if self._tlb_pending:
                self._flush_pending()
        intr_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
        # The syscall hook gets (uc, user_data) and needs neither: declared
        # without parameters, ctypes converts nothing (the SysV x86-64 ABI
        # passes them in registers the callee may ignore).
        sys_t = ctypes.CFUNCTYPE(None)
        self._cbs = (intr_t(intr), sys_t(syscall))
        for cb, kind, extra in ((self._cbs[0], UC_HOOK_INTR, ()),
                                (self._cbs[1], UC_HOOK_INSN, (ctypes.c_int(X.UC_X86_INS_SYSCALL),))):
            hh = ctypes.c_size_t()
            err = uclib.uc_hook_add(self._uch, ctypes.byref(hh), kind, ctypes.cast(cb, ctypes.c_void_p),
                                    None, ctypes.c_uint64(1), ctypes.c_uint64(0), *extra)
            if err:
                raise Trap(f"uc_hook_add failed ({err})")

    def _hook_intr(self, uc, intno: int, _data) -> None:
        # Nothing is delivered through an IDT, so the CPU never clears
        # old_exception: reset it or the next fault becomes #DF, then a
        # silent triple-fault stop. The error code is only in the blob.
        env = self._env
        if env is not None:                 # direct: no context copies
            err = self._env_err.value & 0xFFFF_FFFF
            self._env_old.value = -1
            cr2 = env[self._env_cr2] if intno == x86.PF else 0
        else:
            err = self._reset_exception(uc)
            cr2 = self._one["cr2"].read()[0] if intno == x86.PF else 0
        self._in_trap = self._in_hook = True
        try:
            self.on_trap(intno, err, cr2)
        finally:
            self._in_trap = self._in_hook = False
        if self._tlb_pending:
            self._flush_pending()
        if self._code_flushes:
            # Removing translated code inside the hook re-arms old_exception
            # (measured): flush now, then reset it once more.
            for lo, hi in self._code_flushes:
                self._flush_code_now(lo, hi)
            self._code_flushes.clear()
            self._reset_exception(uc)

    def _reset_exception(self, uc) -> int:
        """Return the error code and clear old_exception (see module doc).
        Raw calls: this runs on every page fault."""
        h, blob, err_p, old_p = self._xargs
        _CTX_SAVE(h, blob)
        err = err_p.value & 0xFFFF_FFFF
        old_p.value = -1
        _CTX_RESTORE(h, blob)
        return err

    # ------------------------------------------------------------- registers
    def reg(self, name: str) -> int:
        i = _ENV_GPR.get(name)
        if i is not None and self._env is not None:
            return self._env[i]             # the live state: no API call
        return self._one[name].read()[0]

    def set_reg(self, name: str, value: int) -> None:
        self._one[name].write(value)

    def syscall_args(self) -> list[int]:
        """[nr, a0..a5, rip_of_syscall, rflags]: from the live state when it
        was found, else in one ctypes call. RFLAGS is computed, not read (its
        arithmetic flags are kept lazily): by QEMU's helper_read_eflags when
        _eflags_reader vouched for it, else by the API."""
        env = self._env
        if env is None:
            return self._in.read()
        rax, rdx, rsi, rdi, r8, r9, r10, rip = _ENV_SYSCALL.unpack_from(env)
        rd = self._read_eflags
        return (rax, rdi, rsi, rdx, r10, r8, r9, rip,
                rd(self._env_addr) if rd is not None else self._one["eflags"].read()[0])

    def set_syscall_result(self, value: int, rip: int, rflags: int) -> None:
        """RAX = result, and the clobbers the syscall instruction makes:
        RCX = return address, R11 = RFLAGS (Unicorn does not write them)."""
        env = self._env
        if env is None:
            self._out.write3(value, rip + 2, rflags)
        else:
            env[0] = value & 0xFFFF_FFFF_FFFF_FFFF
            env[1] = rip + 2
            env[11] = rflags

    def set_rip_in_syscall(self, target: int) -> None:
        """Unicorn adds 2 to any RIP written inside the syscall hook."""
        self._one["rip"].write(target - 2)

    def set_regs(self, **values: int) -> None:
        for name, v in values.items():
            self._one[name].write(v)

    def regs(self) -> dict[str, int]:
        return {n: self._one[n].read()[0] for n in REG}

    # ------------------------------------------- for debuggers (not hot)
    def read_register(self, name: str, ctx=None) -> int:
        """Any architectural register by its lower-case Unicorn name
        ("rax", "eflags", "cs", "fs_base", "xmm3", "st0", "fpcw", "mxcsr"...),
        live, or saved in ``ctx`` (a task context). An x87 register is one
        80-bit integer. KeyError for a name the CPU has not, CPUError if
        Unicorn cannot read it."""
        if ctx is None and name in REG:
            return self.reg(name)
        rid = _arch_id(name)
        try:
            v = (self.uc if ctx is None else ctx).reg_read(rid)
        except UcError as e:
            raise CPUError(str(e)) from None
        if isinstance(v, tuple):                # x87: (mantissa, exponent)
            v = v[0] | (v[1] << 64)
        return int(v)

    def write_register(self, name: str, value: int, ctx=None) -> None:
        """Set any register by name (see read_register), live or in ``ctx``."""
        try:
            if ctx is None and name in REG:
                self._one[name].write(value)
            else:
                (self.uc if ctx is None else ctx).reg_write(_arch_id(name), value)
        except UcError as e:
            raise CPUError(str(e)) from None

    def step(self) -> None:
        """Execute exactly one instruction, at RIP; hooks fire as in run().
        Unicorn's ``count=1`` runs one instruction only if the code is
        translated afresh (with blocks cached it ran to the end of a block:
        measured), so all translated code is dropped first."""
        self.flush_code()
        try:
            self.uc.emu_start(self._one["rip"].read()[0], 0, count=1)
        except UcError as e:
            raise CPUError(str(e)) from None

    def add_mem_hook(self, lo: int, hi: int, read: bool, write: bool,
                     fn: Callable[[bool, int, int], None]):
        """Call ``fn(is_write, paddr, size)`` for each data access of the
        guest that touches the PHYSICAL range [lo, hi] (inclusive): under
        paging Unicorn filters and reports guest-physical addresses. It runs
        inside the instruction: a :meth:`stop` there leaves the access done
        (a write written) and RIP on the instruction, which resuming runs
        again. Code translated before the hook was added may not see it:
        flush_code(). Returns a handle for del_mem_hook."""
        kinds = (UC_HOOK_MEM_READ if read else 0) | (UC_HOOK_MEM_WRITE if write else 0)

        def hook(_uc, access: int, addr: int, size: int, _value: int, _data) -> None:
            fn(access == UC_MEM_WRITE, addr, size)
        return self.uc.hook_add(kinds, hook, None, lo, hi)

    def del_mem_hook(self, handle) -> None:
        """Remove a hook add_mem_hook returned (gone already: nothing)."""
        try:
            self.uc.hook_del(handle)
        except UcError:
            pass

    def abandon_exception(self) -> None:
        """Forget a fault Unicorn left pending in old_exception by work done
        outside a hook (a code flush by a range, or a lookup, through an
        address that is not mapped: see flush_code); left there, the guest's
        next fault would arrive as #DF. In a trap hook it does nothing: the
        end of the hook resets it."""
        if not self._in_trap:
            self._reset_exception(self.uc)

    def save_context(self):
        """A snapshot of the whole live state, FPU and SSE included (a new
        context, not a task's: for load_context)."""
        return self.uc.context_save()

    def load_context(self, ctx) -> None:
        """Put back a save_context snapshot, in the same address space (as
        a plain copy of the state: the TLB is kept)."""
        self.uc.context_restore(ctx)

    # ------------------------------------------------------------------- MMU
    def set_cr3(self, pgd_pfn: int) -> None:
        """Load a page-table root. Writing CR3 also flushes the TLB."""
        self.tlb_gen += 1
        self._one["cr3"].write(pgd_pfn * PAGE_SIZE)

    def flush_tlb(self) -> None:
        """Drop every cached translation. ``tlb_gen`` counts these flushes,
        so software caches of translations can tell they are stale (at
        once). Inside a hook the CPU's own flush waits for the end of the
        hook, when the guest is about to run again: it sweeps ~80 KiB of
        QEMU's tables, and the kernel code still to run in the hook would
        find its data evicted from the host's caches (a fork's last ~20 us
        ran at half speed)."""
        self.tlb_gen += 1
        if self._in_hook:
            self._tlb_pending = True
        else:
            _CTL0(self._h, _CTL_TLB_FLUSH)

    def _flush_pending(self) -> None:
        """The CPU's flush that flush_tlb left for the end of a hook."""
        self._tlb_pending = False
        _CTL0(self._h, _CTL_TLB_FLUSH)

    def flush_code(self, lo: int | None = None, hi: int | None = None) -> None:
        """Drop translated code after rewriting it: all of it, or the blocks
        of the VIRTUAL range [lo, hi) (Unicorn translates it through the
        current tables; an unmapped address leaves a fault pending, so pass
        only mapped ranges). Inside a trap hook the flush is deferred to
        the end of the hook, which then resets the exception state."""
        if self._in_trap:
            self._code_flushes.append((lo, hi))
        else:
            self._flush_code_now(lo, hi)

    def _flush_code_now(self, lo: int | None, hi: int | None) -> None:
        if self._tlb_pending:            # a range is looked up through the TLB
            self._flush_pending()
        if lo is None:
            _CTL0(self._h, _CTL_TB_FLUSH)
        else:
            self.uc.ctl_remove_cache(lo, hi)

    # ------------------------------------------------------- the live state
    def _find_env(self) -> None:
        """Locate Unicorn's live CPUX86State in memory, so the hot paths
        (syscall arguments and results, the fault's error code, CR2 and the
        old_exception reset) read and write it directly instead of through
        API calls and context copies. Nothing documents where it is: it is
        found by setting the 16 GPRs to random values and looking for them
        in memory that words of the uc_struct point to (bounded reads of
        readable mappings only), then proven by writing through the API and
        reading it back, and the other way round. If anything does not
        match, ``_env`` stays None and the API paths are used."""
        cur = self.uc.context_save()
        try:
            env = self._locate_env()
        except (OSError, ValueError):
            env = None
        finally:
            self.uc.context_restore(cur)
        if env is None:
            return
        words = (ctypes.c_uint64 * (_OLD_EXCEPTION // 8 + 1)).from_address(env)
        cr2 = _CTX_CR3 - 1                   # cr[] is an array: cr[2] precedes cr[3]
        probe = 0x7F12_3456_7000
        old_cr2 = self._one["cr2"].read()[0]
        self._one["cr2"].write(probe)
        ok = words[cr2] == probe
        self._one["cr2"].write(old_cr2)
        if not ok:
            return
        # A memoryview of unsigned words: indexing and struct unpacking
        # through it are cheaper than through the ctypes array.
        self._env = memoryview(words).cast("B").cast("Q")
        self._env_addr = env
        self._env_cr2 = cr2
        self._read_eflags = self._eflags_reader(env)
        self._env_err = ctypes.c_int32.from_address(env + _ERROR_CODE - _ENV)
        self._env_old = ctypes.c_int32.from_address(env + _OLD_EXCEPTION - _ENV)

    def _eflags_reader(self, env: int):
        """QEMU's own helper_read_eflags (what ``pushf`` returns: the lazily
        computed arithmetic flags folded in), called on the live state: a
        cheaper RFLAGS than the API's. Used only if it agrees with the API
        for a spread of flag values."""
        fn = getattr(uclib, "helper_read_eflags_x86_64", None)
        if fn is None:
            return None
        read = ctypes.PYFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(
            ctypes.cast(fn, ctypes.c_void_p).value)
        keep = self.reg("eflags")
        ok = True
        for v in (0x2, 0x202, 0x2D7, 0xAD7, 0x246, keep):
            self.set_reg("eflags", v)
            if read(env) != self.reg("eflags") & ~_RF_VM:
                ok = False
        self.set_reg("eflags", keep)
        return read if ok else None

    def _locate_env(self) -> int | None:
        global _ENV_LOC
        magic = [v | 1 for v in struct.unpack("<16Q", os.urandom(128))]
        names = list(CTX)[:16]
        self.set_regs(**dict(zip(names, magic)))
        pat = struct.pack("<16Q", *magic)
        ranges = []
        with open("/proc/self/maps") as f:
            for line in f:
                addr, perms = line.split()[:2]
                if perms.startswith("r"):
                    lo, hi = (int(x, 16) for x in addr.split("-"))
                    ranges.append((lo, hi))
        ranges.sort()
        los = [lo for lo, _ in ranges]

        def end_of(a: int) -> int | None:
            i = bisect.bisect_right(los, a) - 1
            return ranges[i][1] if i >= 0 and a < ranges[i][1] else None

        def proven(env: int) -> bool:
            if ctypes.string_at(env, 128) != pat:
                return False
            self.set_regs(rax=0x5EED_0001)
            seen = ctypes.c_uint64.from_address(env).value
            ctypes.c_uint64.from_address(env + 8).value = 0x5EED_0002
            return seen == 0x5EED_0001 and self.reg("rcx") == 0x5EED_0002

        h = self._h
        hend = end_of(h)
        if hend is None:
            return None
        words = (ctypes.c_uint64 * (min(hend - h, 1 << 16) // 8)).from_address(h)
        if _ENV_LOC is not None:             # where it was for an earlier CPU
            i, delta = _ENV_LOC
            if i < len(words) and end_of(words[i]) is not None:
                env = words[i] + delta
                if end_of(env) is not None and end_of(env + 8192) is not None and proven(env):
                    return env
            self.set_regs(**dict(zip(names, magic)))
        seen: set[int] = set()
        for i in range(len(words)):
            w = words[i]
            if w & 7 or w in seen:
                continue
            seen.add(w)
            end = end_of(w)
            if end is None:
                continue
            j = ctypes.string_at(w, min(end - w, 1 << 18)).find(pat)
            if j >= 0 and j % 8 == 0 and end_of(w + j + 8192) is not None:
                if proven(w + j):
                    _ENV_LOC = (i, j)
                    return w + j
                self.set_regs(**dict(zip(names, magic)))
        return None

    # -------------------------------------------------------------- contexts
    # A saved context is CPUX86State as bytes: regs[16] then eip. Reading or
    # writing a saved register in place costs a fraction of a restore, a
    # register write and a save (checked at boot by _check_ctx_layout).
    def ctx_regs(self, ctx):
        """The saved registers of ``ctx`` as a live array (``CTX_*`` indices)."""
        v = getattr(ctx, "_regs", None)
        return v if v is not None else _adopt(ctx)._regs

    def ctx_reg(self, ctx, name: str) -> int:
        return self.ctx_regs(ctx)[CTX[name]]

    def switch_context(self, old, new, cr3: int, same_space: bool = False) -> None:
        """Save the live registers into ``old`` (None: drop them), load
        ``new`` with page-table root ``cr3`` and flush the TLB, which
        context_restore alone keeps (it is a plain copy of the state). A
        switch within one address space (``same_space``: threads) keeps
        the TLB, as a CPU keeps it when CR3 does not change. Both are
        task contexts (new_context, clone_context)."""
        if old is not None:
            _CTX_SAVE(self._h, old._ptr)
        new._regs[_CTX_CR3] = cr3 * PAGE_SIZE
        _CTX_RESTORE(self._h, new._ptr)
        if not same_space:                     # tlb_gen stays: it is for changes of
            self._tlb_pending = False          # one address space's tables
            _CTL0(self._h, _CTL_TLB_FLUSH)

    def _check_ctx_layout(self) -> None:
        """Find CR3 in the context blob and check the register offsets."""
        global _CTX_CR3
        ctx = self.uc.context_save()
        cur = self.uc.context_save()
        want = {name: 0x1111 * (i + 1) for i, name in enumerate(CTX)}
        self.set_regs(**want)
        self.set_cr3(_TEST_PTE)
        self.uc.context_update(ctx)
        got = {name: self.ctx_reg(ctx, name) for name in CTX}
        words = self.ctx_regs(ctx)          # the whole blob, no further
        hits = [i for i in range(len(words)) if words[i] == _TEST_PTE * PAGE_SIZE]
        self.set_cr3(_TEST_PMD)
        self.uc.context_update(ctx)
        hits = [i for i in hits if words[i] == _TEST_PMD * PAGE_SIZE]
        self.uc.context_restore(cur)
        if got != want or len(hits) != 1:
            raise Trap(f"self-test: saved context layout differs: {got}, CR3 at {hits}")
        _CTX_CR3 = hits[0]

    def new_context(self):
        """A CPL 3 register context with the state the boot test left."""
        ctx = self.uc.context_save()
        self.uc.context_restore(self.user_template)
        self.uc.context_update(ctx)
        return _adopt(ctx)

    def free_context(self, ctx) -> None:
        """``ctx`` is no longer anyone's: keep it for the next clone."""
        if ctx is not None and len(self._ctx_pool) < _POOL_MAX:
            self._ctx_pool.append(ctx)

    def clone_context(self, **regs: int):
        """A new context equal to the live CPU state but for ``regs``
        (fork's child: RIP, RAX = 0, RCX/R11, maybe RSP and FS base)."""
        if self._ctx_pool:
            ctx = self._ctx_pool.pop()
            _CTX_SAVE(self._h, ctx._ptr)
        else:
            ctx = _adopt(self.uc.context_save())
        saved, rest = ctx._regs, {}
        for name, v in regs.items():                    # in place: most of them
            i = CTX.get(name)
            if i is None:
                rest[name] = v
            else:
                saved[i] = v & 0xFFFF_FFFF_FFFF_FFFF
        if not rest:
            return ctx
        regs = rest
        n = len(regs)
        ids = (ctypes.c_int * n)(*[REG[r] for r in regs])
        vals = (ctypes.c_uint64 * n)(*[v & 0xFFFF_FFFF_FFFF_FFFF for v in regs.values()])
        base = ctypes.addressof(vals)
        ptrs = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])
        _CTX_WRITE_BATCH(ctx._ptr, ctypes.addressof(ids), ctypes.addressof(ptrs), n)
        return ctx

    # -------------------------------------------------------------------- run
    def run(self, slice_us: int = 0) -> None:
        """Execute from the current RIP until a hook stops the CPU or, with
        ``slice_us``, until a run has lasted one to two slices.

        Measured hazards decide the design. Unicorn's ``timeout`` starts a
        timer thread per emu_start (~400 us each). ``count`` is 10x slower,
        and after a counted run a later ``count=0`` run can keep stopping
        at its first instruction (the count hook stays armed). And any
        ``emu_stop`` from another thread can land inside a read-modify-
        write instruction, which then runs again on resume. So one watchdog
        thread stops only a run it has seen running for a whole slice: the
        kernel arms it only while another task waits, with a long slice, so
        it fires only for guests that spin without syscalls."""
        rip = self._one["rip"].read()[0]
        if self._tlb_pending:               # a hook that failed left it
            self._flush_pending()
        if slice_us:
            if self._watchdog is None:
                self._start_watchdog(slice_us)
            self._run_gen += 1
            self._armed = True
        try:
            self.uc.emu_start(rip, 0)
        finally:
            self._armed = False

    def arm_slice(self, slice_us: int) -> None:
        """Give the run in progress a slice, as if started with ``slice_us``
        (it ends when the run does): cheaper than stopping and restarting."""
        if self._watchdog is None:
            self._start_watchdog(slice_us)
        self._run_gen += 1
        self._armed = True

    def new_slice(self, slice_us: int) -> None:
        """The run in progress now runs another task: restart its slice,
        or drop it (``slice_us`` 0) when no other task waits."""
        if slice_us:
            self.arm_slice(slice_us)
        else:
            self._armed = False

    def _start_watchdog(self, slice_us: int) -> None:
        def loop() -> None:
            seen = -1
            while True:
                time.sleep(slice_us / 1e6)
                gen = self._run_gen
                if self._armed and gen == seen:
                    self.uc.emu_stop()
                    self.async_stops += 1
                seen = gen
        self._watchdog = threading.Thread(target=loop, name="minios-slice", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        self.uc.emu_stop()
