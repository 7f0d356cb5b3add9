/* cmd_logits.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_logits(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'logits' is not built yet");
}
