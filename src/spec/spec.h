/*
 * spec.h - the inside of speculative decoding (spec.c) that tests reach: the largest draft
 * and a switch that breaks the rejection scheme on purpose, so that the statistical test
 * shows it can tell a wrong scheme from the right one.
 */
#ifndef HERD_SPEC_H
#define HERD_SPEC_H

#include "base/base.h"

/* The most tokens one step may draft (herd_spec_params.draft_max). */
#define SPEC_MAX_DRAFT 32
/* The most rows one verify decode takes (more go in several calls): up to this many rows a
 * CPU product gives each row its one-row bits (docs/speculative.md). */
#define SPEC_VERIFY_ROWS 8

/* Test only: on rejection draw from p instead of norm(max(0, p - q)) (biased towards q). */
void spec_test_wrong_residual(herd_spec *s, bool on);

#endif /* HERD_SPEC_H */
