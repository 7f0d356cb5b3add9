/*
 * hub.c - herd pull: the Hugging Face hub's file API over libcurl, into the hub cache
 * layout (hub.h says which URLs and paths). One repo per call; files are fetched one after
 * the other. Errors are one line each and name what to do: a gated repo (401/403) names
 * the page where its licence is accepted and HF_TOKEN, a full disk the bytes missing.
 */
#include "hub/hub.h"

#include <cjson/cJSON.h> /* the api/models answer */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* mkdir, stat */
#include <time.h>     /* progress rate */
#include <unistd.h>   /* isatty, symlink, unlink */

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static void read_first_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (!f)
        return;
    if (!fgets(out, (int)cap, f))
        out[0] = 0;
    fclose(f);
    out[strcspn(out, "\r\n \t")] = 0;
}

void hub_default_options(struct hub_options *o)
{
    memset(o, 0, sizeof *o);
    const char *ep = getenv("HF_ENDPOINT"), *home = getenv("HOME");
    const char *hf_home = getenv("HF_HOME"), *cache = getenv("HF_HUB_CACHE");
    snprintf(o->endpoint, sizeof o->endpoint, "%s", ep && *ep ? ep : "https://huggingface.co");
    size_t n = strlen(o->endpoint);
    while (n > 0 && o->endpoint[n - 1] == '/')
        o->endpoint[--n] = 0;
    char base[900];
    if (hf_home && *hf_home)
        snprintf(base, sizeof base, "%s", hf_home);
    else
        snprintf(base, sizeof base, "%s/.cache/huggingface", home && *home ? home : ".");
    if (cache && *cache)
        snprintf(o->cache, sizeof o->cache, "%s", cache);
    else
        snprintf(o->cache, sizeof o->cache, "%s/hub", base);
    const char *tok = getenv("HF_TOKEN");
    if (tok && *tok) {
        snprintf(o->token, sizeof o->token, "%s", tok);
    } else {
        char path[1100];
        snprintf(path, sizeof path, "%s/token", base);
        read_first_line(path, o->token, sizeof o->token);
    }
    o->tty = isatty(2);
}

/* ---------------------------------------------------------------- HTTP */

struct membuf {
    char *p;
    size_t n;
};

static size_t to_mem(char *data, size_t size, size_t nmemb, void *user)
{
    struct membuf *b = user;
    size_t k = size * nmemb;
    if (b->n + k > (64u << 20))
        return 0; /* an API answer is small; 64 MiB is a runaway */
    char *np = realloc(b->p, b->n + k + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, data, k);
    b->p = np;
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

static struct curl_slist *auth_headers(const struct hub_options *o)
{
    struct curl_slist *h = curl_slist_append(NULL, "User-Agent: herd");
    if (o->token[0]) {
        char line[600];
        snprintf(line, sizeof line, "Authorization: Bearer %s", o->token);
        h = curl_slist_append(h, line);
    }
    return h;
}

/* One line for an HTTP failure of repo (file may be NULL). */
static int http_error(const struct hub_options *o, long code, const char *repo,
                      const char *file, char *err, size_t cap)
{
    if (code == 401 || code == 403)
        return fail(err, cap, "%s: HTTP %ld: the repo is gated or private%s: accept the "
                    "licence at %s/%s, then set HF_TOKEN (or put a token in "
                    "~/.cache/huggingface/token)", repo, code,
                    o->token[0] ? " and this token has no access" : "", o->endpoint, repo);
    if (code == 404)
        return fail(err, cap, "%s%s%s: not found on %s (HTTP 404): check the name%s", repo,
                    file ? ":" : "", file ? file : "", o->endpoint,
                    file ? " of the file" : " (ORG/REPO)");
    return fail(err, cap, "%s%s%s: HTTP %ld from %s", repo, file ? ":" : "", file ? file : "",
                code, o->endpoint);
}

static CURL *new_handle(const char *url, struct curl_slist *h)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled transfer (under 1 byte/s for 60 s) fails instead of hanging forever */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    return c;
}

/* ---------------------------------------------------------------- the repo's files */

struct file {
    char *name;
    int64_t size;
    char id[80];     /* sha256 (LFS) or git blob id: the blob's name */
    int lfs;         /* id is the content's sha256 */
};

struct repo {
    char commit[80];
    struct file *files;
    size_t n;
};

static void repo_free(struct repo *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->files[i].name);
    free(r->files);
    memset(r, 0, sizeof *r);
}

static int safe_name(const char *s)
{
    /* no absolute paths, no "..", nothing a shell or the cache layout would trip on */
    if (!*s || *s == '/' || strstr(s, ".."))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || strchr("._-/+", *s)))
            return 0;
    return 1;
}

static int fetch_info(const struct hub_options *o, const char *repo, struct repo *r, char *err,
                      size_t cap)
{
    char url[1200];
    snprintf(url, sizeof url, "%s/api/models/%s/revision/main?blobs=true", o->endpoint, repo);
    struct curl_slist *h = auth_headers(o);
    struct membuf b = {NULL, 0};
    CURL *c = new_handle(url, h);
    int rc = -1;
    if (!c) {
        rc = fail(err, cap, "%s: cannot start libcurl", repo);
        goto done;
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_mem);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK) {
        rc = fail(err, cap, "%s: %s (%s)", repo, curl_easy_strerror(cc), url);
        goto done;
    }
    if (code != 200) {
        rc = http_error(o, code, repo, NULL, err, cap);
        goto done;
    }
    cJSON *j = cJSON_Parse(b.p ? b.p : "");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
    if (!cJSON_IsString(sha) || strlen(sha->valuestring) >= sizeof r->commit ||
        !safe_name(sha->valuestring) || !cJSON_IsArray(sib)) {
        cJSON_Delete(j);
        rc = fail(err, cap, "%s: the hub's answer has no commit sha or file list (%s)", repo,
                  url);
        goto done;
    }
    snprintf(r->commit, sizeof r->commit, "%s", sha->valuestring);
    size_t n = (size_t)cJSON_GetArraySize(sib);
    r->files = calloc(n ? n : 1, sizeof *r->files);
    const cJSON *it;
    cJSON_ArrayForEach(it, sib) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(it, "size");
        const cJSON *blob = cJSON_GetObjectItemCaseSensitive(it, "blobId");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(it, "lfs");
        const cJSON *l256 = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
        if (!r->files || !cJSON_IsString(name) || !safe_name(name->valuestring))
            continue;
        struct file *f = &r->files[r->n];
        const char *id = cJSON_IsString(l256) ? l256->valuestring
                         : cJSON_IsString(blob) ? blob->valuestring : NULL;
        if (!id || strlen(id) >= sizeof f->id || !safe_name(id))
            continue;
        f->name = strdup(name->valuestring);
        if (!f->name)
            continue;
        snprintf(f->id, sizeof f->id, "%s", id);
        f->lfs = cJSON_IsString(l256);
        f->size = cJSON_IsNumber(size) ? (int64_t)size->valuedouble : -1;
        r->n++;
    }
    cJSON_Delete(j);
    rc = r->files ? 0 : fail(err, cap, "%s: out of memory", repo);
done:
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(b.p);
    return rc;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Marks the files to fetch (want[i] = 1). */
static int choose(const struct repo *r, const char *repo, const char *file, char *want,
                  char *err, size_t cap)
{
    if (file) {
        for (size_t i = 0; i < r->n; i++)
            if (strcmp(r->files[i].name, file) == 0) {
                want[i] = 1;
                return 0;
            }
        return fail(err, cap, "%s:%s: no such file in the repo (HTTP 404 for it)", repo, file);
    }
    size_t n_gguf = 0, n_st = 0;
    for (size_t i = 0; i < r->n; i++) {
        n_gguf += ends_with(r->files[i].name, ".gguf");
        n_st += ends_with(r->files[i].name, ".safetensors");
    }
    if (n_gguf > 1) {
        char list[600] = "";
        size_t at = 0;
        for (size_t i = 0; i < r->n && at + 2 < sizeof list; i++)
            if (ends_with(r->files[i].name, ".gguf"))
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", at ? ", " : "",
                                       r->files[i].name);
        return fail(err, cap, "%s has %zu GGUF files; name one as %s:FILE (%s)", repo, n_gguf,
                    repo, list);
    }
    for (size_t i = 0; i < r->n; i++) {
        const char *nm = r->files[i].name;
        if (n_gguf)
            want[i] = ends_with(nm, ".gguf");
        else
            want[i] = !strchr(nm, '/') &&
                      (ends_with(nm, ".safetensors") || ends_with(nm, ".json") ||
                       strcmp(nm, "tokenizer.model") == 0);
    }
    if (!n_gguf && !n_st)
        return fail(err, cap, "%s has neither a .gguf nor .safetensors files", repo);
    return 0;
}

/* ---------------------------------------------------------------- one download */

struct dl {
    FILE *out;
    struct hub_sha256 sha;
    int64_t have;      /* bytes in the file (resumed part included) */
    int64_t total;     /* expected size, -1 unknown */
    int64_t start;     /* bytes present when this transfer began */
    int write_errno;
    int tty;
    const char *name;
    double t0, last;
    int last_pct;
    long status;       /* the final response's status, checked at its first body bytes */
    CURL *c;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void human(double b, char *out, size_t cap)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) {
        b /= 1000;
        i++;
    }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void progress(struct dl *d, int final)
{
    double t = now_s();
    if (!final && t - d->last < (d->tty ? 0.2 : 0.0))
        return;
    double rate = t > d->t0 ? (double)(d->have - d->start) / (t - d->t0) : 0;
    char have[32], total[32], r[32];
    human((double)d->have, have, sizeof have);
    human(d->total > 0 ? (double)d->total : 0, total, sizeof total);
    human(rate, r, sizeof r);
    int pct = d->total > 0 ? (int)(100.0 * (double)d->have / (double)d->total) : 0;
    if (d->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        double left = rate > 0 && d->total > 0 ? (double)(d->total - d->have) / rate : 0;
        fprintf(stderr, "\r%-24.24s [%s] %3d%% %s / %s  %s/s  %d:%02d left ", d->name, bar,
                pct, have, total, r, (int)left / 60, (int)left % 60);
        if (final)
            fprintf(stderr, "\n");
    } else {
        /* plain lines: one per 25% (and the end), for logs */
        if (!final && pct / 25 == d->last_pct / 25)
            return;
        fprintf(stderr, "herd: pull: %s %d%% (%s of %s, %s/s)\n", d->name, pct, have, total, r);
    }
    d->last = t;
    d->last_pct = pct;
}

static size_t to_file(char *data, size_t size, size_t nmemb, void *user)
{
    struct dl *d = user;
    size_t k = size * nmemb;
    if (!d->status)
        curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &d->status);
    if (d->status != 200 && d->status != 206)
        return k; /* an error page: not written, the status says what happened */
    if (fwrite(data, 1, k, d->out) != k || fflush(d->out) != 0) {
        d->write_errno = errno ? errno : EIO;
        return 0;
    }
    hub_sha256_update(&d->sha, data, k);
    d->have += (int64_t)k;
    progress(d, 0);
    return k;
}

/* Hashes the first n bytes of an open file into s. */
static int hash_prefix(FILE *f, int64_t n, struct hub_sha256 *s)
{
    char buf[1 << 16];
    rewind(f);
    while (n > 0) {
        size_t k = fread(buf, 1, n < (int64_t)sizeof buf ? (size_t)n : sizeof buf, f);
        if (!k)
            return -1;
        hub_sha256_update(s, buf, k);
        n -= (int64_t)k;
    }
    return fseek(f, 0, SEEK_END);
}

static int mkdirs(const char *path)
{
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int download(const struct hub_options *o, const char *repo, const struct repo *r,
                    const struct file *f, const char *blob, char *err, size_t cap)
{
    char part[2200], url[2048];
    snprintf(part, sizeof part, "%s.incomplete", blob);
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", o->endpoint, repo, r->commit, f->name);
    struct stat st;
    int64_t have = stat(part, &st) == 0 ? (int64_t)st.st_size : 0;
    if (f->size >= 0 && have > f->size)
        have = 0; /* longer than the file: not ours, start over */
    struct dl d = {.total = f->size, .tty = o->tty, .name = f->name, .t0 = now_s()};
    hub_sha256_init(&d.sha);
    d.out = fopen(part, have ? "a+b" : "w+b");
    if (!d.out)
        return fail(err, cap, "cannot write %s: %s", part, strerror(errno));
    if (have && hash_prefix(d.out, have, &d.sha) != 0) {
        fclose(d.out);
        return fail(err, cap, "cannot read %s to resume it", part);
    }
    d.have = d.start = have;
    d.last_pct = -25;
    if (have)
        fprintf(stderr, "herd: pull: %s: resuming at %lld bytes\n", f->name, (long long)have);
    else if (!o->tty)
        progress(&d, 0);
    struct curl_slist *h = auth_headers(o);
    CURL *c = new_handle(url, h);
    d.c = c;
    char range[64];
    int rc = -1;
    if (!c) {
        rc = fail(err, cap, "cannot start libcurl");
        goto done;
    }
    if (have) {
        snprintf(range, sizeof range, "%lld-", (long long)have);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cc == CURLE_WRITE_ERROR && d.write_errno) {
        char need[32];
        human(f->size >= 0 ? (double)(f->size - d.have) : 0, need, sizeof need);
        rc = fail(err, cap, "writing %s: %s%s: free %s more there (or set HF_HUB_CACHE to a "
                  "bigger disk) and run the same command to resume", part,
                  strerror(d.write_errno),
                  d.write_errno == ENOSPC || d.write_errno == EFBIG ? " (disk full)" : "", need);
        goto done;
    }
    if (code != 200 && code != 206 && code != 0) {
        rc = http_error(o, code, repo, f->name, err, cap);
        goto done;
    }
    if (cc != CURLE_OK) {
        rc = fail(err, cap, "%s:%s: %s after %lld bytes; run the same command to resume", repo,
                  f->name, curl_easy_strerror(cc), (long long)d.have);
        goto done;
    }
    if (have && code == 200) {
        /* the server ignored the range and sent the whole file after our part: restart */
        fclose(d.out);
        d.out = NULL;
        unlink(part);
        curl_easy_cleanup(c);
        c = NULL;
        curl_slist_free_all(h);
        h = NULL;
        return download(o, repo, r, f, blob, err, cap);
    }
    progress(&d, 1);
    if (f->size >= 0 && d.have != f->size) {
        rc = fail(err, cap, "%s:%s: got %lld bytes, the hub says %lld; run the same command to "
                  "resume", repo, f->name, (long long)d.have, (long long)f->size);
        goto done;
    }
    if (f->lfs) {
        char hex[65];
        hub_sha256_hex(&d.sha, hex);
        if (strcmp(hex, f->id) != 0) {
            fclose(d.out);
            d.out = NULL;
            unlink(part);
            rc = fail(err, cap, "%s:%s: sha256 %s, the hub says %s: the download is corrupt "
                      "and was deleted; run the same command to fetch it again", repo, f->name,
                      hex, f->id);
            goto done;
        }
    }
    if (fclose(d.out) != 0) {
        d.out = NULL;
        rc = fail(err, cap, "writing %s: %s", part, strerror(errno));
        goto done;
    }
    d.out = NULL;
    if (rename(part, blob) != 0) {
        rc = fail(err, cap, "cannot rename %s: %s", part, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (d.out)
        fclose(d.out);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return rc;
}

/* snapshots/{commit}/{name} -> ../../blobs/{id} (one more ../ per folder in name). */
static int link_snapshot(const char *dir, const struct repo *r, const struct file *f, char *err,
                         size_t cap)
{
    char snap[2400], target[2400], folder[2400];
    snprintf(snap, sizeof snap, "%s/snapshots/%s/%s", dir, r->commit, f->name);
    snprintf(folder, sizeof folder, "%s", snap);
    *strrchr(folder, '/') = 0;
    if (mkdirs(folder) != 0)
        return fail(err, cap, "cannot create %s: %s", folder, strerror(errno));
    size_t at = (size_t)snprintf(target, sizeof target, "../../");
    for (const char *p = f->name; *p; p++)
        if (*p == '/')
            at += (size_t)snprintf(target + at, sizeof target - at, "../");
    snprintf(target + at, sizeof target - at, "blobs/%s", f->id);
    unlink(snap);
    if (symlink(target, snap) != 0)
        return fail(err, cap, "cannot link %s: %s", snap, strerror(errno));
    return 0;
}

int hub_pull(const struct hub_options *o, const char *spec, char **path, char *err,
             size_t errcap)
{
    *path = NULL;
    if (strncmp(spec, "hf://", 5) == 0)
        spec += 5;
    char repo[256], file[512];
    const char *colon = strchr(spec, ':');
    size_t rn = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *slash = memchr(spec, '/', rn);
    if (rn >= sizeof repo || !slash || memchr(slash + 1, '/', rn - (size_t)(slash + 1 - spec)) ||
        slash == spec || slash + 1 == spec + rn)
        return fail(err, errcap, "'%s': expected ORG/REPO or ORG/REPO:FILE", spec);
    memcpy(repo, spec, rn);
    repo[rn] = 0;
    if (!safe_name(repo) || (colon && (strlen(colon + 1) >= sizeof file ||
                                       !safe_name(colon + 1))))
        return fail(err, errcap, "'%s': expected ORG/REPO or ORG/REPO:FILE", spec);
    if (colon)
        snprintf(file, sizeof file, "%s", colon + 1);
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            return fail(err, errcap, "cannot start libcurl");
        curl_ready = 1;
    }
    struct repo r = {{0}, NULL, 0};
    char *want = NULL;
    int rc = fetch_info(o, repo, &r, err, errcap);
    if (rc)
        goto done;
    want = calloc(r.n ? r.n : 1, 1);
    if (!want || (rc = choose(&r, repo, colon ? file : NULL, want, err, errcap)))
        goto done;
    char dir[1400], blobs[1500], blob[1600], refs[1500];
    /* models--ORG--NAME: the repo's '/' becomes "--" */
    snprintf(dir, sizeof dir, "%s/models--%.*s--%s", o->cache, (int)(slash - spec), repo,
             repo + (slash - spec) + 1);
    snprintf(blobs, sizeof blobs, "%s/blobs", dir);
    snprintf(refs, sizeof refs, "%s/refs", dir);
    if (mkdirs(blobs) != 0 || mkdirs(refs) != 0) {
        rc = fail(err, errcap, "cannot create %s: %s", blobs, strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < r.n; i++) {
        if (!want[i])
            continue;
        const struct file *f = &r.files[i];
        snprintf(blob, sizeof blob, "%s/%s", blobs, f->id);
        struct stat st;
        if (stat(blob, &st) == 0 && (f->size < 0 || (int64_t)st.st_size == f->size)) {
            fprintf(stderr, "herd: pull: %s: in the cache already\n", f->name);
        } else if ((rc = download(o, repo, &r, f, blob, err, errcap))) {
            goto done;
        }
        if ((rc = link_snapshot(dir, &r, f, err, errcap)))
            goto done;
    }
    snprintf(blob, sizeof blob, "%s/main", refs);
    FILE *rf = fopen(blob, "w");
    if (!rf || fputs(r.commit, rf) < 0 || fclose(rf) != 0) {
        rc = fail(err, errcap, "cannot write %s", blob);
        goto done;
    }
    char out[2400];
    size_t n_want = 0, last = 0;
    for (size_t i = 0; i < r.n; i++)
        if (want[i]) {
            n_want++;
            last = i;
        }
    if (n_want == 1 && ends_with(r.files[last].name, ".gguf"))
        snprintf(out, sizeof out, "%s/snapshots/%s/%s", dir, r.commit, r.files[last].name);
    else
        snprintf(out, sizeof out, "%s/snapshots/%s", dir, r.commit);
    *path = strdup(out);
    rc = *path ? 0 : fail(err, errcap, "out of memory");
done:
    free(want);
    repo_free(&r);
    return rc;
}
