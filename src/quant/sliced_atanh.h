/* Internal: atanh in double from plain arithmetic, for the sliced quantizer's inverse-tanh rounding
 * gradient; shared by its scalar reference (sliced.c) and its SIMD kernels (quant_seg_impl.h) so
 * that both give the same bits. Not a general atanh: only for |y| <= 0.95 (the gradient's 1.9 r,
 * |r| <= 1/2). Not a public header.
 *
 * Why not libm's atanh: it is a call per element that no compiler vectorizes, and it was most of
 * the sliced step (docs/mixed.md "Cost"). Accuracy: within 4 ulp (8e-16 relative) of the exact
 * value on |y| <= 0.95 (tests/test_sliced.c compares with long double atanhl); in the gradient it
 * is scaled by 5e-3 * 0.27, so the factor m = 1 + ... is the same double as with libm's atanh for
 * all but ~3 in 10^4 elements, and those differ in m's last bit (1e-16), far below the float
 * gradients it feeds.
 *
 * atanh y = log(r) / 2 with r = (1 + y)/(1 - y) in [1/39, 39]; r = 2^k t with t in [sqrt(1/2),
 * sqrt(2)] by exact scalings (comparisons, no bit access, so it vectorizes), and log t = 2
 * atanh(s), s = (t - 1)/(t + 1), |s| <= 0.1716, by its series to s^21 (the next term is below
 * 2^-56 relative). When k = 0, s = y exactly (no rounding of r at all). No FMA contraction: the
 * files that include it turn it off (gcc does not contract under -std=c11). */
#ifndef LB_SLICED_ATANH_H
#define LB_SLICED_ATANH_H

static inline double lb_sl_atanh(double y) {
    /* thresholds sqrt(2) 2^j and sqrt(1/2) 2^-j: t ends in [sqrt(1/2), sqrt(2)]. Masks b in {0, 1}
     * times exact factors, not branches or selects, which gcc does not vectorize here: r times
     * 1 + b (F - 1) is r F or r, k + b K is k + K or k, all exact */
    double r = (1.0 + y) / (1.0 - y), k = 0.0, b;
    b = (double)((r > 5.656854249492381) & (r == r));
    r *= 1.0 + b * (0.125 - 1.0), k += b * 3.0;
    b = (double)((r > 2.8284271247461903) & (r == r));
    r *= 1.0 + b * (0.25 - 1.0), k += b * 2.0;
    b = (double)((r > 1.4142135623730951) & (r == r));
    r *= 1.0 + b * (0.5 - 1.0), k += b * 1.0;
    b = (double)((r < 0.08838834764831845) & (r == r));
    r *= 1.0 + b * (8.0 - 1.0), k -= b * 3.0;
    b = (double)((r < 0.35355339059327373) & (r == r));
    r *= 1.0 + b * (4.0 - 1.0), k -= b * 2.0;
    b = (double)((r < 0.7071067811865476) & (r == r));
    r *= 1.0 + b * (2.0 - 1.0), k -= b * 1.0;
    /* s = y when unscaled (b = 1: y + 0 w), else (t - 1)/(t + 1) (0 y + w) */
    b = (double)((k == 0.0) & (y == y));
    double s = b * y + (1.0 - b) * ((r - 1.0) / (r + 1.0)), z = s * s;
    double p = 1.0 / 21;
    p = 1.0 / 19 + z * p;
    p = 1.0 / 17 + z * p;
    p = 1.0 / 15 + z * p;
    p = 1.0 / 13 + z * p;
    p = 1.0 / 11 + z * p;
    p = 1.0 / 9 + z * p;
    p = 1.0 / 7 + z * p;
    p = 1.0 / 5 + z * p;
    p = 1.0 / 3 + z * p;
    double at = s + s * (z * p); /* atanh(s) */
    /* log r / 2 = k ln2 / 2 + atanh(s); ln2 in two parts so that k ln2 adds no rounding */
    const double ln2h = 6.93147180369123816490e-01, ln2l = 1.90821492927058770002e-10;
    return 0.5 * (k * ln2h) + (0.5 * (k * ln2l) + at);
}

#endif
