"""The GDB remote protocol's wire: framing, checksums, acks and escaping.

A packet is ``$data#cs`` (``cs``: the sum of the data bytes mod 256, two
hex digits), acknowledged with ``+`` or ``-`` (resend) until gdb asks for
no-ack mode. ``^C`` (0x03) outside a packet is an interrupt. Binary data
(``X`` packets, ``qXfer`` and ``vFile`` replies) escapes ``# $ } *`` as
``}`` followed by the byte XOR 0x20. Replies are never run-length encoded.
Signal numbers on the wire are GDB's own, translated here both ways.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from typing import Callable

PACKET_SIZE = 0x4000         # the largest packet we take (qSupported says so)
EFAULT_REPLY = "E0e"       # E14: the address is not mapped


class GdbError(Exception):
    """A request that gets an ``Exx`` reply."""

    def __init__(self, reply: str = "E01") -> None:
        super().__init__(reply)
        self.reply = reply


class Gone(Exception):
    """gdb closed the connection (or it broke)."""


def checksum(data: bytes) -> bytes:
    """The two hex digits after ``#``."""
    return b"%02x" % (sum(data) & 0xFF)


def escape(data: bytes) -> bytes:
    """Binary replies (qXfer, vFile): escape $ # } * as 0x7d, byte ^ 0x20."""
    out = bytearray()
    for b in data:
        if b in (0x23, 0x24, 0x2A, 0x7D):
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """The bytes of an ``X`` packet's escaped data (a trailing lone ``}``
    reads as a NUL)."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            b = next(it, 0x20) ^ 0x20
        out.append(b)
    return bytes(out)


def hex_le(value: int, size: int) -> str:
    """``value`` as ``size`` little-endian bytes in hex (register values)."""
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()


# Signal numbers on the wire are GDB's own (include/gdb/signals.def), not
# Linux's: they agree up to 6 and on 8, 9, 11, 13-15 only (SIGUSR1 is 30).
_LINUX_TO_GDB = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 8, 9: 9, 10: 30, 11: 11,
                 12: 31, 13: 13, 14: 14, 15: 15, 17: 20, 18: 19, 19: 17, 20: 18, 21: 21,
                 22: 22, 23: 16, 24: 24, 25: 25, 26: 26, 27: 27, 28: 28, 29: 23, 30: 32,
                 31: 12, 32: 77, 64: 78}
_LINUX_TO_GDB.update({s: s - 33 + 45 for s in range(33, 64)})      # REALTIME_33..63
_GDB_TO_LINUX = {g: s for s, g in _LINUX_TO_GDB.items()}
_GDB_UNKNOWN = 143


def gdb_signal(sig: int) -> int:
    """Linux signal number -> GDB's."""
    return _LINUX_TO_GDB.get(sig, _GDB_UNKNOWN) if sig else 0


def host_signal(gsig: int) -> int:
    """GDB signal number -> Linux's (0 if it has none)."""
    return _GDB_TO_LINUX.get(gsig, 0)


class Conn:
    """One gdb connection: framing, checksums, acks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.noack = False
        self.last = b""                 # the last packet sent, for a '-'
        self.interrupted = False
        self.packets = 0                # packets received so far

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, timeout: float | None) -> bool:
        if timeout is not None:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, OSError):
            raise Gone from None
        if not data:
            raise Gone
        self.buf += data
        return True

    def _sendall(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (ConnectionError, OSError):
            raise Gone from None

    def send(self, payload: bytes | str) -> None:
        """Frame and send one packet (not waiting for its ack: a ``-``
        that comes later makes _take resend it)."""
        if isinstance(payload, str):
            payload = payload.encode()
        pkt = b"$" + payload + b"#" + checksum(payload)
        self.last = pkt
        self._sendall(pkt)

    def _take(self) -> bytes | None:
        """One complete packet from the buffer (None if incomplete). Acks
        are consumed; ``-`` resends; ^C sets ``interrupted``."""
        buf = self.buf
        while buf:
            c = buf[0]
            if c == 0x24:                                    # '$'
                end = buf.find(b"#")
                if end < 0 or len(buf) < end + 3:
                    return None
                payload = bytes(buf[1:end])
                cs = bytes(buf[end + 1:end + 3])
                del buf[:end + 3]
                if not self.noack:
                    ok = cs.lower() == checksum(payload)
                    self._sendall(b"+" if ok else b"-")
                    if not ok:
                        continue
                return payload
            del buf[0]
            if c == 0x03:
                self.interrupted = True
            elif c == 0x2D and self.last:                    # '-': resend
                self._sendall(self.last)
        return None

    def get(self) -> bytes:
        """The next packet's data, waiting for it."""
        while True:
            p = self._take()
            if p is not None:
                self.packets += 1
                return p
            self._recv(None)

    def poll_interrupt(self) -> bool:
        """Non-blocking: has gdb sent ^C while the guest ran?"""
        while self._recv(0):
            pass
        # keep any packet that arrived for the next get()
        i = self.buf.find(b"\x03")
        if i >= 0 and b"$" not in self.buf[:i]:
            del self.buf[i]
            self.interrupted = True
        hit, self.interrupted = self.interrupted, False
        return hit


# ------------------------------------------------------------------ socket
def parse_address(spec: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port)."""
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = "", spec
    host = host.strip("[]") or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"bad gdb address {spec!r} (use HOST:PORT)") from None
    if not 0 <= p < 65536:
        raise ValueError(f"bad gdb port {p}")
    return host, p


def listen(host: str, port: int) -> socket.socket:
    """A socket listening for one gdb (port 0: any free port)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1)
    return s


def accept(listener: socket.socket) -> tuple[Conn, tuple]:
    """Wait for gdb: its connection and its address."""
    sock, peer = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Conn(sock), peer


def watch_interrupts(conn: Conn, running: threading.Event, alive: Callable[[], bool],
                     interrupt: Callable[[], None]) -> None:
    """Start a thread that, while ``running`` is set, calls ``interrupt()``
    when gdb sends ^C or drops the connection (until ``alive()`` is false).
    It only peeks: the byte stays for poll_interrupt. A loop without
    syscalls never leaves the CPU's run, so only a thread can stop it."""
    def loop() -> None:
        while alive():
            if not running.wait(0.2):
                continue
            try:
                r, _, _ = select.select([conn.sock], [], [], 0.1)
                if not r:
                    continue
                data = conn.sock.recv(64, socket.MSG_PEEK)
            except (OSError, ValueError):
                return
            if not data or b"\x03" in data:
                running.clear()
                interrupt()
            else:
                time.sleep(0.05)                # stray acks: do not spin
    threading.Thread(target=loop, name="minios-gdb-intr", daemon=True).start()
