"""/proc: meminfo, cpuinfo, uptime, loadavg, version, mounts, self, and
PID/ (status, stat, statm, maps, cmdline, environ, comm, exe, cwd, root,
fd/).

Every figure is computed from the kernel's own counters at open time, in
Linux's formats, so guest programs parse them as they would on Linux. The
links (self, exe, cwd, root, fd/N) are symlinks whose targets are guest
paths, so following them stays inside the guest's tree; fd/N of a pipe,
a terminal or an unlinked file opens the same open file, as on Linux.
"""
from __future__ import annotations

import os
import stat as st
import time

from minios.uapi import errno
from minios.fs.files import MemFile, O_ACCMODE, O_RDONLY
from minios.fs.tmpfs import Inode
from minios.mm.mm_types import PROT_EXEC, PROT_READ, PROT_WRITE
from minios.mm.uaccess import Fault, copy_from_user

BOOT_NS = time.time_ns()


def meminfo(k) -> str:
    fr = k.frames
    kb = 4
    total = (fr.nframes - fr.reserved) * kb
    rows = [("MemTotal", total), ("MemFree", fr.nr_free * kb),
            ("MemAvailable", fr.nr_free * kb), ("Buffers", 0), ("Cached", len(fr.cache) * kb),
            ("SwapCached", 0), ("AnonPages", fr.nr_anon * kb), ("Mapped", fr.nr_mapped * kb),
            ("Shmem", 0), ("KernelStack", 16 * len(k.tasks)),
            ("PageTables", fr.nr_tables * kb), ("SwapTotal", 0), ("SwapFree", 0)]
    return "".join(f"{name + ':':<16}{v:>8} kB\n" for name, v in rows)


def status(k, t) -> str:
    mm, g = t.mm, t.group
    vm = mm.total_vm() // 1024
    rss = mm.rss * 4
    state = {"R": "R (running)", "S": "S (sleeping)", "T": "T (stopped)",
             "Z": "Z (zombie)"}.get(t.state, "R (running)")
    ppid = g.parent.tgid if g.parent else 0
    return (f"Name:\t{g.comm}\nUmask:\t{g.umask:04o}\nState:\t{state}\n"
            f"Tgid:\t{g.tgid}\nNgid:\t0\nPid:\t{t.tid}\nPPid:\t{ppid}\nTracerPid:\t0\n"
            f"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\n"
            f"VmPeak:\t{vm:8} kB\nVmSize:\t{vm:8} kB\nVmRSS:\t{rss:8} kB\n"
            f"RssAnon:\t{rss:8} kB\nRssFile:\t{0:8} kB\nRssShmem:\t{0:8} kB\n"
            f"VmPTE:\t{mm.nr_tables * 4:8} kB\nThreads:\t{len(g.threads)}\n"
            f"SigPnd:\t{_sigmask(t.pending):016x}\nShdPnd:\t{_sigmask(g.shared_pending):016x}\n"
            f"SigBlk:\t{t.blocked:016x}\n")


def _sigmask(q) -> int:
    m = 0
    for s in q:
        m |= 1 << (s - 1)
    return m


def maps(k, t) -> str:
    out = []
    for v in t.mm.vmas:
        perms = ("r" if v.prot & PROT_READ else "-") + ("w" if v.prot & PROT_WRITE else "-") \
            + ("x" if v.prot & PROT_EXEC else "-") + ("s" if v.shared else "p")
        off = v.image.offset if v.image else 0
        name = v.name
        if name == "" and v.shm is not None:
            name = "/dev/zero (deleted)"
        out.append(f"{v.start:08x}-{v.end:08x} {perms} {max(off, 0):08x} 00:00 0"
                   + (" " * 19 + name if name else "") + "\n")
    return "".join(out)


def cpuinfo(k) -> str:
    return ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: minios virtual CPU "
            "(Unicorn)\nflags\t\t: fpu pse tsc msr pae cx8 sep cmov pat clflush mmx fxsr "
            "sse sse2 syscall nx lm sse3 ssse3 cx16 sse4_1 sse4_2 popcnt\n\n")


def _stat_line(k, task) -> str:
    g = task.group
    ppid = g.parent.tgid if g.parent else 0
    start = int((g.start_ns or 0) / 1e7) if g.start_ns else 0
    utime = int(g.utime_ns / 1e7)
    f = [task.tid, f"({g.comm})", task.state, ppid, g.pgid, g.sid, 0, -1, 0x400000, 0, 0, 0,
         0, utime, 0, 0, 0, 20, 0, len(g.threads), 0, start, task.mm.total_vm(),
         task.mm.rss, (1 << 64) - 1] + [0] * 27
    return " ".join(map(str, f)) + "\n"


def _uptime(k) -> str:
    up = time.time() - k.boot_time
    return f"{up:.2f} {up:.2f}\n"


def _mounts(k) -> str:
    v = k.vfs                       # (built: /proc is reached through it)
    root_opts = "rw" if "/" in v.host.rw else "ro"
    lines = [f"hostfs / hostfs {root_opts} 0 0"]
    lines += [f"hostfs {d} hostfs rw 0 0" for d in v.host.rw if d != "/"]
    lines += ["devfs /dev devtmpfs ro 0 0", "proc /proc proc rw 0 0", "tmpfs /tmp tmpfs rw 0 0"]
    return "\n".join(lines) + "\n"


_TOP_FILES = {
    "meminfo": lambda k: meminfo(k),
    "cpuinfo": lambda k: cpuinfo(k),
    "uptime": _uptime,
    "loadavg": lambda k: f"0.00 0.00 0.00 1/{len(k.tasks)} {k.next_pid - 1}\n",
    "version": lambda k: "Linux version 6.1.0-minios (minios) #1 SMP minios\n",
    "mounts": _mounts,
    "filesystems": lambda k: "nodev\tproc\nnodev\ttmpfs\nnodev\tdevtmpfs\n\thostfs\n",
}


class PNode:
    """A /proc node: read-only, owned by root."""
    ro_errno = errno.EACCES
    mode = st.S_IFREG | 0o444

    def __init__(self, ino: int) -> None:
        self.ino = ino

    def stat(self) -> dict:
        return {"mode": self.mode, "ino": self.ino, "dev": 4, "nlink": 1, "size": 0,
                "uid": 0, "gid": 0, "atime": BOOT_NS, "mtime": BOOT_NS, "ctime": BOOT_NS}

    def lookup(self, name: str):
        raise OSError(errno.ENOTDIR, name)

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def writable(self) -> bool:
        return False


class PFile(PNode):
    def __init__(self, ino: int, gen) -> None:
        super().__init__(ino)
        self.gen = gen

    def open(self, k, t, flags: int, path: str):
        if flags & O_ACCMODE != O_RDONLY:
            raise OSError(errno.EACCES, path)
        data = self.gen(k)
        return MemFile(data if isinstance(data, bytes) else data.encode(), path, self.mode)


class PLink(PNode):
    mode = st.S_IFLNK | 0o777

    def __init__(self, ino: int, target, magic=None) -> None:
        super().__init__(ino)
        self._target = target            # fn() -> str
        # fn(k, t) -> (node, path) | None: where following the link leads
        # (a /proc/PID/fd link leads to the open file itself), or None.
        self.magic = magic

    def readlink(self) -> str:
        return self._target()


def _task_of(k, pid: int):
    g = k.groups.get(pid)
    if g is None or not g.threads:
        return None
    return g.threads[0]


class PidDir(PNode):
    """/proc/PID, or with ``tid`` /proc/PID/task/TID: the same files, of
    the thread group's first thread or of thread ``tid``."""
    mode = st.S_IFDIR | 0o555
    NAMES = ("cmdline", "comm", "cwd", "environ", "exe", "fd", "maps", "root", "stat",
             "statm", "status", "task")

    def __init__(self, k, pid: int, tid: int | None = None) -> None:
        super().__init__(pid << 8 if tid is None else (tid << 8) | 0x80)
        self.k, self.pid, self.tid = k, pid, tid
        if tid is not None:
            self.NAMES = self.NAMES[:-1]         # no task/ below a thread

    def _task(self):
        t = _task_of(self.k, self.pid)
        if t is not None and self.tid is not None:
            t = next((x for x in t.group.threads if x.tid == self.tid), None)
        if t is None:
            raise OSError(errno.ENOENT, "")
        return t

    def _cwd_target(self) -> str:
        return self.k.vfs.guest_cwd(self._task())

    def _cwd_magic(self, k, t):
        """/proc/PID/cwd leads to the directory itself (see vfs.lookup_in)."""
        task = self._task()
        stack = task.group.cwd_stack
        if not stack:
            return None
        return stack[-1][1], self.k.vfs.guest_cwd(task), stack

    def lookup(self, name: str):
        k, pid = self.k, self.pid
        self._task()
        base = self.ino
        i = self.NAMES.index(name) + 1 if name in self.NAMES else 0
        files = {
            "status": lambda k: status(k, self._task()),
            "maps": lambda k: maps(k, self._task()),
            "cmdline": lambda k: b"".join(a + b"\0" for a in self._task().group.cmdline),
            "comm": lambda k: self._task().group.comm + "\n",
            "stat": lambda k: _stat_line(k, self._task()),
            "statm": lambda k: f"{self._task().mm.total_vm() // 4096} {self._task().mm.rss} "
                               f"0 0 0 0 0\n",
            "environ": lambda k: _environ(self._task()),
        }
        if name in files:
            return PFile(base + i, files[name])
        if name == "exe":
            return PLink(base + i, lambda: self._task().mm.exe)
        if name == "cwd":
            return PLink(base + i, self._cwd_target, self._cwd_magic)
        if name == "root":
            return PLink(base + i, lambda: "/")
        if name == "fd":
            return FdDir(k, pid, base + i)
        if name == "task" and self.tid is None:
            return TaskDir(k, pid, base + i)
        return None

    def list(self):
        self._task()
        return [(self.ino, 4, "."), (1, 4, "..")] + [
            (self.ino + 1 + i, 10 if n in ("cwd", "exe", "root") else
             4 if n in ("fd", "task") else 8, n)
            for i, n in enumerate(self.NAMES)]


class TaskDir(PNode):
    """/proc/PID/task: a directory per thread of the group, by TID."""
    mode = st.S_IFDIR | 0o555

    def __init__(self, k, pid: int, ino: int) -> None:
        super().__init__(ino)
        self.k, self.pid = k, pid

    def _tids(self) -> list[int]:
        t = _task_of(self.k, self.pid)
        if t is None:
            raise OSError(errno.ENOENT, "")
        return [x.tid for x in t.group.threads]

    def lookup(self, name: str):
        if name.isdigit() and str(int(name)) == name and int(name) in self._tids():
            return PidDir(self.k, self.pid, int(name))
        return None

    def list(self):
        return [(self.ino, 4, "."), (self.pid << 8, 4, "..")] + [
            ((tid << 8) | 0x80, 4, str(tid)) for tid in self._tids()]


def _environ(t) -> bytes:
    mm = t.mm
    try:
        return copy_from_user(mm, mm.env_start, max(0, mm.env_end - mm.env_start))
    except Fault:
        return b""


def _host_fd_target(k, f) -> str:
    """What a host descriptor handed to the guest looks like from inside:
    pipes and sockets by inode, terminals and /dev files by name, files
    under the root by their guest path; nothing else of the host is named."""
    try:
        s = os.fstat(f.fd)
    except OSError:
        return "anon_inode:[host]"
    if st.S_ISFIFO(s.st_mode):
        return f"pipe:[{s.st_ino}]"
    if st.S_ISSOCK(s.st_mode):
        return f"socket:[{s.st_ino}]"
    try:
        if os.isatty(f.fd):
            name = os.ttyname(f.fd)
            return name if name.startswith("/dev/pts/") else "/dev/tty"
        real = os.readlink(f"/proc/self/fd/{f.fd}")
    except OSError:
        return "anon_inode:[host]"
    if real in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"):
        return real
    root = k.vfs.host.root.rstrip("/")
    if root == "":
        return real
    if real.startswith(root + "/"):
        return real[len(root):]
    return f"anon_inode:[host:{s.st_ino}]"


def fd_target(f, k=None) -> str:
    if f.kind == "fifo":
        return f"pipe:[{id(f.pipe) & 0xFFFFF}]"
    if f.kind == "sock":
        return f"socket:[{f.stat()['ino']}]"
    if f.kind == "host":
        return _host_fd_target(k, f)
    path = f.path or f"anon_inode:[{f.kind}]"
    node = f.node
    if isinstance(node, Inode) and node.nlink == 0:
        path += " (deleted)"
    return path


class FileNode:
    """What /proc/PID/fd/N leads to: the open file itself."""
    ro_errno = errno.EACCES

    def __init__(self, f) -> None:
        self.file = f

    def stat(self) -> dict:
        return self.file.stat()

    def lookup(self, name):
        if self.file.node is not None:
            return self.file.node.lookup(name)
        raise OSError(errno.ENOTDIR, name)

    def list(self):
        return self.file.node.list()

    def readlink(self) -> str:
        raise OSError(errno.EINVAL, "")

    def writable(self) -> bool:
        n = self.file.node
        return n.writable() if n is not None else True


class FdDir(PNode):
    mode = st.S_IFDIR | 0o500

    def __init__(self, k, pid: int, ino: int) -> None:
        super().__init__(ino)
        self.k, self.pid = k, pid

    def _files(self):
        t = _task_of(self.k, self.pid)
        if t is None or t.files is None:
            raise OSError(errno.ENOENT, "")
        return t.files

    def lookup(self, name: str):
        try:
            n = int(name)
        except ValueError:
            return None
        if str(n) != name:
            return None
        files = self._files()
        if n not in files.fds:
            return None

        def target():
            return fd_target(self._files().get(n), self.k)

        def magic(k, t):
            f = self._files().get(n)
            return FileNode(f), f.path or target(), f.stack
        link = PLink((self.pid << 16) + 0x1000 + n, target, magic)
        acc = files.get(n).flags & 3
        link.mode = st.S_IFLNK | (0o500 if acc == 0 else 0o300 if acc == 1 else 0o700)
        return link

    def list(self):
        fds = sorted(self._files().fds)
        return [(self.ino, 4, "."), (self.pid << 8, 4, "..")] + [
            ((self.pid << 16) + 0x1000 + n, 10, str(n)) for n in fds]


class ProcRoot(PNode):
    mode = st.S_IFDIR | 0o555

    def __init__(self, k) -> None:
        super().__init__(1)
        self.k = k

    def lookup(self, name: str):
        k = self.k
        if name in _TOP_FILES:
            return PFile(10 + list(_TOP_FILES).index(name), _TOP_FILES[name])
        if name in ("self", "thread-self"):
            return PLink(2 if name == "self" else 3,
                         lambda: str(k.current.group.tgid) if k.current else "1")
        try:
            pid = int(name)
        except ValueError:
            return None
        if str(pid) != name:
            return None
        if _task_of(k, pid) is None:
            return None
        return PidDir(k, pid)

    def list(self):
        k = self.k
        out = [(1, 4, "."), (1, 4, ".."), (2, 10, "self"), (3, 10, "thread-self")]
        out += [(10 + i, 8, n) for i, n in enumerate(_TOP_FILES)]
        out += [(pid << 8, 4, str(pid)) for pid in sorted(k.groups)
                if _task_of(k, pid) is not None]
        return out
