/*
 * cmd_info.c - herd info MODEL: architecture, sizes, dtypes, context, vocabulary and the CPU
 * kernel variant, one "key: value" per line on stdout. herd info alone: the devices this
 * build can run a model on (herd_devices), one per line.
 */
#include "cli.h"

#include <stdio.h>

static const char usage[] =
    "usage: herd info [MODEL]\n"
    "Architecture, sizes, dtypes, context, vocabulary and the CPU kernel variant of MODEL\n"
    "(a GGUF file, a Hugging Face folder or Meta's params.json + consolidated.NN.pth\n"
    "folder), one 'key: value' per line; shards, dtypes and fp8_matrices say what the\n"
    "weights are stored as. Without MODEL: the devices this build can run a model on\n"
    "('cpu', 'cuda:0', ...: what --device takes).\n";

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && cli_is_help(argv[1]))
        return cli_help(usage);
    if (argc == 1) {
        char buf[4096];
        herd_devices(buf, sizeof buf);
        fputs(buf, stdout);
        return 0;
    }
    if (argc != 2)
        return cli_fail("usage: herd info [MODEL]");
    herd_model *m = NULL;
    herd_status s = herd_model_load(argv[1], NULL, &m);
    if (s != HERD_OK)
        return cli_fail_status(s);
    const herd_model_info *in = herd_model_get_info(m);
    const herd_tokenizer *tok = herd_model_tokenizer(m);
    printf("path: %s\n", in->path);
    printf("format: %s\n", in->format);
    printf("name: %s\n", in->name);
    printf("architecture: llama\n");
    printf("params: %lld\n", (long long)in->n_params);
    printf("weight_bytes: %lld\n", (long long)in->weight_bytes);
    printf("weight_dtype: %s\n", herd_dtype_name(in->weight_dtype));
    printf("shards: %d\n", in->n_shards);
    printf("dtypes: %s\n", in->dtypes ? in->dtypes : "");
    printf("fp8_matrices: %d\n", in->n_fp8);
    printf("dim: %d\n", in->dim);
    printf("n_layers: %d\n", in->n_layers);
    printf("n_heads: %d\n", in->n_heads);
    printf("n_kv_heads: %d\n", in->n_kv_heads);
    printf("head_dim: %d\n", in->head_dim);
    printf("hidden_dim: %d\n", in->hidden_dim);
    printf("n_vocab: %d\n", in->n_vocab);
    printf("context_length: %d\n", in->max_seq_len);
    printf("norm_eps: %g\n", (double)in->norm_eps);
    printf("rope_theta: %g\n", (double)in->rope_theta);
    if (in->rope_scaling && in->rope_factor > 0)
        printf("rope_scaling: llama3 factor %g low_freq_factor %g high_freq_factor %g "
               "original_max_position_embeddings %d\n", (double)in->rope_factor,
               (double)in->rope_low_freq_factor, (double)in->rope_high_freq_factor,
               in->rope_original_max_pos);
    else if (in->rope_scaling)
        printf("rope_scaling: llama3 (per-dimension factors from rope_freqs)\n");
    else
        printf("rope_scaling: none\n");
    printf("tied_embeddings: %s\n", in->tied_embeddings ? "true" : "false");
    printf("bos_id: %d\n", in->bos_id);
    printf("eos_ids:");
    for (int i = 0; i < in->n_eos; i++)
        printf("%s%d", i ? "," : " ", in->eos_ids[i]);
    printf("\n");
    printf("tokenizer: %s\n", tok ? "yes" : "none");
    if (tok)
        printf("tokenizer_vocab: %d\n", herd_tokenizer_n_vocab(tok));
    printf("cpu_isa: %s\n", herd_cpu_isa());
    herd_model_free(m);
    return 0;
}
