/* cmd_quantize.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_quantize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'quantize' is not built yet");
}
