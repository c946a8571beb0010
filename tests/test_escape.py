"""The escape battery: a guest under ``--root R [--rw R/rw]`` tries to read,
list or change what lies outside R, or to change what lies outside its
``--rw`` directories (``escape.c`` beside this file: symlink swaps racing
with open descriptors, magic links, ``..`` at the root, hard links,
renames out of the writable tree).

Each run checks three things: nothing the guest printed comes from outside
the root, the host's tree outside the root is byte for byte, mode for mode
and name for name what it was, and inside the root nothing outside the
``--rw`` directory changed. The results of the moves that are legal (the
old descriptors still reach the moved file, as on Linux) are checked too.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import under_minios

HERE = Path(__file__).resolve().parent
SECRET = "SECRET-f00d"


@pytest.fixture(scope="module")
def escape_bin(tmp_path_factory):
    out = tmp_path_factory.mktemp("escape") / "escape"
    p = subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(HERE / "escape.c")],
                       capture_output=True, text=True)
    if p.returncode:
        pytest.fail(p.stderr)
    return out


def _snapshot(top: Path) -> dict:
    """Every name under ``top`` with its type, mode, owner, times and bytes."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            s = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else \
                os.readlink(p) if p.is_symlink() else None
            snap[str(p.relative_to(top))] = (s.st_mode, s.st_uid, s.st_gid, s.st_size,
                                             s.st_mtime_ns, data)
    return snap


@pytest.fixture
def world(tmp_path):
    """tmp/outside (the host's secrets) and tmp/root (the guest's /), with
    a copy of the escape program inside the root and rw/ writable."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "secret.txt").chmod(0o600)
    (outside / "OUTSIDE_MARKER").write_text(SECRET + " marker\n")
    (outside / "sub" / "deep.txt").write_text(SECRET + " deep\n")
    root = tmp_path / "root"
    (root / "rw").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    return tmp_path, outside, root


def _run(escape_bin, world, rw: bool):
    tmp, outside, root = world
    (root / "escape").write_bytes(escape_bin.read_bytes())
    (root / "escape").chmod(0o755)
    before_out = _snapshot(outside)
    before_root = _snapshot(root)
    opts = ["--root", str(root)] + (["--rw", str(root / "rw")] if rw else [])
    status, out, err = under_minios("/escape", ["/rw" if rw else "-", str(outside)], opts)
    text = out.decode(errors="replace")
    assert SECRET not in text and SECRET not in err.decode(errors="replace"), text
    assert "OUTSIDE_MARKER" not in text, text
    assert _snapshot(outside) == before_out, "the host's tree outside the root changed"
    after_root = _snapshot(root)
    changed = {k for k in set(before_root) | set(after_root)
               if before_root.get(k) != after_root.get(k)}
    assert all(k == "rw" or k.startswith("rw/") for k in changed), sorted(changed)
    assert status == 0, (status, text, err)
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


@pytest.mark.parametrize("rw", [True, False], ids=["rw", "ro"])
def test_escape_battery(escape_bin, world, rw):
    r = _run(escape_bin, world, rw)
    assert r["plain outside path"].startswith("errno 2 ")
    assert r["proc 1 root"].startswith("errno 2 ")
    assert r["chdir .. at /"] == "0"
    if not rw:
        assert r["mkdir on read-only root"].startswith("errno 30 ")     # EROFS
        return
    # The old descriptors reach the file that was moved, as on Linux ...
    assert r["reopen fd via proc"] == 'read "INSIDE"'
    assert r["openat old dir fd"] == 'read ""'              # truncated through /proc, legally
    assert r["open after fchdir"] == 'read ""'                  # the moved directory's file
    assert r["open relative to cwd"] == 'read ""'               # the cwd moved with it
    assert r["proc fd dir path"] == 'read ""'                   # /proc/self/fd/N/... too
    assert r["open through swapped name"].startswith("errno 2 ")  # the name is the symlink now
    # ... and everything they made or changed is inside rw/moved.
    _, outside, root = world
    moved = root / "rw" / "moved"
    assert (moved / "made_by_guest").is_dir()
    assert (moved / "renamed.txt").exists()
    assert oct((moved / "renamed.txt").stat().st_mode & 0o777) == oct(0o777)
    assert r["write through abs link"].startswith("errno 2 ")        # no such guest path
    assert r["link to read-only file"].startswith("errno 18 ")       # EXDEV
    assert r["rename out of rw"].startswith("errno 18 ")             # EXDEV


def test_no_other_terminals(escape_bin, world):
    """/dev/pts lists only the terminal minios runs on (none here)."""
    r = _run(escape_bin, world, False)
    assert r["dev pts"].split() == [".", ".."]


def test_default_root_writes_stay_in_rw(escape_bin, scratch):
    """Without --root the guest sees the host's / (read-only): it may read
    OUTSIDE, but the symlink swap must not let it change anything there."""
    rw, outside = scratch / "rw", scratch / "outside"
    rw.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "OUTSIDE_MARKER").write_text("marker\n")
    before = _snapshot(outside)
    status, out, err = under_minios(str(escape_bin), [str(rw), str(outside)],
                                    ["--rw", str(rw)])
    assert status == 0, (out, err)
    assert _snapshot(outside) == before, "a write escaped the --rw directory"
    r = dict(line.split(": ", 1) for line in out.decode().splitlines() if ": " in line)
    assert r["plain outside path"] == f'read "{SECRET} "'      # readable, as documented
    assert r["unlinkat outside marker"].startswith("errno 2 ")
    assert r["reopen fd via proc"] == 'read "INSIDE"'
    assert (rw / "moved" / "made_by_guest").is_dir()
