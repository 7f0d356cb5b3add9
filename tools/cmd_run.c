/* cmd_run.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'run' is not built yet");
}
