/*
 * test_format_st.c - the safetensors reader and the Hugging Face config reader: good files
 * (shape reversal into ne[], "__metadata__" skipped, Llama 3.1 / 3.2 configs with
 * rope_scaling, eos lists, tied embeddings), one bad file per failure class (status plus a
 * message naming the file and field), and the allocation-failure loop.
 */
#include "check.h"
#include "format/format.h"

#include <math.h>   /* fabs */
#include <stdio.h>  /* snprintf, FILE */
#include <stdlib.h> /* mkdtemp */
#include <unistd.h> /* rmdir, unlink */

static char dir[64];
static char path[256];

static void write_bytes(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) {
        printf("FAIL: cannot write %s\n", p);
        check_fail++;
    }
    if (f)
        fclose(f);
}

/* Writes a safetensors file: 8-byte length, the JSON header, then data_len data bytes. */
static void write_st(const char *p, const char *json, size_t data_len)
{
    static uint8_t file[1 << 16];
    uint64_t n = strlen(json);
    memcpy(file, &n, 8);
    memcpy(file + 8, json, n);
    for (size_t i = 0; i < data_len; i++)
        file[8 + n + i] = (uint8_t)i;
    write_bytes(p, file, 8 + n + data_len);
}

static void test_st_good(void)
{
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    write_st(path,
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"w\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,24]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[2,1,2],\"data_offsets\":[40,48]},"
             "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[48,52]}}",
             52);
    struct st_file *f = NULL;
    CHECK(st_open(path, &f) == HERD_OK);
    if (!f) {
        printf("  %s\n", herd_last_error());
        return;
    }
    CHECK(f->n_tensors == 4);
    const struct tensor_info *t = st_find_tensor(f, "w");
    const uint8_t *data0 = f->map.data + 8 + (f->map.data[0] | f->map.data[1] << 8);
    CHECK(t && t->type == HERD_DTYPE_BF16 && t->n_dims == 2 && t->ne[0] == 4 &&
          t->ne[1] == 3 && t->ne[2] == 1 && t->nbytes == 24 && t->data == data0);
    t = st_find_tensor(f, "b");
    CHECK(t && t->type == HERD_DTYPE_F32 && t->n_dims == 1 && t->ne[0] == 4 &&
          t->data == data0 + 24 && ((const uint8_t *)t->data)[0] == 24);
    t = st_find_tensor(f, "h");
    CHECK(t && t->type == HERD_DTYPE_F16 && t->n_dims == 3 && t->ne[0] == 2 && t->ne[1] == 1 &&
          t->ne[2] == 2);
    t = st_find_tensor(f, "s");
    CHECK(t && t->ne[0] == 1 && t->nbytes == 4);
    CHECK(st_find_tensor(f, "__metadata__") == NULL);
    st_close(f);
}

struct st_bad {
    const char *json; /* NULL: raw bytes below */
    size_t data_len;
    herd_status expect;
    const char *msg;
};

static void test_st_bad(void)
{
    static const struct st_bad cases[] = {
        {"{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
         HERD_ERR_UNSUPPORTED, "'w': dtype \"I64\""},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8,
         HERD_ERR_FORMAT, "run past"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         HERD_ERR_FORMAT, "shape needs 12"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
         HERD_ERR_FORMAT, "overlaps"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
         HERD_ERR_FORMAT, "shape[0]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
         HERD_ERR_FORMAT, "shape[0]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, HERD_ERR_FORMAT, "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
         HERD_ERR_FORMAT, "data_offsets"},
        {"{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, HERD_ERR_FORMAT, "dtype"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         HERD_ERR_UNSUPPORTED, "rank 5"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
         HERD_ERR_FORMAT, "duplicate"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
         HERD_ERR_FORMAT, "not valid JSON"},
        {"[1,2]", 0, HERD_ERR_FORMAT, "not a JSON object"},
        {"{\"w\":3}", 0, HERD_ERR_FORMAT, "not a JSON object"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}", 8, HERD_ERR_FORMAT, "overflow"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%02zu.safetensors", dir, i);
        write_st(path, cases[i].json, cases[i].data_len);
        struct st_file *f = (struct st_file *)&path;
        herd_status s = st_open(path, &f);
        const char *e = herd_last_error();
        CHECK_MSG(s == cases[i].expect, "case %zu: status %d (%s)", i, s, e);
        CHECK_MSG(strstr(e, cases[i].msg) && strstr(e, path), "case %zu: '%s' lacks '%s'", i,
                  e, cases[i].msg);
        CHECK(f == NULL);
        unlink(path);
    }
    /* Raw headers: shorter than 8 bytes, length past the end. */
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    struct st_file *f;
    write_bytes(path, "\x10\0\0", 3);
    CHECK(st_open(path, &f) == HERD_ERR_FORMAT && strstr(herd_last_error(), "truncated"));
    uint8_t hdr[12] = {0xff, 0xff, 0xff, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    write_bytes(path, hdr, sizeof hdr);
    CHECK(st_open(path, &f) == HERD_ERR_FORMAT && strstr(herd_last_error(), "header length"));
    write_bytes(path, "", 0);
    CHECK(st_open(path, &f) == HERD_ERR_FORMAT);
    unlink(path);
    CHECK(st_open("/nonexistent.safetensors", &f) == HERD_ERR_IO && f == NULL);
}

/* ---- HF config */

static void write_text(const char *name, const char *text)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_bytes(path, text, strlen(text));
}

static const char *llama31 =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":4096,"
    "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
    "\"intermediate_size\":14336,\"vocab_size\":128256,\"max_position_embeddings\":131072,"
    "\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":8.0,"
    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":"
    "8192,\"rope_type\":\"llama3\"},\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\","
    "\"bos_token_id\":128000,\"eos_token_id\":128001}";

static void test_hf_good(void)
{
    struct hf_config c;
    write_text("config.json", llama31);
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    unlink(path);
    CHECK(hf_config_read(dir, &c) == HERD_OK);
    CHECK(strcmp(c.architecture, "LlamaForCausalLM") == 0 && strcmp(c.model_type, "llama") == 0);
    CHECK(c.hidden_size == 4096 && c.num_hidden_layers == 32 && c.num_attention_heads == 32 &&
          c.num_key_value_heads == 8 && c.intermediate_size == 14336 &&
          c.vocab_size == 128256 && c.max_position_embeddings == 131072 && c.head_dim == 0);
    CHECK(fabs(c.rms_norm_eps - 1e-5) < 1e-12 && c.rope_theta == 500000.0);
    CHECK(c.has_rope_scaling && c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 &&
          c.rope_high_freq_factor == 4.0 && c.rope_original_max_position_embeddings == 8192);
    CHECK(!c.tie_word_embeddings && strcmp(c.torch_dtype, "bfloat16") == 0);
    CHECK(c.bos_token_id == 128000 && c.n_eos == 1 && c.eos_token_ids[0] == 128001);
    CHECK(!c.has_generation && c.temperature < 0 && c.top_p < 0);

    /* 3.2-style: "type" spelling, tied, head_dim, generation_config with an eos list. */
    write_text("config.json",
               "{\"hidden_size\":2048,\"num_hidden_layers\":16,\"num_attention_heads\":32,"
               "\"num_key_value_heads\":8,\"intermediate_size\":8192,\"vocab_size\":128256,"
               "\"head_dim\":64,\"rope_scaling\":{\"type\":\"llama3\",\"factor\":32,"
               "\"low_freq_factor\":1,\"high_freq_factor\":4,"
               "\"original_max_position_embeddings\":8192},\"tie_word_embeddings\":true,"
               "\"eos_token_id\":[128001,128008,128009]}");
    write_text("generation_config.json",
               "{\"bos_token_id\":128000,\"eos_token_id\":[128001,128008,128009],"
               "\"temperature\":0.6,\"top_p\":0.9,\"do_sample\":true}");
    CHECK(hf_config_read(dir, &c) == HERD_OK);
    CHECK(c.head_dim == 64 && c.tie_word_embeddings && c.has_rope_scaling &&
          c.rope_factor == 32.0);
    CHECK(c.n_eos == 3 && c.eos_token_ids[2] == 128009 && c.bos_token_id == 128000);
    CHECK(c.has_generation && fabs(c.temperature - 0.6) < 1e-12 && fabs(c.top_p - 0.9) < 1e-12);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000.0); /* LlamaConfig defaults */

    /* Minimal: defaults, rope_scaling null, no kv heads (= heads). */
    write_text("config.json",
               "{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
               "\"intermediate_size\":128,\"vocab_size\":256,\"rope_scaling\":null}");
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    unlink(path);
    CHECK(hf_config_read(dir, &c) == HERD_OK);
    CHECK(c.num_key_value_heads == 4 && !c.has_rope_scaling && c.bos_token_id == -1 &&
          c.n_eos == 0 && c.max_position_embeddings == 2048);
}

struct hf_bad {
    const char *config, *gen; /* gen NULL: no generation_config.json */
    herd_status expect;
    const char *msg;
};

static void test_hf_bad(void)
{
    static const struct hf_bad cases[] = {
        {"{\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":8,"
         "\"vocab_size\":8}", NULL, HERD_ERR_FORMAT, "'hidden_size' is missing"},
        {"{\"hidden_size\":\"64\",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8}", NULL, HERD_ERR_FORMAT,
         "'hidden_size': expected an integer"},
        {"{\"hidden_size\":64.5,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8}", NULL, HERD_ERR_FORMAT,
         "'hidden_size': expected an integer"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":0,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8}", NULL, HERD_ERR_FORMAT,
         "'num_hidden_layers': 0 is not positive"},
        {"{\"hidden_size\":64,", NULL, HERD_ERR_FORMAT, "config.json: not valid JSON"},
        {"[]", NULL, HERD_ERR_FORMAT, "not a JSON object"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8,\"rope_scaling\":{\"rope_type\":\"yarn\","
         "\"factor\":4}}", NULL, HERD_ERR_UNSUPPORTED, "rope_scaling.rope_type"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8,\"rope_scaling\":{\"rope_type\":\"llama3\","
         "\"factor\":8,\"low_freq_factor\":1,\"high_freq_factor\":4}}", NULL, HERD_ERR_FORMAT,
         "original_max_position_embeddings"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8,\"rope_scaling\":{\"rope_type\":\"llama3\","
         "\"factor\":\"8\",\"low_freq_factor\":1,\"high_freq_factor\":4,"
         "\"original_max_position_embeddings\":8192}}", NULL, HERD_ERR_FORMAT,
         "'rope_scaling.factor': expected a number"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8,\"tie_word_embeddings\":1}", NULL,
         HERD_ERR_FORMAT, "tie_word_embeddings"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8,\"eos_token_id\":[1,\"x\"]}", NULL,
         HERD_ERR_FORMAT, "eos_token_id"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8}", "{\"temperature\":", HERD_ERR_FORMAT,
         "generation_config.json: not valid JSON"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8}", "{\"top_p\":\"high\"}", HERD_ERR_FORMAT,
         "generation_config.json: field 'top_p'"},
        {"{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"vocab_size\":8,\"architectures\":[7]}", NULL,
         HERD_ERR_FORMAT, "'architectures'"},
    };
    char gen[256];
    snprintf(gen, sizeof gen, "%s/generation_config.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("config.json", cases[i].config);
        if (cases[i].gen)
            write_text("generation_config.json", cases[i].gen);
        else
            unlink(gen);
        struct hf_config c;
        herd_status s = hf_config_read(dir, &c);
        const char *e = herd_last_error();
        CHECK_MSG(s == cases[i].expect, "hf case %zu: status %d (%s)", i, s, e);
        CHECK_MSG(strstr(e, cases[i].msg) && strstr(e, dir), "hf case %zu: '%s' lacks '%s'", i,
                  e, cases[i].msg);
    }
    unlink(gen);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    struct hf_config c;
    CHECK(hf_config_read(dir, &c) == HERD_ERR_IO && strstr(herd_last_error(), "config.json"));
}

static void test_alloc_failures(void)
{
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    int nomem = 0, other = 0;
    long n;
    for (n = 0; n < 100; n++) {
        struct st_file *f = NULL;
        herd_alloc_fail_after(n);
        herd_status s = st_open(path, &f);
        herd_alloc_fail_after(-1);
        if (s == HERD_OK) {
            st_close(f);
            break;
        }
        if (s == HERD_ERR_NOMEM && !f)
            nomem++;
        else
            other++;
    }
    CHECK_MSG(nomem >= 3 && other == 0 && n < 100, "st_open: %d nomem %d other", nomem, other);
    write_text("config.json", llama31);
    write_text("generation_config.json", "{\"eos_token_id\":[1,2]}");
    nomem = other = 0;
    for (n = 0; n < 100; n++) {
        struct hf_config c;
        herd_alloc_fail_after(n);
        herd_status s = hf_config_read(dir, &c);
        herd_alloc_fail_after(-1);
        if (s == HERD_OK)
            break;
        if (s == HERD_ERR_NOMEM)
            nomem++;
        else
            other++;
    }
    CHECK_MSG(nomem >= 2 && other == 0 && n < 100, "hf_config: %d nomem %d other", nomem,
              other);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    unlink(path);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/herd_st_XXXXXX");
    if (!mkdtemp(dir)) {
        printf("cannot make a temporary directory\n");
        return 1;
    }
    test_st_good();
    test_st_bad();
    test_hf_good();
    test_hf_bad();
    test_alloc_failures();
    rmdir(dir);
    return check_done();
}
