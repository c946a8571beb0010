"""Registers: the ``g G p P`` layouts and the target description gdb reads.

One table, ``REGS``, gives the order of the ``g`` packet and the regnums of
``target.xml`` (an i386:x86-64 GNU/Linux description: the general registers,
rip, eflags, the segment selectors, x87, SSE, orig_rax, fs_base, gs_base).
Values come from the CPU when the thread is the one running, else from its
saved context. Writes to selectors, x87 and orig_rax are ignored.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu.cpu import CPUError
from minios.gdbstub.packets import hex_le

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task

# (gdb's name, bytes, the CPU's name or None, writable), in the order of the
# target description below, which is the order of the ``g`` packet.
_GPR = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
        "r11", "r12", "r13", "r14", "r15", "rip")
_FPU = (("fctrl", "fpcw"), ("fstat", "fpsw"), ("ftag", "fptag"), ("fiseg", "fcs"),
        ("fioff", "fip"), ("foseg", "fds"), ("fooff", "fdp"), ("fop", "fop"))
REGS: list[tuple[str, int, str | None, bool]] = []
REGS += [(n, 8, n, True) for n in _GPR]
REGS += [("eflags", 4, "eflags", True)]
REGS += [(n, 4, n, False) for n in ("cs", "ss", "ds", "es", "fs", "gs")]
REGS += [(f"st{i}", 10, f"st{i}", False) for i in range(8)]
REGS += [(n, 4, hw, False) for n, hw in _FPU]
REGS += [(f"xmm{i}", 16, f"xmm{i}", True) for i in range(16)]
REGS += [("mxcsr", 4, "mxcsr", True), ("orig_rax", 8, None, False),
         ("fs_base", 8, "fs_base", True), ("gs_base", 8, "gs_base", True)]
REGNUM = {r[0]: i for i, r in enumerate(REGS)}


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


def _ctx(k: "Kernel", t: "Task"):
    """Where ``t``'s registers are: the CPU (None) if it runs, else its context."""
    return None if t is k.current else t.ctx


def reg_value(k: "Kernel", t: "Task", i: int) -> int:
    """Register ``i`` (a regnum) of thread ``t``; 0 if it cannot be read."""
    name, _, hw, _ = REGS[i]
    if name == "orig_rax":
        return -1
    if hw is None:
        return 0
    try:
        return k.cpu.read_register(hw, _ctx(k, t))
    except (CPUError, KeyError, ValueError, TypeError):
        return 0


def reg_hex(k: "Kernel", t: "Task", i: int) -> str:
    return hex_le(reg_value(k, t, i), REGS[i][1])


def set_reg(k: "Kernel", t: "Task", i: int, value: int) -> None:
    """Write register ``i`` of ``t`` (ignored if it is not writable)."""
    _, size, hw, writable = REGS[i]
    if not writable or hw is None:
        return                               # selectors, x87, orig_rax: ignored
    k.cpu.write_register(hw, value & ((1 << (8 * size)) - 1), _ctx(k, t))


def all_regs(k: "Kernel", t: "Task") -> str:
    """The ``g`` reply."""
    return "".join(reg_hex(k, t, i) for i in range(len(REGS)))


def write_all_regs(k: "Kernel", t: "Task", hexdata: bytes) -> None:
    """A ``G`` packet: as many registers as its data covers."""
    raw = bytes.fromhex(hexdata.decode())
    pos = 0
    for i, (_, size, _, _) in enumerate(REGS):
        if pos + size > len(raw):
            break
        set_reg(k, t, i, int.from_bytes(raw[pos:pos + size], "little"))
        pos += size
