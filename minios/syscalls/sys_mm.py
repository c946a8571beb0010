"""Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise."""
from __future__ import annotations

from dataclasses import replace

from emu.ram import PAGE_SIZE
from minios.uapi.errno import EACCES, EBADF, EEXIST, EFAULT, EINVAL, ENODEV, ENOMEM
from minios.mm.memory import (break_range, change_protection, move_range, unmap_vmas,
                              valid_user_range)
from minios.mm.teardown import free_uncovered, zap_range
from minios.fs.files import O_ACCMODE, O_WRONLY
from minios.mm.frames import OutOfMemory
from minios.mm.mm_types import (VMA, FileImage, SharedObject, PROT_READ, PROT_WRITE, PROT_EXEC,
                       page_down, page_up)
from minios.mm.pgtable import TASK_SIZE
from minios.syscalls.kinds import (FD, HEX, MADVICE, MMAP_FLAGS, MREMAP_FLAGS, MREMAP_NEW_ADDR,
                                   PROT, PTR, RET_HEX, SIZE)
from minios.syscalls.table import syscall

from minios.uapi.mman import (MADV_DOFORK, MADV_DONTFORK, MADV_DONTNEED, MADV_FREE, MADV_NORMAL,
                              MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MAP_ANONYMOUS,
                              MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_PRIVATE,
                              MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE, MREMAP_FIXED,
                              MREMAP_MAYMOVE, PROT_GROWSDOWN, PROT_GROWSUP)


@syscall(12, "brk", PTR, ret=RET_HEX)
def sys_brk(k, t, addr, *_):
    mm = t.mm
    if addr < mm.start_brk:
        return mm.brk
    old_end, new_end = page_up(mm.brk), page_up(addr)
    if new_end > old_end:
        if mm.overlapping(old_end, new_end) or new_end >= TASK_SIZE:
            return mm.brk
        heap = mm.vma_at(old_end - 1) if old_end > mm.start_brk else None
        if heap is not None and heap.name == "[heap]" and heap.prot == PROT_READ | PROT_WRITE:
            heap.end = new_end
        else:
            mm.insert_vma(VMA(old_end, new_end, PROT_READ | PROT_WRITE, name="[heap]"))
    elif new_end < old_end:
        unmap_vmas(mm, new_end, old_end)
    mm.brk = addr
    return addr


def _prot_ok(prot: int) -> bool:
    return not prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP)


@syscall(9, "mmap", PTR, SIZE, PROT, MMAP_FLAGS, FD, HEX, ret=RET_HEX)
def sys_mmap(k, t, addr, length, prot, flags, fd, off):
    mm = t.mm
    fd = fd if fd < (1 << 63) else fd - (1 << 64)
    typ = flags & MAP_TYPE
    if length == 0 or off & (PAGE_SIZE - 1) or typ not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        return -EINVAL
    length = page_up(length)
    if length == 0 or length > TASK_SIZE:
        return -ENOMEM
    prot &= 7
    if not flags & MAP_ANONYMOUS:
        try:
            f = t.files.get(fd)
        except OSError:
            return -EBADF
        data = f.data
        if data is None:
            return -EACCES if f.kind != "host" else -ENODEV
        if f.flags & O_ACCMODE == O_WRONLY:
            return -EACCES
        if typ != MAP_PRIVATE and prot & PROT_WRITE:
            return -EACCES        # writes through MAP_SHARED are not kept
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr & (PAGE_SIZE - 1):
            return -EINVAL
        if not valid_user_range(addr, length):
            return -ENOMEM
        if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED and mm.overlapping(addr, addr + length):
            return -EEXIST
        unmap_vmas(mm, addr, addr + length)
        start = addr
    else:
        hint = page_down(addr) if addr and valid_user_range(page_down(addr), length) else 0
        start = mm.get_unmapped_area(length, hint)
        if start is None:
            return -ENOMEM
    vma = VMA(start, start + length, prot, grows_down=bool(flags & MAP_GROWSDOWN))
    if not flags & MAP_ANONYMOUS:
        vma.image = FileImage(data, off, start + max(0, min(length, len(data) - off)),
                              f.path, sigbus_past_end=True)
        vma.name = f.path
        vma.shared = typ != MAP_PRIVATE
    elif typ != MAP_PRIVATE:
        vma.shared = True
        vma.shm = SharedObject(users=1)
    mm.insert_vma(vma)
    mm.merge_vmas()
    return start


@syscall(11, "munmap", PTR, SIZE)
def sys_munmap(k, t, addr, length, *_):
    if addr & (PAGE_SIZE - 1) or length == 0:
        return -EINVAL
    length = page_up(length)
    if not valid_user_range(addr, length):
        return -EINVAL
    unmap_vmas(t.mm, addr, addr + length)
    return 0


@syscall(10, "mprotect", PTR, SIZE, PROT)
def sys_mprotect(k, t, addr, length, prot, *_):
    mm = t.mm
    if addr & (PAGE_SIZE - 1) or not _prot_ok(prot):
        return -EINVAL
    length = page_up(length)
    if length == 0:
        return 0
    end = addr + length
    if not valid_user_range(addr, length):
        return -ENOMEM
    # As Linux: the VMAs before the first hole change, then ENOMEM.
    err, pos = 0, addr
    for v in mm.overlapping(addr, end):
        if v.start > pos:
            break
        pos = v.end
    if pos < end:
        err, end = -ENOMEM, pos
    if end <= addr:
        return err
    prot &= 7
    for v in mm.overlapping(addr, end):
        if v.image is not None and v.shared and prot & PROT_WRITE:
            return -EACCES
    break_range(mm, addr, end)          # may fail: nothing changed yet
    mm.split_at(addr)
    mm.split_at(end)
    for v in mm.overlapping(addr, end):
        v.prot = prot
        change_protection(mm, v, v.start, v.end)
    mm.merge_vmas()
    return err


# Advice that only hints (accepted, nothing to do here), and all minios takes.
_MADV_HINTS = frozenset((MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, 9, 12, 13, 14,
                         15))
_MADV_VALID = _MADV_HINTS | {MADV_DONTNEED, MADV_FREE, MADV_DONTFORK, MADV_DOFORK}


@syscall(28, "madvise", PTR, SIZE, MADVICE)
def sys_madvise(k, t, addr, length, advice, *_):
    mm = t.mm
    if advice not in _MADV_VALID:                  # Linux's order: the advice first
        return -EINVAL
    if addr & (PAGE_SIZE - 1):
        return -EINVAL
    # PAGE_ALIGN in 64 bits: a length that rounds up past 2^64 wraps to
    # zero, and an end past 2^64 wraps below the start; both are EINVAL
    # (never a range reaching the top of the address space).
    aligned = page_up(length) & 0xFFFF_FFFF_FFFF_FFFF
    if length and not aligned:
        return -EINVAL
    end = addr + aligned
    if end > 0xFFFF_FFFF_FFFF_FFFF:
        return -EINVAL
    if end == addr:
        return 0
    if advice in _MADV_HINTS:
        return 0 if mm.is_mapped(addr, end) else -ENOMEM
    # As Linux: the advice applies to every mapped part; a hole means ENOMEM.
    err = 0 if mm.is_mapped(addr, end) else -ENOMEM
    parts = [(max(v.start, addr), min(v.end, end)) for v in mm.overlapping(addr, end)]
    if advice in (MADV_DONTNEED, MADV_FREE):
        # Private pages read back as zero (or the file); shared ones keep data.
        for lo, hi in parts:
            zap_range(mm, lo, hi)
        return err
    for lo, hi in parts:
        mm.split_at(lo)
        mm.split_at(hi)
    for v in mm.overlapping(addr, end):
        v.dontfork = advice == MADV_DONTFORK
    mm.merge_vmas()
    return err


@syscall(25, "mremap", PTR, SIZE, SIZE, MREMAP_FLAGS, MREMAP_NEW_ADDR, ret=RET_HEX)
def sys_mremap(k, t, old, old_len, new_len, flags, new_addr, *_):
    r = _mremap(t.mm, old, old_len, new_len, flags, new_addr)
    t.mm.merge_vmas()
    return r


def _mremap(mm, old, old_len, new_len, flags, new_addr):
    """Linux 6.18's order (checked against it by userland/mm_fuzz):
    parameters (EINVAL), then the VMA at ``old`` (EFAULT); a call that
    maps anything new (MREMAP_FIXED, growth) needs all of [old, old +
    old_len) in that VMA before anything is unmapped. A shrink then unmaps the tail
    (holes and other VMAs included); MREMAP_FIXED moves what is left."""
    if old & (PAGE_SIZE - 1) or flags & ~7 or new_len == 0:
        return -EINVAL
    if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
        return -EINVAL
    old_len, new_len = page_up(old_len), page_up(new_len)
    if flags & MREMAP_FIXED:
        if new_addr & (PAGE_SIZE - 1) or not valid_user_range(new_addr, new_len):
            return -EINVAL
        if new_addr < old + old_len and old < new_addr + new_len:
            return -EINVAL                    # source and target overlap
    vma = mm.vma_at(old)
    if vma is None:
        return -EFAULT
    if flags & MREMAP_FIXED or new_len > old_len:
        if old + min(old_len, new_len) > vma.end:
            return -EFAULT                    # across VMA boundaries (what is kept)
        if old_len == 0:
            return -EINVAL                    # duplicating a shared mapping: unsupported
    if flags & MREMAP_FIXED:
        unmap_vmas(mm, new_addr, new_addr + new_len)
        if new_len < old_len:                 # shrink first, then move what is left
            unmap_vmas(mm, old + new_len, old + old_len)
            old_len = new_len
        return _move(mm, old, old_len, new_len, new_addr)
    if new_len <= old_len:
        unmap_vmas(mm, old + new_len, old + old_len)
        return old
    # Grow in place when the space after is free and this is the VMA's end.
    if old + old_len == vma.end and not mm.overlapping(vma.end, old + new_len) \
            and valid_user_range(old, new_len):
        vma.end = old + new_len
        return old
    if not flags & MREMAP_MAYMOVE:
        return -ENOMEM
    dest = mm.get_unmapped_area(new_len)
    if dest is None:
        return -ENOMEM
    return _move(mm, old, old_len, new_len, dest)


def _move(mm, old, old_len, new_len, dest):
    mm.split_at(old)
    mm.split_at(old + old_len)
    src = mm.vma_at(old)
    try:
        move_range(mm, old, dest, old_len)
    except OutOfMemory:
        free_uncovered(mm, dest, dest + old_len)   # tables made for the move
        raise
    mm.remove_vma(src)
    src.end = dest + new_len
    if src.image is not None:                # a fork may share the old one
        im = src.image
        src.image = replace(im, end=dest + (im.end - src.start))
    src.start = dest
    mm.insert_vma(src)
    free_uncovered(mm, old, old + old_len)     # the emptied source tables
    return dest
