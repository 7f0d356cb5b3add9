/*
 * test_model_bad.c - hyper-parameters the loader must refuse before it sizes anything from
 * them, on the broken models of tests/models/make_bad_models.py (HERD_TEST_BAD; the
 * model_files fixture). Each case must fail with the expected status and a message naming
 * what is wrong, and must not grow the process's peak memory by more than 256 MiB: a
 * head_dim of 2^31 - 2 once made the loader allocate and fill a 4 GiB RoPE table before a
 * tensor shape refused it, and a layer count of 2^31 - 1 sized the layer array before the
 * missing layers were noticed. `herd quantize` reads its input through the same loader, so
 * it refuses the same files. Without the models the test is skipped (exit 77).
 */
#include "check.h"
#include "herd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h> /* getrusage: peak resident memory */
#include <unistd.h>       /* access */

struct bad_case {
    const char *path;   /* under HERD_TEST_BAD */
    herd_status status;
    const char *says;   /* a substring of the message */
};

static const struct bad_case cases[] = {
    /* sizes confirmed by tensors before anything is allocated from them */
    {"gguf_head_dim_huge.gguf", HERD_ERR_FORMAT, "blk.0.attn_q.weight"},
    {"hf_head_dim_huge", HERD_ERR_FORMAT, "q_proj"},
    {"gguf_block_count_huge.gguf", HERD_ERR_FORMAT, "llama.block_count is 2147483647"},
    {"hf_layers_huge", HERD_ERR_FORMAT, "num_hidden_layers is 1000000000"},
    /* typed reads: the wrong type or an out-of-range value, naming the field */
    {"hf_head_dim_wrap", HERD_ERR_FORMAT, "head_dim = 4294967312 is out of range"},
    {"gguf_block_count_bool.gguf", HERD_ERR_FORMAT, "llama.block_count: a bool"},
    {"gguf_rope_theta_inf.gguf", HERD_ERR_FORMAT, "llama.rope.freq_base: inf"},
    {"hf_rope_theta_inf", HERD_ERR_FORMAT, "'rope_theta': inf is not a finite number"},
    {"hf_rope_factor_inf", HERD_ERR_FORMAT, "'rope_scaling.factor': inf is not a finite"},
    {"gguf_rope_freqs_inf.gguf", HERD_ERR_FORMAT, "rope_freqs.weight: divisor 3 is inf"},
    {"hf_bos_huge", HERD_ERR_FORMAT, "bos_token_id = 1000000000000000 is out of range"},
    /* every tokenizer id needs an embedding row */
    {"gguf_tokenizer_long.gguf", HERD_ERR_FORMAT, "tokenizer has 384 ids but the embedding "
                                                  "only 380 rows"},
    {"hf_tokenizer_long", HERD_ERR_FORMAT, "tokenizer has 384 ids but the embedding only 380"},
    /* tensors the architecture table refuses */
    {"gguf_attn_bias.gguf", HERD_ERR_UNSUPPORTED, "blk.0.attn_q.bias: not supported"},
    {"hf_attn_bias", HERD_ERR_UNSUPPORTED, "q_proj.bias: not supported"},
};

static long peak_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *dir = getenv("HERD_TEST_BAD");
    char path[1024], out[1100];
    snprintf(path, sizeof path, "%s/good/model.gguf", dir ? dir : "");
    if (!dir || access(path, F_OK) != 0) {
        printf("skipping: no bad models (HERD_TEST_BAD, made by "
               "tests/models/make_bad_models.py)\n");
        return 77;
    }
    herd_model_params mp = {.n_threads = 1};
    herd_model *m = NULL;
    CHECK_MSG(herd_model_load(path, &mp, &m) == HERD_OK, "the good model: %s",
              herd_last_error());
    herd_model_free(m);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        snprintf(path, sizeof path, "%s/%s", dir, c->path);
        long before = peak_kb();
        m = (herd_model *)1;
        herd_status s = herd_model_load(path, &mp, &m);
        long grew = peak_kb() - before;
        const char *msg = herd_last_error();
        CHECK_MSG(s == c->status && m == NULL, "%s: status %d (%s), want %d", c->path, (int)s,
                  msg, (int)c->status);
        CHECK_MSG(strstr(msg, c->says) != NULL, "%s: '%s' does not say '%s'", c->path, msg,
                  c->says);
        CHECK_MSG(strchr(msg, '\n') == NULL, "%s: more than one line", c->path);
        CHECK_MSG(grew < 256 * 1024, "%s: peak memory grew by %ld MiB", c->path, grew / 1024);
        if (s == HERD_OK)
            herd_model_free(m);
        /* quantize reads through the loader: the same refusal, no output */
        snprintf(out, sizeof out, "%s/%s.q8_0.gguf", dir, c->path);
        herd_quantize_params qp = {HERD_FTYPE_Q8_0, 1, NULL, NULL};
        s = herd_quantize(path, out, &qp);
        CHECK_MSG(s == c->status && strstr(herd_last_error(), c->says) != NULL,
                  "quantize %s: %s", c->path, herd_last_error());
        CHECK(access(out, F_OK) != 0);
    }
    return check_done();
}
