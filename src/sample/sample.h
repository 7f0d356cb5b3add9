/*
 * sample.h - what the library's own layers (spec/) need of the sampler beyond herd.h:
 * the distribution a draw is made from, for speculative decoding's rejection scheme.
 */
#ifndef HERD_SAMPLE_H
#define HERD_SAMPLE_H

#include "base/base.h"

/* The distribution herd_sampler_sample draws from for this row of logits, normalised, into
 * probs (n_vocab floats; 0 for every token the chain dropped): logit bias, the penalties
 * over the accepted window (when penalise), temperature, top-k, top-p, min-p. Temperature
 * <= 0 gives 1 at the argmax. Uses s's scratch; draws nothing. */
herd_status sampler_dist(herd_sampler *s, const float *logits, int32_t n_vocab, bool penalise,
                         float *probs);
/* The parameters s was made with (logit_bias not included). */
const herd_sampler_params *sampler_params(const herd_sampler *s);

#endif /* HERD_SAMPLE_H */
