"""The host terminal minios runs on, as the guest's terminal.

A guest's terminal requests go to the real terminal (its settings, its
window size), but what the guest's job control decides (the foreground
process group) is the machine's own: two machines in one host process, or
a machine and the shell that started it, must not see each other's. One
``HostTerminal`` per kernel holds that state:

* the foreground process group the guest set with ``TIOCSPGRP``, by
  terminal (the inherited standard streams and ``/dev/tty`` are one);
* the settings a terminal had before the guest first changed them, put
  back when minios exits (a guest killed in raw mode must not leave the
  user's shell in raw mode);
* ``/dev/tty``, opened once, when the guest first opens it.
"""
from __future__ import annotations

import atexit
import fcntl
import os

from minios.uapi.errno import ENXIO
from minios.uapi.ioctls import TCGETS, TCSETSW


class HostTerminal:
    """The guest-visible state of the host's terminal, for one kernel."""

    def __init__(self) -> None:
        self.pgrp: dict = {}                       # terminal key -> foreground pgid
        self.saved: dict = {}                      # terminal key -> (dup'd fd, termios)
        self.dev_tty: int | None = None            # host fd of /dev/tty, once opened

    def open_dev_tty(self) -> int:
        """The host's controlling terminal, opened once; ENXIO without one."""
        if self.dev_tty is None:
            try:
                self.dev_tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError:
                raise OSError(ENXIO, "/dev/tty") from None
        return self.dev_tty

    @staticmethod
    def key(hfd: int):
        """One key for the machine's terminal: the inherited standard streams
        and /dev/tty (a different host device number) are the same tty."""
        if os.isatty(hfd):
            return "tty"
        try:
            s = os.fstat(hfd)
            return (s.st_dev, s.st_ino, s.st_rdev)
        except OSError:
            return hfd

    def foreground_pgrp(self, hfd: int, default: int) -> int:
        """The process group the guest made the foreground of the terminal on
        host fd ``hfd`` (TIOCSPGRP), or ``default``."""
        try:
            return self.pgrp.get(self.key(hfd), default)
        except OSError:
            return default

    def set_foreground_pgrp(self, hfd: int, pgid: int) -> None:
        self.pgrp[self.key(hfd)] = pgid

    def save(self, hfd: int) -> None:
        """Remember a host terminal's settings before the guest first changes
        them, and put them back when minios exits."""
        key = self.key(hfd)
        if key in self.saved:
            return
        try:
            self.saved[key] = (os.dup(hfd), fcntl.ioctl(hfd, TCGETS, bytes(36)))
        except OSError:
            return
        if len(self.saved) == 1:
            atexit.register(self.restore)

    def restore(self) -> None:
        """Put every terminal the guest changed back as it was."""
        for fd, data in self.saved.values():
            try:
                fcntl.ioctl(fd, TCSETSW, data)
            except OSError:
                pass
