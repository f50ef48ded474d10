/* Internal: atanh in float from plain arithmetic, for the sliced quantizer's inverse-tanh rounding
 * gradient; shared by its scalar reference (sliced.c) and its SIMD kernels (quant_seg_impl.h) so
 * that both give the same bits. Not a general atanh: only for |y| <= 0.95 (the gradient's 1.9 r,
 * |r| <= 1/2). Not a public header.
 *
 * Why not libm: atanh/atanhf are a call per element that no compiler vectorizes (they were most
 * of the sliced step once), and a double-precision version of this function (until 2026-12-05)
 * still cost two double divisions an element, most of the kind's backward. Float is enough: the
 * result is scaled by 5e-3 * 0.27 in the factor m = 1 + ..., so its <= 5e-7 relative error moves m
 * by under 1e-9, below m's own float ulp (1.2e-7); PyTorch's twin computes it in float too.
 * Accuracy: within 5e-7 relative (4 float ulp) of atanhl on |y| <= 0.95 (tests/test_quant_fast.c).
 *
 * atanh y = log(r) / 2 with r = (1 + y)/(1 - y) in [1/39, 39]; r = 2^k t with t in [sqrt(1/2),
 * sqrt(2)) from r's bits (integer ops that vectorize; 2.3x faster than the six compare-and-scale
 * steps used before), and log t = 2
 * atanh(s), s = (t - 1)/(t + 1), |s| <= 0.1716, by its series to s^11 (the next term is below
 * 2^-27 relative). When k = 0, s = y exactly. No FMA contraction: the files that include it turn
 * it off (gcc does not contract under -std=c11). */
#ifndef LB_SLICED_ATANH_H
#define LB_SLICED_ATANH_H

#include <stdint.h>
#include <string.h>

static inline float lb_sl_atanhf(float y) {
    /* r = 2^k t, t in [sqrt(1/2), sqrt(2)): k from r's exponent field counted from sqrt(1/2)'s
     * bits, t by moving r's exponent by -k (integer ops on the bits: they vectorize) */
    float r = (1.0f + y) / (1.0f - y);
    uint32_t i;
    memcpy(&i, &r, sizeof i);
    /* unsigned arithmetic: no overflow whatever the bits (a NaN's); 0x3f3504f3: sqrt(1/2)'s bits;
     * the shift of the (two's complement) difference is arithmetic in gcc and clang */
    int32_t kb = (int32_t)(i - 0x3f3504f3u) >> 23;
    uint32_t ti = i - (uint32_t)kb * (1u << 23);
    float t, k = (float)kb;
    memcpy(&t, &ti, sizeof t);
    /* unscaled (k = 0): s is y itself, exactly ((t - 1)/(t + 1) with t = r rounded would lose
     * y's low bits when y is small); a mask times each, which vectorizes */
    float b = (float)(kb == 0);
    float s = b * y + (1.0f - b) * ((t - 1.0f) / (t + 1.0f)), z = s * s;
    float p = 1.0f / 11;
    p = 1.0f / 9 + z * p;
    p = 1.0f / 7 + z * p;
    p = 1.0f / 5 + z * p;
    p = 1.0f / 3 + z * p;
    float at = s + s * (z * p); /* atanh(s) = log(t) / 2 */
    /* log r / 2 = k ln2 / 2 + atanh(s); ln2 in two parts (fdlibm's) so that k ln2 adds no
     * rounding for |k| <= 6 */
    const float ln2h = 6.9313812256e-01f, ln2l = 9.0580006145e-06f;
    return 0.5f * (k * ln2h) + (0.5f * (k * ln2l) + at);
}

#endif
