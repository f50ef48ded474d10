/* Private to the derivation of the integer model (int_model.c, int_analyze.c): the state of one
 * derivation (consumers, fused groups, each value's wished domain) and the graph helpers. */
#ifndef LB_INT_BUILD_H
#define LB_INT_BUILD_H

#include "int_internal.h"

/* Wide tensors represent at least this real magnitude before saturating (see wide_scale). */
#define WIDE_RANGE 256.0
#define WIDE_MAX_FRAC 24
#define ACC_LIMIT 2147483647.0

enum { W_WIDE = -1, W_NONE = -2, W_LOGITS = -3 };

typedef struct build {
    const lb_net *n;
    lb_int_model *m;
    int nn;
    int *ncons, *cons, *cons_off; /* consumer lists (CSR) */
    int *tail;                    /* conv/linear/add head -> last fused node */
    int *grp;                     /* BN/ReLU folded into a group: the group's head, else -1 */
    int *relu;                    /* head: 0 none, 1 ReLU, 6 ReLU6 */
    int *bn;                      /* conv head: its BN node or -1 */
    int *wish;                    /* value node: conv whose codes all consumers want, or W_* */
    int *val;                     /* node -> tensor id */
    int out_node;                 /* tail of the group giving the logits */
} build;

static inline const float *P(const lb_net *n, int idx) {
    return idx >= 0 ? n->param + n->params[idx].off : NULL;
}
static inline const float *S(const lb_net *n, int idx) {
    return idx >= 0 ? n->state + n->states[idx].off : NULL;
}

static inline int is_linear_op(lb_op op) {
    return op == LB_OP_CONV || op == LB_OP_LINEAR;
}
static inline int is_pass(lb_op op) {
    return op == LB_OP_MAXPOOL || op == LB_OP_FLATTEN || op == LB_OP_DROPOUT || op == LB_OP_RELU ||
           op == LB_OP_RELU6;
}
/* A uniform grid with a step: lsq, fixed, pact (step alpha/(2^b-1), unsigned), dorefa (odd codes
 * at step 1/(2^b-1)), msqe-po2 and grad-po2 (step 2^E, symmetric signed codes), and reg's fixed
 * levels (s/2 with odd codes) and step levels (LSQ's grid); reg's learned levels are a table
 * (weight_tables), not a grid. */
static inline int is_uniform(const lb_qcfg *c) {
    if (c->kind == LB_Q_REG) return c->levels == LB_REG_FIXED || c->levels == LB_REG_STEP;
    return c->kind == LB_Q_LSQ || c->kind == LB_Q_FIXED || c->kind == LB_Q_DOREFA ||
           c->kind == LB_Q_PACT || c->kind == LB_Q_MSQE_PO2 || c->kind == LB_Q_GRAD_PO2 ||
           c->kind == LB_Q_ROUNDCLIP || /* round-clip: step 1/a, codes -K..K */
           c->kind == LB_Q_SLICED;      /* sliced: step d, codes -K..K per slice */
}

static inline int cons_n(const build *b, int v) {
    return b->ncons[v];
}
static inline int cons_at(const build *b, int v, int j) {
    return b->cons[b->cons_off[v] + j];
}

/* int_analyze.c: every layer has an integer form (or a clear error), the fused groups, and which
 * tensors carry the next layer's codes; the scales of wide int32 tensors. */
lb_status lb_int_build_analyze(build *b);
void lb_int_build_wishes(build *b);
double lb_int_natural_scale(const build *b, int v);
double lb_int_wide_scale(const build *b, int tail);

#endif
