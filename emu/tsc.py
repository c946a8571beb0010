"""The time-stamp counter, as the host reads it.

Unicorn's ``rdtsc`` returns the host's TSC unchanged, so a guest reading
the counter and the kernel reading it here see one clock. Python has no
``rdtsc``, hence four bytes of machine code called through ctypes (~0.35
µs). Where the host forbids executable anonymous memory, ``read_tsc`` is
None and the kernel keeps to the host's clocks.
"""
from __future__ import annotations

import ctypes
import mmap
import platform
from typing import Callable

# rdtsc; shl rdx, 32; or rax, rdx; ret
_CODE = bytes.fromhex("0f31" "48c1e220" "4809d0" "c3")


def _make() -> tuple[Callable[[], int] | None, object]:
    if platform.machine() not in ("x86_64", "AMD64"):
        return None, None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):
        return None, None
    page.write(_CODE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return ctypes.CFUNCTYPE(ctypes.c_uint64)(addr), page


# The page must live as long as the function that runs from it.
read_tsc, _page = _make()
