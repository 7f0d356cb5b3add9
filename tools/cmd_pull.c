/*
 * cmd_pull.c - herd pull ORG/REPO[:FILE]: downloads a model from the Hugging Face hub into
 * the hub cache (src/hub/hub.h) and prints its local path on stdout; -m hf://ORG/REPO[:FILE]
 * does the same before loading (cli_resolve_model).
 */
#include "cli.h"

#ifdef HERD_HAVE_HUB
#include "hub/hub.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: herd pull ORG/REPO[:FILE]\n"
    "Downloads a model from the Hugging Face hub into its cache (~/.cache/huggingface/hub,\n"
    "shared with other tools) and prints the local path: the repo's GGUF file (name one as\n"
    ":FILE when it has several) or its safetensors folder. Resumes an interrupted download\n"
    "and checks each file's sha256. Use the path with -m, or give -m hf://ORG/REPO[:FILE].\n"
    "Environment: HF_TOKEN (gated repos such as meta-llama/*; else the file\n"
    "~/.cache/huggingface/token), HF_ENDPOINT, HF_HOME, HF_HUB_CACHE.\n";

#ifdef HERD_HAVE_HUB
const char *cli_resolve_model(const char *model)
{
    static char *resolved;
    if (!model || strncmp(model, "hf://", 5) != 0)
        return model;
    struct hub_options o;
    hub_default_options(&o);
    char err[1024];
    free(resolved);
    resolved = NULL;
    if (hub_pull(&o, model, &resolved, err, sizeof err) != 0) {
        cli_fail("%s", err);
        return NULL;
    }
    fprintf(stderr, "herd: %s is %s\n", model, resolved);
    return resolved;
}

int cmd_pull(int argc, char **argv)
{
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return cli_help(usage_text);
        if (argv[i][0] == '-' || spec)
            return cli_fail("pull: unexpected '%s' (usage: herd pull ORG/REPO[:FILE])",
                            argv[i]);
        spec = argv[i];
    }
    if (!spec)
        return cli_fail("pull: which model? usage: herd pull ORG/REPO[:FILE]");
    struct hub_options o;
    hub_default_options(&o);
    char err[1024], *path = NULL;
    if (hub_pull(&o, spec, &path, err, sizeof err) != 0)
        return cli_fail("%s", err);
    printf("%s\n", path);
    free(path);
    return 0;
}
#else
const char *cli_resolve_model(const char *model)
{
    if (model && strncmp(model, "hf://", 5) == 0) {
        cli_fail("%s: this herd was built without libcurl (apt-get install "
                 "libcurl4-openssl-dev, then rebuild)", model);
        return NULL;
    }
    return model;
}

int cmd_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("pull: this herd was built without libcurl (apt-get install "
                    "libcurl4-openssl-dev, then rebuild)");
}
#endif
