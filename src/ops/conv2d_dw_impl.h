/* Depthwise conv plane kernels (one channel of one image), written as plain C that the compiler
 * vectorizes; included by conv2d.c (baseline x86-64) and by conv2d_dw_avx2.c / conv2d_dw_avx512.c
 * (compiled with ISA flags) under different names. Not a public header. `xp` is the input plane
 * zero-padded to pw columns, so the inner loops have no bounds checks. */
#ifndef LB_DW_SUFFIX
#error "define LB_DW_SUFFIX before including conv2d_dw_impl.h"
#endif

#include <stddef.h>

#define LB_DW_CAT2(a, b) a##b
#define LB_DW_CAT(a, b) LB_DW_CAT2(a, b)
#define LB_DW_FWD LB_DW_CAT(lb_conv2d_dw_fwd_plane_, LB_DW_SUFFIX)
#define LB_DW_BWD LB_DW_CAT(lb_conv2d_dw_bwd_plane_, LB_DW_SUFFIX)

/* y[oh][ow] = bias + sum_{kh,kw} wk[kh][kw] * xp[oh*s+kh][ow*s+kw] */
void LB_DW_FWD(const float *restrict xp, int pw, const float *restrict wk, float bias, int k, int s,
               int oh, int ow, float *restrict y) {
    for (int r = 0; r < oh; r++) {
        float *restrict yr = y + (size_t)r * ow;
        for (int c = 0; c < ow; c++) yr[c] = bias;
        for (int kh = 0; kh < k; kh++) {
            const float *restrict xr = xp + (size_t)(r * s + kh) * pw;
            for (int kw = 0; kw < k; kw++) {
                const float wv = wk[kh * k + kw];
                const float *restrict xs = xr + kw;
                if (s == 1) {
                    for (int c = 0; c < ow; c++) yr[c] += wv * xs[c];
                } else if (s == 2) {
                    for (int c = 0; c < ow; c++) yr[c] += wv * xs[2 * c];
                } else {
                    for (int c = 0; c < ow; c++) yr[c] += wv * xs[(size_t)c * s];
                }
            }
        }
    }
}

/* When dwk != NULL: dwk[kh][kw] += sum dy[oh][ow] * xp[oh*s+kh][ow*s+kw]; when dxp != NULL:
 * dxp[oh*s+kh][ow*s+kw] += wk[kh][kw] * dy[oh][ow] (dxp is a padded plane the caller zeroed). */
void LB_DW_BWD(const float *restrict xp, int pw, const float *restrict wk, const float *restrict dy,
               int k, int s, int oh, int ow, float *restrict dwk, float *restrict dxp) {
    for (int kh = 0; dwk && kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
            /* 16 partial sums per output column block, combined in a fixed order */
            float a[16] = {0};
            for (int r = 0; r < oh; r++) {
                const float *restrict xs = xp + (size_t)(r * s + kh) * pw + kw;
                const float *restrict dr = dy + (size_t)r * ow;
                int c = 0;
                if (s == 1)
                    for (; c + 16 <= ow; c += 16)
                        for (int l = 0; l < 16; l++) a[l] += dr[c + l] * xs[c + l];
                else
                    for (; c + 16 <= ow; c += 16)
                        for (int l = 0; l < 16; l++) a[l] += dr[c + l] * xs[(size_t)(c + l) * s];
                for (int l = 0; c < ow; c++, l++) a[l] += dr[c] * xs[(size_t)c * s];
            }
            float acc = 0;
            for (int l = 0; l < 16; l++) acc += a[l];
            dwk[kh * k + kw] += acc;
        }
    if (!dxp) return;
    for (int r = 0; r < oh; r++) {
        const float *restrict dr = dy + (size_t)r * ow;
        for (int kh = 0; kh < k; kh++) {
            float *restrict xr = dxp + (size_t)(r * s + kh) * pw;
            for (int kw = 0; kw < k; kw++) {
                const float wv = wk[kh * k + kw];
                float *restrict xs = xr + kw;
                if (s == 1) {
                    for (int c = 0; c < ow; c++) xs[c] += wv * dr[c];
                } else {
                    for (int c = 0; c < ow; c++) xs[(size_t)c * s] += wv * dr[c];
                }
            }
        }
    }
}

#undef LB_DW_FWD
#undef LB_DW_BWD
#undef LB_DW_CAT
#undef LB_DW_CAT2
