#!/usr/bin/env python3
"""fork + exec + wait through busybox sh: minios vs qemu-x86_64 vs native.

A guest root is made in a temporary directory: bin/busybox (a copy of the
static binary) and bin/true -> busybox. The script

    i=0; while [ $i -lt N ]; do $B/true; i=$((i+1)); done

runs an *external* command each time (a path with a slash: the shell
forks, the child execs bin/true, the shell waits), which ``--check-exec``
confirms by counting execve calls in minios's trace. It is timed

* natively:        busybox sh -c SCRIPT          (B = ROOT/bin)
* under qemu-user: qemu-x86_64 busybox sh -c ... (B = ROOT/bin)
* under minios:    minios run --root ROOT /bin/sh -c ...  (B = /bin)

and the table gives the total and per-iteration times and the
minios/qemu ratio (the target is at most 3x).

    python3 tools/bench_busybox.py [-n 1000] [--repeat 3] [--busybox PATH]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "i=0; while [ $i -lt {n} ]; do $B/true; i=$((i+1)); done; echo $i"


def find_busybox() -> str | None:
    for p in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        if p and os.path.exists(p):
            return p
    return None


def make_root(busybox: str) -> str:
    root = tempfile.mkdtemp(prefix="bench-busybox-")
    os.mkdir(os.path.join(root, "bin"))
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    for a in ("sh", "true"):
        os.symlink("busybox", os.path.join(root, "bin", a))
    return root


def timed(cmd: list[str], env: dict, expect: str) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, cwd=REPO)
    dt = time.perf_counter() - t0
    if p.returncode != 0 or p.stdout.decode().strip() != expect:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: status {p.returncode}, "
                           f"stdout {p.stdout[:200]!r}, stderr {p.stderr[-500:]!r}")
    return dt


def count_execs(root: str, n: int) -> int:
    """execve calls minios makes for the script with n iterations."""
    env = dict(os.environ, B="/bin", PATH="/bin")
    p = subprocess.run([sys.executable, "-m", "minios", "run", "--trace=syscall",
                        "--root", root, "/bin/sh", "-c", SCRIPT.format(n=n)],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    return sum(1 for line in p.stderr.decode(errors="replace").splitlines()
               if "execve(" in line and "= 0" in line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="iterations (default 1000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each, best kept")
    ap.add_argument("--busybox", default=find_busybox())
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    if a.busybox is None:
        print("no busybox found (apt-get install busybox-static)", file=sys.stderr)
        return 2
    root = make_root(a.busybox)
    try:
        execs = count_execs(root, 5)
        print(f"check: 5 iterations make {execs} successful execve calls under minios "
              f"(1 per iteration expected)")
        script = SCRIPT.format(n=a.n)
        host_env = dict(os.environ, B=os.path.join(root, "bin"), PATH=os.path.join(root, "bin"))
        guest_env = dict(os.environ, B="/bin", PATH="/bin")
        runs = [("native", [os.path.join(root, "bin", "sh"), "-c", script], host_env)]
        qemu = shutil.which("qemu-x86_64")
        if qemu and not a.no_qemu:
            runs.append(("qemu-x86_64", [qemu, os.path.join(root, "bin", "busybox"), "sh",
                                         "-c", script], host_env))
        runs.append(("minios", [sys.executable, "-m", "minios", "run", "--root", root,
                                "/bin/sh", "-c", script], guest_env))
        res = {}
        for name, cmd, env in runs:
            res[name] = min(timed(cmd, env, str(a.n)) for _ in range(a.repeat))
        print(f"\n{a.n} x fork+exec+wait of bin/true from busybox sh\n")
        print(f"{'':14}{'total s':>10}{'per iter':>12}")
        for name, dt in res.items():
            print(f"{name:14}{dt:10.2f}{dt / a.n * 1e6:10.0f} us")
        if "qemu-x86_64" in res:
            r = res["minios"] / res["qemu-x86_64"]
            print(f"\nminios / qemu-x86_64 = {r:.2f}x (target <= 3x)")
        print(f"minios / native      = {res['minios'] / res['native']:.0f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
