/*
 * fuzz_main.h - shared by the fuzz targets: the parsers take paths, so each input is
 * written to a private temporary file first. Built without libFuzzer (the default), main()
 * replays every file of the corpus folders given on the command line, so CI runs the
 * corpus as a regression test; with -DHERD_LIBFUZZER the fuzzer's own main drives
 * LLVMFuzzerTestOneInput.
 */
#ifndef HERD_FUZZ_MAIN_H
#define HERD_FUZZ_MAIN_H

#include <dirent.h> /* corpus folders */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* getpid, unlink */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to a per-process temporary file; returns its path (static storage). */
static const char *fuzz_tmp_file(const uint8_t *data, size_t size)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/herd_fuzz_%ld", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    return path;
}

#ifndef HERD_LIBFUZZER
static int replay_file(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return 1;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            files += replay_file(argv[i]) == 0;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            files += replay_file(p) == 0;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", files);
    char path[64];
    snprintf(path, sizeof path, "/tmp/herd_fuzz_%ld", (long)getpid());
    unlink(path);
    return files > 0 ? 0 : 1;
}
#endif

#endif /* HERD_FUZZ_MAIN_H */
