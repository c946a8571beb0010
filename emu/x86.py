"""The x86-64 formats the hardware defines: page-table entries, selectors,
exception vectors and page-fault error codes (Intel SDM vol. 3, ch. 4-6)."""

# Page-table entry bits, identical at every level (PS only above the PTE).
P = 1 << 0        # present
RW = 1 << 1       # writable
US = 1 << 2       # user-accessible
PWT = 1 << 3
PCD = 1 << 4
A = 1 << 5        # accessed (set by the CPU)
D = 1 << 6        # dirty (set by the CPU, last level only)
PS = 1 << 7       # large page (PMD/PUD level)
G = 1 << 8        # global
SW1 = 1 << 9      # bits 9-11 are ignored by the CPU: free for the OS
SW2 = 1 << 10
SW3 = 1 << 11
NX = 1 << 63      # no-execute (needs EFER.NXE)
ADDR_MASK = 0x000F_FFFF_FFFF_F000

# Segment selectors of the GDT the CPU boots with (the same as Linux).
KERNEL_CS = 0x08
KERNEL_DS = 0x10
USER32_CS = 0x23
USER_DS = 0x2B
USER_CS = 0x33

# Exception vectors delivered to the kernel's trap handler.
DE, DB, NMI, BP, OF, BR, UD, NM, DF = 0, 1, 2, 3, 4, 5, 6, 7, 8
TS, NP, SS, GP, PF, MF, AC, XM = 10, 11, 12, 13, 14, 16, 17, 19
VECTOR_NAMES = {DE: "#DE", DB: "#DB", BP: "#BP", OF: "#OF", BR: "#BR",
                UD: "#UD", NM: "#NM", DF: "#DF", TS: "#TS", NP: "#NP",
                SS: "#SS", GP: "#GP", PF: "#PF", MF: "#MF", AC: "#AC",
                XM: "#XM"}

# Page-fault error code bits.
PF_P = 1      # the page was present (protection violation)
PF_W = 2      # write access
PF_U = 4      # user mode
PF_RSVD = 8   # reserved bit set in an entry
PF_I = 16     # instruction fetch

# Control register bits.
CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 31
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 5, 1 << 9, 1 << 10
EFER_MSR, EFER_SCE, EFER_NXE = 0xC0000080, 1, 1 << 11


def pf_reason(code: int) -> str:
    """Decode a page-fault error code the way a kernel log would."""
    what = "fetch" if code & PF_I else ("write" if code & PF_W else "read")
    why = "protection" if code & PF_P else "not-present"
    mode = "user" if code & PF_U else "kernel"
    return f"{mode} {what}, {why}" + (", reserved bit" if code & PF_RSVD else "")
