"""The ``minios`` command line."""
from __future__ import annotations

import argparse
import os
import sys


def parse_size(s: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = s.strip().lower().rstrip("b").rstrip("i")
    mult = units.get(s[-1:], 1)
    num = s[:-1] if s[-1:] in units else s
    try:
        v = int(float(num) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {s!r} (use e.g. 512M, 4G)") from None
    if v < 64 << 20:
        raise argparse.ArgumentTypeError("memory must be at least 64M")
    return (v + (2 << 20) - 1) & ~((2 << 20) - 1)


def _trace_set(s: str | None) -> set[str]:
    if s is None:
        return set()
    if s in ("", "all"):
        return {"syscall", "fault", "sched", "signal", "fork"}
    return {x.strip() for x in s.split(",") if x.strip()}


def guest_environ() -> dict[str, str]:
    """The environment the guest should see: ours, minus what Python itself
    added at start-up (PEP 538 sets LC_CTYPE=C.UTF-8 when no locale is set)."""
    env = dict(os.environ)
    # Coercion leaves exactly this trace; a user who set only LC_CTYPE=C.UTF-8
    # by hand loses it too (a documented limitation).
    if env.get("LC_CTYPE") == "C.UTF-8" and not env.get("LANG") and not env.get("LC_ALL") \
            and env.get("PYTHONCOERCECLOCALE") != "0":
        env.pop("LC_CTYPE")
    return env


def cmd_run(a) -> int:
    from minios.machine import Machine, MachineError
    trace_file = open(a.trace_file, "w") if a.trace_file else None
    try:
        m = Machine(mem=a.mem, cow_pte=a.cow_pte, trace=_trace_set(a.trace),
                    trace_file=trace_file, check=a.check, root=a.root, rw=tuple(a.rw),
                    gdb=a.gdb, gdb_follow=a.gdb_follow, vdso=not a.no_vdso)
    except MachineError as e:
        print(f"minios: {e}", file=sys.stderr)
        return 2
    for spec in a.breaks or ():
        try:
            m.add_break(spec)              # minios.debug: pdb inside the kernel
        except ValueError as e:
            print(f"minios: --break {e}", file=sys.stderr)
            return 2
    if os.isatty(0) and not a.gdb:
        m.kernel.forward_terminal_signals()    # Ctrl-C reaches the guest
    try:
        return m.run(a.program, a.args, env=guest_environ(), stdio=(0, 1, 2))
    except MachineError as e:
        print(f"minios: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130


def cmd_ptdump(a) -> int:
    """``minios ptdump [--at SPEC]... [--all] [--tables] PROGRAM ARGS``: run PROGRAM and
    print page-table dumps. At ``exit`` (the default) each process is dumped
    as it starts to exit, before its memory is released; at ``fork`` the
    parent and the new child; at any other SPEC (``syscall:NAME``,
    ``signal:NAME``, ``fault:cow-pte``, ...) every process. ``--all`` dumps
    every process at every point. Exits with the program's status."""
    from minios.debug import add_break, describe, ptdump
    from minios.machine import Machine, MachineError
    out = open(a.output, "w") if a.output else sys.stdout
    try:
        m = Machine(mem=a.mem, cow_pte=a.cow_pte)
    except MachineError as e:
        print(f"minios: {e}", file=sys.stderr)
        return 2
    k = m.kernel
    count = [0]

    def dump(kk, kind, what, task):
        count[0] += 1
        where = describe(kind, what, task)
        tb = a.tables
        if a.all or kind not in ("exit", "fork"):
            body = ptdump(kk, all=True, tables=tb)
        elif kind == "fork":
            body = ptdump(kk, task.tid, tables=tb) + "\n" + ptdump(kk, what.tid, tables=tb)
        else:
            body = ptdump(kk, task.tid, tables=tb)
        out.write(f"=== #{count[0]}: {where} in pid {task.tid} ===\n{body}\n\n")
        out.flush()

    for spec in a.at or ["exit"]:
        try:
            add_break(k, spec, dump)
        except ValueError as e:
            print(f"minios: --at {e}", file=sys.stderr)
            return 2
    try:
        sys.stdout.flush()
        return m.run(a.program, a.args, env=os.environ, stdio=(0, 1, 2))
    except MachineError as e:
        print(f"minios: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130
    finally:
        if out is not sys.stdout:
            out.close()


def cmd_demo(a) -> int:
    from minios.demo import main as demo_main
    return demo_main(a)


def cmd_bench(a) -> int:
    import runpy
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(here, "tools", "bench_fork.py" if a.what == "fork" else "bench.py")
    sys.argv = [script] + a.rest
    runpy.run_path(script, run_name="__main__")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="minios", description="An emulated x86-64 machine "
                                "running a small Linux-compatible kernel.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a static x86-64 Linux program")
    r.add_argument("--mem", type=parse_size, default=4 << 30, help="guest RAM (default 4G)")
    r.add_argument("--trace", nargs="?", const="syscall,fault,signal,fork", default=None,
                   metavar="WHAT",
                   help="trace to stderr; WHAT is a comma-separated list of syscall, fault, "
                        "sched, signal, fork, or all (bare --trace: all but sched)")
    r.add_argument("--trace-file", help="write the trace here instead of stderr")
    r.add_argument("--cow-pte", choices=("flag", "always", "never"), default="flag",
                   help="share PTE tables at fork: on CLONE_COW_PGTABLE (flag), always, never")
    r.add_argument("--check", action="store_true",
                   help="run the invariant checker after every syscall and fault")
    r.add_argument("--no-vdso", action="store_true",
                   help="map no vDSO (Linux's vdso=0): every clock read is a system call")
    r.add_argument("--root", default="/", help="host directory used as the guest's /")
    r.add_argument("--rw", action="append", default=[], metavar="DIR",
                   help="make this directory (under the root) writable; repeatable "
                   "(the rest of the root is read-only; /tmp is an in-memory tmpfs)")
    r.add_argument("--break", dest="breaks", action="append", metavar="SPEC",
                   help="stop in the kernel (pdb, or $PYTHONBREAKPOINT) at: fault, "
                   "fault@LO-HI, fault:cow-pte, syscall:NAME, signal:NAME, fork, exit "
                   "(repeatable; see minios/debug.py)")
    r.add_argument("--gdb", metavar="HOST:PORT",
                   help="wait for gdb (target remote HOST:PORT) before the first instruction "
                   "(see minios/gdbstub/)")
    r.add_argument("--gdb-follow", choices=("parent", "child"), default="parent",
                   help="after a fork, keep debugging the parent (default) or the child")
    r.add_argument("program")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.set_defaults(fn=cmd_run)
    pd = sub.add_parser("ptdump", help="run a program, dump its page tables at exits, "
                        "forks or syscalls")
    pd.add_argument("--at", action="append", metavar="SPEC",
                    help="when to dump: exit (default: each process as it exits), fork "
                    "(parent and child), syscall:NAME, signal:NAME, fault:cow-pte, "
                    "fault@LO-HI (repeatable)")
    pd.add_argument("--all", action="store_true",
                    help="dump every process at every point, not only the ones involved")
    pd.add_argument("--tables", action="store_true",
                    help="one line per run of PTE tables (sharing, pages) instead of page ranges")
    pd.add_argument("--mem", type=parse_size, default=4 << 30, help="guest RAM (default 4G)")
    pd.add_argument("--cow-pte", choices=("flag", "always", "never"), default="flag")
    pd.add_argument("-o", "--output", help="write the dumps here (default stdout)")
    pd.add_argument("program")
    pd.add_argument("args", nargs=argparse.REMAINDER)
    pd.set_defaults(fn=cmd_ptdump)
    d = sub.add_parser("demo", help="the RFC's PageTables table, plain vs COW PTE fork")
    d.add_argument("--size", type=parse_size, default=1 << 30, help="memory to touch (1G)")
    d.add_argument("--mem", type=parse_size, default=4 << 30)
    d.set_defaults(fn=cmd_demo)
    b = sub.add_parser("bench", help="benchmarks (see tools/)")
    b.add_argument("what", choices=("basic", "fork"), nargs="?", default="basic")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    argv = list(sys.argv[1:] if argv is None else argv)
    # A bare --trace must not swallow the program name: give it its default.
    if "run" in argv:
        i = argv.index("run") + 1
        while i < len(argv) and argv[i].startswith("-"):
            if argv[i] == "--trace":
                argv[i] = "--trace=syscall,fault,signal,fork"
            elif argv[i] in ("--mem", "--trace-file", "--cow-pte", "--root", "--break", "--rw",
                             "--gdb", "--gdb-follow"):
                i += 1
            i += 1
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
