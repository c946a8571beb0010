"""The syscall table: one declaration per call (``minios/syscalls/table.py``).

Each registered call must be declared in full (argument kinds, result kind,
a whole-call format where it has one), its handler must name exactly the
declared arguments, and the tracer must format every call whatever its
registers and result hold.
"""
from __future__ import annotations

import inspect
import random
from types import SimpleNamespace

import pytest

from minios.kernel import Kernel
from minios.mm.mm_types import MM
from minios.proc.task import BLOCK, NORETURN
from minios.syscalls import kinds as K
from minios.syscalls.all import SYSCALLS, lookup
from minios.trace.syscall import (CALL_FORMATS, FORMATTERS, Call, format_resumed,
                                  format_syscall)

DECLS = sorted(SYSCALLS.values(), key=lambda d: d.nr)


def _named(fn) -> tuple[list[str], bool]:
    """A handler's argument names after (kernel, task), and whether it takes *args."""
    ps = list(inspect.signature(fn).parameters.values())[2:]
    named = [p.name for p in ps if p.kind == p.POSITIONAL_OR_KEYWORD]
    return named, any(p.kind == p.VAR_POSITIONAL for p in ps)


def test_the_table_is_keyed_by_number_and_name():
    assert len(DECLS) > 150
    assert len({d.name for d in DECLS}) == len(DECLS)
    for d in DECLS:
        assert SYSCALLS[d.nr] is d and lookup(d.nr) is d and lookup(d.name) is d
        assert lookup(str(d.nr)) is d
        assert d[0] is d.fn and d[1] == d.name              # what dispatch reads
    assert lookup("execve").nr == 59 and lookup("no_such_call") is None
    assert lookup(100000) is None and lookup("100000") is None


@pytest.mark.parametrize("decl", DECLS, ids=lambda d: d.name)
def test_handler_arity_matches_declaration(decl):
    """The handler names each declared argument, no more; one without
    ``*_`` takes all six registers the dispatcher passes."""
    named, varargs = _named(decl.fn)
    assert len(named) == len(decl.args), (decl.name, named, decl.args)
    assert varargs or len(named) == 6, (decl.name, named)
    assert len(decl.args) <= 6


@pytest.mark.parametrize("decl", DECLS, ids=lambda d: d.name)
def test_declaration_is_complete(decl):
    """Every argument has a kind the tracer formats; the result kind and a
    whole-call format, if any, are ones it knows."""
    for kind in decl.args:
        assert isinstance(kind, K.Kind), (decl.name, kind)
        if isinstance(kind, K.If):
            assert 0 <= kind.arg < len(decl.args)
            kind = kind.kind
        assert type(kind) in FORMATTERS, (decl.name, kind)
        for attr in ("len", "cnt"):                        # sized by another argument
            ref = getattr(kind, attr, None)
            if ref is not None:
                assert 0 <= ref < len(decl.args) and ref != decl.args.index(kind)
    assert isinstance(decl.ret, K.Ret)
    if decl.format is not None:
        assert type(decl.format) in CALL_FORMATS, decl.name


@pytest.fixture(scope="module")
def kernel():
    return Kernel(mem=64 << 20)


def _task(k, nr: int, args) -> SimpleNamespace:
    """Just what the tracer reads of a task: an empty address space, so
    every pointer is unreadable."""
    return SimpleNamespace(tid=1, mm=MM(k), syscall_nr=nr, syscall_args=tuple(args),
                           blocked=0)


RESULTS = (0, 1, 4096, -2, -4, (1 << 63) + 5, BLOCK, NORETURN)


@pytest.mark.parametrize("decl", DECLS, ids=lambda d: d.name)
def test_every_call_formats(kernel, decl):
    """Zero, small, pointer-like and garbage registers, with every kind of
    result: a line, never an exception."""
    rng = random.Random(decl.nr)
    regs = [(0,) * 6, (1,) * 6, (0x7FFF_FFFF_F000,) * 6, (0xFFFF_FFFF_FFFF_FF9C,) * 6]
    regs += [tuple(rng.getrandbits(64) for _ in range(6)) for _ in range(4)]
    for args in regs:
        for r in RESULTS:
            t = _task(kernel, decl.nr, args)
            c = Call(kernel, t, decl, args, r)
            for i, kind in enumerate(decl.args):           # no fallback to hex: must not raise
                kind = kind.kind if isinstance(kind, K.If) else kind
                assert isinstance(FORMATTERS[type(kind)](c, args[i], kind), str)
            if decl.format is not None:
                assert all(isinstance(x, str) for x in CALL_FORMATS[type(decl.format)](c))
            line = format_syscall(kernel, t, decl.nr, r)
            assert line.startswith(f"[pid 1] {decl.name}("), line
            if r is BLOCK:
                assert line.endswith("<unfinished ...>")
                assert format_resumed(kernel, t, 0).startswith(f"[pid 1] <... {decl.name} resumed>")
            else:
                assert " = " in line


@pytest.mark.parametrize("decl", [d for d in DECLS if d.format is None], ids=lambda d: d.name)
def test_argument_count_as_declared(kernel, decl):
    """With zero registers each declared argument is shown once (an
    argument shown only with a flag, like open's mode, is left out)."""
    from minios.trace.parse import split_args
    t = _task(kernel, decl.nr, (0,) * 6)
    line = format_syscall(kernel, t, decl.nr, 0)
    shown = split_args(line[line.index("(") + 1:line.rindex(") = ")])
    expect = len([a for a in decl.args if not isinstance(a, K.If)])
    assert len(shown) == expect, line


def test_former_misdecoded_calls(kernel):
    """Calls the old fallback traced with 3 arguments show all of theirs."""
    t = _task(kernel, 53, (1, 1 | 0o2000000, 0, 0, 0, 0))
    assert format_syscall(kernel, t, 53, -14) == \
        "[pid 1] socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, NULL) = -1 EFAULT (Bad address)"
    t = _task(kernel, 44, (3, 0, 5, 0x4000, 0, 0))
    assert format_syscall(kernel, t, 44, 5) == \
        "[pid 1] sendto(3, NULL, 5, MSG_NOSIGNAL, NULL, 0) = 5"
    t = _task(kernel, 265, (0xFFFF_FFFF_FFFF_FF9C, 0, 0xFFFF_FFFF_FFFF_FF9C, 0, 0x400, 0))
    assert format_syscall(kernel, t, 265, 0) == \
        "[pid 1] linkat(AT_FDCWD, NULL, AT_FDCWD, NULL, AT_SYMLINK_FOLLOW) = 0"


def test_unknown_number_shows_six_registers(kernel):
    t = _task(kernel, 999, (1, 2, 3, 0x10000, 5, 6))
    assert format_syscall(kernel, t, 999, -38) == \
        "[pid 1] syscall_999(1, 2, 3, 0x10000, 5, 6) = -1 ENOSYS (not implemented)"
