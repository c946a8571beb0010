"""The public Python API: a machine you can run programs on.

    m = Machine(mem=1 << 30, cow_pte="flag")
    status = m.run("/path/to/static-binary", ["arg"], env={"A": "1"})
    m.meminfo()        # /proc/meminfo as a dict of kB

``run`` returns the exit status as a shell reports it (128 + signal when
killed). Bad programs raise :class:`MachineError` with a one-line message
and the status a shell would give (127 missing, 2 otherwise).

Tracing and debugging (see ``minios.trace`` and ``minios.debug``)::

    log = io.StringIO()
    m = Machine(trace="syscall,fault,fork", trace_file=log)   # or a set
    m.add_break("fault:cow-pte")          # pdb inside the kernel (sys.breakpointhook)
    m.add_break("exit", action=lambda k, kind, what, task: print(m.ptdump(task.tid)))
    m.run(...)
    m.trace_events()                      # parsed: [{"kind": "syscall", "name": ...}, ...]
"""
from __future__ import annotations

import errno
import os

from minios.proc.exec import ExecError


class MachineError(Exception):
    def __init__(self, msg: str, status: int = 2) -> None:
        super().__init__(msg)
        self.status = status


class Machine:
    def __init__(self, mem: int = 4 << 30, cow_pte: str = "flag", trace=None,
                 trace_file=None, check: bool = False, root: str = "/",
                 rw: tuple = (), gdb: str | None = None, gdb_follow: str = "parent",
                 vdso: bool = True) -> None:
        from emu.cpu import Trap
        from minios.kernel import Kernel
        if isinstance(trace, str):              # "syscall,fault" as on the command line
            trace = ({"syscall", "fault", "sched", "signal", "fork"} if trace == "all" else
                     {x.strip() for x in trace.split(",") if x.strip()})
        try:
            self.kernel = Kernel(mem=mem, cow_pte=cow_pte, check=check, root=root,
                                 rw=tuple(rw), vdso=vdso)
        except (Trap, ValueError, OSError) as e:
            raise MachineError(f"cannot boot the machine: {e}") from None
        if not os.path.isdir(root):
            raise MachineError(f"--root {root}: not a directory")
        try:
            from minios.fs.vfs import get_vfs
            get_vfs(self.kernel)                # checks the --rw directories
        except ValueError as e:
            raise MachineError(str(e)) from None
        if check:
            from minios.mm.check import check_invariants
            self.kernel.checker = check_invariants
        self.trace_file = trace_file
        # The tracer subscribes to the kernel's events (minios.trace).
        self.tracer = None
        if trace:
            import sys
            from minios.trace import Tracer
            self.tracer = Tracer(self.kernel, trace, trace_file or sys.stderr)
        # gdb="HOST:PORT": a GDB remote stub (minios.gdbstub) that stops the
        # program before its first instruction until gdb connects.
        self.gdb_stub = None
        if gdb:
            from minios.gdbstub import GdbStub, parse_address
            try:
                host, port = parse_address(gdb)
                self.gdb_stub = GdbStub(self.kernel, host, port, gdb_follow)
            except (ValueError, OSError) as e:
                raise MachineError(f"--gdb {gdb}: {e}") from None

    # ------------------------------------------------------ tracing, debugging
    def add_break(self, spec: str, action=None):
        """Stop in the kernel at an event (``fault``, ``fault@LO-HI``,
        ``fault:cow-pte``, ``syscall:NAME``, ``signal:NAME``, ``fork``,
        ``exit``): ``action(kernel, kind, what, task)``, by default the
        debugger via ``sys.breakpointhook()``. Raises ValueError for a bad spec."""
        from minios.debug import add_break
        return add_break(self.kernel, spec, action)

    def ptdump(self, pid: int | None = None, all: bool = False, tables: bool = False) -> str:
        """The page-table dump of a live process (see ``minios.debug``)."""
        from minios.debug import ptdump
        return ptdump(self.kernel, pid, all, tables)

    def trace_events(self) -> list[dict]:
        """The trace so far, parsed (``minios.trace.parse``); needs a
        ``trace_file`` that can be read back (io.StringIO, or a file opened w+)."""
        from minios.trace import parse
        f = self.trace_file
        if f is None:
            return []
        if hasattr(f, "getvalue"):
            return parse(f.getvalue())
        f.flush()
        pos = f.tell()
        f.seek(0)
        text = f.read()
        f.seek(pos)
        return parse(text)

    def run(self, program: str, args=(), env=None, stdio=(0, 1, 2)) -> int:
        k = self.kernel
        if os.path.realpath(k.root) != "/":
            return self._run_in_root(program, args, env, stdio)
        path = os.path.abspath(program)
        if not os.path.exists(program):
            raise MachineError(f"{program}: No such file or directory", 127)
        env = os.environ if env is None else env
        envp = [f"{a}={b}".encode() for a, b in env.items()]
        argv = [program.encode()] + [x.encode() if isinstance(x, str) else x for x in args]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise MachineError(f"{program}: {e.strerror}", 126) from None
        from minios.proc.exec import parse_elf
        try:
            parse_elf(data, program)
            k.boot_exe = (path, path)    # read from the host even if /tmp hides it
            task = k.spawn(path, argv, envp, stdio)
            task.mm.exe = os.path.realpath(path)
            from minios.fs.vfs import HostNode, lookup
            try:                         # start in the host's cwd when the guest sees it
                lk = lookup(k, task, os.getcwd())
                if isinstance(lk.node, HostNode):
                    task.group.cwd = lk.path
            except OSError:
                pass
        except ExecError as e:
            raise MachineError(str(e), 126 if e.errno == errno.EACCES else 2) from None
        return self._run_kernel()

    def _run_in_root(self, program: str, args, env, stdio) -> int:
        """With --root, ``program`` is a path in the guest's tree (relative
        ones start at the guest's /)."""
        from minios.proc.exec import parse_elf
        from minios.fs.vfs import read_exec_file
        k = self.kernel
        guest = program if program.startswith("/") else "/" + program
        env = os.environ if env is None else env
        envp = [f"{a}={b}".encode() for a, b in env.items()]
        argv = [program.encode()] + [x.encode() if isinstance(x, str) else x for x in args]
        try:
            parse_elf(read_exec_file(k, guest), program)
            task = k.spawn(guest, argv, envp, stdio)
            from minios.fs.vfs import canonical_path
            task.mm.exe = canonical_path(k, task, guest)
        except ExecError as e:
            status = {errno.ENOENT: 127, errno.ENOTDIR: 127, errno.EACCES: 126}.get(e.errno, 2)
            if e.errno == errno.ENOENT:
                raise MachineError(f"{program}: No such file or directory (in the guest's "
                                   f"root {k.root})", status) from None
            raise MachineError(str(e), status) from None
        return self._run_kernel()

    def _run_kernel(self) -> int:
        try:
            return self.kernel.run()
        finally:
            if self.gdb_stub is not None:
                self.gdb_stub.finish()      # the exit reply if gdb has not had it

    def meminfo(self) -> dict[str, int]:
        from minios.fs.procfs import meminfo
        out = {}
        for line in meminfo(self.kernel).splitlines():
            name, _, rest = line.partition(":")
            out[name] = int(rest.split()[0])
        return out
