"""Every syscall handler module: importing this fills the syscall table
(``minios.syscalls.table.SYSCALLS``). The kernel imports it; the table
module itself imports no handlers, so handlers can import the table."""
from minios.syscalls import (epoll, sys_exec, sys_fd, sys_misc, sys_mm,  # noqa: F401
                             sys_namei, sys_net, sys_poll, sys_proc, sys_rw, sys_stat,
                             sys_tty)
from minios.syscalls.table import SYSCALLS, lookup  # noqa: F401
