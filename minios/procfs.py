"""/proc: meminfo, cpuinfo, self and PID/ (status, maps, cmdline, stat, exe).

Every figure is computed from the kernel's own counters at open time, in
Linux's formats, so guest programs parse them as they would on Linux.
"""
from __future__ import annotations

import errno
import stat as st

from minios.files import MemFile, O_ACCMODE, O_RDONLY
from minios.mm import PROT_EXEC, PROT_READ, PROT_WRITE


def meminfo(k) -> str:
    fr = k.frames
    kb = 4
    total = (fr.nframes - fr.reserved) * kb
    rows = [("MemTotal", total), ("MemFree", fr.nr_free * kb),
            ("MemAvailable", fr.nr_free * kb), ("Buffers", 0), ("Cached", 0),
            ("SwapCached", 0), ("AnonPages", fr.nr_anon * kb), ("Mapped", fr.nr_mapped * kb),
            ("Shmem", 0), ("KernelStack", 16 * len(k.tasks)),
            ("PageTables", fr.nr_tables * kb), ("SwapTotal", 0), ("SwapFree", 0)]
    return "".join(f"{name + ':':<16}{v:>8} kB\n" for name, v in rows)


def _task(k, t, pid: str):
    if pid == "self":
        return t
    if pid == "thread-self":
        return t
    try:
        return k.tasks.get(int(pid))
    except ValueError:
        return None


def status(k, t) -> str:
    mm, g = t.mm, t.group
    vm = mm.total_vm() // 1024
    rss = mm.rss * 4
    state = {"R": "R (running)", "S": "S (sleeping)", "T": "T (stopped)",
             "Z": "Z (zombie)"}.get(t.state, "R (running)")
    ppid = g.parent.tgid if g.parent else 0
    return (f"Name:\t{g.comm}\nUmask:\t{getattr(g, 'umask', 0o22):04o}\nState:\t{state}\n"
            f"Tgid:\t{g.tgid}\nNgid:\t0\nPid:\t{t.tid}\nPPid:\t{ppid}\nTracerPid:\t0\n"
            f"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
            f"VmPeak:\t{vm:8} kB\nVmSize:\t{vm:8} kB\nVmRSS:\t{rss:8} kB\n"
            f"RssAnon:\t{rss:8} kB\nRssFile:\t{0:8} kB\nRssShmem:\t{0:8} kB\n"
            f"VmPTE:\t{mm.nr_tables * 4:8} kB\nThreads:\t{len(g.threads)}\n"
            f"SigBlk:\t{t.blocked:016x}\n")


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


def proc_readlink(k, t, path: str) -> str:
    parts = path.split("/")[2:]
    task = _task(k, t, parts[0]) if parts else None
    if task is None:
        raise OSError(errno.ENOENT, path)
    if parts[1:] == ["exe"]:
        return task.mm.exe
    if len(parts) == 3 and parts[1] == "fd":
        try:
            f = task.files.get(int(parts[2]))
        except (ValueError, OSError):
            raise OSError(errno.ENOENT, path) from None
        if f.kind == "fifo":
            return f"pipe:[{id(f.pipe) & 0xFFFFF}]"
        return f.path or f"anon_inode:[{f.kind}]"
    if parts[1:] == ["cwd"]:
        return getattr(task.group, "cwd", "/")
    raise OSError(errno.EINVAL, path)


def open_proc(k, t, path: str, flags: int):
    if flags & O_ACCMODE != O_RDONLY:
        raise OSError(errno.EACCES, path)
    parts = path.split("/")[2:]
    if not parts:
        names = ["meminfo", "cpuinfo", "self"] + [str(p) for p in k.groups]
        return MemFile("\n".join(names).encode(), path, st.S_IFDIR | 0o555)
    if parts == ["meminfo"]:
        return MemFile(meminfo(k).encode(), path)
    if parts == ["cpuinfo"]:
        return MemFile(cpuinfo(k).encode(), path)
    task = _task(k, t, parts[0])
    if task is None:
        raise OSError(errno.ENOENT, path)
    rest = parts[1:]
    if not rest:
        return MemFile(b"", path, st.S_IFDIR | 0o555)
    if rest == ["status"]:
        return MemFile(status(k, task).encode(), path)
    if rest == ["maps"]:
        return MemFile(maps(k, task).encode(), path)
    if rest == ["cmdline"]:
        return MemFile(b"".join(a + b"\0" for a in task.group.cmdline), path)
    if rest == ["comm"]:
        return MemFile((task.group.comm + "\n").encode(), path)
    if rest == ["stat"]:
        g = task.group
        ppid = g.parent.tgid if g.parent else 0
        return MemFile(f"{task.tid} ({g.comm}) {task.state} {ppid} {g.pgid} {g.sid} 0 -1 0 0 0 "
                       f"0 0 0 0 0 0 20 0 {len(g.threads)} 0 0 {task.mm.total_vm()} "
                       f"{task.mm.rss}\n".encode(), path)
    if rest == ["fd"]:
        return MemFile(b"", path, st.S_IFDIR | 0o500)
    raise OSError(errno.ENOENT, path)
