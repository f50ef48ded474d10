/* The uniform-grid segment kernels of quant.c (fake-quant forward, straight-through backward with
 * the step reduction, |x| sum and max), written as plain C for the compiler to vectorize. Included
 * by quant_seg.c (baseline x86-64) and quant_seg_avx2.c / quant_seg_avx512.c (compiled with ISA
 * flags) under different names; quant.c picks one table at run time. Not a public header.
 * Every element's result is the same bits in all three (exact division, no contraction); only
 * the double-precision step sum may be added in another lane order. */
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

/* simdlen(8) on the double reductions: without it clang picks 2 lanes (the width of a double in
 * SSE2) and the backward runs about 2x slower; gcc is unaffected. */
static void LB_QS(seg_forward)(const float *x, float *y, size_t n, float s, float lo, float hi) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float t = x[i] / s;
        t = t < lo ? lo : t;
        t = t > hi ? hi : t;
        y[i] = LB_QS(q_round)(t) * s;
    }
}

/* The loop bodies below take dx_acc as a constant: inlined twice, each copy is one plain
 * vector loop (a store, or a load-add-store) instead of a select inside the loop. */
#define LB_QS_INLINE static inline __attribute__((always_inline))

LB_QS_INLINE void LB_QS(bwd_loop)(const float *x, const float *dy, float *dx, size_t n, float s,
                                  float lo, float hi, const int acc) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float t = x[i] / s;
        float v = dy[i] * (float)((t >= lo) & (t <= hi));
        dx[i] = acc ? dx[i] + v : v;
    }
}

static void LB_QS(seg_backward)(const float *x, const float *dy, float *dx, size_t n, float s,
                                float lo, float hi, int dx_acc) {
    if (dx_acc)
        LB_QS(bwd_loop)(x, dy, dx, n, s, lo, hi, 1);
    else
        LB_QS(bwd_loop)(x, dy, dx, n, s, lo, hi, 0);
}

/* m = 1 inside [lo, hi] (bounds included, like clamp's gradient), else 0; dx = dy*m. The step
 * term is dy*(r - m*c): r - t inside, the bound r outside (c is the clamped quotient, equal to t
 * inside; using c keeps an infinite t from making 0*inf). */
LB_QS_INLINE double LB_QS(bwd_ds_loop)(const float *x, const float *dy, float *dx, size_t n,
                                       float s, float lo, float hi, const int acc) {
    double sum = 0;
#pragma omp simd simdlen(8) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) {
        float t = x[i] / s;
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
    return dx_acc ? LB_QS(bwd_ds_loop)(x, dy, dx, n, s, lo, hi, 1)
                  : LB_QS(bwd_ds_loop)(x, dy, dx, n, s, lo, hi, 0);
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
const lb_qseg_kernels LB_QS_CAT(lb_qseg, LB_QS_SUFFIX) = {
    .forward = LB_QS(seg_forward),
    .backward = LB_QS(seg_backward),
    .backward_ds = LB_QS(seg_backward_ds),
    .abssum = LB_QS(seg_abssum),
    .absmax = LB_QS(seg_absmax),
    .po2_err = LB_QS(seg_po2_err),
};

#undef LB_QS_INLINE
#undef LB_QS
#undef LB_QS_CAT
#undef LB_QS_CAT2
