/* The integer model's storage and the arithmetic every integer path shares: round-half-even
 * shifts and divisions, requantization constants, the tensor and op tables, the fast kernels'
 * weight layouts and the per-image arena plan. Deriving the model from a network is int_model.c's;
 * running it int_run.c's. */
#include "int_internal.h"
#include "int_snn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- primitives ------------------------------------------------------------------------------ */
int64_t lb_int_rshift_rne(int64_t t, int s) {
    int64_t u = t + ((int64_t)1 << (s - 1));
    /* floor(u / 2^s) without shifting a negative number (implementation-defined in C) */
    int64_t q = u >= 0 ? u >> s : -((-u - 1) >> s) - 1;
    if (u - q * ((int64_t)1 << s) == 0 && (q & 1) != 0) q -= 1; /* exact tie: to even */
    return q;
}

int64_t lb_int_div_rne(int64_t sum, int64_t n) {
    int64_t q = sum / n, r = sum % n;
    if (r < 0) {
        q -= 1;
        r += n;
    }
    if (2 * r > n || (2 * r == n && (q % 2) != 0)) q += 1;
    return q;
}

int32_t lb_int_requant(int32_t v, const lb_int_rq *rq, int32_t lo, int32_t hi) {
    int64_t q = lb_int_rshift_rne((int64_t)v * rq->m + rq->b, rq->s);
    return (int32_t)(q < lo ? lo : q > hi ? hi : q);
}

lb_status lb_int_rq_from_real(double mult, double off, lb_int_rq *rq) {
    if (!isfinite(mult) || !isfinite(off))
        return lb_error_set(LB_EINVAL, "requantization constant is not finite");
    for (int s = 62; s >= 1; s--) {
        double m = rint(ldexp(mult, s)), b = rint(ldexp(off, s));
        if (fabs(m) <= 2147483647.0 && fabs(b) < ldexp(1.0, 60)) {
            rq->m = (int32_t)m;
            rq->b = (int64_t)b;
            rq->s = s;
            return LB_OK;
        }
    }
    return lb_error_set(LB_EINVAL, "requantization multiplier %g / offset %g out of range", mult,
                        off);
}

/* ---- model storage ------------------------------------------------------------------------- */
int lb_int_tensor_new(lb_int_model *m, const char *name, int c, int h, int w, lb_int_type type,
                      double scale, int32_t lo, int32_t hi, int bits) {
    if (m->nt == m->tcap) {
        int cap = m->tcap ? 2 * m->tcap : 32;
        lb_int_tensor *p = realloc(m->t, (size_t)cap * sizeof *p);
        if (!p) return -1;
        m->t = p;
        m->tcap = cap;
    }
    lb_int_tensor *t = &m->t[m->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->c = c;
    t->h = h;
    t->w = w;
    t->type = type;
    t->scale = scale;
    t->lo = lo;
    t->hi = hi;
    t->bits = bits;
    t->def = t->last = -1;
    return m->nt++;
}

lb_int_op *lb_int_op_new(lb_int_model *m, lb_int_opkind kind, const char *name) {
    if (m->nops == m->opcap) {
        int cap = m->opcap ? 2 * m->opcap : 32;
        lb_int_op *p = realloc(m->ops, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        m->ops = p;
        m->opcap = cap;
    }
    lb_int_op *op = &m->ops[m->nops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    snprintf(op->name, sizeof op->name, "%s", name);
    op->in[0] = op->in[1] = op->out = -1;
    op->groups = op->k = op->stride = 1;
    return op;
}

void lb_int_free(lb_int_model *m) {
    if (m) lb_isnn_free(m->snn);
    if (!m) return;
    for (int i = 0; i < m->nops; i++) {
        lb_int_op *op = &m->ops[i];
        free(op->w);
        free(op->widx);
        free(op->rbits);
        free(op->wtab);
        free(op->rq);
        free(op->lut);
        free(op->w4);
        free(op->w2);
        free(op->wsum);
    }
    free(m->ops);
    free(m->t);
    free(m->ws);
    free(m);
}

lb_status lb_int_oom(void) {
    return lb_error_set(LB_ENOMEM, "out of memory deriving the integer model");
}

/* ---- fast-path weight layouts and planning -------------------------------------------------- */
lb_status lb_int_op_pack(lb_int_op *op) {
    int K = op->cin / op->groups * op->k * op->k;
    op->kq = (K + 3) / 4 * 4;
    op->k2 = (K + 1) / 2 * 2;
    free(op->w4);
    free(op->w2);
    free(op->wsum);
    /* padded: the linear kernels read whole vectors past the last row (x is 0 there) */
    op->w4 = calloc((size_t)op->cout * op->kq + 64, 1);
    op->w2 = calloc((size_t)op->cout * op->k2 + 16, sizeof *op->w2);
    op->wsum = calloc((size_t)op->cout, sizeof *op->wsum);
    if (!op->w4 || !op->w2 || !op->wsum) return lb_int_oom();
    for (int co = 0; co < op->cout; co++)
        for (int k = 0; k < K; k++) {
            int16_t w = op->w[(size_t)co * K + k];
            op->w4[(size_t)co * op->kq + k] = (int8_t)(op->wbits > 8 ? 0 : w);
            op->w2[(size_t)co * op->k2 + k] = w;
            op->wsum[co] += w;
        }
    return LB_OK;
}

lb_status lb_int_pack_all(lb_int_model *m) {
    for (int i = 0; i < m->nops; i++) {
        if (m->ops[i].kind != LB_IOP_CONV) continue;
        lb_status st = lb_int_op_pack(&m->ops[i]);
        if (st != LB_OK) return st;
    }
    return LB_OK;
}

/* Lifetimes, then first-fit offsets of every tensor in the per-image arena. */
static size_t arena_need(const lb_int_tensor *t) {
    return (lb_int_numel(t) * lb_int_type_size(t->type) + 63) / 64 * 64;
}

void lb_int_plan(lb_int_model *m) {
    for (int i = 0; i < m->nt; i++) m->t[i].def = m->t[i].last = -1;
    for (int i = 0; i < m->nops; i++) {
        const lb_int_op *op = &m->ops[i];
        if (m->t[op->out].def < 0) m->t[op->out].def = i;
        for (int j = 0; j < 2; j++)
            if (op->in[j] >= 0) m->t[op->in[j]].last = i;
    }
    m->t[m->logits].last = m->nops;
    m->arena_bytes = 0;
    for (int i = 0; i < m->nt; i++) {
        lb_int_tensor *t = &m->t[i];
        if (t->last < t->def) t->last = t->def;
        size_t need = arena_need(t), off = 0;
        for (int again = 1; again;) {
            again = 0;
            for (int j = 0; j < i; j++) {
                const lb_int_tensor *u = &m->t[j];
                if (u->last < t->def || t->last < u->def) continue;
                if (off < u->off + arena_need(u) && u->off < off + need) {
                    off = u->off + arena_need(u);
                    again = 1;
                }
            }
        }
        t->off = off;
        if (off + need > m->arena_bytes) m->arena_bytes = off + need;
    }
    m->scratch_bytes = 64;
    for (int i = 0; i < m->nops; i++) {
        const lb_int_op *op = &m->ops[i];
        size_t s = 64;
        if (op->kind == LB_IOP_CONV) {
            s = lb_int_conv_scratch(op);
        } else if (op->kind == LB_IOP_ADD) {
            s = 2 * (lb_int_numel(&m->t[op->out]) * 4 + 64);
        }
        if (s > m->scratch_bytes) m->scratch_bytes = s;
    }
}
