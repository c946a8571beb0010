"""A GDB remote-serial-protocol stub: debug a minios guest with a real gdb.

    python3 -m minios run --gdb 127.0.0.1:1234 PROGRAM ARGS...
    gdb -ex 'target remote 127.0.0.1:1234' PROGRAM

minios boots, loads the program and waits for gdb before its first
instruction (the stop gdb sees is SIGTRAP at the ELF entry point). The stub
speaks the protocol of the GDB manual, "Remote Protocol": ``$data#cs``
packets with ``+``/``-`` acks (no-ack mode on request), ``qSupported``,
``qXfer:features:read``, ``qXfer:auxv:read``, ``qXfer:exec-file:read``,
``?``, ``g G p P``, ``m M X``, ``c C s S`` and ``vCont``, ``Z0/z0``
(software breakpoints; ``Z1`` is served the same way), ``Z2/Z3/Z4``
(write/read/access watchpoints), ``qfThreadInfo``, ``qC``, ``H``, ``T``,
``qAttached``, ``QPassSignals``, ``QCatchSyscalls`` (gdb's ``catch
syscall``), ``QStartNoAckMode``, multiprocess extensions, ``k``, ``vKill``,
``D``, ``vFile:setfs/open/pread/close``, and ``^C``. Stop replies carry
rbp/rsp/rip, ``thread:``, ``swbreak:`` for breakpoints,
``watch:``/``rwatch:``/``awatch:`` with the data address and
``syscall_entry:``/``syscall_return:`` with the syscall's number (gdb names
it from its own XML); exits are ``W``/``X``. Signal numbers on the wire are
GDB's (SIGUSR1 is 30), translated both ways.

The modules, bottom up:

* ``packets``     the wire: framing, checksums, acks, escaping, signal numbers
* ``regs``        the ``g`` layout and target.xml; register reads and writes
* ``memory``      reads that fault nothing in, FOLL_FORCE writes
* ``breakpoints`` int3 breakpoints, watchpoints on physical frames
* ``vfile``       host I/O on the guest's files
* ``query``       each packet's meaning (dispatch by letter), thread ids
* ``stub``        GdbStub: the connection, the stop/resume loop, the
  kernel's debugger interface (``before_run``, ``on_trap``, ``on_signal``)
  and the event subscribers (forks, exits, watched faults, caught syscalls)
"""
from minios.gdbstub.packets import GdbError, gdb_signal, host_signal, parse_address
from minios.gdbstub.stub import GdbStub

__all__ = ["GdbError", "GdbStub", "gdb_signal", "host_signal", "parse_address"]
