/*
 * upload.c - puts a bound model on its backend (kernels/backend.h): opens the backend once
 * and gives each weight matrix and norm vector of this rank's share its copy in backend
 * memory (on the CPU backend the copy is the mapping itself). The forward pass reads only
 * those copies (struct weight .dev, the *_dev norms).
 */
#include "model.h"

herd_status model_upload(herd_model *m)
{
    herd_status s;
    if (!m->be_open) {
        if ((s = backend_open(m->device, m->n_threads, &m->be)))
            return s;
        m->be_open = true;
    }
    const struct backend_ops *b = m->be.ops;
    const struct shard *sh = &m->sh;
    int64_t dim = m->info.dim;
    if ((s = b->weight_upload(&m->be, &m->tok_embd)) ||
        (s = b->weight_upload(&m->be, &m->output)) ||
        (s = b->vector_upload(&m->be, m->out_norm, dim, &m->out_norm_dev)))
        return s;
    for (int l = sh->l0; l < sh->l1; l++) {
        struct layer *L = &m->layers[l];
        struct weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                               &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            /* a weight in column parts is read part by part (forward.c) */
            for (int k = 0; k < ws[i]->n_parts; k++)
                if ((s = b->weight_upload(&m->be, &ws[i]->parts[k])))
                    return s;
            if (ws[i]->n_parts > 1)
                ws[i]->dev = ws[i]->parts[0].dev;
            else if ((s = b->weight_upload(&m->be, ws[i])))
                return s;
        }
        if ((s = b->vector_upload(&m->be, L->attn_norm, dim, &L->attn_norm_dev)) ||
            (s = b->vector_upload(&m->be, L->ffn_norm, dim, &L->ffn_norm_dev)))
            return s;
    }
    return HERD_OK;
}

void model_backend_close(herd_model *m)
{
    if (m->be_open)
        backend_close(&m->be);
    m->be_open = false;
}
