"""Formatting values as strace prints them: numbers, flag sets, signal
names and sets, errno text, and C string literals."""
from __future__ import annotations

import os

from minios.uapi.errno import ERRNO_NAMES
from minios.uapi.fcntl import O_ACCMODES, O_FLAGS
from minios.uapi.mman import MAP_FLAGS, MAP_TYPE, MAP_TYPES
from minios.uapi.signal import NAMES as SIGNALS

STRLEN = 32                       # strace's default -s

_ERRSTR: dict[int, str] = {}


def errno_text(e: int) -> str:
    """``ENOENT (No such file or directory)``, as strace prints a failure."""
    s = _ERRSTR.get(e)
    if s is None:
        try:
            s = os.strerror(e)
        except ValueError:
            s = f"Unknown error {e}"
        _ERRSTR[e] = s
    return f"{ERRNO_NAMES.get(e, str(e))} ({s})"


def s32(v: int) -> int:
    """A register's low 32 bits as a C int."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def s64(v: int) -> int:
    """A register as a C long."""
    return v - (1 << 64) if v >= 1 << 63 else v


def ptr(v: int) -> str:
    return "NULL" if v == 0 else hex(v)


def flags(v: int, table, zero: str = "0") -> str:
    """``A|B|0x40`` from a [(bit, name)] table (multi-bit masks first match)."""
    if v == 0:
        return zero
    out = []
    for bit, name in table:
        if v & bit == bit:
            out.append(name)
            v &= ~bit
    if v:
        out.append(hex(v))
    return "|".join(out)


def sym(v: int, table: dict, signed: bool = True) -> str:
    """A value's name from ``table``, else the number (unsigned ones past
    9 in hex)."""
    name = table.get(v)
    if name is not None:
        return name
    return str(v) if signed or v < 10 else hex(v)


def signame(v: int) -> str:
    v = s32(v)
    if v in SIGNALS:
        return SIGNALS[v]
    if 32 <= v <= 64:
        return "SIGRTMIN" if v == 32 else f"SIGRT_{v - 32}"
    return str(v)


def open_flags(v: int) -> str:
    v &= 0xFFFFFFFF
    acc = O_ACCMODES.get(v & 3, "O_ACCMODE")
    rest = flags(v & ~3, O_FLAGS, "")
    return acc + ("|" + rest if rest else "")


def mmap_flags(v: int) -> str:
    t = MAP_TYPES.get(v & MAP_TYPE)
    rest = flags(v & ~MAP_TYPE, MAP_FLAGS, "")
    head = t if t else (hex(v & MAP_TYPE) if v & MAP_TYPE else "MAP_FILE")    # strace: type 0
    return "|".join(x for x in (head, rest) if x)


def sigset(v: int, nbits: int = 64) -> str:
    """``[CHLD USR1]``, or ``~[...]`` when most signals are set (strace)."""
    v &= (1 << nbits) - 1
    inv = bin(v).count("1") > nbits // 2
    if inv:
        v = ~v & ((1 << nbits) - 1)
    names = []
    for i in range(nbits):
        if v >> i & 1:
            s = i + 1
            names.append(SIGNALS[s][3:] if s in SIGNALS else
                         ("RTMIN" if s == 32 else f"RT_{s - 32}"))
    return ("~" if inv else "") + "[" + " ".join(names) + "]"


_ESC = {9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def quote(b: bytes, limit: int | None = STRLEN, hexall: bool = False) -> str:
    """A C string literal as strace prints one; ``"..."...`` past ``limit``."""
    more = limit is not None and len(b) > limit
    if more:
        b = b[:limit]
    out = ['"']
    n = len(b)
    for i, c in enumerate(b):
        if hexall:
            out.append(f"\\x{c:02x}")
        elif c == 0x22:
            out.append('\\"')
        elif c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif c in _ESC:
            out.append(_ESC[c])
        elif i + 1 < n and 0x30 <= b[i + 1] <= 0x37:
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    out.append('"')
    if more:
        out.append("...")
    return "".join(out)
