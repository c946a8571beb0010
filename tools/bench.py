#!/usr/bin/env python3
"""Basic machine benchmark: minios vs native vs qemu-x86_64.

    python3 tools/bench.py [--quick] [--repeat N]
    python3 -m minios bench [basic] [--quick] ...

Runs the glibc builds of userland/{compute,syscall_loop,page_touch,hello}
natively, under qemu-x86_64 (when installed) and under minios, and prints:

* compute: guest MIPS. Instructions come from the native binary: with
  ``perf stat -e instructions:u`` when the host supports it, else from
  ``valgrind --tool=callgrind`` runs at two loop counts (instructions per
  iteration = difference / difference in N). Without either, MIPS is n/a
  and only the time ratios are meaningful.
* getpid: microseconds per ``syscall(SYS_getpid)``.
* clock_gettime: microseconds per libc ``clock_gettime(CLOCK_MONOTONIC)``,
  which reads the vDSO natively and under minios (qemu-x86_64 passes the
  host's vDSO through, or makes the system call).
* page fault: microseconds per demand-zero fault (one write per fresh page).
* hello: total wall time of one run (for minios: ``python3 -m minios run``
  in a fresh interpreter, i.e. Python start, imports, boot, exec, exit).

Per-unit figures subtract a small-N run from a large-N run, so start-up is
removed: (t(N_big) - t(N_small)) / (N_big - N_small). Each time is the
minimum over ``--repeat`` runs (default 3). Native and qemu runs are timed
as subprocess wall time; minios runs in-process through the Machine API
(timing ``Machine.run`` only; the boot is reported on its own line).

Needs ``make -C userland glibc``. Takes about one minute.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BUILD = os.path.join(ROOT, "userland", "build", "glibc")

# (program, N_small, N_big, more arguments); --quick divides N_big by 4.
WORKLOADS = {
    "compute": ("compute", 1000, 200_000_000, []),
    "getpid": ("syscall_loop", 10, 200_000, []),
    "clock": ("syscall_loop", 10, 200_000, ["clock"]),
    "fault": ("page_touch", 10, 100_000, []),
}
_DEVNULL = None


def devnull() -> int:
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open(os.devnull, os.O_WRONLY)
    return _DEVNULL


def prog(name: str) -> str:
    return os.path.join(BUILD, name)


# ------------------------------------------------------------------ runners
def time_native(argv: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
    return dt


def time_minios(name: str, args: list[str], mem: int = 2 << 30) -> tuple[float, float]:
    """(run seconds, boot seconds) of one in-process Machine run."""
    from minios.machine import Machine
    t0 = time.perf_counter()
    m = Machine(mem=mem, cow_pte="flag")
    t1 = time.perf_counter()
    status = m.run(prog(name), args, env={}, stdio=(0, devnull(), 2))
    t2 = time.perf_counter()
    if status != 0:
        raise RuntimeError(f"minios {name} {args}: exit {status}")
    del m
    return t2 - t1, t1 - t0


def best(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


# -------------------------------------------------------- instruction count
def perf_instructions(argv: list[str]) -> int | None:
    if not shutil.which("perf"):
        return None
    r = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u"] + argv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and "instructions" in f[2] and f[0].strip().isdigit():
            return int(f[0])
    return None


def callgrind_instructions(argv: list[str]) -> int | None:
    if not shutil.which("valgrind"):
        return None
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    return int(m[1]) if m else None


def instructions_per_iteration() -> tuple[float | None, str]:
    """Instructions per compute-loop iteration, and how it was measured."""
    c = prog("compute")
    n1, n2 = 1_000_000, 11_000_000
    a, b = perf_instructions([c, str(n1)]), perf_instructions([c, str(n2)])
    if a and b and b > a:
        return (b - a) / (n2 - n1), "perf stat -e instructions:u"
    n1, n2 = 100_000, 1_100_000
    a, b = callgrind_instructions([c, str(n1)]), callgrind_instructions([c, str(n2)])
    if a and b and b > a:
        return (b - a) / (n2 - n1), "valgrind --tool=callgrind (native binary)"
    return None, "unavailable (no perf counters, no valgrind)"


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per point; the minimum counts")
    ap.add_argument("--quick", action="store_true", help="N_big / 4 (noisier, ~4x faster)")
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args(argv)
    missing = [p for p in ("compute", "syscall_loop", "page_touch", "hello")
               if not os.path.exists(prog(p))]
    if missing:
        print(f"bench: missing {', '.join(missing)} in {BUILD}; run: make -C userland glibc",
              file=sys.stderr)
        return 2
    qemu = None if a.no_qemu else shutil.which("qemu-x86_64")
    t_start = time.perf_counter()
    envs = ["native"] + (["qemu"] if qemu else []) + ["minios"]
    res: dict[str, dict[str, float]] = {e: {} for e in envs}
    boots = []

    for key, (name, n_small, n_big, more) in WORKLOADS.items():
        if a.quick:
            n_big //= 4
        for env in envs:
            def one(n: int) -> float:
                args = [str(n)] + more
                if env == "native":
                    return time_native([prog(name)] + args)
                if env == "qemu":
                    return time_native([qemu, prog(name)] + args)
                run, boot = time_minios(name, args)
                boots.append(boot)
                return run
            t_small = best(lambda: one(n_small), a.repeat)
            t_big = best(lambda: one(n_big), a.repeat)
            res[env][key] = (t_big - t_small, n_big - n_small)
            res[env][key + "_startup"] = t_small
            print(f"  [{time.perf_counter() - t_start:5.1f}s] {env:7s} {name} "
                  f"{n_small}: {t_small * 1e3:.1f} ms, {n_big}: {t_big * 1e3:.1f} ms",
                  file=sys.stderr)

    # hello: whole-program wall time.
    hello = prog("hello")
    for env in envs:
        if env == "native":
            cmd = [hello]
        elif env == "qemu":
            cmd = [qemu, hello]
        else:
            cmd = [sys.executable, "-m", "minios", "run", hello]
        res[env]["hello"] = best(lambda: _time_cmd(cmd), a.repeat)
    py_start = best(lambda: _time_cmd([sys.executable, "-c", "pass"]), a.repeat)

    ipi, how = instructions_per_iteration()

    # ------------------------------------------------------------ report
    rows = []

    def mips(env):
        if ipi is None:
            return None
        dt, dn = res[env]["compute"]
        return ipi * dn / dt / 1e6 if dt > 0 else None

    def per_us(env, key):
        dt, dn = res[env][key]
        return dt / dn * 1e6

    rows.append(("compute: guest MIPS", {e: mips(e) for e in envs}, "{:.0f}", True))
    rows.append(("compute: ns per loop iteration",
                 {e: res[e]["compute"][0] / res[e]["compute"][1] * 1e9 for e in envs},
                 "{:.2f}", False))
    rows.append(("getpid syscall: us each", {e: per_us(e, "getpid") for e in envs}, "{:.3f}",
                 False))
    rows.append(("clock_gettime (libc, vDSO): us each", {e: per_us(e, "clock") for e in envs},
                 "{:.3f}", False))
    rows.append(("demand-zero page fault: us each", {e: per_us(e, "fault") for e in envs},
                 "{:.3f}", False))
    rows.append(("hello: total wall ms", {e: res[e]["hello"] * 1e3 for e in envs}, "{:.1f}",
                 False))
    rows.append(("start-up (syscall_loop 10): ms",
                 {e: res[e]["getpid_startup"] * 1e3 for e in envs}, "{:.1f}", False))

    w = 34
    hdr = f"{'metric':<{w}}" + "".join(f"{e:>12}" for e in envs)
    if "qemu" in envs:
        hdr += f"{'minios/qemu':>13}"
    hdr += f"{'minios/native':>15}"
    print()
    print(hdr)
    print("-" * len(hdr))
    for label, vals, fmt, _higher_better in rows:
        line = f"{label:<{w}}"
        for e in envs:
            v = vals[e]
            line += f"{(fmt.format(v) if v is not None else 'n/a'):>12}"
        for other, width in ([("qemu", 13)] if "qemu" in envs else []) + [("native", 15)]:
            mv, ov = vals["minios"], vals[other]
            line += f"{(f'{mv / ov:.2f}' if mv is not None and ov else 'n/a'):>{width}}"
        print(line)
    print()
    print("ratios are minios value / other value: for MIPS below 1 means minios is slower;")
    print("for times above 1 means minios is slower.")
    print(f"instructions per compute iteration: "
          f"{f'{ipi:.2f}' if ipi else 'n/a'} ({how})")
    print(f"per-unit costs: (t(N_big) - t(N_small)) / (N_big - N_small), min of {a.repeat} runs;"
          " N_big = " + ", ".join(f"{' '.join([w[0], *w[3]])} {w[2] // (4 if a.quick else 1)}"
                                  for w in WORKLOADS.values()))
    print(f"minios: in-process Machine.run timing; Machine() boot {min(boots) * 1e3:.1f} ms "
          f"(first {boots[0] * 1e3:.1f} ms, with imports); `python3 -c pass` = "
          f"{py_start * 1e3:.1f} ms of the minios hello figure")
    print(f"bench took {time.perf_counter() - t_start:.1f} s")
    return 0


def _time_cmd(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
    return dt


if __name__ == "__main__":
    sys.exit(main())
