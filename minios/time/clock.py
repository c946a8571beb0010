"""The guest's clocks, and the numbers the vDSO reads them from.

Linux reads the time in user space: the vDSO turns the TSC into
nanoseconds with a rate and an anchor the kernel publishes, and only the
clocks it does not keep (CPU time) cost a system call. minios does the
same. Every clock the vDSO serves is one linear function of the TSC,

    ns = base[clk] + ((tsc - tsc0) * mult >> SHIFT)

evaluated by the vDSO's code in the guest (``minios/time/vdso.py``) and by
``now_ns`` for the system calls and the kernel's own timestamps, on the same counter (Unicorn's
``rdtsc`` is the host's). So a time read through the vDSO and one read
through ``clock_gettime(2)`` are of one clock: neither runs behind the
other, and an absolute deadline the guest computes is met when its clock
says so.

The rate is measured once per host process against the host's
CLOCK_MONOTONIC over 20 ms (about 1 ppm: a minute of guest time is off
the host's by some tens of µs). Each base[clk] is the host clock ``clk``
at tsc0. Without a usable TSC (``emu.tsc.read_tsc`` is None) the clocks
are the host's, read per call, and there is no vDSO.
"""
from __future__ import annotations

import struct
import time

from emu.tsc import read_tsc

SHIFT = 32
NCLOCKS = 16                 # clock ids the vDSO's table covers
MASK64 = (1 << 64) - 1

# Guest clock id -> host clock. Coarse clocks are the fine ones (Linux's
# are only cheaper); the alarm clocks read as REALTIME and BOOTTIME.
HOST_CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC,
               2: time.CLOCK_PROCESS_CPUTIME_ID, 3: time.CLOCK_THREAD_CPUTIME_ID,
               4: time.CLOCK_MONOTONIC_RAW, 5: time.CLOCK_REALTIME, 6: time.CLOCK_MONOTONIC,
               7: time.CLOCK_BOOTTIME, 8: time.CLOCK_REALTIME, 9: time.CLOCK_BOOTTIME,
               11: time.CLOCK_TAI}
# The clocks Linux's x86-64 vDSO serves; the others go to the kernel.
VDSO_CLOCKS = (0, 1, 4, 5, 6, 7, 11)
# Clocks the kernel reads from the TSC too: the vDSO's, and the alarm
# clocks, which are REALTIME and BOOTTIME under other names.
TSC_ALIAS = {8: 0, 9: 7}

# (tsc0, mult, base), measured on first use. A fact about the host (its TSC
# against its clocks), not machine state: every Machine in the process reads
# the same one, and it never changes once measured.
_calibration: tuple[int, int, dict[int, int]] | None = None


def _bracket(clk: int) -> tuple[int, int]:
    """(tsc, host clock ``clk``) read as close together as this host allows:
    the best of 32 tries, the clock read between two TSC reads."""
    best = (1 << 64, 0, 0)
    for _ in range(32):
        a = read_tsc()
        n = time.clock_gettime_ns(clk)
        b = read_tsc()
        if b - a < best[0]:
            best = (b - a, (a + b) // 2, n)
    return best[1], best[2]


def _offset(a: int, b: int) -> int:
    """Host clock ``a`` minus host clock ``b`` at one instant: the best of
    32 tries, ``a`` read between two reads of ``b``."""
    best = (1 << 64, 0)
    for _ in range(32):
        b1 = time.clock_gettime_ns(b)
        n = time.clock_gettime_ns(a)
        b2 = time.clock_gettime_ns(b)
        if b2 - b1 < best[0]:
            best = (b2 - b1, n - (b1 + b2) // 2)
    return best[1]


def calibrate() -> tuple[int, int, dict[int, int]]:
    """(tsc0, mult, {clock id: base}), measured on first use. REALTIME,
    MONOTONIC and MONOTONIC_RAW get their own anchors; the others are
    derived so that their relations hold exactly: the coarse clocks are
    the fine ones, BOOTTIME is MONOTONIC plus the time asleep (never
    less), TAI is REALTIME plus whole seconds."""
    global _calibration
    if _calibration is None:
        t1, n1 = _bracket(time.CLOCK_MONOTONIC)
        time.sleep(0.02)
        tsc0, n2 = _bracket(time.CLOCK_MONOTONIC)
        mult = round((n2 - n1) * (1 << SHIFT) / (tsc0 - t1))
        base = {}
        for clk in (0, 1, 4):
            t, n = _bracket(HOST_CLOCKS[clk])
            base[clk] = n - ((t - tsc0) * mult >> SHIFT)
        base[5], base[6] = base[0], base[1]
        base[7] = base[1] + max(0, _offset(time.CLOCK_BOOTTIME, time.CLOCK_MONOTONIC))
        tai = _offset(time.CLOCK_TAI, time.CLOCK_REALTIME)
        base[11] = base[0] + round(tai / 10**9) * 10**9
        _calibration = (tsc0, mult, base)
    return _calibration


def now_ns(clk: int) -> int | None:
    """Guest clock ``clk`` in nanoseconds, or None for an unknown clock id."""
    c = TSC_ALIAS.get(clk, clk)
    if read_tsc is not None and c in VDSO_CLOCKS:
        tsc0, mult, base = _calibration or calibrate()
        d = max(0, read_tsc() - tsc0)
        return (base[c] + (d * mult >> SHIFT)) & MASK64
    host = HOST_CLOCKS.get(clk)
    return None if host is None else time.clock_gettime_ns(host)


def vdata() -> bytes | None:
    """What the vDSO's code reads: tsc0, mult, SHIFT, the mask of the clocks
    it serves, then base[0..15]. None without a usable TSC: no vDSO then."""
    if read_tsc is None:
        return None
    tsc0, mult, base = calibrate()
    mask = sum(1 << c for c in VDSO_CLOCKS)
    return struct.pack(f"<QQII{NCLOCKS}Q", tsc0, mult, SHIFT, mask,
                       *[base.get(c, 0) for c in range(NCLOCKS)])
