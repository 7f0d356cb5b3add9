/* cmd_info.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'info' is not built yet");
}
