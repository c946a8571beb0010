"""The packets, by their first letter: what each asks and what it answers.

``?``, ``g G p P`` (registers), ``m M X`` (memory), ``c C s S`` and
``vCont`` (resume), ``Z``/``z`` (breakpoints, watchpoints), ``H``/``T`` and
the thread queries, ``q``/``Q`` queries and settings (``qSupported``,
``qXfer`` features/auxv/exec-file, ``QPassSignals``, ``QCatchSyscalls``,
``QStartNoAckMode``), ``v`` packets (``vFile``, ``vKill``), ``k`` and
``D``. An unknown packet gets an empty reply; a bad one ``E01`` (``E0e``
for an unmapped address).

Thread ids: with multiprocess extensions (gdb asks for them) they are
``pPID.TID`` with the first process's PID throughout, a followed child's
threads appearing as new threads of it; otherwise the bare TID.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from minios.gdbstub import regs
from minios.gdbstub.breakpoints import parse_z
from minios.gdbstub.packets import (EFAULT_REPLY, PACKET_SIZE, GdbError, Gone, escape,
                                    gdb_signal, host_signal, unescape)
from minios.proc.task import DEAD, ZOMBIE

if TYPE_CHECKING:
    from minios.gdbstub.stub import GdbStub, Stop
    from minios.proc.task import Task


@dataclass
class Resume:
    """dispatch's answer to a packet that resumes the guest."""
    sig: int                    # the signal to resume with (0: none)


def serve(stub: "GdbStub") -> int:
    """Answer packets until gdb resumes the guest; returns the signal to
    resume with. A bad packet gets an error reply, never an exception
    (but Gone: the connection is lost)."""
    conn = stub.conn
    while stub.active:
        pkt = conn.get()
        try:
            res = dispatch(stub, pkt)
        except GdbError as e:
            conn.send(e.reply)
            continue
        except Gone:
            raise
        except (ValueError, IndexError, KeyError, struct.error):
            conn.send("E01")                # a malformed packet
            continue
        except Exception as e:
            stub.internal(e)
            conn.send("E01")
            continue
        if isinstance(res, Resume):
            return res.sig
        if res is not None:
            conn.send(res)
    return 0


def dispatch(stub: "GdbStub", pkt: bytes):
    """The reply to one packet: a str or bytes to send, None when the
    handler sent it itself, or a Resume."""
    if not pkt:
        return ""
    c = chr(pkt[0])
    body = pkt[1:]
    if c == "?":
        return stop_reply(stub, stub.last_stop) if stub.last_stop else "S05"
    if c == "g":
        return regs.all_regs(stub.k, reg_thread(stub))
    if c == "G":
        regs.write_all_regs(stub.k, reg_thread(stub), body)
        return "OK"
    if c == "p":
        i = int(body, 16)
        if i >= len(regs.REGS):
            raise GdbError()
        return regs.reg_hex(stub.k, reg_thread(stub), i)
    if c == "P":
        n, _, v = body.partition(b"=")
        i = int(n, 16)
        if i >= len(regs.REGS):
            raise GdbError()
        regs.set_reg(stub.k, reg_thread(stub), i,
                     int.from_bytes(bytes.fromhex(v.decode()), "little"))
        return "OK"
    if c == "m":
        a, _, n = body.partition(b",")
        addr, n = int(a, 16), min(int(n, 16), PACKET_SIZE // 2 - 16)
        data = stub.read(stub.need_mm(), addr, n) if n else b""
        if n and not data:
            raise GdbError(EFAULT_REPLY)
        return data.hex()
    if c in "MX":
        head, _, data = body.partition(b":")
        a, _, n = head.partition(b",")
        addr, n = int(a, 16), int(n, 16)
        raw = bytes.fromhex(data.decode()) if c == "M" else unescape(data)
        if len(raw) != n:
            raise GdbError()
        if n:
            stub.breaks.write(stub.need_mm(), addr, raw)
        return "OK"
    if c in "cCsS":
        return _resume_simple(stub, c, body)
    if c in "Zz":
        return _breakpoint_packet(stub, c == "Z", body)
    if c == "H":
        return _set_thread(stub, body)
    if c == "T":
        return "OK" if thread_by_id(stub, body) is not None else "E01"
    if c == "k":
        stub.kill()
        raise Gone
    if c == "D":
        stub.conn.send("OK")
        stub.say("gdb detached")
        stub.close()
        return Resume(0)
    if c == "v":
        return _v_packet(stub, body)
    if c == "q":
        return _query(stub, body)
    if c == "Q":
        return _set_packet(stub, body)
    return ""


# ---------------------------------------------------------------- replies
def stop_reply(stub: "GdbStub", stop: "Stop") -> str:
    """``T``: GDB's signal, rbp/rsp/rip, the thread and the reason."""
    t = stop.task
    rs = "".join(f"{regs.REGNUM[n]:02x}:{regs.reg_hex(stub.k, t, regs.REGNUM[n])};"
                 for n in ("rbp", "rsp", "rip"))
    return f"T{gdb_signal(stop.sig):02x}{rs}thread:{tid(stub, t)};{stop.reason}"


def exit_reply(stub: "GdbStub", status: int) -> str:
    """``W`` (exit code) or ``X`` (killed by a signal) for a wait status."""
    pid = f";process:{stub.wire_pid:x}" if stub.multiprocess and stub.wire_pid else ""
    if status & 0x7F:
        return f"X{gdb_signal(status & 0x7F):02x}{pid}"
    return f"W{(status >> 8) & 0xFF:02x}{pid}"


# ---------------------------------------------------------------- threads
def tid(stub: "GdbStub", t: "Task") -> str:
    """A thread id on the wire: ``pPID.TID`` once gdb and the stub agreed
    on multiprocess extensions, else the bare TID."""
    return f"p{stub.wire_pid:x}.{t.tid:x}" if stub.multiprocess else f"{t.tid:x}"


def reg_thread(stub: "GdbStub") -> "Task":
    """The thread whose registers g/G/p/P mean (Hg; else the current one)."""
    t = stub.gthread
    if t is None or t.group is not stub.group or t.state in (DEAD, ZOMBIE):
        t = stub.task
    if t is None:
        raise GdbError()
    return t


def thread_by_id(stub: "GdbStub", tid: bytes) -> "Task | None":
    if tid.startswith(b"p"):                     # pPID.TID, pPID.-1, pPID
        pid, _, tid = tid[1:].partition(b".")
        try:
            if stub.group is None or int(pid, 16) not in (-1, stub.wire_pid):
                return None
        except ValueError:
            return None
        tid = tid or b"-1"
    try:
        n = int(tid, 16)
    except ValueError:
        return None
    if stub.group is None:
        return None
    if n in (0, -1):
        return stub.task
    for th in stub.group.threads:
        if th.tid == n:
            return th
    return None


def _set_thread(stub: "GdbStub", body: bytes) -> str:
    op, tid = chr(body[0]) if body else "g", body[1:]
    if tid in (b"-1", b"0", b""):
        if op == "g":
            stub.gthread = stub.task
        return "OK"
    th = thread_by_id(stub, tid)
    if th is None:
        return "E01"
    if op == "g":
        stub.gthread = th
    return "OK"


# ----------------------------------------------------------------- resume
def _resume_simple(stub: "GdbStub", c: str, body: bytes) -> Resume:
    sig = 0
    if c in "CS":
        s, _, addr = body.partition(b";")
        sig = host_signal(int(s, 16))
    else:
        addr = body
    if addr and stub.task is not None:
        regs.set_reg(stub.k, stub.task, regs.REGNUM["rip"], int(addr, 16))
    return _resume(stub, c.lower() == "s", sig)


def _resume(stub: "GdbStub", step: bool, sig: int) -> Resume:
    stub.stepping = step
    return Resume(sig)


def _v_packet(stub: "GdbStub", body: bytes):
    if body == b"Cont?":
        return "vCont;c;C;s;S"
    if body.startswith(b"Cont;"):
        # The first action that applies to a thread of ours wins (all
        # other threads simply run: this is all-stop with one CPU).
        chosen = b"c"
        for act in body[5:].split(b";"):
            a, _, tid = act.partition(b":")
            if not a:
                continue
            if tid and tid not in (b"-1", b"0"):
                th = thread_by_id(stub, tid)
                if th is None:
                    continue
                stub.task = th
            chosen = a
            break
        kind = chr(chosen[0])
        if kind not in "cCsS":
            raise GdbError()
        sig = host_signal(int(chosen[1:3], 16)) if kind in "CS" else 0
        return _resume(stub, kind in "sS", sig)
    if body.startswith(b"Kill"):
        stub.kill()
        stub.conn.send("OK")
        raise Gone
    if body == b"MustReplyEmpty":
        return ""
    if body.startswith(b"File:"):
        return stub.vfiles.packet(stub.task, body[5:])
    return ""


# ------------------------------------------------------------ breakpoints
def _breakpoint_packet(stub: "GdbStub", insert: bool, body: bytes) -> str:
    kind, addr, length = parse_z(body)
    if kind in (0, 1):                          # Z1 is served as Z0
        if insert:
            stub.breaks.insert(stub.need_mm(), addr)
        else:
            stub.breaks.remove(addr)
        return "OK"
    if kind in (2, 3, 4):
        stub.watch.packet(insert, kind, addr, length)
        return "OK"
    return ""


# ---------------------------------------------------------------- queries
def _query(stub: "GdbStub", body: bytes):
    if body.startswith(b"Supported"):
        # Multiprocess extensions tell gdb the real PID, which it needs
        # to read /proc/PID/task/PID/maps and load the vDSO's symbols.
        stub.multiprocess = b"multiprocess+" in body.split(b":", 1)[-1].split(b";")
        return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;qXfer:auxv:read+;"
                "qXfer:exec-file:read+;swbreak+;QPassSignals+;QCatchSyscalls+;"
                "QStartNoAckMode+;vContSupported+"
                + (";multiprocess+" if stub.multiprocess else ""))
    if body.startswith(b"Xfer:"):
        return _xfer(stub, body[5:])
    if body == b"Attached" or body.startswith(b"Attached:"):
        return "0"
    if body == b"C":
        return f"QC{tid(stub, stub.task)}" if stub.task is not None else ""
    if body == b"fThreadInfo":
        if stub.group is None or not stub.group.threads:
            return "l"
        return "m" + ",".join(tid(stub, th) for th in stub.group.threads)
    if body == b"sThreadInfo":
        return "l"
    if body.startswith(b"ThreadExtraInfo,"):
        th = thread_by_id(stub, body.split(b",")[1])
        if th is None:
            raise GdbError()
        return f"{th.group.comm or 'minios'} pid {th.pid}".encode().hex()
    if body.startswith(b"Symbol"):
        return "OK"
    return ""


def _xfer(stub: "GdbStub", body: bytes):
    parts = body.split(b":")
    if len(parts) != 4 or parts[1] != b"read":
        return ""
    obj, annex, span = parts[0], parts[2], parts[3]
    off, _, length = span.partition(b",")
    off, length = int(off, 16), int(length, 16)
    if obj == b"features":
        if annex != b"target.xml":
            raise GdbError("E00")
        data = regs.TARGET_XML
    elif obj == b"auxv":
        data = _auxv_bytes(stub)
    elif obj == b"exec-file":
        mm = stub.mm
        data = (mm.exe if mm is not None and mm.exe else "").encode()
    else:
        return ""
    chunk = data[off:off + min(length, PACKET_SIZE // 2)]
    more = off + len(chunk) < len(data)
    return (b"m" if more else b"l") + escape(chunk)


def _auxv_bytes(stub: "GdbStub") -> bytes:
    """The auxiliary vector on the initial stack (argc, argv, envp, then
    the pairs), read without faulting anything in; kept once read."""
    if stub.auxv is not None:
        return stub.auxv
    mm = stub.need_mm()
    sp = mm.start_stack
    rd = lambda a: struct.unpack("<Q", stub.mem.read(mm, a, 8).ljust(8, b"\0"))[0]
    argc = rd(sp)
    p = sp + 8 + 8 * (argc + 1)
    for _ in range(1 << 16):
        if rd(p) == 0:
            break
        p += 8
    p += 8
    out = bytearray()
    for _ in range(64):
        a, v = rd(p), rd(p + 8)
        out += struct.pack("<QQ", a, v)
        p += 16
        if a == 0:
            break
    stub.auxv = bytes(out)
    return stub.auxv


def _set_packet(stub: "GdbStub", body: bytes):
    if body.startswith(b"PassSignals:"):
        sigs = set()
        for s in body[12:].split(b";"):
            if s:
                sigs.add(host_signal(int(s, 16)))
        stub.pass_signals = sigs
        return "OK"
    if body.startswith(b"ProgramSignals:"):
        return "OK"
    if body.startswith(b"CatchSyscalls:"):
        stub.catch_syscalls(*parse_catch_syscalls(body[14:]))
        return "OK"
    if body == b"StartNoAckMode":
        stub.conn.send("OK")
        stub.conn.noack = True
        return None
    return ""


def parse_catch_syscalls(arg: bytes) -> tuple[bool, frozenset[int] | None]:
    """``QCatchSyscalls:`` ARG -> (catch, the syscall numbers or None for
    every call): ``0`` catches none, ``1`` every call, ``1;NR;NR...``
    those (hex). ValueError if malformed (the reply is then ``E01``)."""
    head, sep, rest = arg.partition(b";")
    if head == b"0" and not sep:
        return False, None
    if head != b"1":
        raise ValueError(f"bad QCatchSyscalls {arg!r}")
    if not sep:
        return True, None
    nrs = rest.split(b";")
    if not all(n and not n.strip(b"0123456789abcdefABCDEF") for n in nrs):
        raise ValueError(f"bad QCatchSyscalls {arg!r}")
    return True, frozenset(int(n, 16) for n in nrs)
