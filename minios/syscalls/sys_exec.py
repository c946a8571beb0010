"""execve and execveat: the checks Linux makes before the point of no
return (arguments, the file, #! interpreters), then ``proc.exec``."""
from __future__ import annotations

import stat as st

from minios.fs.vfs import canonical_path, guest_cwd, lookup, normalize
from minios.mm.uaccess import Fault, copy_from_user, get_u64, read_ptr_array, strncpy_from_user
from minios.proc.exec import ExecError, exec_into, read_executable
from minios.proc.exit import do_exit
from minios.proc.task import NORETURN
from minios.syscalls.common import s32
from minios.syscalls.kinds import ARGV, AT_FLAGS, DIRFD, ENVP, PATH, RET_EXEC
from minios.syscalls.table import syscall
from minios.uapi import errno as E
from minios.uapi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW


@syscall(59, "execve", PATH, ARGV, ENVP, ret=RET_EXEC)
def sys_execve(k, t, path, argv, envp, *_):
    return _execve(k, t, strncpy_from_user(t.mm, path), argv, envp)


@syscall(322, "execveat", DIRFD, PATH, ARGV, ENVP, AT_FLAGS, ret=RET_EXEC)
def sys_execveat(k, t, dirfd, path, argv, envp, flags, *_):
    # Linux's order: the path (EFAULT; empty is ENOENT unless AT_EMPTY_PATH),
    # then the flags, then the file.
    p = strncpy_from_user(t.mm, path)
    if not p and not flags & AT_EMPTY_PATH:
        return -E.ENOENT
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        return -E.EINVAL
    dirfd = s32(dirfd)
    if not p:                                    # AT_EMPTY_PATH: the file on dirfd
        if dirfd == AT_FDCWD:
            return -E.EACCES                     # the cwd, a directory
        f = t.files.get(dirfd)
        if f.node is None or not f.path or f.kind == "dir":
            return -E.EACCES
        p = f.path.encode(errors="surrogateescape")
    elif not p.startswith(b"/") and dirfd != AT_FDCWD:
        f = t.files.get(dirfd)
        if f.kind != "dir":
            return -E.ENOTDIR
        p = (f.path.rstrip("/") + "/").encode(errors="surrogateescape") + p
    if flags & AT_SYMLINK_NOFOLLOW:
        lk = lookup(k, t, p.decode(errors="surrogateescape"), follow=False)
        if lk.node is not None and st.S_ISLNK(lk.node.stat()["mode"]):
            return -E.ELOOP
    return _execve(k, t, p, argv, envp)


def _long_arg(mm, va: int) -> bool:
    """Whether a readable string of the argv/envp array at ``va`` has no
    NUL in its first 128 KiB."""
    try:
        while va:
            p = get_u64(mm, va)
            if p == 0:
                return False
            try:
                strncpy_from_user(mm, p, 1 << 17)
            except Fault:
                try:
                    copy_from_user(mm, p, 1 << 17)
                    return True
                except Fault:
                    return False
            va += 8
    except Fault:
        return False
    return False


def _execve(k, t, path: bytes, argv_p: int, envp_p: int):
    try:
        argv = read_ptr_array(t.mm, argv_p) if argv_p else []
        envp = read_ptr_array(t.mm, envp_p) if envp_p else []
    except OverflowError:
        return -E.E2BIG
    except Fault:
        # One string longer than MAX_ARG_STRLEN (128 KiB) is E2BIG, a bad
        # pointer EFAULT: read_ptr_array faults on both.
        return -E.E2BIG if _long_arg(t.mm, argv_p) or _long_arg(t.mm, envp_p) \
            else -E.EFAULT
    if not path:
        return -E.ENOENT
    spath = normalize(guest_cwd(t), path.decode(errors="surrogateescape"))
    try:
        data = None
        for _ in range(4):                       # #! interpreters, nested
            data = read_executable(k, spath)
            if not data.startswith(b"#!"):
                break
            line = data[2:].split(b"\n", 1)[0].strip()
            if not line:
                return -E.ENOEXEC
            interp, _, arg = line.partition(b" ")
            arg = arg.strip()
            argv = [interp] + ([arg] if arg else []) + [spath.encode(errors="surrogateescape")] + argv[1:]
            spath = interp.decode(errors="surrogateescape")
        else:
            return -E.ELOOP
        # Other threads die first (de_thread), then the new image. (Linux
        # kills them later, in begin_new_exec, once the image is loaded: a
        # failed execve leaves them running there.)
        for th in list(t.group.threads):
            if th is not t:
                do_exit(k, th, 0)
        exe = canonical_path(k, t, spath)      # /proc/PID/exe: symlinks resolved now
        entry = exec_into(k, t, spath, argv, envp, data)
        t.mm.exe = exe
    except ExecError as e:
        return -e.errno
    k.cpu.set_rip_in_syscall(entry)
    k.stats["execs"] += 1
    if k.events.listening:
        k.events.emit("exec", t, spath, argv)
    return NORETURN
