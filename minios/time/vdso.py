"""The vDSO: a one-page shared object every process gets at execve, as on
Linux, so that clock_gettime, gettimeofday and time cost no system call.

glibc and musl find it through AT_SYSINFO_EHDR and look its symbols up
the way a dynamic linker would: program headers, then the dynamic
section's hash table, symbols, strings and symbol versions (every symbol
is version LINUX_2.6). Like Linux's, it is linked at address 0 and has no
relocations, so one image serves every process; its page is shared
through the page cache.

The code is the assembly below, assembled once with GNU as (``--64``) and
kept as bytes; ``tests/test_vdso.py`` reassembles it and compares. It
reads the TSC and the numbers at ``vdata``, which the kernel fills from
``minios/time/clock.py``. A clock it does not keep is passed to the kernel with
the ``syscall`` instruction, as Linux's vDSO falls back.

    __vdso_clock_gettime:               # (clockid_t clk, struct timespec *ts)
            cmp     edi, 15
            ja      1f                  # negative ids (other processes' CPU clocks)
            mov     r8d, edi
            mov     eax, [rip + vdata + 20]
            bt      eax, edi
            jnc     1f                  # not a clock the vDSO keeps
            call    vclock
            xor     edx, edx
            mov     ecx, 1000000000
            div     rcx
            mov     [rsi], rax
            mov     [rsi + 8], rdx
            xor     eax, eax
            ret
    1:      mov     eax, 228            # SYS_clock_gettime
            syscall
            ret
    __vdso_gettimeofday:                # (struct timeval *tv, struct timezone *tz)
            test    rdi, rdi
            jz      1f
            xor     r8d, r8d
            call    vclock
            xor     edx, edx
            mov     ecx, 1000
            div     rcx
            xor     edx, edx
            mov     ecx, 1000000
            div     rcx
            mov     [rdi], rax
            mov     [rdi + 8], rdx
    1:      test    rsi, rsi
            jz      2f
            mov     QWORD PTR [rsi], 0  # UTC, no DST, as the kernel's gettimeofday
    2:      xor     eax, eax
            ret
    __vdso_time:                        # (time_t *t)
            xor     r8d, r8d
            call    vclock
            xor     edx, edx
            mov     ecx, 1000000000
            div     rcx
            test    rdi, rdi
            jz      1f
            mov     [rdi], rax
    1:      ret
    vclock:                             # rax = base[r8] + ((tsc - tsc0) * mult >> shift)
            rdtsc
            shl     rdx, 32
            or      rax, rdx
            sub     rax, [rip + vdata]
            jae     1f
            xor     eax, eax            # a TSC behind the anchor reads as the anchor
    1:      mul     QWORD PTR [rip + vdata + 8]
            mov     ecx, [rip + vdata + 16]
            shrd    rax, rdx, cl
            lea     rcx, [rip + vdata + 24]
            add     rax, [rcx + r8 * 8]
            ret
            .balign 8
    vdata:                              # tsc0, mult, shift (u32), mask (u32), base[16]
"""
from __future__ import annotations

import struct

from emu.ram import PAGE_SIZE

CODE = bytes.fromhex(
    "83ff0f77274189f88b05be0000000fa3f87319e86e00000031d2b900ca9a3b48f7f148890648"
    "89560831c0c3b8e40000000f05c34885ff74234531c0e84500000031d2b9e803000048f7f131"
    "d2b940420f0048f7f1488907488957084885f6740748c7060000000031c0c34531c0e8130000"
    "0031d2b900ca9a3b48f7f14885ff7403488907c30f3148c1e2204809d0482b05220000007302"
    "31c048f7251f0000008b0d21000000480fadd0488d0d1e0000004a0304c1c390")
VDATA = 0xB8                 # offset of vdata in CODE's section
ENTRIES = {"__vdso_clock_gettime": (0x00, 0x34), "__vdso_gettimeofday": (0x34, 0x37),
           "__vdso_time": (0x6B, 0x1B)}          # name: (offset, size)
# Linux exports each function under both names, the plain one weak.
SYMBOLS = [(name, alias) for alias in ENTRIES for name in (alias, alias[len("__vdso_"):])]
SONAME, VERSION = "linux-vdso.so.1", "LINUX_2.6"

PT_LOAD, PT_DYNAMIC, PT_GNU_STACK = 1, 2, 0x6474E551
NPHDR = 3
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_SONAME = 0, 4, 5, 6, 10, 11, 14
DT_VERSYM, DT_VERDEF, DT_VERDEFNUM = 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFD
SHT_PROGBITS, SHT_STRTAB, SHT_HASH, SHT_DYNAMIC, SHT_DYNSYM = 1, 3, 5, 6, 11
SHT_GNU_VERDEF, SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFF
SHF_ALLOC, SHF_EXECINSTR = 2, 4
STB_GLOBAL, STB_WEAK, STT_FUNC = 1, 2, 2
VER_FLG_BASE = 1


def elf_hash(name: bytes) -> int:
    """The System V ABI's symbol hash (DT_HASH, and Verdef's vd_hash)."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        h = (h ^ (g >> 24)) & ~g
    return h


def build_image(vdata: bytes) -> bytes:
    """The vDSO ELF image with ``vdata`` (``Clock.vdata()``) at ``vdata``."""
    strtab = bytearray(b"\0")

    def string(s: str) -> int:
        strtab.extend(s.encode() + b"\0")
        return len(strtab) - len(s) - 1

    names = [string(n) for n, _ in SYMBOLS]
    soname, version = string(SONAME), string(VERSION)
    nsym = len(SYMBOLS) + 1
    # One bucket: lookups walk a chain through every symbol.
    hashtab = struct.pack(f"<{2 + 1 + nsym}I", 1, nsym, 1, 0, *range(2, nsym), 0)
    versym = struct.pack(f"<{nsym}H", 0, *[2] * len(SYMBOLS))
    verdef = (struct.pack("<HHHHIII", 1, VER_FLG_BASE, 1, 1, elf_hash(SONAME.encode()), 20, 28)
              + struct.pack("<II", soname, 0)
              + struct.pack("<HHHHIII", 1, 0, 2, 1, elf_hash(VERSION.encode()), 20, 0)
              + struct.pack("<II", version, 0))
    text = CODE + vdata

    # Lay the sections out after the ELF and program headers, at their
    # alignment; addresses equal file offsets (linked at 0).
    layout: list[tuple[str, int, int]] = []      # (name, offset, size)
    pos = 64 + NPHDR * 56

    def place(name: str, size: int, align: int) -> int:
        nonlocal pos
        pos = (pos + align - 1) & -align
        layout.append((name, pos, size))
        pos += size
        return pos - size

    nsyms_bytes = 24 * nsym
    ndyn = 10
    o_hash = place(".hash", len(hashtab), 8)
    o_sym = place(".dynsym", nsyms_bytes, 8)
    o_str = place(".dynstr", len(strtab), 1)
    o_versym = place(".gnu.version", len(versym), 2)
    o_verdef = place(".gnu.version_d", len(verdef), 8)
    o_dyn = place(".dynamic", 16 * ndyn, 8)
    o_text = place(".text", len(text), 16)
    shstr = b"\0" + b"\0".join(n.encode() for n, _, _ in layout) + b"\0.shstrtab\0"
    o_shstr = place(".shstrtab", len(shstr), 1)
    o_sh = (pos + 7) & -8
    if o_sh + 64 * (len(layout) + 1) > PAGE_SIZE:
        raise AssertionError("the vDSO outgrew its page")

    # The one PT_LOAD covers the whole image, section headers included, as
    # Linux's: gdb reads the vDSO's symbols from memory through them.
    end = o_sh + 64 * (len(layout) + 1)
    img = bytearray(end)
    shnum = len(layout) + 1
    text_ndx = 1 + [n for n, _, _ in layout].index(".text")
    img[0:64] = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 3, 62, 1,
                            0, 64, o_sh, 0, 64, 56, NPHDR, 64, shnum, shnum - 1)
    # PT_GNU_STACK: no executable stack wanted (a loader may refuse one).
    img[64:64 + NPHDR * 56] = (
        struct.pack("<IIQQQQQQ", PT_LOAD, 5, 0, 0, 0, end, end, PAGE_SIZE)
        + struct.pack("<IIQQQQQQ", PT_DYNAMIC, 4, o_dyn, o_dyn, o_dyn, 16 * ndyn, 16 * ndyn, 8)
        + struct.pack("<IIQQQQQQ", PT_GNU_STACK, 6, 0, 0, 0, 0, 0, 16))
    img[o_hash:o_hash + len(hashtab)] = hashtab
    syms = bytearray(24)
    for (name, alias), off in zip(SYMBOLS, names):
        value, size = ENTRIES[alias]
        bind = STB_GLOBAL if name == alias else STB_WEAK
        syms += struct.pack("<IBBHQQ", off, bind << 4 | STT_FUNC, 0, text_ndx,
                            o_text + value, size)
    img[o_sym:o_sym + nsyms_bytes] = syms
    img[o_str:o_str + len(strtab)] = strtab
    img[o_versym:o_versym + len(versym)] = versym
    img[o_verdef:o_verdef + len(verdef)] = verdef
    dyn = [(DT_HASH, o_hash), (DT_STRTAB, o_str), (DT_SYMTAB, o_sym), (DT_STRSZ, len(strtab)),
           (DT_SYMENT, 24), (DT_SONAME, soname), (DT_VERSYM, o_versym), (DT_VERDEF, o_verdef),
           (DT_VERDEFNUM, 2), (DT_NULL, 0)]
    img[o_dyn:o_dyn + 16 * ndyn] = b"".join(struct.pack("<qQ", t, v) for t, v in dyn)
    img[o_text:o_text + len(text)] = text
    img[o_shstr:o_shstr + len(shstr)] = shstr

    # Section headers: for tools (gdb, readelf) only; loaders use the above.
    def sh_name(n: str) -> int:
        return shstr.index(b"\0" + n.encode() + b"\0") + 1

    link = {".hash": 2, ".dynsym": 3, ".gnu.version": 2, ".gnu.version_d": 3, ".dynamic": 3}
    kind = {".hash": (SHT_HASH, SHF_ALLOC, 4, 4), ".dynsym": (SHT_DYNSYM, SHF_ALLOC, 8, 24),
            ".dynstr": (SHT_STRTAB, SHF_ALLOC, 1, 0),
            ".gnu.version": (SHT_GNU_VERSYM, SHF_ALLOC, 2, 2),
            ".gnu.version_d": (SHT_GNU_VERDEF, SHF_ALLOC, 8, 0),
            ".dynamic": (SHT_DYNAMIC, SHF_ALLOC, 8, 16),
            ".text": (SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 16, 0),
            ".shstrtab": (SHT_STRTAB, 0, 1, 0)}
    info = {".dynsym": 1, ".gnu.version_d": 2}
    sh = bytearray(64)
    for n, off, size in layout:
        typ, flags, align, entsize = kind[n]
        addr = off if flags & SHF_ALLOC else 0
        sh += struct.pack("<IIQQQQIIQQ", sh_name(n), typ, flags, addr, off, size,
                          link.get(n, 0), info.get(n, 0), align, entsize)
    img[o_sh:] = sh
    return bytes(img)
