/*
 * req.c - the request object shared by one HTTP thread and the scheduler (server.h): made
 * with one reference, the scheduler takes a second on submit, and whoever drops the last
 * frees it. No model here, so the JSON layer's tests link without one.
 */
#include "server.h"

struct srv_req *srv_req_new(void)
{
    struct srv_req *r = herd_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    atomic_init(&r->cancelled, false);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    buf_init(&r->text, 0);
    return r;
}

void srv_req_unref(struct srv_req *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    if (!r->head)
        srv_params_free(&r->p); /* a choice after the first borrows its head's */
    herd_free(r->prompt);
    herd_free(r->in_off);
    herd_free(r->embd);
    buf_free(&r->text);
    cJSON_Delete(r->lp);
    cJSON_Delete(r->filter);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    struct srv_req *head = r->head, *leader = r->leader;
    herd_free(r);
    srv_req_unref(leader);
    srv_req_unref(head);
}
