/* cmd_serve.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'serve' is not built yet");
}
