"""pytest plugin: run static x86-64 programs on minios from your tests.

Enabled by the ``minios`` pytest11 entry point once minios is installed
(``pip install -e .``); otherwise pass ``-p minios.plugin`` to pytest or put
``pytest_plugins = ["minios.plugin"]`` in your top-level conftest.py.

Fixtures
--------

``minios_run`` - a function that runs one program on a fresh machine,
in-process, and returns a :class:`RunResult`::

    def test_hello(minios_run):
        r = minios_run("build/hello")
        assert r.status == 0 and r.stdout == b"hello, world\\n"
        assert r.syscalls("write")[0]["args"][1] == '"hello, world\\\\n"'

    run(program, *args, cow_pte="flag", mem=1 << 30, stdin=b"", env=None,
        check=True, trace="syscall,fault,signal,fork", root="/") -> RunResult

  ``args`` may be str or bytes; ``env`` defaults to ``{"PATH": "/usr/bin:/bin"}``;
  ``stdin`` is fed from a temporary file; stdout and stderr are captured
  through temporary files. ``check`` runs the invariant checker
  (``minios/mm/check.py``) after every syscall and fault: a kernel bug fails
  the run with ``InvariantError``. ``trace=None`` turns tracing off (faster).
  A program minios cannot start raises ``minios.machine.MachineError``.

``machine`` - a fresh :class:`minios.machine.Machine` (invariant checker
on) for tests that drive the API themselves (``machine.run(...)`` once,
``machine.meminfo()``, ``machine.add_break(...)``, ``machine.kernel``).

``machine_factory`` - ``make(**options) -> Machine``, for several machines
in one test.

Options come from, in increasing priority: the defaults above, the command
line (``--minios-mem 2G``, ``--minios-cow-pte always``, ``--minios-no-check``),
a ``@pytest.mark.minios(mem=..., cow_pte=..., check=..., trace=...)`` marker
on the test (or class/module), and the keyword arguments of the call.

RunResult
---------

``status`` (as a shell reports it: 128 + signal if killed), ``stdout``,
``stderr`` (bytes), ``trace`` (the parsed trace: a list of dicts, see
``minios.trace.parse`` - ``{"kind": "syscall", "pid": 1, "name": "write",
"args": ["1", '"hi\\\\n"', "3"], "result": 3, "errno": None, ...}``, ``{"kind":
"fault", "addr": ..., "ip": ..., "reason": "user write, protection",
"note": "COW copy"}``, ``{"kind": "fork", "shared": 3, "copied": 0, ...}``),
``trace_text`` (the raw lines), ``meminfo_before`` / ``meminfo_after``
(``/proc/meminfo`` as {field: kB} after boot and after the program ended),
``stats`` (the kernel's counters: page_faults, cow_pte_copy, forks, ...),
``leaked_frames`` (frames still allocated after every process exited:
should be 0), ``machine``. Helpers: ``syscalls(name=None)``,
``faults(note=None)`` (substring match on what the kernel did), ``forks()``,
``exits()``.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field

import pytest

DEFAULTS = {"mem": 1 << 30, "cow_pte": "flag", "check": True,
            "trace": "syscall,fault,signal,fork", "root": "/"}
DEFAULT_ENV = {"PATH": "/usr/bin:/bin"}


@dataclass
class RunResult:
    status: int
    stdout: bytes
    stderr: bytes
    trace: list = field(default_factory=list)
    trace_text: str = ""
    meminfo_before: dict = field(default_factory=dict)
    meminfo_after: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    leaked_frames: int = 0
    machine: object = None

    def syscalls(self, name: str | None = None) -> list[dict]:
        return [e for e in self.trace if e["kind"] == "syscall"
                and (name is None or e["name"] == name)]

    def faults(self, note: str | None = None) -> list[dict]:
        return [e for e in self.trace if e["kind"] == "fault"
                and (note is None or note in e["note"])]

    def forks(self) -> list[dict]:
        return [e for e in self.trace if e["kind"] == "fork"]

    def exits(self) -> list[dict]:
        return [e for e in self.trace if e["kind"] == "exit"]

    def __repr__(self) -> str:
        return (f"RunResult(status={self.status}, stdout={self.stdout[:60]!r}, "
                f"stderr={self.stderr[:60]!r}, {len(self.trace)} trace events)")


def _parse_mem(v) -> int:
    if isinstance(v, int):
        return v
    from minios.cli import parse_size
    return parse_size(str(v))


def _options(request, **overrides) -> dict:
    opts = dict(DEFAULTS)
    cfg = request.config
    if cfg.getoption("minios_mem", None):
        opts["mem"] = _parse_mem(cfg.getoption("minios_mem"))
    if cfg.getoption("minios_cow_pte", None):
        opts["cow_pte"] = cfg.getoption("minios_cow_pte")
    if cfg.getoption("minios_no_check", False):
        opts["check"] = False
    for m in reversed(list(request.node.iter_markers("minios"))):   # closest last
        opts.update(m.kwargs)
    opts.update({k: v for k, v in overrides.items() if v is not None})
    opts["mem"] = _parse_mem(opts["mem"])
    return opts


def make_machine(mem=DEFAULTS["mem"], cow_pte="flag", check=True, trace=None,
                 trace_file=None, root="/"):
    from minios.machine import Machine
    return Machine(mem=_parse_mem(mem), cow_pte=cow_pte, trace=trace, trace_file=trace_file,
                   check=check, root=root)


def run_program(program, *args, cow_pte="flag", mem=DEFAULTS["mem"], stdin: bytes = b"",
                env=None, check=True, trace=DEFAULTS["trace"], root="/") -> RunResult:
    """Run ``program`` on a fresh machine; see the module docstring."""
    from minios.trace import parse
    log = io.StringIO() if trace else None
    m = make_machine(mem, cow_pte, check, trace or None, log, root)
    before = m.meminfo()
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, \
            tempfile.TemporaryFile() as ferr:
        fin.write(stdin)
        fin.seek(0)
        status = m.run(str(program), [os.fsdecode(a) if isinstance(a, bytes) else str(a)
                                      for a in args],
                       env=DEFAULT_ENV if env is None else env,
                       stdio=(fin.fileno(), fout.fileno(), ferr.fileno()))
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    k = m.kernel
    text = log.getvalue() if log is not None else ""
    return RunResult(status=status, stdout=out, stderr=err, trace=parse(text) if text else [],
                     trace_text=text, meminfo_before=before, meminfo_after=m.meminfo(),
                     stats=dict(k.stats), leaked_frames=k.boot_free - k.frames.nr_free,
                     machine=m)


# ------------------------------------------------------------------- hooks

def pytest_addoption(parser):
    g = parser.getgroup("minios")
    g.addoption("--minios-mem", default=None, metavar="SIZE",
                help="guest RAM for minios fixtures (default 1G)")
    g.addoption("--minios-cow-pte", default=None, choices=("flag", "always", "never"),
                help="--cow-pte mode for minios fixtures (default flag)")
    g.addoption("--minios-no-check", action="store_true", default=False,
                help="turn the invariant checker off in minios fixtures (faster)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "minios(mem=..., cow_pte=..., check=..., trace=..., root=...): "
        "options for the machine and minios_run fixtures")


@pytest.fixture
def machine_factory(request):
    """``make(**options) -> Machine``: options as the ``minios`` marker."""
    def make(**kw):
        o = _options(request, **kw)
        return make_machine(o["mem"], o["cow_pte"], o["check"], kw.get("trace"),
                            kw.get("trace_file"), o["root"])
    return make


@pytest.fixture
def machine(machine_factory):
    """A fresh Machine (invariant checker on unless turned off)."""
    return machine_factory()


@pytest.fixture
def minios_run(request):
    """``run(program, *args, cow_pte=, mem=, stdin=b"", env=None, check=,
    trace=) -> RunResult`` on a fresh machine per call."""
    def run(program, *args, cow_pte=None, mem=None, stdin: bytes = b"", env=None,
            check=None, trace="", root=None) -> RunResult:
        o = _options(request, cow_pte=cow_pte, mem=mem, check=check, root=root)
        if trace != "":
            o["trace"] = trace
        return run_program(program, *args, cow_pte=o["cow_pte"], mem=o["mem"], stdin=stdin,
                           env=env, check=o["check"], trace=o["trace"], root=o["root"])
    return run
