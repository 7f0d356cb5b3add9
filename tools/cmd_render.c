/* cmd_render.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_render(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'render' is not built yet");
}
