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
 * sqrt(2)] by exact scalings (comparisons, no bit access, so it vectorizes), and log t = 2
 * atanh(s), s = (t - 1)/(t + 1), |s| <= 0.1716, by its series to s^11 (the next term is below
 * 2^-27 relative). When k = 0, s = y exactly. No FMA contraction: the files that include it turn
 * it off (gcc does not contract under -std=c11). */
#ifndef LB_SLICED_ATANH_H
#define LB_SLICED_ATANH_H

static inline float lb_sl_atanhf(float y) {
    /* thresholds sqrt(2) 2^j and sqrt(1/2) 2^-j: t ends in [sqrt(1/2), sqrt(2)]. Masks b in {0, 1}
     * times exact factors, not branches or selects, which gcc does not vectorize here: r times
     * 1 + b (F - 1) is r F or r, k + b K is k + K or k, all exact */
    float r = (1.0f + y) / (1.0f - y), k = 0.0f, b;
    b = (float)((r > 5.656854249f) & (r == r));
    r *= 1.0f + b * (0.125f - 1.0f), k += b * 3.0f;
    b = (float)((r > 2.828427125f) & (r == r));
    r *= 1.0f + b * (0.25f - 1.0f), k += b * 2.0f;
    b = (float)((r > 1.414213562f) & (r == r));
    r *= 1.0f + b * (0.5f - 1.0f), k += b * 1.0f;
    b = (float)((r < 0.08838834765f) & (r == r));
    r *= 1.0f + b * (8.0f - 1.0f), k -= b * 3.0f;
    b = (float)((r < 0.3535533906f) & (r == r));
    r *= 1.0f + b * (4.0f - 1.0f), k -= b * 2.0f;
    b = (float)((r < 0.7071067812f) & (r == r));
    r *= 1.0f + b * (2.0f - 1.0f), k -= b * 1.0f;
    /* s = y when unscaled (b = 1: y + 0 w), else (t - 1)/(t + 1) (0 y + w) */
    b = (float)((k == 0.0f) & (y == y));
    float s = b * y + (1.0f - b) * ((r - 1.0f) / (r + 1.0f)), z = s * s;
    float p = 1.0f / 11;
    p = 1.0f / 9 + z * p;
    p = 1.0f / 7 + z * p;
    p = 1.0f / 5 + z * p;
    p = 1.0f / 3 + z * p;
    float at = s + s * (z * p); /* atanh(s) */
    /* log r / 2 = k ln2 / 2 + atanh(s); ln2 in two parts (fdlibm's) so that k ln2 adds no
     * rounding for |k| <= 6 */
    const float ln2h = 6.9313812256e-01f, ln2l = 9.0580006145e-06f;
    return 0.5f * (k * ln2h) + (0.5f * (k * ln2l) + at);
}

#endif
