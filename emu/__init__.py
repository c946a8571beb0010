"""The hardware of minios: guest-physical RAM and an x86-64 CPU (Unicorn).

Nothing here knows about processes or Linux. The kernel (``minios``) drives
the machine through :class:`emu.cpu.CPU` and :class:`emu.ram.RAM`.
"""
from emu.ram import RAM, PAGE_SIZE
from emu.cpu import CPU, Trap

__all__ = ["RAM", "CPU", "Trap", "PAGE_SIZE"]
