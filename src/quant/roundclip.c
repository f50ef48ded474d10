/* MaQD's scaled round-clip quantizer (methods.md sec. 5, every formula our design;
 * docs/quantizers.md "MaQD"): Q(x) = clip(round(a x), -K, K) / a with 2K+1 states (signed, weights)
 * or {0..K}/a with K+1 states (unsigned, activations after a ReLU), a learned per channel or per
 * tensor. Not the weight standardization (a layer option, src/ops/wstd.c) nor Layer-Batch Norm
 * (src/ops/lbn.c).
 *
 * The forward is the shared uniform grid at step s = 1/a (rounded to float once):
 * s * round(clip(x/s, -K, K)), equal to clip(round(a x), -K, K)/a in exact arithmetic (K is an
 * integer, so clip and round commute) and, being the shared kernel, bit for bit what the integer
 * model's codes are (lb_int_qcode). The parameter is a, not s, because the method states the grid
 * as a scale; its gradient is LSQ's step gradient carried through ds/da = -1/a^2:
 *   dQ/da = (a x - round(a x)) / a^2 inside the range, -K/a^2 (or +K/a^2 at -K) at the clip,
 * scaled by 1/sqrt(N K) as LSQ's (so a learns at the same relative pace as an LSQ step).
 * Init as LSQ (a0 = sqrt(K) / (2 mean|x|) on the first training batch); a fixed a is a learned one
 * with --qlr-scale 0 (the data-driven a0 then stays). */
#include "lb_quant.h"

#include <math.h>
#include <string.h>

#define RC_MIN_STEP 1e-8f

static int rc_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return ch;
}

static int rc_nstate(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return 1 + ch; /* initialized flag + initial a per channel (its bound) */
}

/* qn, qp and the gradient scale 1/sqrt(N K) come from quant.c's bounds (K = lb_roundclip_k). */
static void rc_reset(lb_quant *q) {
    for (int c = 0; c < q->ch; c++) q->param[c] = q->state[1 + c] = 1.0f;
    q->state[0] = 0.0f;
}

/* s = 1/a: the one float the forward, the backward and the integer model share. */
static float rc_step(const lb_quant *q, int c) {
    return 1.0f / q->param[c];
}

static void rc_steps(const lb_quant *q, float *s) {
    for (int c = 0; c < q->ch; c++) s[c] = rc_step(q, c);
}

static void rc_init(lb_quant *q, size_t outer, const float *x) {
    float m[LB_PO2_MAX_CH];
    lb_quant_absmean(q, outer, x, m);
    float sq = (float)sqrt((double)q->qp);
    for (int c = 0; c < q->ch; c++) {
        float s = 2.0f * m[c] / sq;
        s = s > RC_MIN_STEP ? s : RC_MIN_STEP;
        q->param[c] = q->state[1 + c] = 1.0f / s;
    }
    q->state[0] = 1.0f;
}

static void rc_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    float s[LB_PO2_MAX_CH];
    if (training && q->state[0] == 0.0f) rc_init(q, outer, x);
    rc_steps(q, s);
    lb_quant_uniform_forward(q, outer, s, x, y);
}

/* The surrogate dQ/dx at u = x/s inside [-qn, qp] (bounds included; 0 outside, except for the
 * identity surrogate). Triangle: 4 min(t, 1 - t), t = u - floor(u): 2 at the jumps of the
 * staircase (half-integers), 0 on the levels, mean 1 over a step like the STE's. */
static float surrogate(lb_surrogate sur, float u, float lo, float hi) {
    if (sur == LB_SUR_IDENTITY) return 1.0f;
    if (!(u >= lo && u <= hi)) return 0.0f;
    if (sur == LB_SUR_STE) return 1.0f;
    float t = u - floorf(u);
    return 4.0f * (t < 1.0f - t ? t : 1.0f - t);
}

static size_t at(const lb_quant *q, size_t o, int c, size_t i) {
    return (o * (size_t)q->ch + (size_t)c) * q->inner + i;
}

void lb_quant_roundclip_backward_ref(lb_quant *q, size_t outer, const float *x, const float *dy,
                                     float *dx, int dx_acc) {
    float lo = (float)-q->qn, hi = (float)q->qp;
    for (int c = 0; c < q->ch; c++) {
        float s = rc_step(q, c);
        double ds = 0;
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                float u = x[e] / s, g = dy[e];
                float dq = u < lo ? lo : u > hi ? hi : rintf(u) - u; /* LSQ's dq/ds */
                ds += (double)g * dq;
                float d = g * surrogate(q->cfg.surrogate, u, lo, hi);
                dx[e] = dx_acc ? dx[e] + d : d;
            }
        float dstep = (float)(ds * q->gscale);
        q->dparam[c] = -dstep * s * s; /* ds/da = -1/a^2 = -s^2 */
    }
}

static void rc_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                        int dx_acc) {
    if (q->cfg.surrogate != LB_SUR_STE) { /* the other surrogates: the scalar loop */
        lb_quant_roundclip_backward_ref(q, outer, x, dy, dx, dx_acc);
        return;
    }
    float s[LB_PO2_MAX_CH];
    rc_steps(q, s);
    lb_quant_uniform_backward(q, outer, s, x, dy, dx, dx_acc, q->dparam, q->gscale);
    for (int c = 0; c < q->ch; c++) q->dparam[c] = -q->dparam[c] * s[c] * s[c];
}

/* a in (0, a0 / LB_LSQ_FLOOR]: the step 1/a stays above LSQ's floor (a NaN, zero or negative a
 * goes to that bound too), so the grid can neither flip sign nor blow up. */
static int rc_project(lb_quant *q) {
    if (q->state[0] == 0.0f) return 0;
    int n = 0;
    for (int c = 0; c < q->ch; c++) {
        float hi = q->state[1 + c] / LB_LSQ_FLOOR;
        if (!(q->param[c] > 0.0f && q->param[c] <= hi)) {
            q->param[c] = hi;
            n++;
        }
    }
    return n;
}

int lb_roundclip_k(const lb_qcfg *cfg) {
    int b = cfg->bits;
    if (cfg->states > 0) return cfg->is_signed ? (cfg->states - 1) / 2 : cfg->states - 1;
    return cfg->is_signed ? (1 << (b - 1)) - 1 : (1 << b) - 1;
}

lb_status lb_qcfg_roundclip(lb_qcfg *cfg, const char *what) {
    if (cfg->kind != LB_Q_ROUNDCLIP || cfg->states == 0) return LB_OK;
    int s = cfg->states;
    if (cfg->is_signed && (s < 3 || s > 511 || s % 2 == 0))
        return lb_error_set(LB_EINVAL,
                            "%s: %d states on a signed tensor: round-clip has 2K+1 states "
                            "(odd, 3..511)",
                            what, s);
    if (!cfg->is_signed && (s < 2 || s > 256))
        return lb_error_set(LB_EINVAL,
                            "%s: %d states: round-clip activations have K+1 states, 2..256 "
                            "(codes 0..K in uint8)",
                            what, s);
    int k = lb_roundclip_k(cfg), b = 1;
    while ((1 << b) - 1 < k) b++;
    cfg->bits = b + (cfg->is_signed != 0);
    if (cfg->bits < 2) cfg->bits = 2; /* a 2-state grid {0, 1} still takes a 2-bit code */
    return LB_OK;
}

static const char *g_sur[LB_SUR_COUNT] = {"ste", "identity", "triangle"};

const char *lb_surrogate_name(lb_surrogate s) {
    return (unsigned)s < LB_SUR_COUNT ? g_sur[s] : "?";
}

lb_status lb_surrogate_parse(const char *s, lb_surrogate *out) {
    for (int i = 0; i < LB_SUR_COUNT; i++)
        if (s && strcmp(s, g_sur[i]) == 0) {
            *out = (lb_surrogate)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "--surrogate: unknown '%s' (ste, identity, triangle)",
                        s ? s : "(null)");
}

const lb_quant_vt lb_quant_vt_roundclip = {
    .name = "roundclip",
    .nparam = rc_nparam,
    .nstate = rc_nstate,
    .forward = rc_forward,
    .backward = rc_backward,
    .reg = NULL,
    .step = rc_step,
    .reset = rc_reset,
    .project = rc_project,
};
