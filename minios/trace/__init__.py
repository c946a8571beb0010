"""Tracing: strace-like syscall lines, page faults, forks, exits, context
switches, and a parser that turns trace text back into events.

Categories (``--trace=syscall,fault,sched,signal,fork``, ``Machine(trace=)``):

* ``syscall`` - one line per call, decoded as strace does::

      [pid 12] openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3
      [pid 12] newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=2791, ...}, AT_EMPTY_PATH) = 0
      [pid 12] read(3, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 2791
      [pid 12] openat(AT_FDCWD, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory)
      [pid 12] wait4(-1,  <unfinished ...>
      [pid 12] <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 13
      [pid 12] exit_group(0) = ?
      [pid 12] +++ exited with 0 +++

  Flags, signal names and sets, ``fcntl``/``ioctl`` commands and ``AT_*``
  flags are decoded; strings are escaped like strace's and buffers cut at
  32 bytes (``"..."...``); stat, timespec, rlimit, sigaction, iovec, utsname
  and clone3 arguments are shown as structs; pointers are hex, 0 is NULL.
  The call is formatted after its handler ran, so output arguments (read
  buffers, stat results, pipe fds) show what the kernel wrote; user memory is
  read through the page tables without faulting anything in. A syscall
  minios does not implement ends in ``= -1 ENOSYS (not implemented)``.
* ``fault`` - every page fault the CPU raises: address, ip, the decoded
  error code and what the kernel did, including COW-PTE table breaks::

      [pid 2] page fault at 0x7ffff7c00000 ip 0x401b2c (user write, protection) -> PUD table share broken by copy (was shared by 2), PMD table share broken by copy (was shared by 2), PTE table share broken by copy (was shared by 2), COW copy

* ``fork`` - ``[pid 1] fork: 2 tables shared, 0 copied (41 us), child pid 2``
* ``signal`` - ``[pid 1] --- SIGCHLD {si_signo=SIGCHLD, si_code=1} ---`` and
  ``+++ exited with N +++`` / ``+++ killed by SIGSEGV (core dumped) +++``
  (also printed with ``syscall``, as strace does)
* ``sched`` - ``[sched] pid 1 -> pid 2 (pid 1 blocked: wait4)`` on each
  context switch.

A :class:`Tracer` (made by :class:`minios.machine.Machine`) writes these
lines: it subscribes to the kernel's events (``minios.events``), so without
a trace nothing listens and the kernel's hot paths are unchanged. execve's
arguments are formatted at syscall entry, before the call replaces the image.

Each call is formatted from its declaration in the syscall table
(``minios.syscalls.table``): the argument kinds and the result kind.

Modules: ``format`` (values, flags, strings), ``syscall`` (a call's line
from its declaration), ``events`` (the :class:`Tracer` observer, fork,
exit and fault lines), ``parse`` (trace text back into events).

:func:`parse` turns trace text into a list of event dicts (see its
docstring); the pytest plugin uses it for ``result.trace``.
"""
from minios.trace.events import Tracer, format_exit, format_fault, format_fork
from minios.trace.format import (errno_text, flags, mmap_flags, open_flags, quote, sigset,
                                 signame)
from minios.trace.parse import parse, split_args
from minios.trace.syscall import format_resumed, format_syscall

__all__ = ["Tracer", "errno_text", "flags", "format_exit", "format_fault", "format_fork",
           "format_resumed", "format_syscall", "mmap_flags", "open_flags", "parse", "quote",
           "sigset", "signame", "split_args"]
