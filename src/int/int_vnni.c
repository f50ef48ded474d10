/* AVX-512 VNNI integer kernels: conv as an im2col-tiled GEMM on byte quads (vpdpbusd: unsigned
 * input codes x signed weight codes, 64 multiply-adds per instruction, no saturation), linear as
 * byte dot products, and the requantization in 64-bit lanes. Signed input codes are shifted to
 * unsigned by +128 and the accumulator corrected by -128 * sum(weights); the int16 image input
 * goes to the AVX2 kernel. Bit exact against the scalar reference. Compiled with the VNNI flags
 * only; called only when the CPU has AVX-512 F/BW/VL and VNNI. */
#include "int_internal.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

typedef struct rq16 {
    __m512i m, b, half, mask, lo, hi, one;
    __m128i s;
} rq16;

static rq16 rq16_make(const lb_int_rq *rq, int32_t lo, int32_t hi) {
    rq16 r;
    r.m = _mm512_set1_epi64(rq->m);
    r.b = _mm512_set1_epi64(rq->b);
    r.half = _mm512_set1_epi64((int64_t)1 << (rq->s - 1));
    r.mask = _mm512_set1_epi64(((int64_t)1 << rq->s) - 1);
    r.lo = _mm512_set1_epi64(lo);
    r.hi = _mm512_set1_epi64(hi);
    r.one = _mm512_set1_epi64(1);
    r.s = _mm_cvtsi32_si128(rq->s);
    return r;
}

AI __m512i rq_8x64(__m512i v, const rq16 *r) {
    __m512i u = _mm512_add_epi64(_mm512_add_epi64(_mm512_mul_epi32(v, r->m), r->b), r->half);
    __m512i q = _mm512_sra_epi64(u, r->s);
    __mmask8 tie = _mm512_testn_epi64_mask(u, r->mask) & _mm512_test_epi64_mask(q, r->one);
    q = _mm512_mask_sub_epi64(q, tie, q, r->one);
    return _mm512_min_epi64(_mm512_max_epi64(q, r->lo), r->hi);
}

AI __m512i rq_16x32(__m512i v, const rq16 *r) {
    __m256i a = _mm512_cvtepi64_epi32(rq_8x64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), r));
    __m256i b =
        _mm512_cvtepi64_epi32(rq_8x64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)), r));
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

AI void store16(void *y, lb_int_type t, __m512i v, int n) {
    __mmask16 k = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1);
    if (t == LB_IT_S32)
        _mm512_mask_storeu_epi32(y, k, v);
    else
        _mm_mask_storeu_epi8(y, k, _mm512_cvtepi32_epi8(v));
}

void lb_int_requant_row_vnni(const int32_t *x, size_t n, const lb_int_rq *rq, int32_t lo,
                             int32_t hi, lb_int_type yt, void *y) {
    rq16 r = rq16_make(rq, lo, hi);
    const size_t es = lb_int_type_size(yt);
    for (size_t i = 0; i < n; i += 16) {
        int cnt = n - i >= 16 ? 16 : (int)(n - i);
        __mmask16 k = (__mmask16)(cnt >= 16 ? 0xFFFF : (1u << cnt) - 1);
        __m512i v = _mm512_maskz_loadu_epi32(k, x + i);
        store16((char *)y + i * es, yt, rq_16x32(v, &r), cnt);
    }
}

/* Eight output channels x 32 pixels of the packed tile t[q][npad][4] (t already offset to the
 * block's first pixel); explicit accumulators so they stay in registers. */
static void gemm8(const int8_t *w, int kq, const uint8_t *t, int npad, int nq, __m512i out[16]) {
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00;
    __m512i c61 = c00, c70 = c00, c71 = c00;
    const int8_t *w0 = w, *w1 = w0 + kq, *w2 = w1 + kq, *w3 = w2 + kq, *w4 = w3 + kq;
    const int8_t *w5 = w4 + kq, *w6 = w5 + kq, *w7 = w6 + kq;
    for (int q = 0; q < nq; q++) {
        const uint8_t *tp = t + (size_t)q * npad * 4;
        __m512i x0 = _mm512_load_si512((const void *)tp);
        __m512i x1 = _mm512_load_si512((const void *)(tp + 64));
#define STEP(i)                                                                                    \
    {                                                                                              \
        int32_t v;                                                                                 \
        memcpy(&v, w##i + 4 * q, 4);                                                               \
        __m512i b = _mm512_set1_epi32(v);                                                          \
        c##i##0 = _mm512_dpbusd_epi32(c##i##0, x0, b);                                             \
        c##i##1 = _mm512_dpbusd_epi32(c##i##1, x1, b);                                             \
    }
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
#undef STEP
    }
    out[0] = c00, out[1] = c01, out[2] = c10, out[3] = c11, out[4] = c20, out[5] = c21;
    out[6] = c30, out[7] = c31, out[8] = c40, out[9] = c41, out[10] = c50, out[11] = c51;
    out[12] = c60, out[13] = c61, out[14] = c70, out[15] = c71;
}

static void gemm1(const int8_t *w, const uint8_t *t, int npad, int nq, __m512i out[2]) {
    __m512i c0 = _mm512_setzero_si512(), c1 = c0;
    for (int q = 0; q < nq; q++) {
        const uint8_t *tp = t + (size_t)q * npad * 4;
        int32_t v;
        memcpy(&v, w + 4 * q, 4);
        __m512i b = _mm512_set1_epi32(v);
        c0 = _mm512_dpbusd_epi32(c0, _mm512_load_si512((const void *)tp), b);
        c1 = _mm512_dpbusd_epi32(c1, _mm512_load_si512((const void *)(tp + 64)), b);
    }
    out[0] = c0;
    out[1] = c1;
}

/* Requantizes and stores channel co's 32 accumulators (cnt valid pixels from pixel ybase). */
static void finish(const lb_int_op *op, int co, const __m512i acc[2], int shifted, void *y,
                   lb_int_type yt, size_t ybase, int cnt) {
    __m512i a0 = acc[0], a1 = acc[1];
    if (shifted) {
        __m512i c = _mm512_set1_epi32(128 * op->wsum[co]);
        a0 = _mm512_sub_epi32(a0, c);
        a1 = _mm512_sub_epi32(a1, c);
    }
    const size_t es = lb_int_type_size(yt), plane = (size_t)op->oh * op->ow;
    rq16 r = rq16_make(&op->rq[co], op->lo, op->hi);
    char *dst = (char *)y + ((size_t)co * plane + ybase) * es;
    store16(dst, yt, rq_16x32(a0, &r), cnt < 16 ? cnt : 16);
    if (cnt > 16) store16(dst + 16 * es, yt, rq_16x32(a1, &r), cnt - 16);
}

/* Packs output rows [r0, r0+R) of group input xg (padded, [cin_g][ph][pw]) into t[q][npad][4]:
 * pixel p = (oy-r0)*ow + ox holds the quad k = 4q..4q+3 (order ci, ky, kx). Rows are written 16
 * pixels at a time; the overhang is rewritten by the next row or lies in the slack. */
static void pack_rows(const lb_int_op *op, const uint8_t *xg, const int32_t *koff, int r0, int R,
                      int npad, uint8_t *t) {
    const int s = op->stride, pw = op->iw + 2 * op->pad, ow = op->ow, nq = op->kq / 4;
    for (int q = 0; q < nq; q++) {
        uint8_t *d = t + (size_t)q * npad * 4;
        for (int r = 0; r < R; r++) {
            size_t ro = (size_t)(r0 + r) * s * pw;
            const uint8_t *a = xg + koff[4 * q] + ro, *b = xg + koff[4 * q + 1] + ro;
            const uint8_t *c = xg + koff[4 * q + 2] + ro, *e = xg + koff[4 * q + 3] + ro;
            uint8_t *dr = d + (size_t)r * ow * 4;
            if (s <= 2) {
                for (int ox = 0; ox < ow; ox += 16) {
                    __m128i va, vb, vc, ve;
                    if (s == 1) {
                        va = _mm_loadu_si128((const __m128i *)(a + ox));
                        vb = _mm_loadu_si128((const __m128i *)(b + ox));
                        vc = _mm_loadu_si128((const __m128i *)(c + ox));
                        ve = _mm_loadu_si128((const __m128i *)(e + ox));
                    } else {
                        const __m256i lo = _mm256_set1_epi16(0xFF);
#define EVEN(p)                                                                                    \
    _mm256_castsi256_si128(_mm256_permute4x64_epi64(                                               \
        _mm256_packus_epi16(                                                                       \
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)((p) + 2 * ox)), lo),             \
            _mm256_setzero_si256()),                                                               \
        0xD8))
                        va = EVEN(a);
                        vb = EVEN(b);
                        vc = EVEN(c);
                        ve = EVEN(e);
#undef EVEN
                    }
                    __m128i ab0 = _mm_unpacklo_epi8(va, vb), ab1 = _mm_unpackhi_epi8(va, vb);
                    __m128i ce0 = _mm_unpacklo_epi8(vc, ve), ce1 = _mm_unpackhi_epi8(vc, ve);
                    __m128i *o = (__m128i *)(dr + (size_t)ox * 4);
                    _mm_storeu_si128(o, _mm_unpacklo_epi16(ab0, ce0));
                    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab0, ce0));
                    _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(ab1, ce1));
                    _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(ab1, ce1));
                }
            } else {
                for (int ox = 0; ox < ow; ox++) {
                    dr[4 * ox] = a[ox * s];
                    dr[4 * ox + 1] = b[ox * s];
                    dr[4 * ox + 2] = c[ox * s];
                    dr[4 * ox + 3] = e[ox * s];
                }
            }
        }
    }
}

/* Padded copy as unsigned bytes ([cin][ih+2p][iw+2p]); signed codes shifted by 128, so the
 * border holds the shifted zero. */
static void pad_copy8(const lb_int_op *op, int shifted, const uint8_t *x, uint8_t *xp) {
    const int ph = op->ih + 2 * op->pad, pw = op->iw + 2 * op->pad;
    memset(xp, shifted ? 0x80 : 0, (size_t)op->cin * ph * pw);
    for (int c = 0; c < op->cin; c++)
        for (int iy = 0; iy < op->ih; iy++) {
            uint8_t *d = xp + ((size_t)c * ph + iy + op->pad) * pw + op->pad;
            const uint8_t *s = x + ((size_t)c * op->ih + iy) * op->iw;
            if (shifted)
                for (int ix = 0; ix < op->iw; ix++) d[ix] = s[ix] ^ 0x80;
            else
                memcpy(d, s, (size_t)op->iw);
        }
}

static void linear_vnni(const lb_int_op *op, int shifted, const uint8_t *x, lb_int_type yt, void *y,
                        unsigned char *scratch) {
    const int K = op->cin, kv = (op->kq + 63) / 64 * 64;
    uint8_t *xs = scratch;
    for (int k = 0; k < K; k++) xs[k] = shifted ? x[k] ^ 0x80 : x[k];
    memset(xs + K, 0, (size_t)(kv - K));
    for (int co = 0; co < op->cout; co++) {
        /* rows are read up to 63 bytes past their end (next row or allocation padding): those
         * products meet x = 0 */
        const int8_t *w = op->w4 + (size_t)co * op->kq;
        __m512i acc = _mm512_setzero_si512();
        for (int k = 0; k < kv; k += 64)
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)(xs + k)),
                                      _mm512_loadu_si512((const void *)(w + k)));
        int32_t a = _mm512_reduce_add_epi32(acc) - (shifted ? 128 * op->wsum[co] : 0);
        lb_int_store(y, yt, (size_t)co, lb_int_requant(a, &op->rq[co], op->lo, op->hi));
    }
}

void lb_int_conv_vnni(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                      unsigned char *scratch) {
    if (xt == LB_IT_S16) {
        lb_int_conv_avx2(op, xt, x, yt, y, scratch);
        return;
    }
    const int shifted = xt == LB_IT_S8;
    if (op->linear) {
        linear_vnni(op, shifted, x, yt, y, scratch);
        return;
    }
    const int k = op->k, ph = op->ih + 2 * op->pad, pw = op->iw + 2 * op->pad;
    const int cin_g = op->cin / op->groups, cout_g = op->cout / op->groups;
    const int K = cin_g * k * k, nq = op->kq / 4, ow = op->ow;
    lb_int_scratch_layout L;
    lb_int_scratch_plan(op, &L);
    uint8_t *xp = scratch, *t = scratch + L.tile_off;
    int32_t *koff = (int32_t *)(scratch + L.koff_off);
    pad_copy8(op, shifted, x, xp);
    for (int kk = 0; kk < op->kq; kk++) {
        int ci = kk / (k * k), r = kk % (k * k);
        koff[kk] = kk < K ? (ci * ph + r / k) * pw + r % k : 0;
    }
    for (int g = 0; g < op->groups; g++) {
        const uint8_t *xg = xp + (size_t)g * cin_g * ph * pw;
        for (int r0 = 0; r0 < op->oh; r0 += L.rows) {
            int R = op->oh - r0 < L.rows ? op->oh - r0 : L.rows;
            int np = R * ow, npad = (np + 31) / 32 * 32;
            pack_rows(op, xg, koff, r0, R, npad, t);
            size_t p0 = (size_t)r0 * ow;
            for (int c = 0; c < cout_g; c += 8) {
                int nc = cout_g - c < 8 ? cout_g - c : 8;
                int co0 = g * cout_g + c;
                for (int pb = 0; pb < np; pb += 32) {
                    int cnt = np - pb < 32 ? np - pb : 32;
                    const uint8_t *tb = t + (size_t)pb * 4;
                    __m512i acc[16];
                    if (nc == 8) {
                        gemm8(op->w4 + (size_t)co0 * op->kq, op->kq, tb, npad, nq, acc);
                        for (int i = 0; i < 8; i++)
                            finish(op, co0 + i, acc + 2 * i, shifted, y, yt, p0 + pb, cnt);
                    } else {
                        for (int i = 0; i < nc; i++) {
                            gemm1(op->w4 + (size_t)(co0 + i) * op->kq, tb, npad, nq, acc);
                            finish(op, co0 + i, acc, shifted, y, yt, p0 + pb, cnt);
                        }
                    }
                }
            }
        }
    }
}
