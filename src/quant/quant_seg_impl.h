/* The uniform-grid segment kernels of quant.c (fake-quant forward, straight-through backward with
 * the step reduction, |x| sum and max), written as plain C for the compiler to vectorize. Included
 * by quant_seg.c (baseline x86-64) and quant_seg_avx2.c / quant_seg_avx512.c (compiled with ISA
 * flags) under different names; quant.c picks one table at run time. Not a public header.
 * Every element's result is the same bits in all three (exact division, no contraction); only
 * the double-precision sums may be added in another lane order. Also the sliced quantizer's forward
 * and backward (sliced.c) and PACT's fused backward (pact.c). */
#ifndef LB_QS_SUFFIX
#error "define LB_QS_SUFFIX before including quant_seg_impl.h"
#endif

#include "quant_seg.h"

#include <math.h>
#include <stddef.h>

/* `omp simd` is a request; clang turns an unmet one into a warning (an error under -Werror) at
 * -O1, where it does not vectorize at all (the sanitizer build). Scalar code is still correct. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
/* clang contracts a*b+c into an FMA by default once -mfma is on; the kernels must give the bits
 * of the baseline build (gcc under -std=c11 does not contract). */
#pragma STDC FP_CONTRACT OFF
#endif

#include "sliced_atanh.h" /* after the pragma: its double arithmetic must not contract either */

/* One vector accumulator per sum (no interleaving): po2_err and po2_errs then add each element
 * into the same lane in the same order, so that their error sums are the same bits (gcc does
 * not interleave these reductions; clang does unless told). */
#ifdef __clang__
#define LB_QS_ONE_ACC _Pragma("clang loop interleave_count(1)")
#else
#define LB_QS_ONE_ACC
#endif

#define LB_QS_CAT2(a, b) a##_##b
#define LB_QS_CAT(a, b) LB_QS_CAT2(a, b)
#define LB_QS(name) LB_QS_CAT(name, LB_QS_SUFFIX)

/* Adding then subtracting 1.5*2^23 rounds a float of magnitude < 2^22 to an integer under the
 * current (default: to nearest, ties to even) rounding mode, exactly as rintf/nearbyintf and
 * torch.round, but vectorizes with plain SSE2 (rintf would be a libm call per element without
 * SSE4.1). Inputs are clamped to [-128, 255] first. copysignf keeps rintf's sign of zero. */
#define LB_Q_MAGIC 12582912.0f

static inline float LB_QS(q_round)(float c) {
    float r = (c + LB_Q_MAGIC) - LB_Q_MAGIC;
    return copysignf(r, c);
}

/* A step s = 2^e whose inverse is a normal float: x/s and x*(1/s) are then the same float (both
 * the exact quotient rounded once), and the kernels below multiply (the power-of-two kinds, `lsq
 * --po2`); a division per element is what limits them otherwise. */
static inline int LB_QS(pow2_inv)(float s, float *inv) {
    int e;
    if (!(s > 0.0f) || frexpf(s, &e) != 0.5f || e < -120 || e > 120) return 0;
    *inv = 1.0f / s;
    return 1;
}

/* simdlen(8) on the double reductions: without it clang picks 2 lanes (the width of a double in
 * SSE2) and the backward runs about 2x slower; gcc is unaffected. */
/* The loop bodies below take dx_acc (and whether to multiply by 1/s) as constants: inlined once
 * per case, each copy is one plain vector loop instead of a select inside the loop. */
#define LB_QS_INLINE static inline __attribute__((always_inline))

LB_QS_INLINE void LB_QS(fwd_loop)(const float *x, float *y, size_t n, float s, float inv, float lo,
                                  float hi, const int p2) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float t = p2 ? x[i] * inv : x[i] / s;
        t = t < lo ? lo : t;
        t = t > hi ? hi : t;
        y[i] = LB_QS(q_round)(t) * s;
    }
}

static void LB_QS(seg_forward)(const float *x, float *y, size_t n, float s, float lo, float hi) {
    float inv;
    if (LB_QS(pow2_inv)(s, &inv))
        LB_QS(fwd_loop)(x, y, n, s, inv, lo, hi, 1);
    else
        LB_QS(fwd_loop)(x, y, n, s, 0.0f, lo, hi, 0);
}

LB_QS_INLINE void LB_QS(bwd_loop)(const float *x, const float *dy, float *dx, size_t n, float s,
                                  float inv, float lo, float hi, const int acc, const int p2) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float t = p2 ? x[i] * inv : x[i] / s;
        float v = dy[i] * (float)((t >= lo) & (t <= hi));
        dx[i] = acc ? dx[i] + v : v;
    }
}

static void LB_QS(seg_backward)(const float *x, const float *dy, float *dx, size_t n, float s,
                                float lo, float hi, int dx_acc) {
    float inv;
    if (LB_QS(pow2_inv)(s, &inv))
        dx_acc ? LB_QS(bwd_loop)(x, dy, dx, n, s, inv, lo, hi, 1, 1)
               : LB_QS(bwd_loop)(x, dy, dx, n, s, inv, lo, hi, 0, 1);
    else
        dx_acc ? LB_QS(bwd_loop)(x, dy, dx, n, s, 0.0f, lo, hi, 1, 0)
               : LB_QS(bwd_loop)(x, dy, dx, n, s, 0.0f, lo, hi, 0, 0);
}

/* m = 1 inside [lo, hi] (bounds included, like clamp's gradient), else 0; dx = dy*m. The step
 * term is dy*(r - m*c): r - t inside, the bound r outside (c is the clamped quotient, equal to t
 * inside; using c keeps an infinite t from making 0*inf). */
LB_QS_INLINE double LB_QS(bwd_ds_loop)(const float *x, const float *dy, float *dx, size_t n,
                                       float s, float inv, float lo, float hi, const int acc,
                                       const int p2) {
    double sum = 0;
#pragma omp simd simdlen(8) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) {
        float t = p2 ? x[i] * inv : x[i] / s;
        float c = t < lo ? lo : t;
        c = c > hi ? hi : c;
        float r = LB_QS(q_round)(c);
        float m = (float)((t >= lo) & (t <= hi));
        float g = dy[i];
        float v = g * m;
        dx[i] = acc ? dx[i] + v : v;
        sum += (double)(g * (r - m * c));
    }
    return sum;
}

static double LB_QS(seg_backward_ds)(const float *x, const float *dy, float *dx, size_t n, float s,
                                     float lo, float hi, int dx_acc) {
    float inv;
    if (LB_QS(pow2_inv)(s, &inv))
        return dx_acc ? LB_QS(bwd_ds_loop)(x, dy, dx, n, s, inv, lo, hi, 1, 1)
                      : LB_QS(bwd_ds_loop)(x, dy, dx, n, s, inv, lo, hi, 0, 1);
    return dx_acc ? LB_QS(bwd_ds_loop)(x, dy, dx, n, s, 0.0f, lo, hi, 1, 0)
                  : LB_QS(bwd_ds_loop)(x, dy, dx, n, s, 0.0f, lo, hi, 0, 0);
}

/* backward, and the sum of dy where the quotient is above hi, from the same quotient */
LB_QS_INLINE double LB_QS(bwd_above_loop)(const float *x, const float *dy, float *dx, size_t n,
                                          float s, float inv, float lo, float hi, const int acc,
                                          const int p2) {
    double sum = 0;
#pragma omp simd simdlen(8) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) {
        float t = p2 ? x[i] * inv : x[i] / s;
        float g = dy[i];
        float v = g * (float)((t >= lo) & (t <= hi));
        dx[i] = acc ? dx[i] + v : v;
        /* a mask (t == t: a NaN quotient is not above), not a select, which gcc does not
         * vectorize into a double reduction; the reference's sum for finite dy */
        sum += (double)(g * (float)((t > hi) & (t == t)));
    }
    return sum;
}

static double LB_QS(seg_backward_above)(const float *x, const float *dy, float *dx, size_t n,
                                        float s, float lo, float hi, int dx_acc) {
    float inv;
    if (LB_QS(pow2_inv)(s, &inv))
        return dx_acc ? LB_QS(bwd_above_loop)(x, dy, dx, n, s, inv, lo, hi, 1, 1)
                      : LB_QS(bwd_above_loop)(x, dy, dx, n, s, inv, lo, hi, 0, 1);
    return dx_acc ? LB_QS(bwd_above_loop)(x, dy, dx, n, s, 0.0f, lo, hi, 1, 0)
                  : LB_QS(bwd_above_loop)(x, dy, dx, n, s, 0.0f, lo, hi, 0, 0);
}

static double LB_QS(seg_abssum)(const float *x, size_t n) {
    double acc = 0;
#pragma omp simd simdlen(8) reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += (double)fabsf(x[i]);
    return acc;
}

/* Eight running maxima (no simd reduction pragma: clang cannot vectorize a max reduction with
 * NaN-preserving compares); the fixed-length inner loop is what both compilers vectorize. */
static float LB_QS(seg_absmax)(const float *x, size_t n) {
    float mm[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            float a = fabsf(x[i + j]);
            mm[j] = a > mm[j] ? a : mm[j];
        }
    }
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        mm[0] = a > mm[0] ? a : mm[0];
    }
    float m = 0;
    for (int j = 0; j < 8; j++) m = mm[j] > m ? mm[j] : m;
    return m;
}

/* The power-of-two kinds' error pass (po2x.c): with k = round(clamp(x/s, lo, hi)), d = x - k s and
 * the weight m = [|x| <= thr] (times sqrt(mom[i]) when mom is given), out += sum m d^2, sum m k x,
 * sum m k^2. s = 2^E, so x/s is taken as x * 2^-E: the same float (both are the exact value
 * rounded once) without a division per element. Two copies (with and without moments) so that
 * each is one plain vector loop. */
LB_QS_INLINE void LB_QS(po2_err_loop)(const float *x, const float *mom, size_t n, float s, float lo,
                                      float hi, float thr, double *out, const int has_mom) {
    const float inv = 1.0f / s; /* exact for a power of two: no division per element */
    double se = 0, sx = 0, sq = 0;
#pragma omp simd simdlen(8) reduction(+ : se, sx, sq)
    LB_QS_ONE_ACC
    for (size_t i = 0; i < n; i++) {
        float v = x[i], t = v * inv;
        t = t < lo ? lo : t;
        t = t > hi ? hi : t;
        float k = LB_QS(q_round)(t), d = v - k * s;
        float m = (float)(fabsf(v) <= thr);
        if (has_mom) m *= sqrtf(mom[i]);
        se += (double)m * ((double)d * (double)d);
        sx += (double)m * ((double)k * (double)v);
        sq += (double)m * ((double)k * (double)k);
    }
    out[0] += se;
    out[1] += sx;
    out[2] += sq;
}
static void LB_QS(seg_po2_err)(const float *x, const float *mom, size_t n, float s, float lo,
                               float hi, float thr, double *out) {
    if (mom)
        LB_QS(po2_err_loop)(x, mom, n, s, lo, hi, thr, out, 1);
    else
        LB_QS(po2_err_loop)(x, NULL, n, s, lo, hi, thr, out, 0);
}
/* The error alone (out[j] += sum m (x - k_j s_j)^2) of nc candidate steps s[j] in one pass: the
 * weight m, the load and |x| are shared, and the two least-squares sums the line search and
 * grad-po2's floor/ceil choice do not read are left out. Each candidate's sum is po2_err's
 * out[0], the same expression in the same lanes (tests/test_quant_fast.c). */
#define LB_QS_ERR(j)                                                                               \
    if (nc > j) {                                                                                  \
        float t = v * inv##j;                                                                      \
        t = t < lo ? lo : t;                                                                       \
        t = t > hi ? hi : t;                                                                       \
        float k = LB_QS(q_round)(t), d = v - k * s##j;                                             \
        e##j += (double)m * ((double)d * (double)d);                                               \
    }
LB_QS_INLINE void LB_QS(po2_errs_loop)(const float *x, const float *mom, size_t n, const float *s,
                                       float lo, float hi, float thr, double *out,
                                       const int has_mom, const int nc) {
    float s0 = s[0], s1 = s[1], s2 = nc > 2 ? s[2] : 1.0f, s3 = nc > 2 ? s[3] : 1.0f;
    float s4 = nc > 2 ? s[4] : 1.0f, s5 = nc > 2 ? s[5] : 1.0f;
    const float inv0 = 1.0f / s0, inv1 = 1.0f / s1, inv2 = 1.0f / s2, inv3 = 1.0f / s3;
    const float inv4 = 1.0f / s4, inv5 = 1.0f / s5;
    double e0 = 0, e1 = 0, e2 = 0, e3 = 0, e4 = 0, e5 = 0;
#pragma omp simd simdlen(8) reduction(+ : e0, e1, e2, e3, e4, e5)
    LB_QS_ONE_ACC
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float m = (float)(fabsf(v) <= thr);
        if (has_mom) m *= sqrtf(mom[i]);
        LB_QS_ERR(0)
        LB_QS_ERR(1)
        LB_QS_ERR(2)
        LB_QS_ERR(3)
        LB_QS_ERR(4)
        LB_QS_ERR(5)
    }
    out[0] += e0, out[1] += e1;
    if (nc > 2) out[2] += e2, out[3] += e3, out[4] += e4, out[5] += e5;
}
#undef LB_QS_ERR

static void LB_QS(seg_po2_errs)(const float *x, const float *mom, size_t n, const float *s, int nc,
                                float lo, float hi, float thr, double *out) {
    if (nc == 6)
        mom ? LB_QS(po2_errs_loop)(x, mom, n, s, lo, hi, thr, out, 1, 6)
            : LB_QS(po2_errs_loop)(x, NULL, n, s, lo, hi, thr, out, 0, 6);
    else if (nc == 2)
        mom ? LB_QS(po2_errs_loop)(x, mom, n, s, lo, hi, thr, out, 1, 2)
            : LB_QS(po2_errs_loop)(x, NULL, n, s, lo, hi, thr, out, 0, 2);
    else
        for (int j = 0; j < nc; j++) {
            double o[3] = {0, 0, 0};
            LB_QS(seg_po2_err)(x, mom, n, s[j], lo, hi, thr, o);
            out[j] += o[0];
        }
}

/* The sliced quantizer (sliced.c), one run of a slice with step d and range [lo, xm]: the forward
 * y = d round(clamp(x, lo, xm)/d), and the backward, element for element the scalar reference
 * lb_quant_sliced_backward_ref (the same float clamp and division, the same float expressions in
 * the same order, lb_sl_atanhf for the activations' inverse tanh); only the two double sums (out[0]
 * += the d sum, out[1] += the xmax sum) are added in lane order. The caller keeps |xm/d| and
 * |lo/d| below 2^22 (the magic-number round). */
static void LB_QS(seg_sl_forward)(const float *x, float *y, size_t n, float d, float lo, float xm) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        v = v > xm ? xm : v;
        y[i] = d * LB_QS(q_round)(v / d);
    }
}

#define LB_SL_DELTA 5e-3f /* sliced.c's SL_DELTAF */
LB_QS_INLINE void LB_QS(sl_bwd_loop)(const float *x, const float *dy, float *dx, size_t n, float df,
                                     float lo, float xm, int sg, float kt, double *out,
                                     const int ewgs, const int acc) {
    double ad = 0, ax = 0;
#pragma omp simd simdlen(8) reduction(+ : ad, ax)
    for (size_t i = 0; i < n; i++) {
        /* single selects rather than nested ones, which gcc does not if-convert; the same values
         * as the reference's (lo <= xm, so the two clamps and the two ranges never overlap) */
        float xv = x[i], cv = xv < lo ? lo : xv;
        cv = cv > xm ? xm : cv;
        float uf = cv / df;
        float g = dy[i], R = LB_QS(q_round)(uf), rr = uf - R;
        float sgn = (float)(g > 0) - (float)(g < 0);
        float m = ewgs ? 1.0f + LB_SL_DELTA * sgn * rr
                       : 1.0f + LB_SL_DELTA * sgn * kt * lb_sl_atanhf(1.9f * rr);
        float q = g * m;
        /* dx: q inside [lo, xm], +0 outside, as the reference's select; written as a mask times
         * q (gcc vectorizes no select here) with the sign taken from q inside and from +1
         * outside, so that -0 inside and +0 outside keep their bits */
        float in = (float)((xv >= lo) & (xv <= xm));
        float gx = copysignf(q * in, in * q - (in - 1.0f));
        ad += (double)g * ((double)R - (double)m * (double)uf);
        /* masks, not selects: gcc does not vectorize a select feeding a double reduction. The
         * same sums as the reference's for finite gradients (q * 1 - q * 0 is q, and +-0 added
         * to a sum that starts at +0 changes nothing) */
        double qd = q, up = (double)((xv > xm) & (xv == xv)), dn = (double)(sg & (xv < lo));
        ax += qd * up - qd * dn;
        dx[i] = acc ? dx[i] + gx : gx;
    }
    out[0] += ad;
    out[1] += ax;
}

static void LB_QS(seg_sl_backward)(const float *x, const float *dy, float *dx, size_t n, float d,
                                   float lo, float xm, int sg, int ewgs, float kt, int dx_acc,
                                   double *out) {
    if (ewgs)
        dx_acc ? LB_QS(sl_bwd_loop)(x, dy, dx, n, d, lo, xm, sg, kt, out, 1, 1)
               : LB_QS(sl_bwd_loop)(x, dy, dx, n, d, lo, xm, sg, kt, out, 1, 0);
    else
        dx_acc ? LB_QS(sl_bwd_loop)(x, dy, dx, n, d, lo, xm, sg, kt, out, 0, 1)
               : LB_QS(sl_bwd_loop)(x, dy, dx, n, d, lo, xm, sg, kt, out, 0, 0);
}
#undef LB_SL_DELTA

const lb_qseg_kernels LB_QS_CAT(lb_qseg, LB_QS_SUFFIX) = {
    .forward = LB_QS(seg_forward),
    .backward = LB_QS(seg_backward),
    .backward_ds = LB_QS(seg_backward_ds),
    .backward_above = LB_QS(seg_backward_above),
    .abssum = LB_QS(seg_abssum),
    .absmax = LB_QS(seg_absmax),
    .po2_err = LB_QS(seg_po2_err),
    .po2_errs = LB_QS(seg_po2_errs),
    .sl_forward = LB_QS(seg_sl_forward),
    .sl_backward = LB_QS(seg_sl_backward),
};

#undef LB_QS_INLINE
#undef LB_QS
#undef LB_QS_CAT
#undef LB_QS_CAT2
