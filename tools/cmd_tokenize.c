/*
 * cmd_tokenize.c - `herd tokenize` and `herd detokenize` (docs/design.md, command-line contract).
 *
 *   herd tokenize (-m MODEL | --tokenizer FILE) [--bos] [--parse-special]
 *       stdin: one JSON string per line; stdout: one JSON array of ids per line.
 *   herd detokenize (-m MODEL | --tokenizer FILE)
 *       stdin: one JSON array of ids per line; stdout: one JSON string per line.
 *
 * MODEL or FILE is a tokenizer.json, a Meta tokenizer.model, a GGUF file or a Hugging Face
 * folder (its tokenizer.json); only the tokenizer is read, never the weights. Strings are
 * decoded here (not with cJSON) so that "\u0000" survives. Decoded text that is not valid
 * UTF-8 (ids that split a character) is written with U+FFFD for each invalid part, as the
 * streaming decoder does, so stdout is always valid JSON. Blank input lines are skipped.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tok_opts {
    const char *path;
    int bos, parse_special;
};

static const char tokenize_usage[] =
    "usage: herd tokenize (-m MODEL | --tokenizer FILE) [--bos] [--parse-special]\n"
    "stdin: one JSON string per line; stdout: one JSON array of ids per line.\n"
    "  -m, --tokenizer F tokenizer.json, tokenizer.model, a GGUF file or a model folder\n"
    "  --bos             <|begin_of_text|> first\n"
    "  --parse-special   special-token text becomes its id (default: plain text)\n";
static const char detokenize_usage[] =
    "usage: herd detokenize (-m MODEL | --tokenizer FILE)\n"
    "stdin: one JSON array of ids per line; stdout: one JSON string per line.\n"
    "  -m, --tokenizer F tokenizer.json, tokenizer.model, a GGUF file or a model folder\n";

/* 0: parsed; 1: failed (printed); 2: help printed (exit 0). */
static int parse_opts(int argc, char **argv, int allow_encode_flags, struct tok_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            cli_help(allow_encode_flags ? tokenize_usage : detokenize_usage);
            return 2;
        }
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0 || strcmp(a, "--tokenizer") == 0) {
            if (cli_value(argc, argv, &i, &o->path))
                return 1;
        } else if (allow_encode_flags && strcmp(a, "--bos") == 0) {
            o->bos = 1;
        } else if (allow_encode_flags && strcmp(a, "--parse-special") == 0) {
            o->parse_special = 1;
        } else {
            return cli_fail("%s: unknown option '%s'", argv[0], a);
        }
    }
    if (!o->path)
        return cli_fail("%s: needs -m MODEL or --tokenizer FILE", argv[0]);
    return 0;
}

/* A whole stdin line (without the newline, NUL-terminated) into *line; returns its length
 * or -1 at EOF. */
static long read_line(char **line, size_t *cap)
{
    size_t n = 0;
    int c;
    for (;;) {
        if (n + 1 >= *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *nl = realloc(*line, nc);
            if (!nl)
                return -1;
            *line = nl;
            *cap = nc;
        }
        c = getchar();
        if (c == EOF || c == '\n')
            break;
        (*line)[n++] = (char)c;
    }
    if (c == EOF && n == 0)
        return -1;
    if (n && (*line)[n - 1] == '\r')
        n--;
    (*line)[n] = '\0';
    return (long)n;
}

static void put_utf8(char *o, size_t *k, unsigned cp)
{
    if (cp < 0x80) {
        o[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*k)++] = (char)(0xC0 | (cp >> 6));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (cp >> 12));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (cp >> 18));
        o[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

/* Decodes the JSON string that is the whole of s[0..n) in place; returns its byte length
 * or -1. A lone surrogate escape becomes U+FFFD. */
static long json_string(char *s, size_t n)
{
    size_t i = 0, k = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n - i < 2 || s[i] != '"' || s[n - 1] != '"')
        return -1;
    i++;
    n--;
    while (i < n) {
        char c = s[i++];
        if (c == '"' || (unsigned char)c < 0x20)
            return -1;
        if (c != '\\') {
            s[k++] = c;
            continue;
        }
        if (i >= n)
            return -1;
        c = s[i++];
        unsigned cp, lo;
        switch (c) {
        case 'n': s[k++] = '\n'; break;
        case 't': s[k++] = '\t'; break;
        case 'r': s[k++] = '\r'; break;
        case 'b': s[k++] = '\b'; break;
        case 'f': s[k++] = '\f'; break;
        case '"': case '\\': case '/': s[k++] = c; break;
        case 'u':
            if (n - i < 4 || hex4(s + i, &cp))
                return -1;
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u' &&
                !hex4(s + i + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            put_utf8(s, &k, cp); /* never longer than the 6-char escape it replaces */
            break;
        default:
            return -1;
        }
    }
    return (long)k;
}

int cmd_tokenize(int argc, char **argv)
{
    struct tok_opts o;
    int r = parse_opts(argc, argv, 1, &o);
    if (r)
        return r == 2 ? 0 : 1;
    herd_tokenizer *tok = NULL;
    herd_status s = herd_tokenizer_load(o.path, &tok);
    if (s)
        return cli_fail_status(s);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    long n;
    int rc = 0;
    while ((n = read_line(&line, &cap)) >= 0) {
        lineno++;
        long len = json_string(line, (size_t)n);
        if (len < 0) {
            if (strspn(line, " \t") == (size_t)n)
                continue;
            rc = cli_fail("tokenize: stdin line %zu is not one JSON string", lineno);
            break;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        s = herd_tokenize(tok, line, (size_t)len, o.bos, o.parse_special, &ids, &n_ids);
        if (s) {
            rc = cli_fail_status(s);
            break;
        }
        putchar('[');
        for (size_t i = 0; i < n_ids; i++)
            printf(i ? ", %d" : "%d", (int)ids[i]);
        fputs("]\n", stdout);
        herd_free(ids);
    }
    free(line);
    herd_tokenizer_free(tok);
    if (!rc && fflush(stdout))
        rc = cli_fail("tokenize: write error");
    return rc;
}

/* Writes text as a JSON string (text is valid UTF-8 here). */
static void put_json_string(const char *t, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c < 0x20 || c == 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    fputs("\"\n", stdout);
}

/* Parses "[1, 2, 3]" into ids (grown with realloc); returns 0 on success. */
static int parse_id_array(const char *s, int32_t n_vocab, int32_t **ids, size_t *n, size_t *cap)
{
    *n = 0;
    s += strspn(s, " \t");
    if (*s++ != '[')
        return -1;
    s += strspn(s, " \t");
    if (*s == ']')
        return s[1 + strspn(s + 1, " \t")] ? -1 : 0;
    for (;;) {
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v >= n_vocab)
            return -1;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            int32_t *nv = realloc(*ids, nc * sizeof(int32_t));
            if (!nv)
                return -1;
            *ids = nv;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end + strspn(end, " \t");
        if (*s == ',') {
            s++;
            s += strspn(s, " \t");
            continue;
        }
        if (*s == ']')
            return s[1 + strspn(s + 1, " \t")] ? -1 : 0;
        return -1;
    }
}

int cmd_detokenize(int argc, char **argv)
{
    struct tok_opts o;
    int r = parse_opts(argc, argv, 0, &o);
    if (r)
        return r == 2 ? 0 : 1;
    herd_tokenizer *tok = NULL;
    herd_status s = herd_tokenizer_load(o.path, &tok);
    if (s)
        return cli_fail_status(s);
    char *line = NULL, *text = NULL;
    size_t cap = 0, lineno = 0, id_cap = 0, text_cap = 0;
    int32_t *ids = NULL;
    long n;
    int rc = 0;
    char chunk[4096]; /* > 3 * (longest token + 3): the stream's worst case per id */
    while ((n = read_line(&line, &cap)) >= 0) {
        lineno++;
        size_t n_ids = 0;
        if (strspn(line, " \t") == (size_t)n)
            continue;
        if (parse_id_array(line, herd_tokenizer_n_vocab(tok), &ids, &n_ids, &id_cap)) {
            rc = cli_fail("detokenize: stdin line %zu is not a JSON array of ids below %d",
                          lineno, herd_tokenizer_n_vocab(tok));
            break;
        }
        herd_detok_stream *st = NULL;
        if ((s = herd_detok_stream_new(tok, &st))) {
            rc = cli_fail_status(s);
            break;
        }
        size_t len = 0;
        for (size_t i = 0; i <= n_ids && !rc; i++) {
            size_t k = 0;
            s = herd_detok_stream_push(st, i < n_ids ? ids[i] : -1, chunk, sizeof(chunk), &k);
            if (s) {
                rc = cli_fail_status(s);
                break;
            }
            if (len + k > text_cap) {
                size_t nc = (len + k) * 2 + 256;
                char *nt = realloc(text, nc);
                if (!nt) {
                    rc = cli_fail("detokenize: out of memory");
                    break;
                }
                text = nt;
                text_cap = nc;
            }
            if (k)
                memcpy(text + len, chunk, k);
            len += k;
        }
        herd_detok_stream_free(st);
        if (rc)
            break;
        put_json_string(text, len);
    }
    free(line);
    free(text);
    free(ids);
    herd_tokenizer_free(tok);
    if (!rc && fflush(stdout))
        rc = cli_fail("detokenize: write error");
    return rc;
}
