"""The public Python API: a machine you can run programs on.

    m = Machine(mem=1 << 30, cow_pte="flag")
    status = m.run("/path/to/static-binary", ["arg"], env={"A": "1"})
    m.meminfo()        # /proc/meminfo as a dict of kB

``run`` returns the exit status as a shell reports it (128 + signal when
killed). Bad programs raise :class:`MachineError` with a one-line message
and the status a shell would give (127 missing, 2 otherwise).
"""
from __future__ import annotations

import errno
import os

from minios.exec import ExecError


class MachineError(Exception):
    def __init__(self, msg: str, status: int = 2) -> None:
        super().__init__(msg)
        self.status = status


class Machine:
    def __init__(self, mem: int = 4 << 30, cow_pte: str = "flag", trace=None,
                 trace_file=None, check: bool = False, root: str = "/") -> None:
        from emu.cpu import Trap
        from minios.kernel import Kernel
        try:
            self.kernel = Kernel(mem=mem, cow_pte=cow_pte, trace=trace, trace_file=trace_file,
                                 check=check, root=root)
        except (Trap, ValueError, OSError) as e:
            raise MachineError(f"cannot boot the machine: {e}") from None
        if check:
            from minios.check import check_invariants
            self.kernel.checker = check_invariants

    def run(self, program: str, args=(), env=None, stdio=(0, 1, 2)) -> int:
        k = self.kernel
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
        from minios.exec import parse_elf
        try:
            parse_elf(data, program)
            k.spawn(path if k.root == "/" else program, argv, envp, stdio)
        except ExecError as e:
            raise MachineError(str(e), 126 if e.errno == errno.EACCES else 2) from None
        return k.run()

    def meminfo(self) -> dict[str, int]:
        from minios.procfs import meminfo
        out = {}
        for line in meminfo(self.kernel).splitlines():
            name, _, rest = line.partition(":")
            out[name] = int(rest.split()[0])
        return out
