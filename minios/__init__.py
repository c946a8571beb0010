"""minios: a small Linux-compatible kernel for an emulated x86-64 machine.

The public API is :class:`minios.machine.Machine`; the CLI and the pytest
plugin are thin layers over it.
"""
__version__ = "0.1.0"
