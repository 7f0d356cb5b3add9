/*
 * hub.h - models by name from the Hugging Face hub (herd pull, -m hf://ORG/REPO[:FILE]).
 *
 * Not part of libherd: the library reads local files only, and this module (libcurl) is
 * linked into the herd command alone. It speaks the hub's public HTTP interface:
 *   GET {endpoint}/api/models/{repo}/revision/main?blobs=true   commit sha and the files
 *       (siblings: rfilename, size, blobId, lfs.sha256)
 *   GET {endpoint}/{repo}/resolve/{commit}/{file}   the bytes (usually a redirect to a CDN;
 *       Range requests resume a partial download)
 * and stores files in the Hugging Face cache layout that huggingface_hub uses, so files
 * other tools downloaded are reused and the other way round:
 *   {cache}/models--{org}--{name}/blobs/{sha256 or git blob id}
 *   {cache}/models--{org}--{name}/snapshots/{commit}/{file} -> ../../blobs/{id}
 *   {cache}/models--{org}--{name}/refs/main = {commit}
 * cache = $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. The token is
 * $HF_TOKEN, else the file $HF_HOME/token (~/.cache/huggingface/token); the endpoint
 * $HF_ENDPOINT, else https://huggingface.co.
 *
 * A download goes to blobs/{id}.incomplete and resumes from its length; LFS files are
 * checked against the hub's sha256 before they are renamed into place.
 */
#ifndef HERD_HUB_H
#define HERD_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct hub_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
};

void hub_sha256_init(struct hub_sha256 *s);
void hub_sha256_update(struct hub_sha256 *s, const void *data, size_t n);
/* Finishes and writes the digest as 64 lowercase hex digits and a NUL. */
void hub_sha256_hex(struct hub_sha256 *s, char out[65]);

struct hub_options {
    char endpoint[512]; /* no trailing slash */
    char token[512];    /* "" = none */
    char cache[1024];
    int tty;            /* progress as a redrawn bar (1) or plain lines (0) */
};

/* Options from the environment (see above); tty from isatty(stderr). */
void hub_default_options(struct hub_options *o);

/* Downloads spec, "ORG/REPO" or "ORG/REPO:FILE" (a leading "hf://" is accepted), unless
 * the cache has it. Without FILE: the repo's one .gguf file, or its safetensors folder
 * (config, tokenizer and weight files) when it has no GGUF; several GGUF files are an
 * error listing them. *path (malloc'd) is the file, or the snapshot folder. Progress and
 * notes go to stderr. Returns 0, or -1 with a one-line message in err. */
int hub_pull(const struct hub_options *o, const char *spec, char **path, char *err,
             size_t errcap);

#endif /* HERD_HUB_H */
