"""The GDB stub's wire layer (minios/gdbstub/packets.py, regs.py, vfile.py)
without gdb: checksums, escaping, framing and acks over a socketpair, the
signal and errno translations, the ``g`` layout against target.xml, the
``QCatchSyscalls`` packet."""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

import pytest

import minios.syscalls.all  # noqa: F401  (fills the syscall table)
from minios.gdbstub import gdb_signal, host_signal, parse_address, query
from minios.gdbstub.packets import Conn, Gone, checksum, escape, hex_le, unescape
from minios.gdbstub.query import parse_catch_syscalls
from minios.gdbstub.regs import REGNUM, REGS, TARGET_XML
from minios.gdbstub.vfile import gdb_errno
from minios.syscalls.table import lookup

pytestmark = pytest.mark.unit


def test_checksum_is_the_byte_sum_mod_256_in_two_hex_digits():
    assert checksum(b"OK") == b"9a"
    assert checksum(b"S05") == b"b8"
    assert checksum(b"") == b"00"
    assert checksum(b"\xff\x02") == b"01"            # wraps


def test_escape_the_four_special_bytes():
    assert escape(b"a$b#c}d*e") == b"a}\x04b}\x03c}]d}\ne"
    assert escape(b"plain") == b"plain"


def test_escape_round_trips_every_byte():
    data = bytes(range(256)) * 2
    out = escape(data)
    assert not set(out) & {0x23, 0x24, 0x2A}          # no # $ * left bare
    assert unescape(out) == data


def test_unescape_a_lone_trailing_escape_is_nul():
    assert unescape(b"ab}") == b"ab\0"


def test_hex_le():
    assert hex_le(0x1234, 4) == "34120000"
    assert hex_le(-1, 2) == "ffff"                    # truncated to the size


def test_signal_numbers_are_gdbs():
    assert gdb_signal(10) == 30 and host_signal(30) == 10      # SIGUSR1
    assert gdb_signal(5) == 5 and gdb_signal(0) == 0
    assert gdb_signal(34) == 46                       # SIGRTMIN+1 -> REALTIME_34
    assert gdb_signal(1000) == 143 and host_signal(143) == 0
    for sig in range(1, 65):
        if sig != 16:                                 # SIGSTKFLT has no GDB number
            assert host_signal(gdb_signal(sig)) == sig


def test_file_io_errnos():
    assert gdb_errno(2) == 2                          # ENOENT as Linux
    assert gdb_errno(36) == 91                        # ENAMETOOLONG
    assert gdb_errno(95) == 9999                      # EUNKNOWN


def test_parse_address():
    assert parse_address("1234") == ("127.0.0.1", 1234)
    assert parse_address(":1234") == ("127.0.0.1", 1234)
    assert parse_address("[::1]:99") == ("::1", 99)
    with pytest.raises(ValueError):
        parse_address("host:x")
    with pytest.raises(ValueError):
        parse_address("70000")


def test_target_xml_matches_the_g_layout():
    root = ET.fromstring(TARGET_XML.split(b"\n", 2)[2])
    regs = root.findall(".//reg")
    assert [r.get("name") for r in regs] == [r[0] for r in REGS]
    for r in regs:
        i = int(r.get("regnum"))
        assert REGS[i][0] == r.get("name") and int(r.get("bitsize")) == 8 * REGS[i][1]
    assert REGNUM["rip"] == 16 and REGNUM["eflags"] == 17


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    conn = Conn(a)
    yield conn, b
    conn.close()
    b.close()


def _recv(sock: socket.socket, n: int) -> bytes:
    sock.settimeout(5)
    out = b""
    while len(out) < n:
        out += sock.recv(n - len(out))
    return out


def test_send_frames_a_packet(pair):
    conn, peer = pair
    conn.send("OK")
    assert _recv(peer, 6) == b"$OK#9a"


def test_get_acks_and_returns_the_data(pair):
    conn, peer = pair
    peer.sendall(b"+$g#67")
    assert conn.get() == b"g"
    assert _recv(peer, 1) == b"+"
    assert conn.packets == 1


def test_a_packet_split_across_reads(pair):
    conn, peer = pair
    peer.sendall(b"$m4000")
    assert conn._take() is None                       # incomplete: nothing yet
    peer.sendall(b"00,4#" + checksum(b"m400000,4"))
    assert conn.get() == b"m400000,4"


def test_a_bad_checksum_is_nacked_and_dropped(pair):
    conn, peer = pair
    peer.sendall(b"$g#00$g#67")
    assert conn.get() == b"g"
    assert _recv(peer, 2) == b"-+"


def test_a_nack_resends_the_last_packet(pair):
    conn, peer = pair
    conn.send("S05")
    assert _recv(peer, 7) == b"$S05#b8"
    peer.sendall(b"-$?#3f")
    assert conn.get() == b"?"
    assert _recv(peer, 8) == b"$S05#b8+"


def test_no_ack_mode_sends_no_acks_and_takes_any_checksum(pair):
    conn, peer = pair
    conn.noack = True
    peer.sendall(b"$g#00")
    assert conn.get() == b"g"
    conn.send("OK")
    assert _recv(peer, 6) == b"$OK#9a"                # no '+' before it


def test_ctrl_c_between_packets_is_an_interrupt(pair):
    conn, peer = pair
    assert not conn.poll_interrupt()
    peer.sendall(b"\x03")
    peer.sendall(b"$c#63")
    _recv_until_buffered(conn, 6)
    assert conn.poll_interrupt()
    assert not conn.poll_interrupt()                  # reported once
    assert conn.get() == b"c"                         # the packet after it stays


def _recv_until_buffered(conn: Conn, n: int) -> None:
    while len(conn.buf) < n:
        conn._recv(5)


def test_a_closed_connection_is_gone(pair):
    conn, peer = pair
    peer.close()
    with pytest.raises(Gone):
        conn.get()


def test_catch_syscalls_packet():
    """``QCatchSyscalls:`` ``0`` (none), ``1`` (every call) or ``1;NR;...``
    (hex numbers, as gdb maps its names: the same as the syscall table's)."""
    write, exit_group = lookup("write").nr, lookup("exit_group").nr
    assert parse_catch_syscalls(b"0") == (False, None)
    assert parse_catch_syscalls(b"1") == (True, None)
    assert parse_catch_syscalls(b"1;%x;%x" % (write, exit_group)) == (True, {1, 231})
    assert parse_catch_syscalls(b"1;E7") == (True, {231})
    for bad in (b"", b"2", b"0;1", b"1;", b"1;;1", b"1;zz", b"1;-1", b"1;0x1", b"1; 1"):
        with pytest.raises(ValueError):
            parse_catch_syscalls(bad)


def test_catch_syscalls_dispatch():
    """The packet sets the stub's filter and is acknowledged; qSupported
    offers it."""
    got = []

    class FakeStub:
        multiprocess = False

        def catch_syscalls(self, on, nrs):
            got.append((on, nrs))

    stub = FakeStub()
    assert "QCatchSyscalls+" in query.dispatch(stub, b"qSupported:swbreak+").split(";")
    assert query.dispatch(stub, b"QCatchSyscalls:1;0;3c") == "OK"
    assert query.dispatch(stub, b"QCatchSyscalls:0") == "OK"
    assert got == [(True, {0, 0x3C}), (False, None)]
    with pytest.raises(ValueError):                  # serve() answers E01
        query.dispatch(stub, b"QCatchSyscalls:1;x")
