"""The CPU's two ways to reach registers: the live state found in memory
(``CPU._env``) and the Unicorn API. Both must give the same machine."""
from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from emu.cpu import CPU
from minios.machine import Machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "userland", "build", "glibc")


def test_live_state_found_and_consistent():
    cpu = CPU(64 << 20)
    if cpu._env is None:
        pytest.skip("this Unicorn build's live state was not found: API paths only")
    cpu.set_regs(rdi=0x1234_5678_9ABC)
    assert cpu._env[7] == 0x1234_5678_9ABC            # regs[R_EDI]
    cpu._env[6] = 0x42                                  # regs[R_ESI]
    assert cpu.reg("rsi") == 0x42
    cpu.set_reg("cr2", 0xDEAD_B000)
    assert cpu._env[cpu._env_cr2] == 0xDEAD_B000


def _run(program: str, args: list[str], direct: bool) -> tuple[int, bytes]:
    m = Machine(mem=256 << 20)
    if not direct:
        m.kernel.cpu._env = None
    with tempfile.TemporaryFile() as f:
        status = m.run(os.path.join(BUILD, program), args, env={}, stdio=(0, f.fileno(), 2))
        f.seek(0)
        return status, f.read()


@pytest.mark.parametrize("program,args", [
    ("fork_tree", []), ("sighandler", []), ("segv_handler", []), ("page_touch", ["2000"]),
    ("pipe_chain", []),
])
def test_api_paths_match_direct_paths(program, args):
    if not os.path.exists(os.path.join(BUILD, program)):
        subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "userland"), "glibc"], check=True)
    assert _run(program, args, direct=False) == _run(program, args, direct=True)
