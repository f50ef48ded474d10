/* Internal: the fixed chunk plan the quantizer loops share (quant.c, reg_kern.c): how a tensor
 * [outer][ch][inner] is cut into per-channel chunks and walked as contiguous runs. Not a public
 * header, and no kernels here. */
#ifndef LB_QUANT_CHUNK_H
#define LB_QUANT_CHUNK_H

#include <stddef.h>

#include "lb_quant.h"

/* Work is split per channel into chunks of about LB_Q_CHUNK floats of that channel's
 * [outer][inner] elements; chunk bounds depend on the shape only, so the per-chunk partial sums
 * (in double, added in chunk order) do not depend on the thread count. At most LB_Q_MAXPART
 * partials live on the stack; with ch >= LB_Q_MAXPART a chunk is a whole channel. */
#define LB_Q_CHUNK 16384
#define LB_Q_MAXPART 256
#define LB_Q_PAR_MIN 32768 /* fewer floats than this: no threads (overhead exceeds the work) */

typedef struct q_plan {
    size_t per_c;  /* floats of one channel: outer * inner */
    size_t groups; /* chunks per channel */
    size_t tasks;  /* ch * groups */
    int par;       /* use threads */
} q_plan;

static inline q_plan plan_of(const lb_quant *q, size_t outer) {
    q_plan p;
    size_t ch = (size_t)q->ch;
    p.per_c = outer * q->inner;
    size_t g = (p.per_c + LB_Q_CHUNK - 1) / LB_Q_CHUNK;
    size_t gmax = ch >= LB_Q_MAXPART ? 1 : LB_Q_MAXPART / ch;
    p.groups = g < 1 ? 1 : g > gmax ? gmax : g;
    p.tasks = ch * p.groups;
    p.par = p.per_c * ch >= LB_Q_PAR_MIN && p.tasks > 1;
    return p;
}

/* A contiguous run of a chunk: element offset and length. */
typedef struct q_run {
    size_t off, len;
} q_run;

/* Iterator over the runs of a chunk: channel c, per-channel flat range [j, j1). */
typedef struct q_iter {
    size_t j, j1, inner, ch, c;
} q_iter;

static inline q_iter iter_of(const lb_quant *q, const q_plan *p, size_t task) {
    q_iter it;
    size_t c = task / p->groups, g = task % p->groups;
    it.c = c;
    it.ch = (size_t)q->ch;
    it.inner = q->inner;
    it.j = p->per_c * g / p->groups;
    it.j1 = p->per_c * (g + 1) / p->groups;
    return it;
}

static inline int iter_next(q_iter *it, q_run *r) {
    if (it->j >= it->j1) return 0;
    size_t o = it->j / it->inner, i = it->j % it->inner;
    size_t len = it->inner - i;
    if (len > it->j1 - it->j) len = it->j1 - it->j;
    r->off = (o * it->ch + it->c) * it->inner + i;
    r->len = len;
    it->j += len;
    return 1;
}

#endif
