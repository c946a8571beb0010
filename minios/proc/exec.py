"""execve: load a static ELF (ET_EXEC or static-PIE) into a fresh mm and
build the initial stack (argc, argv, envp, auxv) the way Linux does.

Segments are mapped as private file images: a page is filled from the file
when first touched, so a large binary costs only what it runs.
"""
from __future__ import annotations

import io
import os
import struct
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from emu.ram import PAGE_SIZE
from minios.uapi import errno
from minios.mm.mm_types import (MM, VMA, FileImage, PROT_EXEC, PROT_READ, PROT_WRITE,
                       STACK_TOP, page_down, page_up)
from minios.mm.teardown import mmput
from minios.mm.uaccess import copy_to_user
from minios.fs.vfs import exec_file_bytes
from minios.proc.exit import complete_vfork_done
from minios.proc.task import SigAction, SigHand

if TYPE_CHECKING:
    from minios.kernel import Kernel
    from minios.proc.task import Task

PIE_BASE = 0x5555_5555_4000
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR = 23, 25, 26, 31, 33
MAX_ARG_BYTES = 2 << 20


class ExecError(Exception):
    """execve failed before the old image was destroyed; ``errno`` says why."""

    def __init__(self, err: int, msg: str) -> None:
        super().__init__(msg)
        self.errno = err


def parse_elf(data: bytes, path: str):
    """Validate a static x86-64 executable; returns (ELFFile, pie)."""
    if data[:4] != b"\x7fELF":
        raise ExecError(errno.ENOEXEC, f"{path}: not an ELF file")
    if len(data) < 64:
        raise ExecError(errno.ENOEXEC, f"{path}: truncated ELF (no complete header)")
    if data[4] != 2:
        raise ExecError(errno.ENOEXEC, f"{path}: 32-bit ELF is not supported (x86-64 only)")
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] != "EM_X86_64":
            raise ExecError(errno.ENOEXEC, f"{path}: ELF for {elf['e_machine']}, not x86-64")
        if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
            raise ExecError(errno.ENOEXEC, f"{path}: not an executable ({elf['e_type']})")
        segs = list(elf.iter_segments())
    except ELFError as e:
        raise ExecError(errno.ENOEXEC, f"{path}: corrupt ELF: {e}") from None
    except (struct.error, ValueError, IndexError, OverflowError, KeyError, TypeError) as e:
        raise ExecError(errno.ENOEXEC, f"{path}: truncated or corrupt ELF "
                        f"({type(e).__name__}: {e})") from None
    for s in segs:
        if s["p_type"] == "PT_INTERP":
            interp = data[s["p_offset"]:s["p_offset"] + s["p_filesz"]].rstrip(b"\0")
            raise ExecError(errno.ENOEXEC, f"{path}: dynamically linked (needs interpreter "
                            f"{interp.decode(errors='replace')}); minios runs static binaries only")
    loads = [s for s in segs if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise ExecError(errno.ENOEXEC, f"{path}: no loadable segments")
    for s in loads:
        if s["p_offset"] + s["p_filesz"] > len(data) or s["p_filesz"] > s["p_memsz"]:
            raise ExecError(errno.ENOEXEC, f"{path}: truncated ELF (segment past end of file)")
        if s["p_vaddr"] + s["p_memsz"] >= 1 << 47:
            raise ExecError(errno.ENOEXEC, f"{path}: segment outside the user address space")
    return elf, loads, elf["e_type"] == "ET_DYN"


def load_segments(mm: MM, data: bytes, elf, loads, pie: bool, path: str) -> tuple[int, int, int]:
    """Map PT_LOADs; returns (load bias, phdr address, end of the image)."""
    bias = PIE_BASE if pie else 0
    phdr = 0
    end = 0
    for s in loads:
        va = s["p_vaddr"] + bias
        start, stop = page_down(va), page_up(va + s["p_memsz"])
        prot = ((PROT_READ if s["p_flags"] & 4 else 0) | (PROT_WRITE if s["p_flags"] & 2 else 0)
                | (PROT_EXEC if s["p_flags"] & 1 else 0))
        image = FileImage(data, s["p_offset"] - (va - start), va + s["p_filesz"], path)
        if mm.overlapping(start, stop):
            raise ExecError(errno.ENOEXEC, f"{path}: overlapping segments")
        mm.insert_vma(VMA(start, stop, prot, name=path, image=image))
        if s["p_offset"] <= elf["e_phoff"] < s["p_offset"] + s["p_filesz"]:
            phdr = va + elf["e_phoff"] - s["p_offset"]
        end = max(end, stop)
    return bias, phdr, end


def map_vdso(k: "Kernel", mm: MM) -> int:
    """Map the kernel's vDSO image (one page, read and execute) at the top
    of the mmap area, where Linux puts it; returns its address, 0 if none."""
    img = k.vdso_image
    if img is None:
        return 0
    va = mm.get_unmapped_area(PAGE_SIZE)
    if va is None:
        raise ExecError(errno.ENOMEM, "no address space for the vDSO")
    mm.insert_vma(VMA(va, va + PAGE_SIZE, PROT_READ | PROT_EXEC, name="[vdso]",
                      image=FileImage(img, 0, va + len(img), "[vdso]")))
    return va


def _build_stack(mm: MM, argv: list[bytes], envp: list[bytes],
                 auxv: list[tuple[int, int]], execfn: bytes) -> int:
    """Strings at the top, then the 16 AT_RANDOM bytes and the platform
    name, then (16-aligned) argc, argv[], NULL, envp[], NULL, auxv[]."""
    stack_vma = VMA(STACK_TOP - (132 << 10), STACK_TOP, PROT_READ | PROT_WRITE,
                    grows_down=True, name="[stack]")
    mm.insert_vma(stack_vma)
    blob = bytearray()
    offs: list[int] = []
    for s in [execfn] + argv + envp:
        offs.append(len(blob))
        blob += s + b"\0"
    rand_off = len(blob)
    blob += os.urandom(16)
    plat_off = len(blob)
    blob += b"x86_64\0"
    base = (STACK_TOP - 16 - len(blob)) & ~15
    ptrs = [base + o for o in offs]
    execfn_p, argv_p, envp_p = ptrs[0], ptrs[1:1 + len(argv)], ptrs[1 + len(argv):]
    mm.arg_start = argv_p[0] if argv else base
    mm.arg_end = mm.env_start = envp_p[0] if envp else base + rand_off
    mm.env_end = base + rand_off
    aux = auxv + [(AT_RANDOM, base + rand_off), (AT_EXECFN, execfn_p),
                  (AT_PLATFORM, base + plat_off), (AT_NULL, 0)]
    words = [len(argv)] + argv_p + [0] + envp_p + [0]
    for a, v in aux:
        words += [a, v]
    sp = (base - 8 * len(words)) & ~15
    copy_to_user(mm, base, bytes(blob))
    copy_to_user(mm, sp, struct.pack(f"<{len(words)}Q", *words))
    mm.start_stack = sp
    stack_vma.start = min(stack_vma.start, page_down(sp) - PAGE_SIZE)
    return sp


def read_executable(k: "Kernel", path: str) -> bytes:
    """The bytes of an executable, with execve's errors (ExecError). The
    program Machine.run boots is read from the host even if /tmp hides it."""
    boot = k.boot_exe
    if boot is not None and path == boot[0]:
        try:
            with open(boot[1], "rb") as fh:
                return fh.read()
        except OSError as e:
            raise ExecError(e.errno or errno.EIO, f"{path}: {e.strerror}") from None
    try:
        return exec_file_bytes(k, path)
    except OSError as e:
        err = e.errno if isinstance(e.errno, int) else errno.ENOENT
        raise ExecError(err, f"{path}: {os.strerror(err)}") from None


def exec_into(k: "Kernel", t: "Task", path: str, argv: list[bytes], envp: list[bytes],
              data: bytes | None = None) -> int:
    """Replace ``t``'s image. Raises ExecError with nothing changed on
    failure; after the point of no return only guest faults can occur.
    Sets every register but RIP and returns the entry point: the caller
    writes RIP (inside a syscall hook it must allow for Unicorn's +2)."""
    if data is None:
        data = read_executable(k, path)
    if sum(len(a) + 1 for a in argv + envp) > MAX_ARG_BYTES:
        raise ExecError(errno.E2BIG, f"{path}: argument list too long")
    elf, loads, pie = parse_elf(data, path)
    mm = MM(k)
    try:
        bias, phdr, end = load_segments(mm, data, elf, loads, pie, path)
        if end - bias > k.ram.size:
            raise ExecError(errno.ENOMEM, f"{path}: program larger than RAM "
                            f"({end - bias} bytes > {k.ram.size})")
        entry = elf["e_entry"] + bias
        mm.start_brk = mm.brk = end
        mm.exe = path
        vdso = map_vdso(k, mm)
        auxv = [(AT_PHDR, phdr), (AT_PHENT, elf["e_phentsize"]), (AT_PHNUM, elf["e_phnum"]),
                (AT_PAGESZ, PAGE_SIZE), (AT_BASE, 0), (AT_FLAGS, 0), (AT_ENTRY, entry),
                (AT_UID, 0), (AT_EUID, 0), (AT_GID, 0), (AT_EGID, 0),
                (AT_HWCAP, 0x178BFBFF), (AT_HWCAP2, 0), (AT_CLKTCK, 100), (AT_SECURE, 0)]
        if vdso:                                     # first, as Linux's ARCH_DLINFO
            auxv.insert(0, (AT_SYSINFO_EHDR, vdso))
        uid = os.getuid()
        gid = os.getgid()
        auxv = [(a, uid if a in (AT_UID, AT_EUID) else gid if a in (AT_GID, AT_EGID) else v)
                for a, v in auxv]
        sp = _build_stack(mm, argv, envp, auxv, path.encode())
    except Exception:
        mmput(mm)
        raise
    begin_new_exec(k, t, mm, path, argv)
    regs = {n: 0 for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
                           "r10", "r11", "r12", "r13", "r14", "r15", "fs_base", "gs_base")}
    regs.update(rsp=sp, eflags=0x202)
    k.cpu.set_regs(**regs)
    return entry


def begin_new_exec(k: "Kernel", t: "Task", mm: MM, path: str, argv: list[bytes]) -> None:
    """execve's point of no return (Linux's begin_new_exec): ``t`` leaves
    its old image for ``mm``, which is loaded and complete. The CPU moves to
    the new tables before the old mm loses this user (``mmput`` frees it
    with its last), a vfork parent runs again, handled signals go back to
    their default (ignored ones stay ignored), close-on-exec files close,
    and the alternate signal stack and clear_child_tid are forgotten. The
    other threads are gone already (``sys_exec._execve``: there, unlike
    Linux, before the new image is loaded)."""
    old = t.mm
    t.mm = mm
    k.cpu.set_cr3(mm.pgd)
    if old is not None and old is not mm:
        mmput(old)
    complete_vfork_done(k, t)
    t.sigctx.clear()
    if t.sighand is not None:
        t.sighand = SigHand([SigAction(1 if a.handler == 1 else 0) for a in t.sighand.actions])
    t.files.close_on_exec()
    t.altstack = (0, 2, 0)
    t.clear_child_tid = 0
    g = t.group
    g.cmdline = list(argv)
    g.comm = os.path.basename(path)[:15]
