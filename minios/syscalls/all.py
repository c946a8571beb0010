"""Every syscall handler module: importing this fills the syscall table
(``minios.syscalls.table.SYSCALLS``). The kernel imports it; the table
module itself imports no handlers, so handlers can import the table."""
from minios.syscalls import epoll, sys_fs, sys_misc, sys_mm, sys_net, sys_proc  # noqa: F401
from minios.syscalls.table import SYSCALLS, lookup  # noqa: F401
