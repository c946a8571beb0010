"""Instructions per iteration of a guest program's loop, under callgrind.

This VM's wall-clock speed drifts by up to 2x from minute to minute;
instruction counts do not (to a few percent: time slices and boot vary).
A program taking an iteration count (its first argument, or where an
argument reads ``{n}``) is run twice under ``valgrind --tool=callgrind``,
with N1 and N2 iterations, and the difference is divided by N2 - N1: the
start-up cancels out.

    python3 tools/bench_instr.py [--trees DIR,DIR] PROGRAM N1 N2 [ARGS...]

e.g. ``python3 tools/bench_instr.py userland/build/glibc/fork_loop 10 90 -t``
(fork + exit + wait), ``... userland/build/glibc/pingpong 200 1000``, or
``... userland/build/glibc/fork_bench 1 3 32 cow-write {n}`` (fork, the
child writing every page of 32 MiB, wait).
With ``--trees`` each minios checkout is measured in turn (A/B of two
commits: ``git worktree add /some/dir COMMIT``; copy userland/build there).
Counts include the whole emulator: guest code, Unicorn and the kernel.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def instructions(tree: str, program: str, n: int, args: list[str]) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-m", "minios", "run", "--mem", "256M", program,
                        *([a.replace("{n}", str(n)) for a in args] if "{n}" in args
                          else [str(n), *args])],
                       cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        with open(out) as f:
            m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    if m is None:
        raise SystemExit("bench_instr: no totals in callgrind's output")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", default=".", help="minios checkouts, comma separated")
    ap.add_argument("program", help="path relative to each tree")
    ap.add_argument("n1", type=int)
    ap.add_argument("n2", type=int)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instr: valgrind is not installed")
    if a.n2 <= a.n1:
        raise SystemExit("bench_instr: N2 must exceed N1")
    for tree in a.trees.split(","):
        lo = instructions(tree, a.program, a.n1, a.args)
        hi = instructions(tree, a.program, a.n2, a.args)
        print(f"{tree}: {(hi - lo) / (a.n2 - a.n1):,.0f} instructions per iteration "
              f"({' '.join([a.program, *a.args])}: {a.n1} vs {a.n2})")


if __name__ == "__main__":
    main()
