/* syscall_r11.c - the syscall instruction leaves RFLAGS in R11 (and the
 * return address in RCX): check R11 after flag-setting compares. */
#include <stdio.h>
static unsigned long r11_after(unsigned long a, unsigned long b) {
    unsigned long r11, rax = 39;
    __asm__ volatile("cmp %[b], %[a]\n\tsyscall\n\tmov %%r11, %[r]"
                     : [r] "=r"(r11), "+a"(rax) : [a] "r"(a), [b] "r"(b) : "rcx", "r11", "memory", "cc");
    return r11;
}
int main(void) {
    printf("%#lx %#lx %#lx %#lx\n", r11_after(1, 2), r11_after(2, 1), r11_after(5, 5), r11_after(0, 0x8000000000000000UL));
    return 0;
}
