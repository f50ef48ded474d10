/* Winograd F(2x2, 3x3) stride-1 pad-1 convolution of one block of images (AVX-512): input
 * transform, 16 small GEMMs, output transform. Not the plan, the threading or the choice of when
 * to use it (conv2d.c). The weight gradient reuses the input transform (see conv2d_wino.h).
 *
 * Matrices (Lavin & Gray): V = B^T d B, U = G g G^T, Y = A^T (U .* V) A with
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * Tile (ty, tx) covers outputs rows 2ty..2ty+1, columns 2tx..2tx+1 and reads input rows
 * 2ty-1..2ty+2, columns 2tx-1..2tx+2 (zero outside the image). The transforms run 16 tiles of a
 * tile row at a time, one tile per lane; every sum has a fixed order, so results are
 * deterministic. */
#include "conv2d_wino.h"

#include <immintrin.h>
#include <string.h>

void lb_conv2d_wino_weights(const float *w, int co_n, int ci_n, int flip, float *U) {
    const int cb_n = co_n / 8;
    for (int co = 0; co < co_n; co++)
        for (int ci = 0; ci < ci_n; ci++) {
            float g[3][3], t[4][3], u[4][4];
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++)
                    g[kh][kw] = flip ? w[((size_t)ci * co_n + co) * 9 + (2 - kh) * 3 + (2 - kw)]
                                     : w[((size_t)co * ci_n + ci) * 9 + kh * 3 + kw];
            for (int c = 0; c < 3; c++) { /* G g */
                t[0][c] = g[0][c];
                t[1][c] = 0.5f * (g[0][c] + g[1][c] + g[2][c]);
                t[2][c] = 0.5f * (g[0][c] - g[1][c] + g[2][c]);
                t[3][c] = g[2][c];
            }
            for (int r = 0; r < 4; r++) { /* (G g) G^T */
                u[r][0] = t[r][0];
                u[r][1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
                u[r][2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
                u[r][3] = t[r][2];
            }
            for (int xi = 0; xi < 16; xi++)
                U[(((size_t)xi * cb_n + co / 8) * ci_n + ci) * 8 + co % 8] = u[xi / 4][xi % 4];
        }
}

/* lanes l with 0 <= base + l < n */
static inline __mmask16 range_mask(int base, int n) {
    const int lo = base < 0 ? -base : 0;
    const int hi = n - base > 16 ? 16 : n - base;
    if (hi <= lo) return 0;
    return (__mmask16)((((1u << hi) - 1u) >> lo) << lo);
}

/* Horizontal half of B^T d B for one input row: the 4 components of the 16 tiles from column
 * base = 2*tx0 - 1 on (zero outside the image: the masks m0..m3 of the 4 loads) */
static inline void row_transform(const float *x, int h, int w, int row, int base, __mmask16 m0,
                                 __mmask16 m1, __mmask16 m2, __mmask16 m3, __m512 out[4]) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    if (row < 0 || row >= h) {
        for (int b = 0; b < 4; b++) out[b] = _mm512_setzero_ps();
        return;
    }
    /* base may be -1: lane 0 is masked off and never read */
    const float *p = x + (ptrdiff_t)row * w + base;
    const __m512 a0 = _mm512_maskz_loadu_ps(m0, p), a1 = _mm512_maskz_loadu_ps(m1, p + 16);
    const __m512 b0 = _mm512_maskz_loadu_ps(m2, p + 2), b1 = _mm512_maskz_loadu_ps(m3, p + 18);
    const __m512 d0 = _mm512_permutex2var_ps(a0, ev, a1), d1 = _mm512_permutex2var_ps(a0, od, a1),
                 d2 = _mm512_permutex2var_ps(b0, ev, b1), d3 = _mm512_permutex2var_ps(b0, od, b1);
    out[0] = _mm512_sub_ps(d0, d2);
    out[1] = _mm512_add_ps(d1, d2);
    out[2] = _mm512_sub_ps(d2, d1);
    out[3] = _mm512_sub_ps(d1, d3);
}

/* V[xi][ci][i*T + ty*tw + tx] for every tile of image plane x[h][w] (channel ci of image i). Tile
 * rows overlap by two input rows, so each row's horizontal transform is computed once. */
static void input_transform(const float *x, int h, int w, int tw, int th, float *V, size_t xi_ld,
                            size_t toff0) {
    for (int tx0 = 0; tx0 < tw; tx0 += 16) {
        const int nt = tw - tx0 < 16 ? tw - tx0 : 16;
        const int base = 2 * tx0 - 1;
        const __mmask16 m0 = range_mask(base, w), m1 = range_mask(base + 16, w),
                        m2 = range_mask(base + 2, w), m3 = range_mask(base + 18, w);
        const __mmask16 ms = (__mmask16)((1u << nt) - 1u);
        __m512 hr[4][4]; /* [input row 2ty-1+r][horizontal component] */
        row_transform(x, h, w, -1, base, m0, m1, m2, m3, hr[0]);
        row_transform(x, h, w, 0, base, m0, m1, m2, m3, hr[1]);
        for (int ty = 0; ty < th; ty++) {
            row_transform(x, h, w, 2 * ty + 1, base, m0, m1, m2, m3, hr[2]);
            row_transform(x, h, w, 2 * ty + 2, base, m0, m1, m2, m3, hr[3]);
            float *v = V + toff0 + (size_t)ty * tw + tx0;
            for (int b = 0; b < 4; b++) {
                _mm512_mask_storeu_ps(v + (size_t)(0 * 4 + b) * xi_ld, ms,
                                      _mm512_sub_ps(hr[0][b], hr[2][b]));
                _mm512_mask_storeu_ps(v + (size_t)(1 * 4 + b) * xi_ld, ms,
                                      _mm512_add_ps(hr[1][b], hr[2][b]));
                _mm512_mask_storeu_ps(v + (size_t)(2 * 4 + b) * xi_ld, ms,
                                      _mm512_sub_ps(hr[2][b], hr[1][b]));
                _mm512_mask_storeu_ps(v + (size_t)(3 * 4 + b) * xi_ld, ms,
                                      _mm512_sub_ps(hr[1][b], hr[3][b]));
            }
            for (int b = 0; b < 4; b++) hr[0][b] = hr[2][b], hr[1][b] = hr[3][b];
        }
    }
}

/* M[co0 + r][tile] = sum_ci U[ci][r] * V[ci][tile] for 8 output channels and nv vectors of tiles */
static inline __attribute__((always_inline)) void
gemm_8xn(const float *V, size_t ldt, const float *U, int cin, float *M, int nv) {
    __m512 acc[8][3];
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < nv; j++) acc[r][j] = _mm512_setzero_ps();
    for (int ci = 0; ci < cin; ci++) {
        __m512 v[3];
        for (int j = 0; j < nv; j++) v[j] = _mm512_loadu_ps(V + (size_t)ci * ldt + 16 * j);
        const float *u = U + (size_t)ci * 8;
        for (int r = 0; r < 8; r++) {
            const __m512 ur = _mm512_set1_ps(u[r]);
            for (int j = 0; j < nv; j++) acc[r][j] = _mm512_fmadd_ps(ur, v[j], acc[r][j]);
        }
    }
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < nv; j++) _mm512_storeu_ps(M + (size_t)r * ldt + 16 * j, acc[r][j]);
}

static void gemm(const lb_conv_wino *j, size_t nvec) {
    const int cin = j->cin, cb_n = j->cout / 8;
    const size_t ldt = j->ldt;
    const size_t xi_ld_v = lb_wino_xi_stride(cin, ldt), xi_ld_m = lb_wino_xi_stride(j->cout, ldt);
    for (int xi = 0; xi < 16; xi++) {
        const float *V = j->V + (size_t)xi * xi_ld_v;
        for (int cb = 0; cb < cb_n; cb++) {
            const float *U = j->U + ((size_t)xi * cb_n + cb) * cin * 8;
            float *M = j->M + (size_t)xi * xi_ld_m + (size_t)cb * 8 * ldt;
            size_t v = 0;
            for (; v + 3 <= nvec; v += 3) gemm_8xn(V + 16 * v, ldt, U, cin, M + 16 * v, 3);
            if (nvec - v == 2) gemm_8xn(V + 16 * v, ldt, U, cin, M + 16 * v, 2);
            if (nvec - v == 1) gemm_8xn(V + 16 * v, ldt, U, cin, M + 16 * v, 1);
        }
    }
}

static inline void store_row(float *dst, __m512 e, __m512 o, int col0, int w, int acc) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __mmask16 m0 = range_mask(col0, w), m1 = range_mask(col0 + 16, w);
    __m512 v0 = _mm512_permutex2var_ps(e, lo, o), v1 = _mm512_permutex2var_ps(e, hi, o);
    if (acc) {
        v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, dst + col0), v0);
        v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, dst + col0 + 16), v1);
    }
    _mm512_mask_storeu_ps(dst + col0, m0, v0);
    if (m1) _mm512_mask_storeu_ps(dst + col0 + 16, m1, v1);
}

/* y plane [h][w] (channel co of image i) from M[xi][co][i*T + ...] */
static void output_transform(const float *M, size_t co_ld, size_t toff0, int h, int w, int tw,
                             int th, float bias, float *y, int acc) {
    const __m512 bv = _mm512_set1_ps(bias);
    for (int ty = 0; ty < th; ty++)
        for (int tx0 = 0; tx0 < tw; tx0 += 16) {
            const int nt = tw - tx0 < 16 ? tw - tx0 : 16;
            const __mmask16 ms = (__mmask16)((1u << nt) - 1u);
            const float *m = M + toff0 + (size_t)ty * tw + tx0;
            __m512 s0[4], s1[4];
            for (int b = 0; b < 4; b++) {
                const __m512 m0 = _mm512_maskz_loadu_ps(ms, m + (size_t)(0 + b) * co_ld),
                             m1 = _mm512_maskz_loadu_ps(ms, m + (size_t)(4 + b) * co_ld),
                             m2 = _mm512_maskz_loadu_ps(ms, m + (size_t)(8 + b) * co_ld),
                             m3 = _mm512_maskz_loadu_ps(ms, m + (size_t)(12 + b) * co_ld);
                s0[b] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s1[b] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            const __m512 y00 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]), bv);
            const __m512 y01 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]), bv);
            const __m512 y10 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]), bv);
            const __m512 y11 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]), bv);
            const int r0 = 2 * ty, c0 = 2 * tx0;
            store_row(y + (size_t)r0 * w, y00, y01, c0, w, acc);
            if (r0 + 1 < h) store_row(y + (size_t)(r0 + 1) * w, y10, y11, c0, w, acc);
        }
}

void lb_conv2d_wino_avx512(const lb_conv_wino *j) {
    const int h = j->h, w = j->w, th = (h + 1) / 2, tw = (w + 1) / 2;
    const size_t T = (size_t)th * tw, hw = (size_t)h * w, ldt = j->ldt, used = (size_t)j->g * T;
    const size_t xi_ld_v = lb_wino_xi_stride(j->cin, ldt),
                 xi_ld_m = lb_wino_xi_stride(j->cout, ldt);
    for (int i = 0; i < j->g; i++)
        for (int ci = 0; ci < j->cin; ci++)
            input_transform(j->x + ((size_t)i * j->cin + ci) * hw, h, w, tw, th,
                            j->V + (size_t)ci * ldt, xi_ld_v, (size_t)i * T);
    /* tiles past the block: finite zeros, so the GEMM's unused lanes stay finite */
    if (used < ldt)
        for (int xi = 0; xi < 16; xi++)
            for (int ci = 0; ci < j->cin; ci++)
                memset(j->V + xi * xi_ld_v + (size_t)ci * ldt + used, 0,
                       (ldt - used) * sizeof(float));
    gemm(j, ldt / 16);
    for (int i = 0; i < j->g; i++)
        for (int co = 0; co < j->cout; co++)
            output_transform(j->M + (size_t)co * ldt, xi_ld_m, (size_t)i * T, h, w, tw, th,
                             j->bias ? j->bias[co] : 0.0f, j->y + ((size_t)i * j->cout + co) * hw,
                             j->acc);
}

/* ---- weight gradient ---------------------------------------------------------------------- */

/* D[xi][co][i*T + t] = (A dy_t A^T) for every tile of dy plane [h][w]; A = [1 0; 1 1; 1 -1; 0 -1]
 */
static void dy_transform(const float *dy, int h, int w, int tw, int th, float *D, size_t xi_ld,
                         size_t toff0) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 z = _mm512_setzero_ps();
    for (int tx0 = 0; tx0 < tw; tx0 += 16) {
        const int nt = tw - tx0 < 16 ? tw - tx0 : 16, c0 = 2 * tx0;
        const __mmask16 m0 = range_mask(c0, w), m1 = range_mask(c0 + 16, w);
        const __mmask16 ms = (__mmask16)((1u << nt) - 1u);
        for (int ty = 0; ty < th; ty++) {
            __m512 hr[2][4];
            for (int r = 0; r < 2; r++) {
                const int row = 2 * ty + r;
                if (row >= h) {
                    for (int b = 0; b < 4; b++) hr[r][b] = z;
                    continue;
                }
                const float *p = dy + (size_t)row * w + c0;
                const __m512 a0 = _mm512_maskz_loadu_ps(m0, p),
                             a1 = _mm512_maskz_loadu_ps(m1, p + 16);
                const __m512 e = _mm512_permutex2var_ps(a0, ev, a1),
                             o = _mm512_permutex2var_ps(a0, od, a1);
                hr[r][0] = e;
                hr[r][1] = _mm512_add_ps(e, o);
                hr[r][2] = _mm512_sub_ps(e, o);
                hr[r][3] = _mm512_sub_ps(z, o);
            }
            float *v = D + toff0 + (size_t)ty * tw + tx0;
            for (int b = 0; b < 4; b++) {
                _mm512_mask_storeu_ps(v + (size_t)(0 * 4 + b) * xi_ld, ms, hr[0][b]);
                _mm512_mask_storeu_ps(v + (size_t)(1 * 4 + b) * xi_ld, ms,
                                      _mm512_add_ps(hr[0][b], hr[1][b]));
                _mm512_mask_storeu_ps(v + (size_t)(2 * 4 + b) * xi_ld, ms,
                                      _mm512_sub_ps(hr[0][b], hr[1][b]));
                _mm512_mask_storeu_ps(v + (size_t)(3 * 4 + b) * xi_ld, ms,
                                      _mm512_sub_ps(z, hr[1][b]));
            }
        }
    }
}

/* Lane L of reduce16's result is the full sum of acc[dw_lane[L]] (acc index = 4*co + ci) */
static const int dw_lane[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};

/* The 16 horizontal sums of acc[0..15] in one vector (order dw_lane): a transpose-and-add tree,
 * ~45 operations instead of 16 separate reductions */
static inline __m512 reduce16(const __m512 acc[16]) {
    __m512 s1[8], s2[4], s3[2];
    for (int k = 0; k < 8; k++)
        s1[k] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[k], acc[k + 8], 0x44),
                              _mm512_shuffle_f32x4(acc[k], acc[k + 8], 0xEE));
    for (int k = 0; k < 4; k++)
        s2[k] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[k], s1[k + 4], 0x88),
                              _mm512_shuffle_f32x4(s1[k], s1[k + 4], 0xDD));
    for (int k = 0; k < 2; k++)
        s3[k] = _mm512_add_ps(_mm512_unpacklo_ps(s2[k], s2[k + 2]),
                              _mm512_unpackhi_ps(s2[k], s2[k + 2]));
    const __m512d a = _mm512_castps_pd(s3[0]), b = _mm512_castps_pd(s3[1]);
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
}

void lb_conv2d_wino_dw_avx512(const lb_conv_wino_dw *jd) {
    const lb_conv_wino *j = &jd->j;
    const int h = j->h, w = j->w, th = (h + 1) / 2, tw = (w + 1) / 2, cin = j->cin, cout = j->cout;
    const size_t T = (size_t)th * tw, hw = (size_t)h * w, ldt = j->ldt, used = (size_t)j->g * T;
    const size_t xv = lb_wino_xi_stride(cin, ldt), xd = lb_wino_xi_stride(cout, ldt);
    for (int i = 0; i < j->g; i++) {
        for (int ci = 0; ci < cin; ci++)
            input_transform(j->x + ((size_t)i * cin + ci) * hw, h, w, tw, th,
                            j->V + (size_t)ci * ldt, xv, (size_t)i * T);
        for (int co = 0; co < cout; co++)
            dy_transform(jd->dy + ((size_t)i * cout + co) * hw, h, w, tw, th,
                         j->M + (size_t)co * ldt, xd, (size_t)i * T);
    }
    if (used < ldt)
        for (int xi = 0; xi < 16; xi++) {
            for (int ci = 0; ci < cin; ci++)
                memset(j->V + xi * xv + (size_t)ci * ldt + used, 0, (ldt - used) * sizeof(float));
            for (int co = 0; co < cout; co++)
                memset(j->M + xi * xd + (size_t)co * ldt + used, 0, (ldt - used) * sizeof(float));
        }
    const size_t nv = ldt / 16;
    /* Mw[xi][co/4][ci/4][16]: one vector per 4x4 block of (co, ci), lanes in dw_lane order */
    for (int xi = 0; xi < 16; xi++) {
        const float *D = j->M + xi * xd, *V = j->V + xi * xv;
        float *Mx = jd->Mw + (size_t)xi * cout * cin;
        for (int c4 = 0; c4 < cout / 4; c4++)
            for (int i4 = 0; i4 < cin / 4; i4++) {
                __m512 acc[16];
                for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
                const float *d0 = D + (size_t)c4 * 4 * ldt, *v0 = V + (size_t)i4 * 4 * ldt;
                for (size_t v = 0; v < nv; v++) {
                    __m512 dv[4], xv4[4];
                    for (int a = 0; a < 4; a++) dv[a] = _mm512_loadu_ps(d0 + a * ldt + 16 * v);
                    for (int b = 0; b < 4; b++) xv4[b] = _mm512_loadu_ps(v0 + b * ldt + 16 * v);
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++)
                            acc[a * 4 + b] = _mm512_fmadd_ps(dv[a], xv4[b], acc[a * 4 + b]);
                }
                float *m = Mx + ((size_t)c4 * (cin / 4) + i4) * 16;
                _mm512_storeu_ps(m, _mm512_add_ps(_mm512_loadu_ps(m), reduce16(acc)));
            }
    }
}

void lb_conv2d_wino_dw_finish(const float *Mw, int cout, int cin, float *dw) {
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            float m[4][4], t[3][4];
            const int lane = dw_lane[(co % 4) * 4 + ci % 4]; /* the order is its own inverse */
            for (int xi = 0; xi < 16; xi++)
                m[xi / 4][xi % 4] = Mw[(size_t)xi * cout * cin +
                                       ((size_t)(co / 4) * (cin / 4) + ci / 4) * 16 + lane];
            for (int c = 0; c < 4; c++) { /* G^T m: G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1] */
                t[0][c] = m[0][c] + 0.5f * (m[1][c] + m[2][c]);
                t[1][c] = 0.5f * (m[1][c] - m[2][c]);
                t[2][c] = 0.5f * (m[1][c] + m[2][c]) + m[3][c];
            }
            float *o = dw + ((size_t)co * cin + ci) * 9;
            for (int r = 0; r < 3; r++) { /* (G^T m) G */
                o[r * 3 + 0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                o[r * 3 + 1] = 0.5f * (t[r][1] - t[r][2]);
                o[r * 3 + 2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
}
