/* The Pareto results JSON check of `lowbit plot pareto` (tools/pareto_check.c). */
#ifndef LB_PARETO_CHECK_H
#define LB_PARETO_CHECK_H

#include <stddef.h>

/* 1 when text (NUL-terminated) is a JSON object with a non-empty "points" array whose every item
 * has a string "method" and finite, non-negative "weight_bytes", "activation_bytes" and
 * "accuracy" (at most 1); else 0 with why = "<name>: ..." naming the point and field. */
int pareto_check(const char *name, const char *text, char *why, size_t whyn);

#endif
