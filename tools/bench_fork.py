#!/usr/bin/env python3
"""COW PTE benchmark: fork latency with and without CLONE_COW_PGTABLE.

    python3 tools/bench_fork.py [--sizes 64,256,1024,4096] [--iter 10]
                                [--write-size 256] [--png tools/fork_latency.png]
    python3 -m minios bench fork [same options]

Uses userland/build/glibc/fork_bench (``make -C userland glibc``).

1. Fork latency. For each size (MiB): fork_bench SIZE plain|cow under minios
   (a fresh Machine with mem = SIZE + 2 GiB, cow_pte="flag", one subprocess
   per run so host memory is returned between sizes) and natively (plain; stock
   Linux rejects the flag). Figures are the guest's own CLOCK_MONOTONIC around
   fork in the parent, minimum of --iter forks. Under minios one process
   (fork_bench SIZE plain+cow) makes --iter plain forks and then --iter COW
   forks, so both minimums are taken about a second apart: this host's
   speed drifts by 1.5-2x over minutes, and separate runs 15 s apart
   measured the drift. Best of --rounds such runs. "kernel copy" is the host time
   of minios' copy_page_range (min over the forks); the rest of a minios fork
   is fixed cost: syscall entry, VMA and task copies, clock_gettime calls.
2. Write after fork (--write-size): the child writes one byte to every page,
   the parent times fork + waitpid. COW adds one table break per 2 MiB (and
   one per 1 GiB) on top of the page copies a plain fork also pays; the
   target is COW <= 1.1x.
   Plain and COW runs alternate (--write-rounds) and each keeps its best;
   each COW run is also compared with the plain run just before it. On a
   host whose speed drifts, tools/bench_instr.py gives the drift-free
   figure: instructions per fork of fork_bench SIZE plain-write / cow-write.
3. Cost of one PTE table break: the child writes one byte per 2 MiB (one page
   per PTE table) and times that loop itself; (cow - plain) / tables is the
   guest-visible cost of a break. The host-side time of break_cow (by level:
   a child's first write below a shared PUD table breaks the PUD and PMD
   tables too) and the kernel's cow_pte_copy / cow_pte_reuse counters are
   reported too.
4. A log-log PNG of fork latency vs size (matplotlib, Agg backend).

Touching memory dominates the run time: about 12-15 us per page under
minios, so 4 GiB takes 13-20 s per run; the default sizes take about two
minutes in all (three with --rounds 3). Use ``--sizes 64,256,1024
--rounds 1`` for a ~20 s run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
PROGRAM = os.path.join(ROOT, "userland", "build", "glibc", "fork_bench")
SCRIPT = os.path.abspath(__file__)


def parse_output(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        if line.strip() == "cow unsupported":
            out["unsupported"] = True
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return out


# ------------------------------------------------------------------ worker
def _summary(ns: list[int]) -> dict:
    if not ns:
        return {"n": 0, "median_us": None, "mean_us": None}
    v = sorted(ns)
    return {"n": len(v), "median_us": v[len(v) // 2] / 1e3, "mean_us": sum(v) / len(v) / 1e3}


def worker(size_mb: int, mode: str, iters: int, stride_kb: int, vdso: bool = True) -> int:
    """One minios run, in this process; prints a JSON line."""
    import minios.mm.fork as fork
    import minios.mm.pte as pte
    from minios.machine import Machine

    from minios.mm.pgtable import LEVEL_NAME
    brk: dict[str, list[int]] = {}
    copies: dict[bool, list[int]] = {False: [], True: []}     # by share (COW)
    tables: dict[bool, tuple[int, int]] = {}                  # (shared, copied), last fork
    orig = pte.break_cow
    orig_copy = fork.copy_page_range

    def timed_break(mm, i, shift, va, vmf=None):
        st = mm.kernel.stats
        key = f"cow_{LEVEL_NAME[shift].lower()}_copy"
        before = st[key]
        t0 = time.perf_counter_ns()
        r = orig(mm, i, shift, va, vmf)
        dt = time.perf_counter_ns() - t0
        kind = "copy" if st[key] != before else "reuse"
        brk.setdefault(f"{LEVEL_NAME[shift]} {kind}", []).append(dt)
        return r

    def timed_copy(parent, child, share, *args):
        t0 = time.perf_counter_ns()
        r = orig_copy(parent, child, share, *args)
        copies[bool(share)].append(time.perf_counter_ns() - t0)
        tables[bool(share)] = r
        return r
    # The choke point (minios.mm.pte) imported break_cow by name, and
    # dup_mm calls copy_page_range in its own module: patching those
    # module attributes before the machine runs catches every call.
    pte.break_cow = timed_break
    fork.copy_page_range = timed_copy

    mem = (size_mb << 20) + (2 << 30)
    t0 = time.perf_counter()
    m = Machine(mem=mem, cow_pte="flag", vdso=vdso)
    with tempfile.TemporaryFile() as f:
        status = m.run(PROGRAM, [str(size_mb), mode, str(iters), str(stride_kb)], env={},
                       stdio=(0, f.fileno(), 2))
        f.seek(0)
        text = f.read().decode(errors="replace")
    res = parse_output(text)
    res.update(status=status, wall_s=time.perf_counter() - t0, stats=dict(m.kernel.stats),
               output=text, tables={int(k): v for k, v in tables.items()},
               copy_min_us={int(k): min(v) / 1e3 for k, v in copies.items() if v},
               breaks={k: _summary(v) for k, v in brk.items()})
    print(json.dumps(res))
    return 0


NO_VDSO = False              # --no-vdso, for run_minios


def run_minios(size_mb: int, mode: str, iters: int, stride_kb: int = 4) -> dict:
    cmd = [sys.executable, SCRIPT, "--worker", str(size_mb), mode, str(iters), str(stride_kb),
           "0" if NO_VDSO else "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"worker {size_mb} {mode} failed ({r.returncode}): {r.stderr[-800:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["status"] != 0:
        raise RuntimeError(f"minios fork_bench {size_mb} {mode}: exit {res['status']}\n"
                           f"{res['output']}")
    return res


def run_native(size_mb: int, mode: str, iters: int, stride_kb: int = 4) -> dict | None:
    if not sys.platform.startswith("linux"):
        return None
    r = subprocess.run([PROGRAM, str(size_mb), mode, str(iters), str(stride_kb)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print(f"  native fork_bench {size_mb} {mode} failed: {r.stderr.strip()}",
              file=sys.stderr)
        return None
    return parse_output(r.stdout)


# -------------------------------------------------------------------- main
def fmt(v, spec=".0f"):
    return "n/a" if v is None else format(v, spec)


def log(t_start: float, msg: str) -> None:
    print(f"  [{time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)


def plot(path: str, sizes, plain, cow, native) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sizes, plain, "o-", label="minios plain fork")
    ax.plot(sizes, cow, "s-", label="minios COW PTE fork (CLONE_COW_PGTABLE)")
    nat = [(s, v) for s, v in zip(sizes, native) if v is not None]
    if nat:
        ax.plot([s for s, _ in nat], [v for _, v in nat], "^--", label="native Linux plain fork")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s} MiB" if s < 1024 else f"{s // 1024} GiB" for s in sizes])
    ax.set_xlabel("anonymous memory touched before fork")
    ax.set_ylabel("fork latency in the parent (µs, min)")
    ax.set_title("fork latency vs process size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(int(argv[1]), argv[2], int(argv[3]), int(argv[4]),
                      len(argv) < 6 or argv[5] != "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,256,1024,4096", help="MiB, comma separated")
    ap.add_argument("--iter", type=int, default=10,
                    help="forks per run; the minimum is reported (the first few warm up)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="minios runs per size (each plain then COW); best of each mode")
    ap.add_argument("--write-size", type=int, default=256, help="MiB for the write tests")
    ap.add_argument("--write-iter", type=int, default=3)
    ap.add_argument("--write-rounds", type=int, default=5,
                    help="alternating plain/COW runs of the write test; best of each")
    ap.add_argument("--png", default=os.path.join(ROOT, "tools", "fork_latency.png"))
    ap.add_argument("--no-native", action="store_true")
    ap.add_argument("--no-vdso", action="store_true",
                    help="boot minios without its vDSO: the guest's clock_gettime around "
                    "fork is then a system call, as before the vDSO")
    ap.add_argument("--no-write", action="store_true", help="skip sections 2 and 3")
    a = ap.parse_args(argv)
    global NO_VDSO
    NO_VDSO = a.no_vdso
    try:
        sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes takes integers (MiB), e.g. 64,256,1024")
    if not os.path.exists(PROGRAM):
        print(f"bench_fork: {PROGRAM} missing; run: make -C userland glibc", file=sys.stderr)
        return 2
    t_start = time.perf_counter()

    # ---------------------------------------------------- 1. fork latency
    rows = []
    for s in sizes:
        # Plain and COW runs alternate, each mode keeping its best run (see
        # section 2): one run's forks all fall within a second or so, so a
        # slow minute of the host would otherwise set a whole column.
        runs = []
        for _ in range(a.rounds):
            r = run_minios(s, "plain+cow", a.iter)
            runs.append(r)
            log(t_start, f"minios {s} MiB: plain {r['fork_us_plain']} us, cow "
                         f"{r['fork_us_cow']} us, {r['fork_us_plain'] / r['fork_us_cow']:.1f}x "
                         f"(run {r['wall_s']:.1f} s)")
        p = min(runs, key=lambda r: r["fork_us_plain"])
        c = min(runs, key=lambda r: r["fork_us_cow"])
        n = None if a.no_native else run_native(s, "plain", a.iter)
        nc = None if a.no_native else run_native(s, "cow", 1)
        if n:
            log(t_start, f"native {s} MiB plain: fork_us={n.get('fork_us')}"
                         f"{'; cow: flag rejected' if nc and nc.get('unsupported') else ''}")
        rows.append(dict(size=s, plain=p["fork_us_plain"], cow=c["fork_us_cow"],
                         native=n.get("fork_us") if n else None,
                         kplain=p["copy_min_us"]["0"], kcow=c["copy_min_us"]["1"],
                         copied=p["tables"]["0"][1], shared=c["tables"]["1"][0],
                         wall=sum(r["wall_s"] for r in runs),
                         per_run=[r["fork_us_plain"] / r["fork_us_cow"] for r in runs]))

    print()
    print("== fork latency (guest CLOCK_MONOTONIC around fork in the parent, min of "
          f"{a.iter} plain then {a.iter} COW forks in one process, best of {a.rounds} runs) ==")
    hdr = (f"{'size MiB':>8} {'minios plain us':>16} {'minios COW us':>14} {'plain/COW':>10} "
           f"{'native plain us':>16} {'native/COW':>11}   {'kernel copy us plain/COW':>25} "
           f"{'tables copied/shared':>21}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['size']:>8} {r['plain']:>16.0f} {r['cow']:>14.0f} "
              f"{r['plain'] / r['cow']:>9.1f}x {fmt(r['native']):>16} "
              f"{(fmt(r['native'] / r['cow'], '.1f') + 'x') if r['native'] else 'n/a':>11}   "
              f"{r['kplain']:>12.0f} / {r['kcow']:<10.0f} "
              f"{str(r['copied']) + ' / ' + str(r['shared']):>21}")
    print("native: stock Linux rejects CLONE_COW_PGTABLE (EINVAL), so only plain is measured")
    # Each run's ratio compares forks made a second apart; best against best
    # may pair a quiet minute's plain forks with a slow minute's COW ones.
    for r in rows:
        print(f"plain/COW within each run, {r['size']} MiB: "
              + ", ".join(f"{x:.1f}x" for x in r["per_run"])
              + f" (median {statistics.median(r['per_run']):.1f}x)")

    # ------------------------------------------- 2./3. writes after fork
    if not a.no_write:
        ws = a.write_size
        # Plain and COW runs alternate, and each mode keeps its best run:
        # the host's speed drifts over minutes, and back-to-back runs of
        # one mode then another would measure the drift.
        pws, cws = [], []
        for _ in range(a.write_rounds):
            pws.append(run_minios(ws, "plain-write", a.write_iter))
            log(t_start, f"minios {ws} MiB plain-write: {pws[-1].get('fork_write_us')}")
            cws.append(run_minios(ws, "cow-write", a.write_iter))
            log(t_start, f"minios {ws} MiB cow-write: {cws[-1].get('fork_write_us')}")
        pw = min(pws, key=lambda r: r["fork_write_us"])
        cw = min(cws, key=lambda r: r["fork_write_us"])
        nw = None if a.no_native else run_native(ws, "plain-write", a.write_iter)
        print()
        print(f"== child writes every page after fork ({ws} MiB, fork + child writes + "
              f"waitpid, min of {a.write_iter} forks x {a.write_rounds} alternating runs) ==")
        print(f"{'':24}{'fork+wait us':>14}{'child loop us':>15}")
        print(f"{'minios plain-write':24}{pw['fork_write_us']:>14.0f}"
              f"{pw['child_write_us']:>15.0f}")
        print(f"{'minios cow-write':24}{cw['fork_write_us']:>14.0f}"
              f"{cw['child_write_us']:>15.0f}")
        if nw:
            print(f"{'native plain-write':24}{nw['fork_write_us']:>14.0f}"
                  f"{nw['child_write_us']:>15.0f}")
        ratio = cw["fork_write_us"] / pw["fork_write_us"]
        print(f"COW / plain (fork+wait): {ratio:.3f}x  (target <= 1.1x: "
              f"{'met' if ratio <= 1.1 else 'NOT met'})")
        # Each COW run against the plain run just before it: the pairs share
        # the host's speed of that minute, as in the latency table.
        pairs = [c["fork_write_us"] / p["fork_write_us"] for p, c in zip(pws, cws)]
        print(f"COW / plain within each round: {', '.join(f'{r:.3f}x' for r in pairs)} "
              f"(median {statistics.median(pairs):.3f}x)")

        pb = run_minios(ws, "plain-write", a.iter, 2048)
        cb = run_minios(ws, "cow-write", a.iter, 2048)
        log(t_start, f"minios {ws} MiB one write per 2 MiB: plain {pb.get('child_write_us')} "
                     f"cow {cb.get('child_write_us')}")
        tables = ws // 2
        per = (cb["child_write_us"] - pb["child_write_us"]) / tables
        b = cb["breaks"]
        st = cb["stats"]
        print()
        print(f"== cost of one PTE table break ({ws} MiB = {tables} tables; child writes "
              f"one byte per 2 MiB, min of {a.iter}) ==")
        print(f"child write loop: plain fork {pb['child_write_us']:.0f} us "
              f"({pb['child_write_us'] / tables:.1f} us per table: one page COW fault), "
              f"COW PTE fork {cb['child_write_us']:.0f} us "
              f"({cb['child_write_us'] / tables:.1f} us per table)")
        print(f"guest-visible cost of one break: ({cb['child_write_us']:.0f} - "
              f"{pb['child_write_us']:.0f}) / {tables} = {per:.1f} us")
        print("host time in break_cow (median / mean, by level and kind): " + "; ".join(
            f"{key} {fmt(v['median_us'], '.1f')} / {fmt(v['mean_us'], '.1f')} us x {v['n']}"
            for key, v in sorted(b.items())))
        print(f"  (kernel.stats: cow_pte_copy={st.get('cow_pte_copy', 0)}, "
              f"cow_pte_reuse={st.get('cow_pte_reuse', 0)}, cow_copy={st.get('cow_copy', 0)}, "
              f"forks={st.get('forks', 0)})")
        fw_ratio = cb["fork_write_us"] / pb["fork_write_us"]
        print(f"fork + one write per table + wait: plain {pb['fork_write_us']:.0f} us, "
              f"COW {cb['fork_write_us']:.0f} us ({fw_ratio:.2f}x)")

    # ---------------------------------------------------------- 4. plot
    err = plot(a.png, [r["size"] for r in rows], [r["plain"] for r in rows],
               [r["cow"] for r in rows], [r["native"] for r in rows])
    print()
    print(f"plot: {'not written: ' + err if err else a.png}")
    print(f"bench_fork took {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
