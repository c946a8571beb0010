"""The guest's file tree (minios/fs/vfs.py, tmpfs.py, procfs.py, syscalls/sys_namei.py ...).

* ``vfs_check.c`` (beside this file) runs file syscalls and prints each
  result or errno: in a writable directory its output must equal the
  native run's, on tmpfs (/tmp) and on an --rw host directory; on the
  read-only root every write must fail with EROFS; poll/select/ppoll/
  pselect6 must block, time out and wake like Linux.
* Path resolution unit tests: nothing resolves outside the root.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ENV, native, under_minios

from minios.fs.vfs import VFS, HostNode, lookup_in
from minios.fs.tmpfs import Inode

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def vfs_check(scratch_root):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    out = Path(scratch_root) / "vfs_check"
    p = subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(HERE / "vfs_check.c")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        pytest.skip("cannot build a static binary: " + p.stdout.decode(errors="replace"))
    return str(out)


def _lines(out: bytes) -> list[str]:
    return out.decode(errors="replace").splitlines()


def test_rw_tmpfs_matches_native(vfs_check, scratch):
    n = native(vfs_check, ["rw", str(scratch)])
    m = under_minios(vfs_check, ["rw", "/tmp"])
    assert n[0] == 0, n
    assert b"Traceback" not in m[2], m[2].decode(errors="replace")
    assert _lines(m[1]) == _lines(n[1])
    assert (m[0], len(_lines(m[1]))) == (0, len(_lines(n[1])))


def test_rw_hostdir_matches_native(vfs_check, scratch):
    (scratch / "nat").mkdir()
    (scratch / "guest").mkdir()
    n = native(vfs_check, ["rw", str(scratch / "nat")])
    m = under_minios(vfs_check, ["rw", str(scratch / "guest")], ["--rw", str(scratch / "guest")])
    assert b"Traceback" not in m[2], m[2].decode(errors="replace")
    assert _lines(m[1]) == _lines(n[1])
    assert m[0] == 0
    assert sorted(os.listdir(scratch / "guest")) == []       # the program cleans up


RO_EXPECTED = """\
open O_WRONLY: EROFS
open O_RDWR: EROFS
open O_TRUNC: EROFS
open O_RDONLY: 0
creat beside: EROFS
mkdir beside: EROFS
unlink: EROFS
rename: EROFS
symlink: EROFS
chmod: EROFS
truncate: EROFS
utimensat: EROFS
access W_OK: EROFS
access R_OK: 0
access W_OK /dev/null: 0
access W_OK /tmp: 0
rmdir /tmp: EBUSY
rename /tmp: EBUSY
write /dev/null: 1
rename tmp to ro: EBUSY
rename across mounts: EXDEV
link across mounts: EXDEV
proc write: EACCES
proc creat: EACCES
"""


def test_readonly_root(vfs_check, scratch):
    f = scratch / "file"
    f.write_text("keep\n")
    m = under_minios(vfs_check, ["ro", str(f)])
    assert m[1].decode() == RO_EXPECTED, m[2].decode(errors="replace")
    assert f.read_text() == "keep\n" and sorted(os.listdir(scratch)) == ["file"]


def test_poll_select_match_native(vfs_check):
    n = native(vfs_check, ["wait"])
    m = under_minios(vfs_check, ["wait"])
    assert b"Traceback" not in m[2], m[2].decode(errors="replace")
    skip = ("mask restored",)          # see test_ppoll_mask_restored
    assert [x for x in _lines(m[1]) if not x.startswith(skip)] == \
        [x for x in _lines(n[1]) if not x.startswith(skip)]


def test_ppoll_mask_restored(vfs_check):
    m = under_minios(vfs_check, ["wait"])
    assert "mask restored: 1" in _lines(m[1])


# ------------------------------------------------------------ unit tests
@pytest.fixture
def tree(tmp_path):
    """base/root (the guest's /) and base/secret outside it."""
    base = tmp_path
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("inside\n")
    (root / "d" / "e").mkdir(parents=True)
    (base / "secret").write_text("outside\n")
    (root / "d" / "abs").symlink_to(base / "secret")
    (root / "d" / "up").symlink_to("../../../../secret")
    (root / "d" / "loop").symlink_to("loop")
    (root / "d" / "etc").symlink_to("/etc")
    (root / "d" / "chain").symlink_to("e/../../d/etc/hostname")
    (root / "rw").mkdir()
    return root, base


def test_lookup_never_leaves_root(tree):
    root, base = tree
    v = VFS(str(root))
    for p in ("/../secret", "../../secret", "/d/../../secret", "/d/up", "/d/abs",
              "/d/e/../../../secret", "/tmp/../../secret", "/proc/../../secret",
              "/dev/../secret"):
        try:
            lk = lookup_in(v, None, None, p)
        except FileNotFoundError:
            continue
        assert lk.node is None or not (isinstance(lk.node, HostNode)
                                       and not lk.node.hp.startswith(str(root)))
        if isinstance(lk.parent, HostNode):
            assert lk.parent.hp.startswith(v.host.root), (p, lk)
    assert lookup_in(v, None, None, "/d/chain").path == "/etc/hostname"
    assert lookup_in(v, None, None, "/d/etc/hostname").node.hp == \
        os.path.realpath(root / "etc" / "hostname")
    with pytest.raises(FileNotFoundError):          # /<base>/secret, inside the root
        lookup_in(v, None, None, "/d/abs")
    assert lookup_in(v, None, None, "..").path == "/"
    assert lookup_in(v, None, None, "/tmp/..").path == "/"
    assert lookup_in(v, None, None, "/tmp").node is v.tmpfs.root


def test_lookup_errors(tree):
    root, _ = tree
    v = VFS(str(root))
    cases = {"/d/loop": errno.ELOOP, "/etc/hostname/x": errno.ENOTDIR,
             "/missing/x": errno.ENOENT, "/etc/hostname/": errno.ENOTDIR,
             "/" + "x" * 256: errno.ENAMETOOLONG, "": errno.ENOENT}
    for p, err in cases.items():
        with pytest.raises(OSError) as ei:
            lookup_in(v, None, None, p)
        assert ei.value.errno == err, p
    lk = lookup_in(v, None, None, "/d/loop", follow=False)
    assert lk.node is not None and lk.name == "loop"
    lk = lookup_in(v, None, None, "/d/newfile")
    assert lk.node is None and lk.name == "newfile" and lk.path == "/d/newfile"


def test_rw_dirs(tree):
    root, base = tree
    v = VFS(str(root), [str(root / "rw")])
    assert v.host.rw == ["/rw"]
    assert lookup_in(v, None, None, "/rw").node.writable()
    assert not lookup_in(v, None, None, "/d").node.writable()
    assert VFS(str(root), ["/rw"]).host.rw == ["/rw"]          # a guest path works too
    with pytest.raises(ValueError):
        VFS(str(root), [str(base)])                            # outside the root
    with pytest.raises(ValueError):
        VFS(str(root), ["/nope"])


def test_tmpfs_semantics():
    v = VFS("/")
    top: Inode = v.tmpfs.root
    a = top.mkdir("a", 0o755, 0, 0)
    f = a.create("f", 0o644, 0, 0)
    f.pwrite(b"hello", 0)
    a.link("g", f)
    assert f.nlink == 2 and a.nlink == 2 and top.nlink == 3
    b = top.mkdir("b", 0o755, 0, 0)
    a.rename("g", b, "h")
    assert b.lookup("h") is f and a.lookup("g") is None
    with pytest.raises(OSError) as ei:
        top.rmdir("a")
    assert ei.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as ei:
        top.rename("a", a, "x")                                # into itself
    assert ei.value.errno == errno.EINVAL
    a.unlink("f")
    b.unlink("h")
    assert f.nlink == 0 and f.pread(10, 0) == b"hello"        # open files keep their bytes
    top.rename("a", top, "b")                                  # over an empty dir
    assert top.lookup("a") is None and top.lookup("b") is a and top.nlink == 3
    s = a.symlink("l", "/x", 0, 0)
    assert s.readlink() == "/x" and s.stat()["size"] == 2
    f2 = a.create("big", 0o600, 0, 0)
    f2.truncate(10000)
    assert f2.stat()["size"] == 10000 and f2.pread(5, 9998) == b"\0\0"
    t0 = f2.mtime
    f2.pwrite(b"x", 20000)
    assert f2.size() == 20001 and f2.mtime >= t0
    with pytest.raises(OSError) as ei:
        a.create("l", 0o600, 0, 0)
    assert ei.value.errno == errno.EEXIST


def test_proc_fd_listing_and_links(scratch):
    """/proc/self/fd lists the open descriptors; readlink gives their paths;
    opening fd/N of a pipe gives the same pipe."""
    bb = shutil.which("busybox")
    if bb is None:
        pytest.skip("no busybox")
    (scratch / "f").write_text("data\n")
    script = (f"exec 3<{scratch}/f; ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; "
              f"readlink /proc/self/fd/3; echo viapipe | cat /proc/self/fd/0; "
              f"cat /dev/stdin < {scratch}/f; ls -l /proc/$$/fd/3 | grep -c -- '->'")
    m = under_minios(bb, ["sh", "-c", script], env=dict(ENV, PATH="/bin:/usr/bin"))
    # 4 is ls's own descriptor on the directory, as on Linux
    assert m[1].decode() == f"0 1 2 3 4 \n{scratch}/f\nviapipe\ndata\n1\n", m[2]


def test_tmpfs_is_bounded():
    """tmpfs holds at most half the guest's RAM: past it, ENOSPC; rm frees."""
    bb = shutil.which("busybox")
    if bb is None:
        pytest.skip("no busybox")
    script = ("dd if=/dev/zero of=/tmp/big bs=1M count=100 2>/dev/null; echo $?; "
              "df /tmp | tail -n 1; rm /tmp/big; df /tmp | tail -n 1")
    m = under_minios(bb, ["sh", "-c", script], ["--mem=128M"], env=dict(ENV, PATH="/bin"))
    lines = m[1].decode().splitlines()
    assert lines[0] == "1", m
    assert lines[1].split()[1:5] == ["65536", "65536", "0", "100%"], lines
    assert lines[2].split()[1:5] == ["65536", "0", "65536", "0%"], lines
