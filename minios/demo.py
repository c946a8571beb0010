"""``python3 -m minios demo``: the RFC cover letter's table, on minios.

Runs ``userland/build/glibc/cow_demo`` (it is not built here) under a
Machine with ``cow_pte="flag"``. The guest touches ``--size`` of anonymous
memory, then prints /proc/meminfo before and after a plain fork and before
and after a clone3(CLONE_COW_PGTABLE) fork, with the fork latency of each.
A summary follows: PageTables growth, fork latency and their ratio, the
RFC's own figures, and (when the host can) the same program run natively,
where stock Linux rejects the flag and only the plain part runs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.path.join(ROOT, "userland", "build", "glibc", "cow_demo")
RFC_PLAIN = (3356, 5432)          # RFC v1 cover letter, 1 GB, PageTables kB
RFC_COW = (3304, 3396)


def parse(text: str) -> list[dict]:
    """Sections of cow_demo output: {name, rows: {field: (before, after)},
    fork_us, vmpte: (parent, child), skipped}."""
    secs: list[dict] = []
    for line in text.splitlines():
        if line.startswith("== "):
            secs.append({"name": line.strip("= ").strip(), "rows": {}, "fork_us": None,
                         "vmpte": None, "skipped": False})
            continue
        if not secs:
            continue
        s = secs[-1]
        m = re.match(r"(\w+):\s+(-?\d+) kB\s+(-?\d+) kB", line)
        if m:
            s["rows"][m[1]] = (int(m[2]), int(m[3]))
        elif line.startswith("fork_us="):
            s["fork_us"] = float(line.split("=", 1)[1])
        elif line.startswith("vmpte_kb "):
            kv = dict(x.split("=") for x in line.split()[1:])
            s["vmpte"] = (int(kv["parent"]), int(kv["child"]))
        elif line.startswith("clone3 rejected"):
            s["skipped"] = True
    return secs


def _growth(sec: dict) -> int | None:
    pt = sec["rows"].get("PageTables")
    return None if pt is None else pt[1] - pt[0]


def run_minios(size_mb: int, mem: int) -> tuple[int, str, float]:
    from minios.machine import Machine, MachineError
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        try:
            m = Machine(mem=mem, cow_pte="flag")
            status = m.run(PROGRAM, [str(size_mb)], env={}, stdio=(0, out.fileno(), 2))
        except MachineError as e:
            print(f"minios demo: {e}", file=sys.stderr)
            return 2, "", 0.0
        dt = time.monotonic() - t0
        out.seek(0)
        return status, out.read().decode(errors="replace"), dt


def run_native(size_mb: int) -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        r = subprocess.run([PROGRAM, str(size_mb)], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def main(args) -> int:
    if not os.path.exists(PROGRAM):
        print(f"minios demo: {os.path.relpath(PROGRAM)} is missing; build it with:\n"
              f"    make -C {os.path.relpath(os.path.join(ROOT, 'userland'))} glibc",
              file=sys.stderr)
        return 2
    size_mb = max(1, args.size >> 20)
    mem = args.mem
    # The guest needs its touched memory, the plain child's page tables and
    # some slack for the binary, stacks and kernel structures.
    need = (size_mb << 20) + (size_mb << 20) // 256 + (64 << 20)
    if need > mem:
        print(f"minios demo: --size {size_mb}M does not fit in --mem {mem >> 20}M "
              f"(need about {need >> 20}M)", file=sys.stderr)
        return 2

    print(f"minios demo: cow_demo {size_mb} on a {mem >> 20} MiB machine "
          f"(cow_pte=flag); touching {size_mb} MiB takes a few seconds per GiB...")
    sys.stdout.flush()
    status, text, dt = run_minios(size_mb, mem)
    print(text, end="")
    if status != 0:
        print(f"minios demo: cow_demo exited with status {status}", file=sys.stderr)
        return status or 1
    secs = parse(text)
    plain = next((s for s in secs if s["name"].startswith("plain")), None)
    cow = next((s for s in secs if s["name"].startswith("COW")), None)
    if plain is None or cow is None or cow["skipped"] or plain["fork_us"] is None \
            or cow["fork_us"] is None:
        print("minios demo: unexpected cow_demo output", file=sys.stderr)
        return 1

    gp, gc = _growth(plain), _growth(cow)
    print()
    print(f"summary (minios, {size_mb} MiB touched, guest run {dt:.1f} s):")
    print(f"  PageTables growth at fork:  plain {gp:+} kB    COW PTE {gc:+} kB")
    ratio = plain["fork_us"] / cow["fork_us"] if cow["fork_us"] > 0 else float("inf")
    print(f"  fork latency:               plain {plain['fork_us']:.0f} us    "
          f"COW PTE {cow['fork_us']:.0f} us    ({ratio:.1f}x faster)")
    if plain["vmpte"] and cow["vmpte"]:
        print(f"  VmPTE parent/child kB:      plain {plain['vmpte'][0]}/{plain['vmpte'][1]}"
              f"    COW PTE {cow['vmpte'][0]}/{cow['vmpte'][1]}")
    print(f"  RFC v1 cover letter (Linux 5.18-rc6, 1 GB): PageTables plain "
          f"{RFC_PLAIN[1] - RFC_PLAIN[0]:+} kB, COW PTE {RFC_COW[1] - RFC_COW[0]:+} kB")

    native = run_native(size_mb)
    if native:
        ns = parse(native)
        np_ = next((s for s in ns if s["name"].startswith("plain")), None)
        nc = next((s for s in ns if s["name"].startswith("COW")), None)
        if np_ and np_["fork_us"] is not None:
            note = ("flag rejected (EINVAL), as expected on stock Linux"
                    if nc and nc["skipped"] else "COW section ran natively?!")
            print(f"  native Linux (this host):   plain PageTables {_growth(np_):+} kB, "
                  f"fork {np_['fork_us']:.0f} us; COW PTE: {note}")
    return 0
