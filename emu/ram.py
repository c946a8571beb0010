"""Guest-physical RAM: one anonymous host mapping, viewed four ways.

``buf`` is the raw mmap, ``q`` a numpy uint64 view (one element per 8-byte
page-table entry), ``w`` the same words for scalar access, and ``t`` the
same view shaped as 4 KiB frames of 512 entries, so whole-table work
(copy a table, write-protect 512 entries, gather the frames they map) is a
single numpy call. Untouched RAM costs nothing: the
mapping is MAP_NORESERVE and the host only backs pages that are written.
"""
from __future__ import annotations

import ctypes
import mmap

import numpy as np

PAGE_SIZE = 4096
PAGE_SHIFT = 12
_ZERO_FRAME = bytes(PAGE_SIZE)


class RAM:
    def __init__(self, size: int) -> None:
        if size <= 0 or size % (2 << 20):
            raise ValueError("RAM size must be a positive multiple of 2 MiB")
        self.size = size
        self.nframes = size >> PAGE_SHIFT
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        self.buf = mmap.mmap(-1, size, flags=flags)
        self.ptr = ctypes.addressof(ctypes.c_char.from_buffer(self.buf))
        self.q = np.frombuffer(self.buf, dtype=np.uint64)
        self.t = self.q.reshape(self.nframes, 512)
        self.b = np.frombuffer(self.buf, dtype=np.uint8)
        # The same words as plain Python ints: one entry read or written
        # this way costs a fraction of a numpy scalar access (walks, faults).
        self.w = memoryview(self.buf).cast("Q")
        self._m = memoryview(self.buf)     # bytes: a frame copy is one memmove

    # Byte access by physical address; callers check bounds through the MMU.
    def read(self, paddr: int, n: int) -> bytes:
        return self.buf[paddr:paddr + n]

    def write(self, paddr: int, data: bytes) -> None:
        self.buf[paddr:paddr + len(data)] = data

    def zero_frame(self, pfn: int) -> None:
        self._m[pfn << 12:(pfn + 1) << 12] = _ZERO_FRAME

    def copy_frame(self, dst: int, src: int) -> None:
        m = self._m
        m[dst << 12:(dst + 1) << 12] = m[src << 12:(src + 1) << 12]
