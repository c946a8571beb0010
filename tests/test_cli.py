"""The ``python3 -m minios`` command line: run, --trace, --help, options."""
from __future__ import annotations

import re
import subprocess

import pytest

from conftest import HAVE_MUSL, ENV, ROOT, TIMEOUT, binary, minios_cmd, native, under_minios

HELLO = binary("glibc", "hello")


def run_cli(*argv: str) -> tuple[int, str, str]:
    p = subprocess.run(minios_cmd(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, env=dict(ENV), cwd=ROOT, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_trace_hello():
    st, out, err = under_minios(HELLO, [], ["--trace"])
    assert st == 0 and out == b"hello, world\n"
    lines = err.decode().splitlines()
    assert any(re.fullmatch(r"\[pid 1\] write\(1, .+, 13\) = 13", ln) for ln in lines), err
    assert "[pid 1] exit_group(0) = ?" in lines
    assert any(ln.startswith("[pid 1] brk(") for ln in lines)
    assert "Traceback" not in err.decode()


@pytest.mark.skipif(not HAVE_MUSL, reason="musl-gcc not installed")
def test_trace_musl_hello_uses_writev():
    st, out, err = under_minios(binary("musl", "hello"), [], ["--trace=syscall"])
    assert st == 0 and out == b"hello, world\n"
    assert re.search(rb"^\[pid 1\] writev\(1, .+, 2\) = 13$", err, re.M), err


def test_trace_unknown_syscall():
    st, out, err = under_minios(binary("glibc", "bad_syscall"), [], ["--trace"])
    assert st == 0
    assert out == native(binary("glibc", "bad_syscall"))[1]
    nimpl = [ln for ln in err.decode().splitlines() if "(not implemented)" in ln]
    assert len(nimpl) == 2, err
    assert nimpl[0].startswith("[pid 1] syscall_9999(")
    assert all(ln.endswith("= -1 ENOSYS (not implemented)") for ln in nimpl)


def test_trace_syscall_only_has_no_faults():
    st, _, err = under_minios(HELLO, [], ["--trace=syscall"])
    assert st == 0
    assert b"write(1," in err and b"page fault" not in err


def test_trace_faults():
    st, _, err = under_minios(HELLO, [], ["--trace=fault"])
    assert st == 0
    assert re.search(rb"^\[pid 1\] page fault at 0x[0-9a-f]+ ip 0x[0-9a-f]+ \(user fetch, "
                     rb"not-present\) -> file page$", err, re.M), err
    assert b"write(1," not in err


def test_trace_fork_reports_shared_tables():
    st, _, err = under_minios(binary("glibc", "fork_basic"), [], ["--trace", "--cow-pte=always"])
    assert st == 0
    # everything is shared but the PTE table under the forking thread's stack
    assert re.search(rb"^\[pid 1\] fork: [1-9]\d* tables shared, 1 copied", err, re.M), err
    st, _, err = under_minios(binary("glibc", "fork_basic"), [], ["--trace", "--cow-pte=never"])
    assert st == 0
    assert re.search(rb"^\[pid 1\] fork: 0 tables shared, [1-9]\d* copied", err, re.M), err


def test_trace_file(tmp_path):
    log = tmp_path / "trace.log"
    st, out, err = under_minios(HELLO, [], ["--trace", f"--trace-file={log}"])
    assert st == 0 and out == b"hello, world\n" and err == b""
    assert re.search(r"^\[pid 1\] write\(1, .+, 13\) = 13$", log.read_text(), re.M)


def test_no_trace_no_stderr():
    st, out, err = under_minios(HELLO, [])
    assert (st, out, err) == (0, b"hello, world\n", b"")


def test_program_options_are_not_minios_options():
    """Everything after the program name goes to the program."""
    args = ["--trace", "--mem", "1G", "--help", "-x"]
    n = native(binary("glibc", "echo_args"), args)
    m = under_minios(binary("glibc", "echo_args"), args, ["--mem=256M"])
    assert m[:2] == n[:2]
    assert m[2] == b""


def test_mem_option():
    for mem in ("64M", "256M", "1G", "1g", "512MiB"):
        st, out, err = under_minios(HELLO, [], ["--mem", mem])
        assert (st, out) == (0, b"hello, world\n"), (mem, err)


def test_bad_mem_option():
    st, out, err = run_cli("run", "--mem", "1M", HELLO)
    assert st == 2 and out == "" and "Traceback" not in err
    assert "at least 64M" in err
    st, out, err = run_cli("run", "--mem", "lots", HELLO)
    assert st == 2 and out == "" and "Traceback" not in err


def test_run_help():
    st, out, err = run_cli("run", "--help")
    assert st == 0 and err == ""
    assert out.startswith("usage: minios run")
    for opt in ("--mem", "--trace", "--cow-pte", "--check", "program"):
        assert opt in out


def test_trace_help_says_what_bare_trace_means():
    """Bare --trace is every category but sched; the help must not say "all"."""
    st, out, err = run_cli("run", "--help")
    text = " ".join(out.split())
    assert "(default all)" not in text
    assert "bare --trace: all but sched" in text
    # ... which is what it does: no [sched] lines, syscall lines present.
    st, _, err = under_minios(binary("glibc", "fork_basic"), [], ["--trace"])
    assert st == 0 and "[sched]" not in err.decode() and "] exit_group(" in err.decode()
    st, _, err = under_minios(binary("glibc", "fork_basic"), [], ["--trace=all"])
    assert st == 0 and "[sched]" in err.decode()


def test_top_level_help():
    st, out, err = run_cli("--help")
    assert st == 0
    assert "run" in out and "demo" in out


def test_no_command():
    st, out, err = run_cli()
    assert st == 2 and "usage: minios" in err and "Traceback" not in err


def test_bad_cow_pte_choice():
    st, _, err = run_cli("run", "--cow-pte=sometimes", HELLO)
    assert st == 2 and "invalid choice" in err and "Traceback" not in err


def test_exit_status_propagates():
    for code in ("0", "1", "42", "255"):
        assert under_minios(binary("glibc", "exitcode"), [code])[0] == int(code)
