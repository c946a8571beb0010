"""Physical frames: who owns each 4 KiB of guest RAM.

Per-frame counters are numpy arrays indexed by frame number, so fork and COW
breaks can raise or lower thousands of counts in one call:

* ``refcount[pfn]``: references to the frame. For a data page, one per PTE
  *table* that maps it (a COW-shared table counts once, like Linux's
  ``page_count``); plus one for a MAP_SHARED object holding it. For a page
  table, the number of upper-level entries that point at it (the share count
  of a COW-shared PTE table).
* ``mapcount[pfn]``: the number of PTE tables mapping a data page (Linux's
  ``page_mapcount``); AnonPages counts frames with a nonzero mapcount.
* ``kind[pfn]``: FREE, DATA, TABLE or RESERVED, for accounting and the checker.

The page cache lives here too: frames filled from an executable's or a
mapped file's bytes, shared read-only by every private mapping of them (see
``fault.do_fault``). It holds no reference: a cached frame leaves the cache
when its last mapping goes, so memory still returns to its boot value.

A frame that held translated code (``had_code``) is never refilled by the
host without ``on_code_reuse`` (the CPU's translation flush) first: Unicorn
keys translations by physical page and cannot see host writes. Such frames
wait on their own free list, used only when every other frame is taken, so
one flush recycles all of them (a shell running commands frees code pages
all the time; flushing each time would retranslate the shell too).

Frames never handed out are still zero (the host mmap is fresh), so only
recycled frames are cleared on allocation.
"""
from __future__ import annotations

import numpy as np

FREE, DATA, TABLE, RESERVED = 0, 1, 2, 3
# ufunc.at with a Python int takes a slow path (~20x); a 0-d array costs
# a ufunc less than a numpy scalar.
ONE = np.array(1, dtype=np.int32)
_ZERO = np.array(0, dtype=np.int32)


class OutOfMemory(Exception):
    """No free frame left."""


class FrameAllocator:
    def __init__(self, ram, reserved: int) -> None:
        self.ram = ram
        self.nframes = ram.nframes
        self.refcount = np.zeros(self.nframes, dtype=np.int32)
        self.mapcount = np.zeros(self.nframes, dtype=np.int32)
        self.kind = np.zeros(self.nframes, dtype=np.uint8)
        self.file = np.zeros(self.nframes, dtype=bool)     # filled from a file (Mapped)
        self.had_code = np.zeros(self.nframes, dtype=bool)  # mapped executable since filled
        self.cached = np.zeros(self.nframes, dtype=bool)    # in the page cache
        self.cache: dict[tuple, int] = {}        # (bytes id, offset, length) -> frame
        self._cache_key: dict[int, tuple] = {}   # frame -> its key
        self.on_code_reuse = lambda: None
        # Scalar views of the same arrays: indexing a memoryview costs a
        # fraction of a numpy scalar access, and faults and fork do many.
        self.refcount_at = memoryview(self.refcount)
        self.mapcount_at = memoryview(self.mapcount)
        self.kind_at = memoryview(self.kind)
        self.cached_at = memoryview(self.cached)
        self.file_at = memoryview(self.file)
        self.had_code_at = memoryview(self.had_code)
        self.kind[:reserved] = RESERVED
        self.reserved = reserved
        self._next = reserved            # frames above this were never used
        self._free: list[int] = []       # recycled frames (dirty)
        self._free_code: list[int] = []  # recycled frames that held code
        self.nr_free = self.nframes - reserved
        self.nr_tables = 0
        self.limit: int | None = None    # test hook: fail after this many allocs

    def alloc(self, kind: int = DATA, zero: bool = True) -> int:
        """One frame with refcount 1, zeroed unless the caller overwrites
        it whole (``zero`` False), or OutOfMemory."""
        if self.limit is not None:
            if self.limit <= 0:
                raise OutOfMemory
            self.limit -= 1
        if self._free:
            pfn = self._free.pop()
            if zero:
                self.ram.zero_frame(pfn)
        elif self._next < self.nframes:
            pfn = self._next
            self._next += 1
        elif self._free_code:
            self.on_code_reuse()
            self.had_code[self._free_code] = False
            self._free, self._free_code = self._free_code, self._free
            pfn = self._free.pop()
            if zero:
                self.ram.zero_frame(pfn)
        else:
            raise OutOfMemory
        self.nr_free -= 1
        self.refcount_at[pfn] = 1
        self.kind_at[pfn] = kind
        if kind == TABLE:
            self.nr_tables += 1
        return pfn

    def alloc_tables(self, n: int, zero: bool = True) -> np.ndarray:
        """``n`` table frames with refcount 1 (int64), zeroed unless the
        caller overwrites them whole (``zero`` False), in a few bulk steps
        (fork needs hundreds at once), or OutOfMemory with none taken."""
        if self.limit is not None or n > len(self._free) + self.nframes - self._next:
            got: list[int] = []      # the frame-by-frame path, rolled back on failure
            try:
                for _ in range(n):
                    got.append(self.alloc(TABLE))
            except OutOfMemory:
                for f in got:
                    self.free(f)
                raise
            return np.array(got, dtype=np.int64)
        take = min(n, len(self._free))
        got = self._free[len(self._free) - take:]
        del self._free[len(self._free) - take:]
        got.extend(range(self._next, self._next + n - take))
        self._next += n - take
        a = np.array(got, dtype=np.int64)
        if take and zero:
            self.ram.t[a[:take]] = 0             # recycled frames are dirty
        self.refcount[a] = 1
        self.kind[a] = TABLE
        self.nr_free -= n
        self.nr_tables += n
        return a

    def cache_add(self, pfn: int, key: tuple) -> None:
        self.cache[key] = pfn
        self._cache_key[pfn] = key
        self.cached_at[pfn] = True

    def uncache(self, pfn: int) -> None:
        """``pfn`` stops being the cached copy (freed, or made private)."""
        del self.cache[self._cache_key.pop(pfn)]
        self.cached_at[pfn] = False

    def free(self, pfn: int) -> None:
        if self.cached_at[pfn]:
            self.uncache(pfn)
        if self.kind_at[pfn] == TABLE:
            self.nr_tables -= 1
        self.kind_at[pfn] = FREE
        self.refcount_at[pfn] = 0
        self.mapcount_at[pfn] = 0
        self.file_at[pfn] = False
        (self._free_code if self.had_code_at[pfn] else self._free).append(pfn)
        self.nr_free += 1

    def put(self, pfn: int) -> None:
        """Drop one reference; free the frame at zero."""
        rc = self.refcount_at
        rc[pfn] -= 1
        if rc[pfn] == 0:
            self.free(pfn)

    def free_tables(self, pfns: list[int]) -> None:
        """Free page-table frames no entry points at any more (refcount 1).
        A table is never cached, mapped or executed, so only two counters
        change."""
        if not pfns:
            return
        if len(pfns) <= 8:               # a small process's: scalar stores beat np.array
            rc, kind = self.refcount_at, self.kind_at
            for f in pfns:
                rc[f] = 0
                kind[f] = FREE
            self.nr_tables -= len(pfns)
            self.nr_free += len(pfns)
            self._free.extend(pfns)
            return
        a = np.array(pfns, dtype=np.int64)
        self.refcount[a] = 0
        self.kind[a] = FREE
        self.nr_tables -= len(pfns)
        self.nr_free += len(pfns)
        self._free.extend(pfns)

    def put_many(self, pfns: np.ndarray) -> None:
        """Drop one reference per entry of ``pfns`` (repeats allowed)."""
        if len(pfns) <= 16:          # numpy's fixed cost exceeds a short loop
            for f in pfns.tolist():
                self.put(f)
            return
        np.subtract.at(self.refcount, pfns, ONE)
        dead = pfns[self.refcount[pfns] == _ZERO]
        if len(dead) <= 8:               # few freed (a fork child's exit): frame by frame
            if len(dead):
                for f in dict.fromkeys(dead.tolist()):
                    self.free(f)
            return
        if len(dead) > 1:
            dead = np.array(list(dict.fromkeys(dead.tolist())), dtype=np.int64) \
                if len(dead) < 256 else np.unique(dead)
        if len(dead):
            if (self.kind[dead] == TABLE).any():
                self.nr_tables -= int((self.kind[dead] == TABLE).sum())
            if self._cache_key:
                for f in dead[self.cached[dead]].tolist():
                    self.uncache(f)
            self.kind[dead] = FREE
            self.mapcount[dead] = 0
            self.file[dead] = False
            code = self.had_code[dead]
            self._free.extend(dead[~code].tolist())
            self._free_code.extend(dead[code].tolist())
            self.nr_free += len(dead)

    @property
    def nr_anon(self) -> int:
        return int(np.count_nonzero((self.mapcount > 0) & ~self.file))

    @property
    def nr_mapped(self) -> int:
        return int(np.count_nonzero((self.mapcount > 0) & self.file))
