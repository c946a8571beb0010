"""Tasks (threads) and the state they share.

A process is a thread group: tasks with the same ``tgid`` share an ``mm``,
a file table and signal handlers. A task is RUNNING, BLOCKED (waiting for
``retry`` to stop returning BLOCK), STOPPED, ZOMBIE (waiting to be reaped)
or DEAD.
"""
from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, TYPE_CHECKING

if TYPE_CHECKING:
    from minios.mm.mm_types import MM
    from minios.fs.files import FdTable

RUNNING, BLOCKED, STOPPED, ZOMBIE, DEAD = "R", "S", "T", "Z", "X"
BLOCK = object()          # a syscall handler's "not yet: put me to sleep"
NORETURN = object()       # a handler that set the registers itself


RLIM_INFINITY = (1 << 64) - 1
RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NOFILE, RLIM_NLIMITS = 3, 4, 7, 16
# Linux's limits for a process nobody changed, by resource: (soft, hard). A
# tuple, so no process (and no Machine) can change what another one starts with.
DEFAULT_RLIMITS: tuple[tuple[int, int], ...] = (
    (RLIM_INFINITY,) * 2, (RLIM_INFINITY,) * 2, (RLIM_INFINITY,) * 2,  # CPU FSIZE DATA
    (8 << 20, RLIM_INFINITY), (0, RLIM_INFINITY), (RLIM_INFINITY,) * 2,  # STACK CORE RSS
    (63459, 63459), (1024, 1048576), (8 << 20, 8 << 20),               # NPROC NOFILE MEMLOCK
    (RLIM_INFINITY,) * 2, (RLIM_INFINITY,) * 2, (63459, 63459),        # AS LOCKS SIGPENDING
    (819200, 819200), (0, 0), (0, 0), (RLIM_INFINITY,) * 2)            # MSGQUEUE NICE RTPRIO RTTIME


def host_rlimits() -> dict[int, tuple[int, int]]:
    """The limits pid 1 inherits from whoever started minios, as a program
    started from a shell does (RLIMIT_CORE decides the core flag, say)."""
    out = {}
    for res in (RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NOFILE):
        try:
            cur, mx = resource.getrlimit(res)
        except (ValueError, OSError):
            continue
        out[res] = tuple(RLIM_INFINITY if v == resource.RLIM_INFINITY else v for v in (cur, mx))
    return out


class SigAction(NamedTuple):
    """Immutable, so a fork copies the table as a plain list."""
    handler: int = 0          # SIG_DFL 0, SIG_IGN 1, else an address
    flags: int = 0
    restorer: int = 0
    mask: int = 0


_DEFAULT = SigAction()


@dataclass(eq=False)
class SigHand:
    """Handlers, shared by CLONE_SIGHAND."""
    actions: list[SigAction] = field(default_factory=lambda: [_DEFAULT] * 65)


@dataclass(eq=False)
class ThreadGroup:
    """What a process owns beyond its threads: pid, parent link, children,
    shared pending signals, and its exit status once it is a zombie."""
    tgid: int
    parent: "ThreadGroup | None" = None
    children: list["ThreadGroup"] = field(default_factory=list)
    threads: list["Task"] = field(default_factory=list)
    shared_pending: dict[int, dict] = field(default_factory=dict)
    exit_signal: int = 17
    exit_status: int | None = None    # wait status once all threads are gone
    group_exit: int | None = None     # exit_group / fatal signal in progress
    zombie: bool = False
    stopped: bool = False
    stop_report: int | None = None    # a WUNTRACED/WCONTINUED event to report
    utime_ns: int = 0
    start_ns: int = 0
    # The limits that differ from DEFAULT_RLIMITS (read them with rlimit()).
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    pgid: int = 0
    sid: int = 0
    cmdline: list[bytes] = field(default_factory=list)
    comm: str = ""
    cwd: str = "/"                    # canonical guest path (fork copies it)
    umask: int = 0o022
    # The last fault that became a signal: (sig, addr, rip, vector, err), for
    # the kernel-log line of a fatal one (sigframe._report_fault).
    fault: tuple[int, int, int, int, int] | None = None
    # The current directory as the walk that reached it (vfs.Lookup.stack),
    # Linux's fs->pwd: relative paths start from the directory itself,
    # wherever it has been moved since. Empty: the guest path ``cwd``.
    cwd_stack: tuple = ()

    def rlimit(self, res: int) -> tuple[int, int]:
        """(soft, hard) limit of resource ``res`` (below RLIM_NLIMITS)."""
        return self.rlimits.get(res, DEFAULT_RLIMITS[res])


class Task:
    def __init__(self, tid: int, group: ThreadGroup, mm: "MM", files: "FdTable",
                 sighand: SigHand, ctx) -> None:
        self.tid = tid
        self.group = group
        self.mm = mm
        self.files = files
        self.sighand = sighand
        self.ctx = ctx
        self.state = RUNNING
        self.retry: Callable[[], object] | None = None    # blocked syscall
        self.wait_channel = ""
        self.wait_obj = None          # the pipe or file it sleeps on, if any
        self.wake_time: float | None = None
        self.blocked = 0                                  # signal mask
        self.pending: dict[int, dict] = {}                # per-thread signals
        self.clear_child_tid = 0
        self.robust_list = 0
        self.vfork_parent: "Task | None" = None
        self.sigctx: list = []              # saved FPU contexts per frame
        self.suspend_restore: int | None = None  # caller's mask under a temporary one
        self.syscall_nr = -1
        # RIP and RFLAGS at its last syscall instruction (saved at syscall
        # entry): a fork child, and a task switched out inside the syscall
        # hook, resume after that instruction.
        self.syscall_rip = 0
        self.syscall_rflags = 0
        self.vfork_done = False             # a vfork child released this parent
        self.futex_woken = False
        self.exit_code = 0
        self.altstack = (0, 2, 0)           # ss_sp, ss_flags (SS_DISABLE), ss_size
        self.rseq = 0                       # the registered struct rseq (rseq(2))

    @property
    def pid(self) -> int:
        return self.group.tgid

    def __repr__(self) -> str:
        return f"<Task {self.tid} tgid={self.pid} {self.state}>"
