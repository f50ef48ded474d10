/* Internal: the table of uniform-grid segment kernels (quant_seg_impl.h) and its run-time choice.
 * Not a public header; quant.c and the tests use it. */
#ifndef LB_QUANT_SEG_H
#define LB_QUANT_SEG_H

#include <stddef.h>

typedef struct lb_qseg_kernels {
    /* y = round(clamp(x/s, lo, hi))*s */
    void (*forward)(const float *x, float *y, size_t n, float s, float lo, float hi);
    /* dx (+)= dy*[lo <= x/s <= hi] */
    void (*backward)(const float *x, const float *dy, float *dx, size_t n, float s, float lo,
                     float hi, int dx_acc);
    /* as backward, and returns sum dy*(round(c) - m*c), c = clamp(x/s), m the pass mask */
    double (*backward_ds)(const float *x, const float *dy, float *dx, size_t n, float s, float lo,
                          float hi, int dx_acc);
    /* as backward, and returns sum dy over x/s > hi (PACT's alpha gradient) */
    double (*backward_above)(const float *x, const float *dy, float *dx, size_t n, float s,
                             float lo, float hi, int dx_acc);
    double (*abssum)(const float *x, size_t n);
    float (*absmax)(const float *x, size_t n);
    /* out[0..2] += sum m (x - k s)^2, sum m k x, sum m k^2 with k = round(clamp(x/s, lo, hi)),
     * m = [|x| <= thr] * (mom ? sqrt(mom[i]) : 1) (po2x.c); s a power of two */
    void (*po2_err)(const float *x, const float *mom, size_t n, float s, float lo, float hi,
                    float thr, double *out);
    /* out[j] += po2_err's out[0] at each of the nc steps s[j] (the same bits), in one pass */
    void (*po2_errs)(const float *x, const float *mom, size_t n, const float *s, int nc, float lo,
                     float hi, float thr, double *out);
    /* sliced (sliced.c): y = d round(clamp(x, lo, xm)/d) */
    void (*sl_forward)(const float *x, float *y, size_t n, float d, float lo, float xm);
    /* sliced backward of a run: dx (+)= the modified straight-through gradient (EWGS when ewgs,
     * else the inverse tanh with its constant kt), out[0] += the d sum, out[1] += the xmax sum */
    void (*sl_backward)(const float *x, const float *dy, float *dx, size_t n, float d, float lo,
                        float xm, int sg, int ewgs, float kt, int dx_acc, double *out);
} lb_qseg_kernels;

extern const lb_qseg_kernels lb_qseg_base, lb_qseg_avx2, lb_qseg_avx512;

/* The widest table this CPU runs; the baseline when LOWBIT_QUANT_SIMD=0. */
const lb_qseg_kernels *lb_qseg_get(void);

#endif
