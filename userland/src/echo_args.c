/* echo_args.c - argv/envp passing on the initial stack.
 * Prints argc, each argv[i], and MINIOS_TEST_VAR; exit status = argc. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    if (argv[argc] != NULL)
        printf("argv not NULL-terminated!\n");
    const char *v = getenv("MINIOS_TEST_VAR");
    printf("MINIOS_TEST_VAR=%s\n", v ? v : "(unset)");
    return argc;
}
