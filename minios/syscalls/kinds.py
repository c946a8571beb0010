"""Argument and result kinds: what each syscall's registers hold, as the
syscall table declares it (``@syscall(0, "read", FD, OUT_BUF, SIZE)``).

A kind is data: it says what the value is (an fd, a path, a buffer sized
by argument 2, a flag set from a uapi table, a struct the call fills in).
The tracer (``minios.trace.syscall``) formats each kind as strace does;
the handlers keep decoding their registers themselves, so the dispatch
path does no per-argument work.

``out`` marks an output argument: it is shown after the call, and a call
that blocks is printed up to the first one (strace's ``<unfinished ...>``).
"""
from __future__ import annotations

from minios.uapi import epoll, fcntl, ioctls, mman, misc, signal, socket


class Kind:
    """One argument's kind. Subclasses with parameters set them in
    ``__init__``; the tracer dispatches on the class."""
    __slots__ = ("out",)

    def __init__(self, out: bool = False) -> None:
        self.out = out

    def __repr__(self) -> str:
        return type(self).__name__


# --- plain values
class Int(Kind):
    """A C int (32 bits, signed): counts, pids, fds, ids."""
    __slots__ = ()


class Long(Kind):
    """A C long or off_t (64 bits, signed)."""
    __slots__ = ()


class UInt(Kind):
    """An unsigned value shown in decimal: sizes, lengths."""
    __slots__ = ()


class Ptr(Kind):
    """An address: hex, or NULL."""
    __slots__ = ()


class Hex(Kind):
    """A number shown in hex (C's ``%#lx``: 0 stays 0)."""
    __slots__ = ()


class DirFd(Kind):
    """A directory fd of the ``*at`` calls: AT_FDCWD by name."""
    __slots__ = ()


class Path(Kind):
    """A NUL-terminated path in user memory, shown in full."""
    __slots__ = ()


class Mode(Kind):
    """File permission bits, in octal."""
    __slots__ = ()


class FileMode(Kind):
    """A file type and permissions (mknod): S_IFIFO|0644."""
    __slots__ = ()


class Umask(Kind):
    """umask's argument, in octal (0 as 0)."""
    __slots__ = ()


class AccessMode(Kind):
    """access(2)'s F_OK or R_OK|W_OK|X_OK."""
    __slots__ = ()


class Signal(Kind):
    """A signal number, by name (0 as 0)."""
    __slots__ = ()


class Flags(Kind):
    """A set of flags from a ``[(bit, name)]`` uapi table (low 32 bits)."""
    __slots__ = ("table", "zero")

    def __init__(self, table: list, zero: str = "0") -> None:
        super().__init__()
        self.table, self.zero = table, zero


class Enum(Kind):
    """One value from a ``{value: name}`` uapi table; ``signed``: read as a
    C int, unknown values in decimal (else unknown values >= 10 in hex)."""
    __slots__ = ("table", "signed")

    def __init__(self, table: dict, signed: bool = True) -> None:
        super().__init__()
        self.table, self.signed = table, signed


class OpenFlags(Kind):
    """open(2) flags: the access mode, then O_* names."""
    __slots__ = ()


class MmapFlags(Kind):
    """mmap(2) flags: the mapping type, then MAP_* names."""
    __slots__ = ()


class SockType(Kind):
    """socket(2)'s type: SOCK_* and its SOCK_NONBLOCK/SOCK_CLOEXEC flags."""
    __slots__ = ()


class If(Kind):
    """``kind``, present only when ``args[arg] & mask`` (open's mode with
    O_CREAT, mremap's new address with MREMAP_FIXED); else not shown."""
    __slots__ = ("arg", "mask", "kind")

    def __init__(self, arg: int, mask: int, kind: Kind) -> None:
        super().__init__(kind.out)
        self.arg, self.mask, self.kind = arg, mask, kind


# --- user memory read by the call
class InBuf(Kind):
    """Bytes the call reads, ``args[len]`` long (write's buffer)."""
    __slots__ = ("len",)

    def __init__(self, len: int) -> None:
        super().__init__()
        self.len = len


class Argv(Kind):
    """execve's NULL-terminated array of strings."""
    __slots__ = ()


class Envp(Kind):
    """execve's environment: its address and how many strings."""
    __slots__ = ()


class Iovec(Kind):
    """An iovec array of ``args[cnt]`` entries; ``out``: readv's, filled
    up to the result."""
    __slots__ = ("cnt",)

    def __init__(self, cnt: int, out: bool = False) -> None:
        super().__init__(out)
        self.cnt = cnt


class Timespec(Kind):
    """A struct timespec (``usec``: a struct timeval); ``out``: filled by
    the call."""
    __slots__ = ("usec",)

    def __init__(self, out: bool = False, usec: bool = False) -> None:
        super().__init__(out)
        self.usec = usec


class SigSet(Kind):
    """A 64-bit signal set."""
    __slots__ = ()


class SigAction(Kind):
    """A struct sigaction (the kernel's layout)."""
    __slots__ = ()


class StackT(Kind):
    """A stack_t (sigaltstack)."""
    __slots__ = ()


class Rlimit(Kind):
    """A struct rlimit."""
    __slots__ = ()


class EpollEvent(Kind):
    """One struct epoll_event (epoll_ctl's)."""
    __slots__ = ()


# --- user memory written by the call (always ``out``)
class OutBuf(Kind):
    """Bytes the call wrote, as many as its result (read); ``hexall``:
    every byte as \\x.. (getrandom)."""
    __slots__ = ("hexall",)

    def __init__(self, hexall: bool = False) -> None:
        super().__init__(True)
        self.hexall = hexall


class OutStr(Kind):
    """A string the call wrote, its result long (readlink); ``nul``: the
    result counts the NUL (getcwd)."""
    __slots__ = ("nul",)

    def __init__(self, nul: bool = False) -> None:
        super().__init__(True)
        self.nul = nul


class OutStruct(Kind):
    """An output struct: each subclass is one the tracer shows."""
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(True)


class Stat(OutStruct):
    __slots__ = ()


class TimespecRem(OutStruct):
    """nanosleep's remaining time: shown when the call was interrupted."""
    __slots__ = ()


class FdPair(OutStruct):
    """int[2]: pipe's and socketpair's new fds."""
    __slots__ = ()


class IntOut(OutStruct):
    """An int the call stores."""
    __slots__ = ()


class Utsname(OutStruct):
    __slots__ = ()


class WStatus(OutStruct):
    """wait4's status word, as WIFEXITED(s) && ..."""
    __slots__ = ()


class Dirents(OutStruct):
    """getdents' buffer: how many entries it holds."""
    __slots__ = ()


class Affinity(OutStruct):
    """A CPU mask, as the list of CPUs."""
    __slots__ = ()


class EpollEvents(OutStruct):
    """The epoll_event array epoll_wait filled, its result long."""
    __slots__ = ()


# --- whole-call formats: arguments that depend on each other
class CallFormat:
    """A call whose arguments are shown together (``format=`` on its
    declaration): the tracer dispatches on the class."""
    __slots__ = ()

    def __repr__(self) -> str:
        return type(self).__name__


class CloneFormat(CallFormat):
    """clone: flags and exit signal in one, the pointers the flags use."""
    __slots__ = ()


class Clone3Format(CallFormat):
    """clone3: the struct clone_args."""
    __slots__ = ()


class FcntlFormat(CallFormat):
    """fcntl: the argument (and the result) by command."""
    __slots__ = ()


class FutexFormat(CallFormat):
    """futex: the arguments each operation uses."""
    __slots__ = ()


class PrctlFormat(CallFormat):
    """prctl: the arguments each option uses."""
    __slots__ = ()


class SigreturnFormat(CallFormat):
    """rt_sigreturn: the signal mask it restores."""
    __slots__ = ()


# --- results
class Ret:
    """A result: errors as ``-1 ENOENT (...)``; else a signed number.
    ``exec``: the call replaces the image (its arguments are formatted at
    entry, before they vanish; no return shows 0)."""
    __slots__ = ("exec",)

    def __init__(self, exec: bool = False) -> None:
        self.exec = exec

    def __repr__(self) -> str:
        return type(self).__name__


class RetHex(Ret):
    """An address (mmap, brk)."""
    __slots__ = ()


class RetOctal(Ret):
    """umask's old mask."""
    __slots__ = ()


class RetFcntl(Ret):
    """fcntl's: flags for F_GETFD and F_GETFL."""
    __slots__ = ()


class RetSigreturn(Ret):
    """rt_sigreturn's: the restored RAX."""
    __slots__ = ()


# The kinds handlers use, as names in declarations.
INT = FD = PID = UID = Int()
LONG = OFF = Long()
SIZE = UInt()
PTR = Ptr()
HEX = Hex()
DIRFD = DirFd()
PATH = Path()
MODE = Mode()
FILE_MODE = FileMode()
UMASK = Umask()
ACCESS = AccessMode()
SIG = Signal()
OPEN_FLAGS = OpenFlags()
MMAP_FLAGS = MmapFlags()
SOCK_TYPE = SockType()
PROT = Flags(mman.PROT_FLAGS, "PROT_NONE")
O_FLAGS = Flags(fcntl.O_FLAGS)
AT_FLAGS = Flags(fcntl.AT_FLAGS)
ACCESS_AT_FLAGS = Flags(fcntl.ACCESS_AT_FLAGS)
RENAME_FLAGS = Flags(fcntl.RENAME_FLAGS)
FLOCK_OP = Flags(fcntl.FLOCK_OPS)
MREMAP_FLAGS = Flags(mman.MREMAP_FLAGS)
WAIT_OPTIONS = Flags(misc.WAIT_FLAGS)
TIMER_FLAGS = Flags(misc.TIMER_FLAGS)
GRND_FLAGS = Flags(misc.GRND_FLAGS)
EFD_FLAGS = Flags(epoll.EFD_FLAGS)
EPOLL_CREATE_FLAGS = Flags(epoll.EPOLL_CREATE_FLAGS)
MSG_FLAGS = Flags(socket.MSG_FLAGS)
SEEK_WHENCE = Enum(fcntl.SEEK_NAMES)
FADVICE = Enum(fcntl.POSIX_FADV)
MADVICE = Enum(mman.MADV_NAMES)
SIGPROCMASK_HOW = Enum(signal.SIGPROCMASK_HOW)
IOCTL_CMD = Enum(ioctls.IOCTLS, signed=False)
ARCH_PRCTL_CODE = Enum(misc.ARCH_PRCTL_CODES, signed=False)
RESOURCE = Enum(misc.RLIMITS)
RUSAGE_WHO = Enum(misc.RUSAGE_WHO)
IDTYPE = Enum(misc.IDTYPES)
CLOCKID = Enum(misc.CLOCKS)
EPOLL_CTL_OP = Enum(epoll.EPOLL_CTL_OPS)
FAMILY = Enum(socket.FAMILIES)
SHUT_HOW = Enum(socket.SHUT_HOW)
SOCKOPT_LEVEL = Enum(socket.SOCKOPT_LEVELS)
# mremap's new address: only with MREMAP_FIXED.
MREMAP_NEW_ADDR = If(3, mman.MREMAP_FIXED, PTR)

IN_BUF = InBuf(2)
ARGV = Argv()
ENVP = Envp()
IOVEC = Iovec(2)
IOVEC_OUT = Iovec(2, out=True)
TIMESPEC = Timespec()
TIMESPEC_OUT = Timespec(out=True)
TIMEVAL_OUT = Timespec(out=True, usec=True)
SIGSET = SigSet()
SIGSET_OUT = SigSet(out=True)
SIGACTION = SigAction()
SIGACTION_OUT = SigAction(out=True)
STACK_T = StackT()
STACK_T_OUT = StackT(out=True)
RLIMIT = Rlimit()
RLIMIT_OUT = Rlimit(out=True)
EPOLL_EVENT = EpollEvent()
OUT_BUF = OutBuf()
RANDOM_OUT = OutBuf(hexall=True)
OUT_STR = OutStr()
CWD_OUT = OutStr(nul=True)
STAT = Stat()
REM = TimespecRem()
FD_PAIR = FdPair()
INT_OUT = IntOut()
UTSNAME = Utsname()
WSTATUS = WStatus()
DIRENTS = Dirents()
AFFINITY = Affinity()
EPOLL_EVENTS = EpollEvents()

CLONE_FORMAT = CloneFormat()
CLONE3_FORMAT = Clone3Format()
FCNTL_FORMAT = FcntlFormat()
FUTEX_FORMAT = FutexFormat()
PRCTL_FORMAT = PrctlFormat()
SIGRETURN_FORMAT = SigreturnFormat()

RET = Ret()
RET_HEX = RetHex()
RET_OCTAL = RetOctal()
RET_FCNTL = RetFcntl()
RET_SIGRETURN = RetSigreturn()
RET_EXEC = Ret(exec=True)

# open's mode is shown with O_CREAT or O_TMPFILE (the mask is the one the
# tracer has always used, O_LARGEFILE's bit included).
_WITH_MODE = 0o20100100


def mode_if_creat(flags_arg: int) -> If:
    """The mode argument of open/openat: shown only when the flags in
    ``args[flags_arg]`` create a file."""
    return If(flags_arg, _WITH_MODE, MODE)
