"""cow_demo under minios (not differential: stock Linux rejects
CLONE_COW_PGTABLE): a COW PTE fork adds far fewer page-table kB than a
plain fork of the same 64 MiB address space."""
from __future__ import annotations

import re

import pytest

from conftest import binary, libc_params, program_names, under_minios

pytestmark = pytest.mark.skipif("cow_demo" not in program_names(),
                                reason="userland/src/cow_demo.c not present")


def sections(out: str) -> dict[str, dict[str, tuple[int, int]]]:
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            cur = res.setdefault("cow" if "COW" in line else "plain", {})
        m = re.match(r"(\w+):\s+(\d+) kB\s+(\d+) kB$", line)
        if m and cur is not None:
            cur[m[1]] = (int(m[2]), int(m[3]))
        m = re.match(r"vmpte_kb parent=(\d+) child=(\d+)$", line)
        if m and cur is not None:
            cur["VmPTE"] = (int(m[1]), int(m[2]))
    return res


@pytest.mark.parametrize("libc", libc_params())
def test_cow_demo_page_tables(libc):
    st, out, err = under_minios(binary(libc, "cow_demo"), ["64"], ["--mem=512M"])
    text = out.decode()
    assert st == 0, err.decode(errors="replace")
    assert "rejected" not in text
    s = sections(text)
    plain, cow = s["plain"], s["cow"]
    grow_plain = plain["PageTables"][1] - plain["PageTables"][0]
    grow_cow = cow["PageTables"][1] - cow["PageTables"][0]
    # 64 MiB needs 32 PTE tables (128 kB): a plain fork copies them all.
    assert grow_plain >= 128, text
    assert grow_cow < grow_plain // 3, text
    # The child's PGD, and its own PUD, PMD and PTE table down to its
    # stack (fork copies that one): the rest is shared at every level.
    assert grow_cow <= 16, text
    if "VmPTE" in cow:
        parent, child = cow["VmPTE"]
        assert child < parent, text
    for sec in (plain, cow):
        assert sec["MemTotal"][0] == sec["MemTotal"][1]


def test_demo_command_small():
    """``python3 -m minios demo`` end to end, on a small size."""
    import subprocess
    from conftest import ENV, ROOT, TIMEOUT, minios_cmd
    p = subprocess.run(minios_cmd("demo", "--size", "64M", "--mem", "512M"),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, env=dict(ENV), cwd=ROOT, timeout=TIMEOUT)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert "Traceback" not in out
    assert "PageTables" in out and "summary" in out
