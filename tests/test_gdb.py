"""The GDB stub (minios/gdbstub/), driven by the real gdb in batch mode.

Each test starts ``python3 -m minios run --gdb 127.0.0.1:PORT PROGRAM`` in a
subprocess (PORT: a free one, from binding port 0), waits for its "waiting
for gdb" line, then runs ``gdb -q -batch -nx -ex 'target remote ...' -ex ...
PROGRAM`` (gdb reads the symbols from PROGRAM itself). The program is
userland/src/gdb_target.c, built with -O0 -g; the tests find its lines by
the LINE_* markers in the source.
"""
from __future__ import annotations

import re
import select
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import ENV, HAVE_MUSL, ROOT, USERLAND, binary, minios_cmd

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")

PROG = binary("glibc", "gdb_target")
SRC = USERLAND / "src" / "gdb_target.c"
TIMEOUT = 30


def line_of(marker: str) -> int:
    for i, text in enumerate(SRC.read_text().splitlines(), 1):
        if f"/* {marker} */" in text:
            return i
    raise AssertionError(f"{marker} not in {SRC}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def elf_entry(path: str) -> int:
    with open(path, "rb") as f:
        head = f.read(32)
    return int.from_bytes(head[24:32], "little")


class Minios:
    """``minios run --gdb`` in the background, up to its listening line."""

    def __init__(self, program: str, args=(), opts=()) -> None:
        self.port = free_port()
        self.p = subprocess.Popen(
            minios_cmd("run", "--gdb", f"127.0.0.1:{self.port}", *opts, program, *args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(ENV), cwd=ROOT)
        self.err_head = b""
        deadline = time.time() + TIMEOUT
        while b"waiting for gdb" not in self.err_head:
            left = deadline - time.time()
            if left <= 0 or self.p.poll() is not None:
                self.p.kill()
                raise AssertionError(f"minios did not start its stub: {self.err_head!r}")
            r, _, _ = select.select([self.p.stderr], [], [], left)
            if r:
                line = self.p.stderr.readline()
                if not line:
                    continue
                self.err_head += line

    def wait(self) -> tuple[int, str, str]:
        try:
            out, err = self.p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            pytest.fail(f"minios did not exit: {err!r}")
        return self.p.returncode, out.decode(), (self.err_head + err).decode()


def status(rc: int) -> int:
    return 128 - rc if rc < 0 else rc


def gdb(program: str, commands: list[str], args=(), opts=()) -> tuple[str, int, str, str]:
    """Run gdb against a fresh minios; returns (gdb output, minios status,
    minios stdout, minios stderr)."""
    m = Minios(program, args, opts)
    cmd = ["gdb", "-q", "-batch", "-nx", "-ex", "set confirm off",
           "-ex", f"target remote 127.0.0.1:{m.port}"]
    for c in commands:
        cmd += ["-ex", c]
    try:
        g = subprocess.run(cmd + [program], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        m.p.kill()
        pytest.fail(f"gdb timed out: {e.stdout!r}")
    rc, out, err = m.wait()
    text = g.stdout.decode(errors="replace")
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    return text, status(rc), out, err


@pytest.mark.parametrize("libc", ["glibc", pytest.param(
    "musl", marks=pytest.mark.skipif(not HAVE_MUSL, reason="musl-gcc not installed"))])
def test_break_next_step_print_exit(libc):
    prog = binary(libc, "gdb_target")
    text, st, out, _ = gdb(prog, [
        "info registers rip",           # stopped before the first instruction
        "break main", "continue",
        "next", "next", "step",         # into add()
        "print a + b", "finish",
        "next", "print local", "print total", "print/x counter",
        "continue"])
    entry = elf_entry(prog)
    assert re.search(rf"^rip\s+0x{entry:x}\s+0x{entry:x} <_start", text, re.M), text
    assert re.search(r"Breakpoint 1, main \(argc=1, argv=0x[0-9a-f]+\) at .*gdb_target\.c:\d+",
                     text), text
    assert re.search(rf"^{line_of('LINE_MAIN_FIRST')}\s+int local = 40;", text, re.M), text
    assert re.search(rf"^{line_of('LINE_CALL_ADD')}\s+local = add", text, re.M), text
    assert re.search(rf"add \(a=40, b=2\) at .*gdb_target\.c:{line_of('LINE_ADD_BODY')}",
                     text), text
    assert "$1 = 42" in text
    assert "Value returned is $2 = 42" in text
    assert re.search(rf"^{line_of('LINE_WATCH_HIT')}\s+counter = local;", text, re.M), text
    assert "$3 = 42" in text and "$4 = 100" in text and "$5 = 0x0" in text
    assert "exited with code 07" in text
    assert st == 7 and out == "total=142\n"


def test_watchpoint_on_a_global():
    text, st, out, _ = gdb(PROG, [
        "break main", "continue", "watch counter", "continue",
        "info registers rip", "print total", "continue"])
    assert "Hardware watchpoint 2: counter" in text
    assert re.search(r"Old value = 0\s+New value = 42", text), text
    # the stop is after the writing instruction, as with debug registers:
    # the next line has not run yet
    assert re.search(rf"^{line_of('LINE_AFTER_WATCH')}\s+total \+= counter;", text, re.M), text
    assert "$1 = 100" in text
    assert "exited with code 07" in text
    assert st == 7 and out == "total=142\n"


def test_sigsegv_is_caught_then_kills():
    text, st, out, _ = gdb(PROG, [
        "catch signal SIGSEGV", "continue", "info registers rip", "x/i $pc",
        "print p", "continue"], args=["segv"])
    assert re.search(rf"Catchpoint 1 \(signal SIGSEGV\), crash \(\) at .*gdb_target\.c:"
                     rf"{line_of('LINE_CRASH')}", text), text
    rip = re.search(r"^rip\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+ <crash\+\d+>", text, re.M)
    assert rip, text
    # RIP is the faulting store itself
    assert re.search(rf"=> {rip.group(1)} <crash\+\d+>:\s+movl\s+\$0x1,\(%", text), text
    assert re.search(r"\$1 = \(volatile int \* ?(volatile)?\) 0x10", text), text
    assert "Program terminated with signal SIGSEGV" in text
    assert st == 139 and out == ""


@pytest.mark.parametrize("follow", ["parent", "child"])
def test_fork_follow(follow):
    """A watchpoint set before fork(); breakpoints detach from the process
    gdb does not follow. The child's write lands on a COW page (a new
    frame): the watch must follow it."""
    text, st, out, err = gdb(PROG, [
        "break main", "continue", "watch counter", "break in_child",
        "continue", "continue", "continue", "continue"],
        args=["fork"], opts=[f"--gdb-follow={follow}"])
    assert re.search(r"Old value = 0\s+New value = 42", text), text
    if follow == "parent":
        assert "Breakpoint 3, in_child" not in text, text
        assert re.search(r"Old value = 42\s+New value = 43", text), text
        assert "exited with code 06" in text
    else:
        assert re.search(rf"Breakpoint 3, in_child \(\) at .*:{line_of('LINE_CHILD')}", text), text
        assert re.search(r"Old value = 42\s+New value = 5", text), text
        assert "exited with code 05" in text
        assert "following the child" in err
    assert st == 6
    assert out == "child v=5 counter=5\nparent: child exited 5, counter=43\n"


def test_vdso_symbols_as_on_linux():
    """gdb finds the vDSO as it does natively: through the real PID
    (multiprocess extensions) it reads /proc/PID/task/PID/maps (vFile),
    loads the image's symbols from memory, does not list it as a shared
    library, and stops at a breakpoint inside it; the program still reads
    its clocks in order afterwards."""
    prog = binary("glibc", "vdso_clock")
    text, st, out, err = gdb(prog, [
        "break main", "continue", "info sharedlibrary", "info symbol __vdso_clock_gettime",
        "break __vdso_clock_gettime", "continue", "x/i $pc", "delete", "continue"])
    assert "No shared libraries loaded at this time." in text, text
    assert re.search(r"clock_gettime in section \.text of system-supplied DSO at 0x7f", text), text
    assert re.search(r"Breakpoint 2, 0x0*7f[0-9a-f]+ in clock_gettime \(\)", text), text
    assert re.search(r"<clock_gettime>:\s+cmp\s+\$0xf,%edi", text), text
    assert st == 0 and "MONOTONIC went back: 0 times" in out, (st, out)


def test_signals_use_gdb_numbers():
    """SIGUSR1 is 10 on Linux but 30 on the wire: gdb must name the
    signals right, pass them on to the handlers, and ``signal SIGUSR1``
    must deliver SIGUSR1 (default action: the shell sees 138)."""
    prog = binary("glibc", "sighandler")
    native = subprocess.run([prog], stdout=subprocess.PIPE, timeout=TIMEOUT).stdout.decode()
    text, st, out, _ = gdb(prog, ["continue"] * 8)
    assert text.count("Program received signal SIGUSR1, User defined signal 1.") >= 2, text
    assert "Program received signal SIGUSR2" in text
    assert "exited normally" in text
    assert st == 0 and out == native

    text, st, out, _ = gdb(PROG, ["break main", "continue", "signal SIGUSR1"])
    assert "Program terminated with signal SIGUSR1" in text
    assert st == 138 and out == ""


def test_catch_syscall_write():
    """``catch syscall write``: the stop comes before the call is made (RIP
    on the syscall instruction, RAX the number), so a count gdb changes
    there is the one the call uses; the next stop is its return."""
    text, st, out, _ = gdb(PROG, [
        "catch syscall write", "continue", "x/i $pc", "print $rax", "print $rdx",
        "set $rdx = 5", "continue", "print $rax", "delete", "continue"])
    assert "Catchpoint 1 (syscall 'write' [1])" in text, text
    assert re.search(r"Catchpoint 1 \(call to syscall write\), 0x[0-9a-f]+ in .*write", text), text
    assert re.search(r"=> 0x[0-9a-f]+ <[^>]*write[^>]*>:\s+syscall", text), text
    assert "$1 = 1" in text and "$2 = 10" in text, text
    assert "Catchpoint 1 (returned from syscall write)" in text, text
    assert "$3 = 5" in text, text                   # the call wrote the 5 bytes gdb asked
    assert "exited with code 07" in text
    assert st == 7 and out == "total=142\n"       # libc wrote the rest itself


def test_catch_any_syscall():
    """``catch syscall`` with no names stops at every call's entry and
    return."""
    text, st, out, _ = gdb(PROG, ["catch syscall", "continue", "continue", "continue",
                                  "delete", "continue"])
    assert "Catchpoint 1 (any syscall)" in text, text
    calls = re.findall(r"Catchpoint 1 \((call to|returned from) syscall (\w+)\)", text)
    assert calls[0][0] == "call to" and calls[1] == ("returned from", calls[0][1]), text
    assert calls[2][0] == "call to" and len(calls) == 3, text
    assert st == 7 and out == "total=142\n"


def test_catch_a_blocking_call_and_exit_group():
    """A call that blocks stops on its return when it wakes; exit_group
    stops at its entry only."""
    prog = binary("glibc", "fileio")                # nanosleep blocks for 1 ms
    text, st, out, err = gdb(prog, [
        "catch syscall nanosleep clock_nanosleep exit_group", "continue", "continue",
        "print $rax", "continue", "continue"], opts=["--trace=syscall"])
    calls = re.findall(r"Catchpoint 1 \((call to|returned from) syscall (\w+)\)", text)
    sleep = calls[0][1]
    assert sleep in ("nanosleep", "clock_nanosleep"), text
    assert calls == [("call to", sleep), ("returned from", sleep),
                     ("call to", "exit_group")], text
    assert "$1 = 0" in text and "exited normally" in text, text
    assert re.search(r"nanosleep\(.*<unfinished \.\.\.>", err), err    # it did block
    assert st == 0 and "nanosleep 0, slept" in out


def test_catch_kill_returns_before_the_signal():
    """kill(getpid(), SIGUSR1): the call's return is reported, then the
    signal it sent, as on Linux."""
    prog = binary("glibc", "sighandler")
    text, st, _, _ = gdb(prog, ["catch syscall kill", "continue", "continue", "continue",
                                "delete", "continue", "continue", "continue", "continue",
                                "continue", "continue"])
    events = re.findall(r"Catchpoint 1 \((call to|returned from) syscall kill\)|"
                        r"Program received signal (SIGUSR1)", text)
    assert [e[0] or e[1] for e in events[:3]] == ["call to", "returned from", "SIGUSR1"], text
    assert "exited normally" in text and st == 0, text


# ----------------------------------------------------------- raw protocol
class Remote:
    """A bare protocol client, for what gdb itself would never send."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, payload: bytes) -> None:
        self.s.sendall(b"$" + payload + b"#%02x" % (sum(payload) & 0xFF))

    def recv(self) -> bytes:
        while True:
            i = self.buf.find(b"$")
            j = self.buf.find(b"#", i)
            if i >= 0 and j >= 0 and len(self.buf) >= j + 3:
                p, self.buf = self.buf[i + 1:j], self.buf[j + 3:]
                self.s.sendall(b"+")
                return p
            data = self.s.recv(65536)
            assert data, "the stub closed the connection"
            self.buf += data

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.recv()


def test_bad_packets_then_detach():
    m = Minios(PROG)
    r = Remote(m.port)
    try:
        sup = r.ask(b"qSupported:swbreak+")
        assert sup.startswith(b"PacketSize=") and b"QCatchSyscalls+" in sup.split(b";")
        assert r.ask(b"?").startswith(b"T05")
        for bad in (b"m0,10", b"mffffffffffffffff,4", b"M0,1:00", b"Z0,0,1", b"X10,1:a"):
            assert r.ask(bad) == b"E0e", bad             # unmapped: E14
        for bad in (b"mzz,1", b"m401000", b"M401000,2:0", b"Pzz=1", b"p999", b"Z2,0,0",
                    b"Hg99", b"Tzz", b"vCont;x", b"Czz", b"QPassSignals:zz", b"G0",
                    b"qXfer:features:read:target.xml:zz", b"qThreadExtraInfo,zz",
                    b"QCatchSyscalls:2", b"QCatchSyscalls:1;zz"):
            assert r.ask(bad).startswith(b"E"), bad
        for unknown in (b"", b"vFile:unlink:2f", b"qBogus", b"!", b"Z9,0,1", b"qXfer:x"):
            assert r.ask(unknown) == b"", unknown
        # Host I/O on the guest's files, read-only, errors as gdb's errnos
        hexpath = b"/proc/self/maps".hex().encode()
        assert r.ask(b"vFile:setfs:0") == b"F0"
        assert r.ask(b"vFile:open:" + b"/nonexistent".hex().encode() + b",0,0") == b"F-1,2"
        assert r.ask(b"vFile:open:" + hexpath + b",1,1a4") == b"F-1,1e"      # EROFS
        assert r.ask(b"vFile:open:zz,0,0") == b"F-1,16"                      # EINVAL
        assert r.ask(b"vFile:pread:63,10,0") == b"F-1,9"                     # EBADF
        fd = r.ask(b"vFile:open:" + hexpath + b",0,0")
        assert fd.startswith(b"F") and not fd.startswith(b"F-")
        maps = r.ask(b"vFile:pread:" + fd[1:] + b",1000,0")
        assert b"[vdso]" in maps and b"[stack]" in maps, maps
        assert r.ask(b"vFile:close:" + fd[1:]) == b"F0"
        assert r.ask(b"vFile:close:" + fd[1:]) == b"F-1,9"
        r.s.sendall(b"$g#00")                            # bad checksum: nak
        assert r.s.recv(1) == b"-"
        # a partly readable range gives what can be read
        stack = int.from_bytes(bytes.fromhex(r.ask(b"p7").decode()), "little")
        top = (stack | 0xFFF) + 1
        assert len(bytes.fromhex(r.ask(b"m%x,100" % (top - 16)).decode())) == 16
        # X carries escaped binary: } # $ * are sent as 0x7d, byte ^ 0x20
        data = bytes([0x7D, 0x23, 0x24, 0x2A, 0x00])
        esc = b"".join(bytes([0x7D, c ^ 0x20]) if c in b"}#$*" else bytes([c]) for c in data)
        assert r.ask(b"X%x,%x:" % (stack - 64, len(data)) + esc) == b"OK"
        assert r.ask(b"m%x,%x" % (stack - 64, len(data))) == data.hex().encode()
        assert r.ask(b"D") == b"OK"
    finally:
        r.s.close()
    rc, out, err = m.wait()
    assert status(rc) == 7 and out == "total=142\n"
    assert "Traceback" not in err and "internal error" not in err, err


def test_single_steps_match_the_cpu_trace():
    """``s`` one instruction at a time from the entry point gives the same
    addresses as a Unicorn code hook on an undebugged run (which sees a
    faulting instruction twice: before and after the fault is resolved)."""
    n = 600
    # The reference runs in a subprocess too, with the environment the
    # command line gives the guest (Python may add LC_CTYPE to its own).
    code = (
        "import os, sys\n"
        "from unicorn import UC_HOOK_CODE\n"
        "from minios import cli\n"
        "from minios.machine import Machine\n"
        "env = getattr(cli, 'guest_environ', lambda: os.environ)()\n"
        "m = Machine(mem=256 << 20)\n"
        "ref = []\n"
        f"m.kernel.cpu.uc.hook_add(UC_HOOK_CODE, lambda uc, a, s, d: "
        f"ref.append(a) if len(ref) < {3 * n} else None)\n"
        "fd = os.open(os.devnull, os.O_WRONLY)\n"
        f"st = m.run({PROG!r}, [], env=env, stdio=(0, fd, 2))\n"
        "print(st, *ref)\n")
    p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, env=dict(ENV),
                       cwd=ROOT, timeout=TIMEOUT, check=True)
    st, *trace = map(int, p.stdout.split())
    assert st == 7
    ref = [a for i, a in enumerate(trace) if i == 0 or trace[i - 1] != a]

    m = Minios(PROG)
    r = Remote(m.port)
    got = []
    try:
        r.ask(b"qSupported")
        stop = r.ask(b"?")
        for _ in range(n):
            rip = re.search(rb"10:([0-9a-f]{16});", stop).group(1)
            got.append(int.from_bytes(bytes.fromhex(rip.decode()), "little"))
            stop = r.ask(b"s")
            assert stop.startswith(b"T05"), stop
        r.ask(b"D")
    finally:
        r.s.close()
    assert status(m.wait()[0]) == 7
    assert got == ref[:n]


def test_interrupt_a_loop_without_syscalls():
    """^C reaches a guest spinning in user code (no syscalls, no slices)."""
    m = Minios(binary("glibc", "compute"), args=["4000000000"])
    r = Remote(m.port)
    try:
        r.ask(b"qSupported")
        r.ask(b"?")
        r.send(b"c")
        time.sleep(0.3)
        r.s.sendall(b"\x03")
        assert r.recv().startswith(b"T02")
        r.send(b"k")
    finally:
        r.s.close()
    assert status(m.wait()[0]) == 137


def test_bad_gdb_address():
    p = subprocess.run(minios_cmd("run", "--gdb", "localhost:notaport", PROG),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(ENV),
                       cwd=ROOT, timeout=TIMEOUT)
    assert p.returncode == 2
    assert b"--gdb localhost:notaport" in p.stderr and b"Traceback" not in p.stderr
