"""The vDSO: its image, its code against its listing, its clock against the
kernel's, and the guest not making system calls for the time.

The guest-side behaviour (auxv, /proc/self/maps, libc against the raw
system call, fork) is the differential test of ``userland/src/vdso_clock.c``.
"""
from __future__ import annotations

import ctypes
import io
import platform
import re
import shutil
import subprocess
import tempfile

import pytest
from elftools.elf.elffile import ELFFile

from conftest import binary
from minios.time import clock
from minios.time import vdso
from minios.machine import Machine

X86_HOST = platform.machine() in ("x86_64", "AMD64")


def _image() -> bytes:
    data = clock.vdata()
    if data is None:
        pytest.skip("no usable TSC on this host: minios maps no vDSO")
    return vdso.build_image(data)


@pytest.mark.unit
def test_code_is_its_listing(tmp_path):
    """CODE is the module docstring's assembly, assembled: reassemble it."""
    if not (shutil.which("as") and shutil.which("objcopy") and shutil.which("nm")):
        pytest.skip("GNU as/objcopy/nm not installed")
    doc = vdso.__doc__
    listing = doc[doc.index("    __vdso_clock_gettime:"):]
    src = tmp_path / "vdso.S"
    src.write_text(".intel_syntax noprefix\n.text\n" + listing + "\n")
    obj = tmp_path / "vdso.o"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(tmp_path / "b")],
                   check=True)
    assert (tmp_path / "b").read_bytes() == vdso.CODE
    nm = subprocess.run(["nm", str(obj)], check=True, capture_output=True, text=True).stdout
    addr = {name: int(a, 16) for a, _, name in (ln.split() for ln in nm.splitlines())}
    assert addr["vdata"] == vdso.VDATA
    order = sorted(addr.items(), key=lambda kv: kv[1])
    for name, (off, size) in vdso.ENTRIES.items():
        assert addr[name] == off
        nxt = next(a for _, a in order if a > off)
        assert off + size <= nxt


@pytest.mark.unit
def test_image_is_a_shared_object_with_versioned_symbols():
    img = _image()
    assert len(img) <= 4096
    elf = ELFFile(io.BytesIO(img))
    assert elf["e_type"] == "ET_DYN" and elf["e_machine"] == "EM_X86_64"
    segs = [s["p_type"] for s in elf.iter_segments()]
    assert segs == ["PT_LOAD", "PT_DYNAMIC", "PT_GNU_STACK"]
    dyn = elf.get_section_by_name(".dynamic")
    tags = {t.entry.d_tag for t in dyn.iter_tags()}
    assert {"DT_HASH", "DT_STRTAB", "DT_SYMTAB", "DT_SONAME", "DT_VERSYM", "DT_VERDEF"} <= tags
    assert [t.soname for t in dyn.iter_tags() if t.entry.d_tag == "DT_SONAME"] == [vdso.SONAME]
    syms = elf.get_section_by_name(".dynsym")
    text = elf.get_section_by_name(".text")
    versym = elf.get_section_by_name(".gnu.version")
    verdef = elf.get_section_by_name(".gnu.version_d")
    names = {next(iter(aux)).name: vd.entry.vd_ndx for vd, aux in verdef.iter_versions()}
    assert names == {vdso.SONAME: 1, vdso.VERSION: 2}
    found = {}
    for i, s in enumerate(syms.iter_symbols()):
        if i == 0:
            continue
        assert versym.get_symbol(i).entry.ndx == 2
        assert s["st_shndx"] == elf.get_section_index(".text")
        found[s.name] = s["st_value"]
    for name, (off, _size) in vdso.ENTRIES.items():
        assert found[name] == found[name[len("__vdso_"):]] == text["sh_addr"] + off
    # The lookup table finds every symbol: SysV hash, one chain through all.
    h = elf.get_section_by_name(".hash")
    for name in found:
        assert h.get_symbol(name).name == name


@pytest.mark.unit
@pytest.mark.skipif(not X86_HOST, reason="the image runs on x86-64 only")
def test_image_code_reads_the_kernel_clock(tmp_path):
    """The host's dynamic loader takes the image as a library; its
    clock_gettime, run on the host's TSC, must fall between two reads of
    the kernel's clock.now_ns: the assembly and the Python are one formula."""
    so = tmp_path / "vdso.so"
    so.write_bytes(_image())
    lib = ctypes.CDLL(str(so))
    ts = (ctypes.c_int64 * 2)()
    for clk in clock.VDSO_CLOCKS:
        for _ in range(100):
            a = clock.now_ns(clk)
            assert lib.__vdso_clock_gettime(clk, ts) == 0
            b = clock.now_ns(clk)
            assert 0 <= ts[1] < 10**9
            assert a <= ts[0] * 10**9 + ts[1] <= b, clk
    tv = (ctypes.c_int64 * 2)()
    tz = (ctypes.c_int32 * 2)(7, 7)
    a = clock.now_ns(0)
    assert lib.gettimeofday(tv, tz) == 0
    b = clock.now_ns(0)
    assert a // 1000 <= tv[0] * 10**6 + tv[1] <= b // 1000 and list(tz) == [0, 0]
    t = ctypes.c_int64()
    assert lib.time(ctypes.byref(t)) == t.value and a // 10**9 <= t.value <= b // 10**9 + 1
    # A clock the vDSO does not keep goes to the host kernel (its syscall).
    assert lib.clock_gettime(99, ts) == -22


def test_guest_reads_the_time_without_system_calls():
    prog = binary("glibc", "vdso_clock")
    counts = {}
    for use in (True, False):
        log = io.StringIO()
        m = Machine(mem=256 << 20, trace="syscall", trace_file=log, vdso=use)
        if use and m.kernel.vdso_image is None:
            pytest.skip("no usable TSC on this host: minios maps no vDSO")
        with tempfile.TemporaryFile() as f:
            assert m.run(prog, [], env={}, stdio=(0, f.fileno(), 2)) == 0
            f.seek(0)
            out = f.read().decode()
        assert ("AT_SYSINFO_EHDR: present" in out) is use
        assert "went back: 0 times" in out
        counts[use] = len(re.findall(r"clock_gettime\(CLOCK_MONOTONIC,", log.getvalue()))
    # With the vDSO only the program's raw system calls remain (200 per
    # clock, and one with the id's upper half set, which reads as
    # MONOTONIC); without it libc's calls are system calls too (over 20000).
    assert counts[True] == 201 and counts[False] > 20000


@pytest.mark.unit
def test_derived_clocks_keep_their_relations():
    """Coarse clocks are the fine ones, BOOTTIME never runs behind
    MONOTONIC, TAI is REALTIME plus whole seconds: exactly, not within
    the error of two separate calibrations."""
    if clock.read_tsc is None:
        pytest.skip("no usable TSC on this host")
    _tsc0, _mult, base = clock.calibrate()
    assert base[5] == base[0] and base[6] == base[1]
    assert base[7] >= base[1]
    assert (base[11] - base[0]) % 10**9 == 0
    assert clock.now_ns(1) <= clock.now_ns(7)
