"""Programs minios cannot run: a shell-like exit status, exactly one line on
stderr starting with "minios: ", and never a Python traceback.

missing file -> 127; a directory -> 126; everything that is not a static
x86-64 ELF executable (text, empty, 32-bit, dynamically linked, object file,
other machine, truncated, corrupt headers) -> 2.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import binary, native, under_minios


def check_rejected(path, status: int) -> str:
    st, out, err = under_minios(str(path), [])
    text = err.decode(errors="replace")
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{text}"
    assert lines[0].startswith("minios: "), text
    assert text.endswith("\n")
    assert out == b""
    assert st == status, f"exit status {st}, expected {status}; stderr: {text}"
    return lines[0]


# ----------------------------------------------------------------- helpers
def hello_bytes() -> bytes:
    return Path(binary("glibc", "hello")).read_bytes()


def write(scratch: Path, name: str, data: bytes) -> Path:
    p = scratch / name
    p.write_bytes(data)
    p.chmod(0o755)
    return p


def patch(data: bytes, off: int, fmt: str, *vals) -> bytes:
    b = bytearray(data)
    struct.pack_into("<" + fmt, b, off, *vals)
    return bytes(b)


# ELF64 header field offsets
E_TYPE, E_MACHINE, E_ENTRY, E_PHOFF = 16, 18, 24, 32
E_PHENTSIZE, E_PHNUM = 54, 56


def phdrs(data: bytes):
    """(file offset, p_type, p_offset, p_vaddr, p_filesz, p_memsz) per phdr."""
    phoff, = struct.unpack_from("<Q", data, E_PHOFF)
    phentsize, phnum = struct.unpack_from("<HH", data, E_PHENTSIZE)
    out = []
    for i in range(phnum):
        o = phoff + i * phentsize
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz = \
            struct.unpack_from("<IIQQQQQ", data, o)
        out.append((o, p_type, p_offset, p_vaddr, p_filesz, p_memsz))
    return out


def first_load(data: bytes):
    return next(p for p in phdrs(data) if p[1] == 1)


def elf32_exit0() -> bytes:
    """A complete, valid i386 ELF executable that exits 0 (int 0x80)."""
    code = b"\xb8\x01\x00\x00\x00\xbb\x00\x00\x00\x00\xcd\x80"   # exit(0)
    base, ehsize, phsize = 0x08048000, 52, 32
    entry = base + ehsize + phsize
    size = ehsize + phsize + len(code)
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, ehsize, 0, 0,
                               ehsize, phsize, 1, 0, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    return ehdr + phdr + code


# ------------------------------------------------------------------- cases
def test_missing_file(scratch):
    line = check_rejected(scratch / "does-not-exist", 127)
    assert "does-not-exist" in line


def test_directory(scratch):
    check_rejected(scratch, 126)


def test_text_file(scratch):
    check_rejected(write(scratch, "script.txt", b"hello, I am not a program\n"), 2)


def test_shell_script(scratch):
    # Linux would run it through /bin/sh; minios runs ELF binaries only.
    check_rejected(write(scratch, "script.sh", b"#!/bin/sh\necho hi\n"), 2)


def test_empty_file(scratch):
    check_rejected(write(scratch, "empty", b""), 2)


def test_elf_magic_only(scratch):
    check_rejected(write(scratch, "magic", b"\x7fELF"), 2)


def test_32bit_elf(scratch):
    line = check_rejected(write(scratch, "elf32", elf32_exit0()), 2)
    assert "32-bit" in line


def test_32bit_elf_compiled(scratch):
    src = scratch / "h.c"
    src.write_text("int main(void) { return 0; }\n")
    out = scratch / "h32"
    r = subprocess.run(["gcc", "-m32", "-static", "-o", str(out), str(src)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.skip("gcc -m32 -static does not work here (no 32-bit libc)")
    check_rejected(out, 2)


@pytest.fixture(scope="module")
def dynamic_hello(scratch_root):
    d = scratch_root / "dyn"
    d.mkdir(exist_ok=True)
    src = d / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    out = d / "hello_dyn"
    subprocess.run(["gcc", "-o", str(out), str(src)], check=True)
    return out


def test_dynamic_elf(dynamic_hello):
    line = check_rejected(dynamic_hello, 2)
    assert "dynamic" in line


def test_dynamic_system_binary():
    ls = shutil.which("ls", path="/usr/bin:/bin")
    if ls is None:
        pytest.skip("no ls")
    check_rejected(ls, 2)


def test_object_file(scratch):
    src = scratch / "o.c"
    src.write_text("int f(void) { return 1; }\n")
    obj = scratch / "o.o"
    subprocess.run(["gcc", "-c", "-o", str(obj), str(src)], check=True)
    check_rejected(obj, 2)


def test_other_machine(scratch):
    data = patch(hello_bytes(), E_MACHINE, "H", 183)        # EM_AARCH64
    check_rejected(write(scratch, "aarch64", data), 2)


@pytest.mark.parametrize("size", [16, 63, 64, 200, 3000])
def test_truncated(scratch, size):
    check_rejected(write(scratch, f"trunc{size}", hello_bytes()[:size]), 2)


def test_truncated_mid_segment(scratch):
    data = hello_bytes()
    _, _, off, _, filesz, _ = first_load(data)
    check_rejected(write(scratch, "trunc_seg", data[:off + filesz // 2]), 2)


@pytest.mark.parametrize("phoff", [
    0xFFFF_FFFF_FFFF_0000, 0x7FFF_FFFF, 1 << 40], ids=hex)
def test_corrupt_phoff(scratch, phoff):
    data = patch(hello_bytes(), E_PHOFF, "Q", phoff)
    check_rejected(write(scratch, "phoff", data), 2)


def test_corrupt_phoff_past_end_by_little(scratch):
    data = hello_bytes()
    data = patch(data, E_PHOFF, "Q", len(data) - 10)
    check_rejected(write(scratch, "phoff_end", data), 2)


def test_corrupt_phnum(scratch):
    data = patch(hello_bytes(), E_PHNUM, "H", 0xFFFF)
    check_rejected(write(scratch, "phnum", data), 2)


def test_corrupt_phentsize(scratch):
    data = patch(hello_bytes(), E_PHENTSIZE, "H", 7)
    check_rejected(write(scratch, "phentsize", data), 2)


def test_no_program_headers(scratch):
    data = patch(hello_bytes(), E_PHNUM, "H", 0)
    check_rejected(write(scratch, "nophdr", data), 2)


def test_segment_past_end_of_file(scratch):
    data = hello_bytes()
    o, *_ = first_load(data)
    data = patch(data, o + 8, "Q", len(data) + 4096)         # p_offset
    check_rejected(write(scratch, "segoff", data), 2)


def test_segment_filesz_huge(scratch):
    data = hello_bytes()
    o, *_ = first_load(data)
    data = patch(data, o + 32, "QQ", 1 << 62, 1 << 62)      # p_filesz, p_memsz
    check_rejected(write(scratch, "segsize", data), 2)


def test_segment_in_kernel_half(scratch):
    data = hello_bytes()
    o, *_ = first_load(data)
    data = patch(data, o + 16, "Q", 0xFFFF_8000_0000_0000)   # p_vaddr
    check_rejected(write(scratch, "segkernel", data), 2)


def test_bad_entry_point_killed_like_linux(scratch):
    """A well-formed image whose entry point is unmapped loads, then dies of
    SIGSEGV at its first instruction: the same as Linux."""
    data = patch(hello_bytes(), E_ENTRY, "Q", 0x10)
    p = write(scratch, "badentry", data)
    n_status, n_out, _ = native(str(p))
    m_status, m_out, m_err = under_minios(str(p))
    assert b"Traceback" not in m_err
    assert (m_status, m_out) == (n_status, n_out) == (139, b"")


# ---------------------------------------------------------------------------
# A hostile guest: thousands of random system calls with random arguments
# (pointers near the stack and the image, huge and negative numbers). Each
# must end in a result or errno, or at worst kill the guest with a signal;
# never in an internal error or a Python traceback.

@pytest.fixture(scope="module")
def syscall_fuzz(scratch_root):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    out = Path(scratch_root) / "syscall_fuzz"
    p = subprocess.run(["gcc", "-static", "-O1", "-o", str(out),
                        str(Path(__file__).parent / "syscall_fuzz.c")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        pytest.skip("cannot build a static binary: " + p.stdout.decode(errors="replace"))
    return str(out)


@pytest.mark.parametrize("seed", [14, 21, 33])
def test_random_syscalls_never_break_the_kernel(syscall_fuzz, seed):
    status, out, err = under_minios(syscall_fuzz, [seed, 2500])
    text = err.decode(errors="replace")
    assert "internal error" not in text and "Traceback" not in text, text[-2000:]
    assert status == 0 or status > 128, (status, text[-500:])
