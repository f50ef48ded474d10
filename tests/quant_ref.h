/* Shared by the quantizer tests (test_quant.c, test_quant_kinds.c): a quantizer with its own
 * storage, small helpers, and the scalar reference of the uniform quantizer's forward and STE
 * backward. Header-only and static inline so that each test binary takes what it uses. */
#ifndef LB_TEST_QUANT_REF_H
#define LB_TEST_QUANT_REF_H

#include "lb_quant.h"
#include "lb_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A quantizer with its own storage (the network's arenas in real use). */
typedef struct tq {
    lb_quant q;
    float *p, *dp, *st;
} tq;

static inline lb_status tq_bind(tq *t, lb_qcfg cfg, int ch, size_t inner, size_t n_grad) {
    int np = lb_quant_nparam(&cfg, ch), ns = lb_quant_nstate(&cfg, ch);
    t->p = calloc((size_t)np + 1, sizeof(float));
    t->dp = calloc((size_t)np + 1, sizeof(float));
    t->st = calloc((size_t)ns + 1, sizeof(float));
    return lb_quant_bind(&t->q, &cfg, ch, inner, n_grad, t->p, t->dp, t->st);
}

static inline void tq_free(tq *t) {
    free(t->p);
    free(t->dp);
    free(t->st);
}

static inline lb_qcfg cfg_of(lb_qkind kind, int bits, int is_signed, int per_channel) {
    lb_qcfg c = {.kind = kind, .bits = bits, .is_signed = is_signed, .per_channel = per_channel};
    return c;
}

static inline float *fvec(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}

static inline void fill_normal(lb_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lb_rng_normal(r);
}

/* ---- scalar reference -------------------------------------------------------------------------
 * The quotient is the float division (what the spec and PyTorch compute), everything after it in
 * double with libm's rint (round half to even under the default rounding mode). */
typedef struct ref_el {
    double r;   /* code round(clip(x/s)) */
    double t;   /* quotient x/s (float division) */
    int inside; /* -Qn <= t <= Qp */
} ref_el;

static inline ref_el ref_at(float x, float s, int qn, int qp) {
    ref_el e;
    float t = x / s;
    e.t = t;
    double c = t < -qn ? -qn : t > qp ? qp : t;
    e.r = rint(c);
    e.inside = t >= -qn && t <= qp;
    return e;
}

/* dq/ds of the STE formula: round(u) - u inside (bounds included), the bound outside. */
static inline double ref_dqds(ref_el e) {
    return e.inside ? e.r - e.t : e.r;
}

static inline size_t idx(size_t o, int c, int ch, size_t inner, size_t i) {
    return (o * (size_t)ch + (size_t)c) * inner + i;
}

/* Runs a training forward (which may initialize), then compares the forward and backward of a
 * bound uniform quantizer with the scalar reference at the steps in force; counts checks. */
static inline void check_against_ref(tq *t, size_t outer, const float *x, const float *dy,
                                     const char *what) {
    lb_quant *q = &t->q;
    size_t n = outer * (size_t)q->ch * q->inner;
    float *y = fvec(n), *dx = fvec(n), *yr = fvec(n), *dxr = fvec(n);
    lb_quant_forward(q, outer, x, y, 1);
    for (int c = 0; c < q->nparam; c++) q->dparam[c] = NAN; /* backward overwrites, not adds */
    lb_quant_backward(q, outer, x, dy, dx, 0);
    char buf[160];
    for (int c = 0; c < q->ch; c++) {
        float s = lb_quant_step(q, c);
        double sum = 0, sabs = 0;
        for (size_t o = 0; o < outer; o++) {
            for (size_t i = 0; i < q->inner; i++) {
                size_t k = idx(o, c, q->ch, q->inner, i);
                ref_el e = ref_at(x[k], s, q->qn, q->qp);
                yr[k] = (float)(e.r * s);
                dxr[k] = e.inside ? dy[k] : 0.0f;
                double d = dy[k] * ref_dqds(e);
                sum += d;
                sabs += fabs(d);
            }
        }
        if (q->nparam > 0) {
            /* One float rounding per term (r - u is exact in float), then a double sum. */
            snprintf(buf, sizeof buf, "%s: dstep[%d]", what, c);
            CHECK_NEAR(q->dparam[c], sum * q->gscale, 2e-7 * sabs * q->gscale + 1e-30, 1e-6, buf);
        }
    }
    snprintf(buf, sizeof buf, "%s: forward exact", what);
    lbt_close(y, yr, n, 0, 0, buf);
    snprintf(buf, sizeof buf, "%s: dx exact", what);
    lbt_close(dx, dxr, n, 0, 0, buf);
    float dstep[512]; /* the step gradient, which the variants below must reproduce */
    for (int c = 0; c < q->nparam && c < 512; c++) dstep[c] = q->dparam[c];
    /* dx may alias dy (dx_acc 0) */
    float *g2 = fvec(n);
    memcpy(g2, dy, n * sizeof *g2);
    lb_quant_backward(q, outer, x, g2, g2, 0);
    snprintf(buf, sizeof buf, "%s: dx in place", what);
    lbt_close(g2, dxr, n, 0, 0, buf);
    for (int c = 0; c < q->nparam && c < 512; c++)
        CHECK(q->dparam[c] == dstep[c], "%s: dstep in place", what);
    free(g2);
    /* dx_acc adds to what is there */
    for (size_t k = 0; k < n; k++) dx[k] = 0.5f;
    lb_quant_backward(q, outer, x, dy, dx, 1);
    for (size_t k = 0; k < n; k++) dxr[k] += 0.5f;
    snprintf(buf, sizeof buf, "%s: dx_acc", what);
    lbt_close(dx, dxr, n, 0, 0, buf);
    for (int c = 0; c < q->nparam && c < 512; c++)
        CHECK(q->dparam[c] == dstep[c], "%s: dstep with dx_acc %.9g vs %.9g", what, q->dparam[c],
              dstep[c]);
    /* y may alias x */
    float *xy = fvec(n);
    memcpy(xy, x, n * sizeof *xy);
    lb_quant_forward(q, outer, xy, xy, 0);
    snprintf(buf, sizeof buf, "%s: in place", what);
    lbt_close(xy, y, n, 0, 0, buf);
    free(xy);
    free(y);
    free(dx);
    free(yr);
    free(dxr);
}

#endif
