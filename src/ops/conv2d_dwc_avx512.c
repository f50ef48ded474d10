/* Depthwise convolution 16 channels at a time (AVX-512), for planes whose rows are too short to
 * fill the plane kernels' 16 lanes (the MobileNets' 7x7, 4x4 and 2x2 planes fill 7, 4 or 2): a
 * block of up to 16 channels of one image is transposed (in registers, 16 pixels at a time: a
 * first version with gather/scatter instructions was slower than the plane kernels) into a
 * pixel-major padded tile [hp][wp][16], so that every tap of every output pixel is one 16-lane
 * FMA, and the results are transposed back to NCHW. Forward, dX and dW of one block; the loops over
 * images and blocks and the per-worker partials are conv2d_dw.c's. Not the per-plane kernels
 * (conv2d_dw_impl.h, conv2d_direct_avx512.c). */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "conv2d_internal.h"

/* r[i][j] <- r[j][i]: the 16x16 transpose in registers (pairs, quads, then 128-bit lanes) */
static inline void tr16(__m512 *r) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[j], 128-bit lane L: rows 4i..4i+3 (i = j / 4 ... ) at element 4L + j % 4 */
    for (int j = 0; j < 4; j++) {
        const __m512 ablo = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
        const __m512 abhi = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
        const __m512 cdlo = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
        const __m512 cdhi = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        r[j] = _mm512_shuffle_f32x4(ablo, cdlo, 0x88);
        r[j + 4] = _mm512_shuffle_f32x4(ablo, cdlo, 0xDD);
        r[j + 8] = _mm512_shuffle_f32x4(abhi, cdhi, 0x88);
        r[j + 12] = _mm512_shuffle_f32x4(abhi, cdhi, 0xDD);
    }
}

static inline __mmask16 lanes(int nc) {
    return (__mmask16)((1u << nc) - 1u);
}

/* Pixel-major copy of nc channel planes of n pixels each (stride n): t at pixel j is
 * t + off(j) * 16, where off is the pixel's place in a padded plane of w columns with `pad`
 * (pad 0, w = n: contiguous). Lanes >= nc are 0. */
static void to_pixels(const float *x, int n, int w, int pad, int nc, float *t) {
    const int wp = w + 2 * pad;
    __m512 r[16];
    for (int j0 = 0; j0 < n; j0 += 16) {
        const int m = n - j0 < 16 ? n - j0 : 16;
        const __mmask16 pm = lanes(m);
        for (int c = 0; c < 16; c++)
            r[c] = c < nc ? _mm512_maskz_loadu_ps(pm, x + (size_t)c * n + j0) : _mm512_setzero_ps();
        tr16(r);
        for (int i = 0; i < m; i++) {
            const int j = j0 + i;
            _mm512_storeu_ps(t + ((size_t)(j / w + pad) * wp + j % w + pad) * 16, r[i]);
        }
    }
}

/* The inverse: channel c's pixel j (of n, planes of stride n) from t + off(j) * 16; added to
 * what is there with acc */
static void from_pixels(const float *t, int n, int w, int pad, int nc, int acc, float *x) {
    const int wp = w + 2 * pad;
    __m512 r[16];
    for (int j0 = 0; j0 < n; j0 += 16) {
        const int m = n - j0 < 16 ? n - j0 : 16;
        const __mmask16 pm = lanes(m);
        for (int i = 0; i < 16; i++) {
            const int j = j0 + i;
            r[i] = i < m ? _mm512_loadu_ps(t + ((size_t)(j / w + pad) * wp + j % w + pad) * 16)
                         : _mm512_setzero_ps();
        }
        tr16(r);
        for (int c = 0; c < nc; c++) {
            float *dst = x + (size_t)c * n + j0;
            __m512 v = r[c];
            if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(pm, dst));
            _mm512_mask_storeu_ps(dst, pm, v);
        }
    }
}

/* the block's weights, tap-major: wv[q][l] = w[l*kk + q] */
static void tap_weights(const float *w, int kk, int nc, __m512 *wv) {
    float tmp[LB_DWC_MAXK * LB_DWC_MAXK][16];
    for (int q = 0; q < kk; q++)
        for (int l = 0; l < 16; l++) tmp[q][l] = l < nc ? w[(size_t)l * kk + q] : 0.0f;
    for (int q = 0; q < kk; q++) wv[q] = _mm512_loadu_ps(tmp[q]);
}

void lb_conv2d_dwc_fwd_avx512(const float *x, int h, int w, int nc, const float *wk, const float *b,
                              int k, int s, int pad, int oh, int ow, float *y, float *tile,
                              float *yt) {
    __m512 wv[LB_DWC_MAXK * LB_DWC_MAXK];
    const int wp = w + 2 * pad, kk = k * k;
    tap_weights(wk, kk, nc, wv);
    to_pixels(x, h * w, w, pad, nc, tile);
    const __m512 bv = b ? _mm512_maskz_loadu_ps(lanes(nc), b) : _mm512_setzero_ps();
    for (int r = 0; r < oh; r++)
        for (int c = 0; c < ow; c++) {
            __m512 acc = bv;
            for (int kh = 0; kh < k; kh++) {
                const float *row = tile + ((size_t)(r * s + kh) * wp + (size_t)c * s) * 16;
                for (int kw = 0; kw < k; kw++)
                    acc = _mm512_fmadd_ps(wv[kh * k + kw], _mm512_loadu_ps(row + kw * 16), acc);
            }
            _mm512_storeu_ps(yt + ((size_t)r * ow + c) * 16, acc);
        }
    from_pixels(yt, oh * ow, oh * ow, 0, nc, 0, y);
}

void lb_conv2d_dwc_bwd_avx512(const float *x, int h, int w, int nc, const float *wk,
                              const float *dy, int k, int s, int pad, int oh, int ow, float *dwk,
                              float *dx, int dx_acc, float *tile, float *dtile, float *dyt) {
    const int wp = w + 2 * pad, kk = k * k;
    to_pixels(dy, oh * ow, oh * ow, 0, nc, dyt);
    if (dwk) {
        __m512 acc[LB_DWC_MAXK * LB_DWC_MAXK];
        for (int q = 0; q < kk; q++) acc[q] = _mm512_setzero_ps();
        to_pixels(x, h * w, w, pad, nc, tile);
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++) {
                const __m512 g = _mm512_loadu_ps(dyt + ((size_t)r * ow + c) * 16);
                for (int kh = 0; kh < k; kh++) {
                    const float *row = tile + ((size_t)(r * s + kh) * wp + (size_t)c * s) * 16;
                    for (int kw = 0; kw < k; kw++)
                        acc[kh * k + kw] =
                            _mm512_fmadd_ps(g, _mm512_loadu_ps(row + kw * 16), acc[kh * k + kw]);
                }
            }
        float tmp[LB_DWC_MAXK * LB_DWC_MAXK][16];
        for (int q = 0; q < kk; q++) _mm512_storeu_ps(tmp[q], acc[q]);
        for (int l = 0; l < nc; l++)
            for (int q = 0; q < kk; q++) dwk[(size_t)l * kk + q] += tmp[q][l];
    }
    if (!dx) return;
    __m512 wv[LB_DWC_MAXK * LB_DWC_MAXK];
    tap_weights(wk, kk, nc, wv);
    memset(dtile, 0, (size_t)(h + 2 * pad) * wp * 16 * sizeof *dtile);
    for (int r = 0; r < oh; r++)
        for (int c = 0; c < ow; c++) {
            const __m512 g = _mm512_loadu_ps(dyt + ((size_t)r * ow + c) * 16);
            for (int kh = 0; kh < k; kh++) {
                float *row = dtile + ((size_t)(r * s + kh) * wp + (size_t)c * s) * 16;
                for (int kw = 0; kw < k; kw++)
                    _mm512_storeu_ps(
                        row + kw * 16,
                        _mm512_fmadd_ps(wv[kh * k + kw], g, _mm512_loadu_ps(row + kw * 16)));
            }
        }
    from_pixels(dtile, h * w, w, pad, nc, dx_acc, dx);
}
