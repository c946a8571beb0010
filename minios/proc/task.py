"""Tasks (threads) and the state they share.

A process is a thread group: tasks with the same ``tgid`` share an ``mm``,
a file table and signal handlers. A task is RUNNING, BLOCKED (waiting for
``retry`` to stop returning BLOCK), STOPPED, ZOMBIE (waiting to be reaped)
or DEAD.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, TYPE_CHECKING

if TYPE_CHECKING:
    from minios.mm.mm_types import MM
    from minios.fs.files import FdTable

RUNNING, BLOCKED, STOPPED, ZOMBIE, DEAD = "R", "S", "T", "Z", "X"
BLOCK = object()          # a syscall handler's "not yet: put me to sleep"
NORETURN = object()       # a handler that set the registers itself


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
    rlimits: dict = field(default_factory=dict)
    pgid: int = 0
    sid: int = 0
    cmdline: list[bytes] = field(default_factory=list)
    comm: str = ""
    # The current directory as the walk that reached it (vfs.Lookup.stack),
    # Linux's fs->pwd: relative paths start from the directory itself,
    # wherever it has been moved since. Empty: the guest path ``cwd``.
    cwd_stack: tuple = ()


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
        self.futex_woken = False
        self.exit_code = 0
        self.altstack = (0, 2, 0)           # ss_sp, ss_flags (SS_DISABLE), ss_size

    @property
    def pid(self) -> int:
        return self.group.tgid

    def __repr__(self) -> str:
        return f"<Task {self.tid} tgid={self.pid} {self.state}>"
