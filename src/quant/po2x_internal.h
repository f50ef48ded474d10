/* Internal: the passes msqe_po2.c and grad_po2.c share (weighted quantization error at a
 * power-of-two step, the least-squares and line-search exponent search, the clip-after-round
 * bounds, the second-moment update). Not a public header and not a quantizer kind. */
#ifndef LB_PO2X_INTERNAL_H
#define LB_PO2X_INTERNAL_H

#include <stddef.h>

#include "lb_quant.h"

/* lb_quant_uniform_backward with explicit bounds on the quotient (lo <= x/step <= hi passes the
 * gradient; the step term is dy * (round(c) - m c), c the quotient clamped to [lo, hi]). */
void lb_quant_grid_backward(const lb_quant *q, size_t outer, const float *step, float lo, float hi,
                            const float *x, const float *dy, float *dx, int dx_acc, float *dstep,
                            float dscale);

/* The reference clips AFTER rounding, y = s * clip(rint(x/s), -qn, qp), so an element passes the
 * gradient when rint(x/s) is in range, i.e. x/s within half a step beyond the outer codes. These
 * bounds on x/s say that to the shared kernels: with them, round(clamp(x/s, lo, hi)) is still the
 * forward's code and round(c) - m c is rint(u) - u inside and the clipped code outside. qp and
 * qn >= 1 are odd (ties at qp + 0.5 round out of range), qn = 0 includes -0.5 (rint gives -0). */
float lb_po2x_lo(const lb_quant *q);
float lb_po2x_hi(const lb_quant *q);

/* An exponent kept in the state array as a float, as an int in [LB_PO2X_EMIN, LB_PO2X_EMAX] (a
 * damaged checkpoint's NaN or huge value must not reach an int conversion). */
static inline int lb_po2x_state_E(float v) {
    return !(v >= (float)LB_PO2X_EMIN) ? LB_PO2X_EMIN
           : v > (float)LB_PO2X_EMAX   ? LB_PO2X_EMAX
                                       : (int)v;
}

/* Element weights of the error: m = [|x| <= thr[c]] (thr NULL: 1) * sqrt(mom[i]) (mom NULL: 1),
 * i the element's offset in x (weights: outer 1). */
typedef struct po2x_w {
    const float *thr;
    const float *mom;
} po2x_w;

/* Per channel at step 2^E[c]: err[c] = sum m (x - q)^2 with q = 2^E clip(rint(x/2^E)); when qx is
 * not NULL also qx[c] = sum m k x and qq[c] = sum m k^2 over the codes k. Double sums in fixed
 * chunks (thread-count independent). */
void lb_po2x_pass(const lb_quant *q, size_t outer, const float *x, const int *E, const po2x_w *w,
                  double *err, double *qx, double *qq);
/* Candidates j = 0..nE-1 with exponents clamp(base[j][c] + off[j]) in one pass over the data;
 * per channel, in the order of j, a candidate whose error is strictly below best[c] becomes
 * best[c] and E[c]. nE <= LB_PO2X_MAXSETS. */
#define LB_PO2X_MAXSETS 6
void lb_po2x_best(const lb_quant *q, size_t outer, const float *x, const int *const *base,
                  const int *off, int nE, const po2x_w *w, double *best, int *E);
/* Population standard deviation of each channel (double, two passes). */
void lb_po2x_std(const lb_quant *q, size_t outer, const float *x, double *sd);
/* The MSQE search from E (updated in place): three least-squares refinements E' =
 * round(log2(qx/qq)), each kept when its error is strictly lower (the codes of the next refinement
 * are those of the last candidate, kept or not, as the reference), then a line search over E +
 * {-3, -2, -1, +1, +2, +3} around the result, strictly lower error wins, in that order. */
void lb_po2x_search(const lb_quant *q, size_t outer, const float *x, const po2x_w *w, int *E);
/* mom[i] = 0.999 mom[i] + 0.001 [rint(x_i/s) in range] dy_i^2 (float), s = step[c]. */
void lb_po2x_moments(const lb_quant *q, size_t outer, const float *x, const float *dy,
                     const float *step, float *mom);

#endif
