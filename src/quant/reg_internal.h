/* Internal: what reg.c (the LB_Q_REG kinds' policy) and reg_kern.c (their loops) share: where R
 * lives, the level table of a channel, the eval snap and the regularizer pass. Not a public
 * header; the method and its rules are in lb_quant.h and docs/reg.md. */
#ifndef LB_REG_INTERNAL_H
#define LB_REG_INTERNAL_H

#include <stddef.h>

#include "lb_quant.h"

#define LB_REG_MAXL 256 /* levels of 8 bits */
#define LB_REG_MAXNB 9  /* entries of R at 8 bits */

static inline int reg_nb(const lb_quant *q) {
    return q->cfg.bits + 1;
}

/* R of channel c for the table kinds (fixed: state, learned: param); NULL for the step kind. */
static inline float *reg_R(const lb_quant *q, int c) {
    int nb = reg_nb(q);
    if (q->cfg.levels == LB_REG_FIXED) return q->state + 1 + (size_t)c * (size_t)nb;
    if (q->cfg.levels == LB_REG_LEARNED) return q->param + (size_t)c * (size_t)nb;
    return NULL;
}

/* a[k] for k in [0, 2^b): S[k] . R summed in double, rounded to float once (step kind:
 * (k - 2^(b-1)) * alpha in float, the values of LSQ's forward). */
void lb_reg_levels_of(const lb_quant *q, int c, float *a);
/* Learned kind: R of channel c on its deployment grid (lb_quant.h); returns the grid. */
double lb_reg_R_deployed(const lb_quant *q, int c, double *Rd);
/* The deployed levels (lb_quant.h); *g the grid of learned levels, 0 for the other kinds. */
void lb_reg_levels_deployed(const lb_quant *q, int c, float *a, double *g);
/* The levels of channel c sorted ascending by (value, k): t[j] and its index ix[j]; deployed:
 * the deployed levels (eval, indices), else the regularizer's. */
void lb_reg_table(const lb_quant *q, int c, int deployed, float *t, unsigned char *ix);
/* Eval forward of the table kinds: y = the nearest level of each x (y may equal x). */
void lb_reg_snap(const lb_quant *q, size_t outer, const float *x, float *y);
/* The reg hook (all kinds): returns reg_weight * L, adds the gradient to dx and (learned levels)
 * to dparam. OpenMP over the fixed chunks of quant_chunk.h; sums in double in chunk order. */
float lb_reg_pass(lb_quant *q, size_t outer, const float *x, float *dx);

#endif
