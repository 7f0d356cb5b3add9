/*
 * fuzz_main.h - shared by the fuzz targets (docs/internals/fuzzing.md).
 *
 * Built without libFuzzer (the default), main() replays every file of the corpus folders
 * given on the command line, so CI runs each corpus as a regression test (under ASan +
 * UBSan in `make asan`); with -DHERD_LIBFUZZER the fuzzer's own main drives
 * LLVMFuzzerTestOneInput (`make fuzz`).
 *
 * Helpers: parsers that take paths get the input written to a private temporary file or
 * folder first; targets that need a tokenizer share fuzz_tokenizer() (the real Llama 3
 * one when HERD_SHARED_DATA has it, else a tiny generated one); FUZZ_ASSERT aborts on a
 * broken invariant, so the fuzzer reports it like a crash. Helpers are static inline so a
 * target that does not use one compiles without an unused-function warning.
 */
#ifndef HERD_FUZZ_MAIN_H
#define HERD_FUZZ_MAIN_H

#include "herd.h"

#include <dirent.h> /* corpus folders */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* mkdir */
#include <unistd.h>   /* getpid, unlink, rmdir */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Writes data to a per-process temporary file; returns its path (static storage). */
static inline const char *fuzz_tmp_file(const uint8_t *data, size_t size)
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

/* A per-process temporary folder holding exactly the files names[i] with len[i] bytes of
 * data[i] (data[i] NULL: no such file); returns its path (static storage). */
static inline const char *fuzz_tmp_dir(int n, const char *const *names, const uint8_t *const *data,
                                const size_t *len)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/herd_fuzz_dir_%ld", (long)getpid());
    mkdir(dir, 0700);
    for (int i = 0; i < n; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
        if (!data[i])
            continue;
        FILE *f = fopen(p, "wb");
        if (!f)
            return NULL;
        size_t w = len[i] ? fwrite(data[i], 1, len[i], f) : 0;
        fclose(f);
        if (w != len[i])
            return NULL;
    }
    return dir;
}

static inline void fuzz_tmp_dir_remove(int n, const char *const *names)
{
    char dir[64], p[128];
    snprintf(dir, sizeof dir, "/tmp/herd_fuzz_dir_%ld", (long)getpid());
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Cuts data at every occurrence of sep into at most max parts; returns the part count.
 * The separator of the multi-file targets is FUZZ_SEP (in their dictionaries). */
#define FUZZ_SEP "\n--herd-fuzz-file--\n"
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len,
                      int max)
{
    const size_t sl = sizeof(FUZZ_SEP) - 1;
    int n = 0;
    size_t at = 0;
    while (n < max) {
        const uint8_t *q = NULL;
        for (size_t i = at; i + sl <= size; i++) {
            if (data[i] == FUZZ_SEP[0] && memcmp(data + i, FUZZ_SEP, sl) == 0) {
                q = data + i;
                break;
            }
        }
        part[n] = data + at;
        if (!q || n == max - 1) {
            len[n++] = size - at;
            break;
        }
        len[n++] = (size_t)(q - data) - at;
        at = (size_t)(q - data) + sl;
    }
    return n;
}

/* Whether s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static inline int fuzz_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!k || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += k;
    }
    return 1;
}

/* Writes a tiktoken file of the 256 single bytes plus a few merges common in chat and JSON
 * text, so rendered prompts exercise BPE; the loader adds Meta's 256 specials after them. */
static inline const char *fuzz_tiny_tiktoken(void)
{
    static const char *merges[] = {"ab", "aba", "  ", "    ", "\n\n", "in", "er", "th", "the",
                                   " the", "\":", "{\"", "\", \"", "na", "name", "ame",
                                   "<|", "|>", "yo", "you", "ou", "al", "all"};
    static char path[64];
    snprintf(path, sizeof path, "/tmp/herd_fuzz_tok_%ld", (long)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int n_merges = (int)(sizeof merges / sizeof merges[0]);
    for (int i = 0; i < 256 + n_merges; i++) {
        unsigned char tok[16];
        size_t len = 1;
        if (i < 256) {
            tok[0] = (unsigned char)i;
        } else {
            len = strlen(merges[i - 256]);
            memcpy(tok, merges[i - 256], len);
        }
        for (size_t j = 0; j < len; j += 3) {
            uint32_t v = (uint32_t)tok[j] << 16;
            if (j + 1 < len)
                v |= (uint32_t)tok[j + 1] << 8;
            if (j + 2 < len)
                v |= tok[j + 2];
            fputc(b64[v >> 18], f);
            fputc(b64[(v >> 12) & 63], f);
            fputc(j + 1 < len ? b64[(v >> 6) & 63] : '=', f);
            fputc(j + 2 < len ? b64[v & 63] : '=', f);
        }
        fprintf(f, " %d\n", i);
    }
    fclose(f);
    return path;
}

/* The fuzzers' tokenizer, loaded once (and deliberately kept: LeakSanitizer sees it
 * reachable). real != 0 asks for Llama 3's tokenizer.model from $HERD_SHARED_DATA/llama3
 * when it is there; otherwise, and for real == 0, the tiny vocabulary above. */
static inline herd_tokenizer *fuzz_tokenizer(int real)
{
    static herd_tokenizer *t[2];
    real = real ? 1 : 0;
    if (t[real])
        return t[real];
    const char *data = getenv("HERD_SHARED_DATA");
    if (real && data) {
        char p[1024];
        snprintf(p, sizeof p, "%s/llama3/tokenizer.model", data);
        if (herd_tokenizer_load(p, &t[real]) == HERD_OK)
            return t[real];
    }
    const char *path = fuzz_tiny_tiktoken();
    if (!path || herd_tokenizer_load(path, &t[real]) != HERD_OK) {
        fprintf(stderr, "fuzz: cannot make the tiny tokenizer: %s\n", herd_last_error());
        abort();
    }
    unlink(path);
    return t[real];
}

#ifndef HERD_LIBFUZZER
static int replay_file(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return 1;
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    /* a heap copy of exactly n bytes, so ASan sees a read past the input as in libFuzzer */
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        return 1;
    memcpy(copy, buf, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
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
