/* cmd_tokenize.c - placeholder until its issue lands. */
#include "cli.h"

int cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'tokenize' is not built yet");
}


int cmd_detokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("'detokenize' is not built yet");
}
