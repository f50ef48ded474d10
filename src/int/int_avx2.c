/* AVX2 integer kernels: conv as an im2col-tiled GEMM on int16 pairs (vpmaddwd: exact for every
 * code width, the only AVX2 multiply-add without saturation), linear as int16 dot products, and
 * the requantization in 64-bit lanes (arithmetic shifts emulated; AVX2 has none on 64 bits).
 * Bit exact against the scalar reference in int_run.c. Compiled with -mavx2 -mfma only. */
#include "int_internal.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* ---- requantization of 8 int32 lanes ----------------------------------------------------------
 */
typedef struct rq8 {
    __m256i m, b, half, mask, lo, hi, one;
    __m128i s;
} rq8;

static rq8 rq8_make(const lb_int_rq *rq, int32_t lo, int32_t hi) {
    rq8 r;
    r.m = _mm256_set1_epi64x(rq->m);
    r.b = _mm256_set1_epi64x(rq->b);
    r.half = _mm256_set1_epi64x((int64_t)1 << (rq->s - 1));
    r.mask = _mm256_set1_epi64x(((int64_t)1 << rq->s) - 1);
    r.lo = _mm256_set1_epi64x(lo);
    r.hi = _mm256_set1_epi64x(hi);
    r.one = _mm256_set1_epi64x(1);
    r.s = _mm_cvtsi32_si128(rq->s);
    return r;
}

/* Four sign-extended lanes: clamp(rshift_rne(v*m + b, s), lo, hi). */
AI __m256i rq_4x64(__m256i v, const rq8 *r) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i u = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(v, r->m), r->b), r->half);
    /* floor(u / 2^s) = ~(~u >> s) for negative u, with a logical shift */
    __m256i sg = _mm256_cmpgt_epi64(zero, u);
    __m256i q = _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(u, sg), r->s), sg);
    __m256i tie = _mm256_cmpeq_epi64(_mm256_and_si256(u, r->mask), zero);
    q = _mm256_sub_epi64(q, _mm256_and_si256(tie, _mm256_and_si256(q, r->one)));
    q = _mm256_blendv_epi8(q, r->lo, _mm256_cmpgt_epi64(r->lo, q));
    q = _mm256_blendv_epi8(q, r->hi, _mm256_cmpgt_epi64(q, r->hi));
    return q;
}

AI __m256i rq_8x32(__m256i v, const rq8 *r) {
    __m256i a = rq_4x64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)), r);
    __m256i b = rq_4x64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)), r);
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(a, idx));
    __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(b, idx));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Stores 16 requantized values (a: 0..7, b: 8..15), the first n of them, as type t. */
AI void store16(void *y, lb_int_type t, __m256i a, __m256i b, int n) {
    if (t == LB_IT_S32) {
        if (n == 16) {
            _mm256_storeu_si256((__m256i *)y, a);
            _mm256_storeu_si256((__m256i *)y + 1, b);
        } else {
            int32_t tmp[16];
            _mm256_storeu_si256((__m256i *)tmp, a);
            _mm256_storeu_si256((__m256i *)tmp + 1, b);
            memcpy(y, tmp, (size_t)n * 4);
        }
        return;
    }
    __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    __m128i l = _mm256_castsi256_si128(p16), h = _mm256_extracti128_si256(p16, 1);
    __m128i p8 = t == LB_IT_U8 ? _mm_packus_epi16(l, h) : _mm_packs_epi16(l, h);
    if (n == 16) {
        _mm_storeu_si128((__m128i *)y, p8);
    } else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, p8);
        memcpy(y, tmp, (size_t)n);
    }
}

void lb_int_requant_row_avx2(const int32_t *x, size_t n, const lb_int_rq *rq, int32_t lo,
                             int32_t hi, lb_int_type yt, void *y) {
    rq8 r = rq8_make(rq, lo, hi);
    const size_t es = lb_int_type_size(yt);
    size_t i = 0;
    for (; i < n; i += 16) {
        int cnt = n - i >= 16 ? 16 : (int)(n - i);
        __m256i a, b;
        if (cnt == 16) {
            a = _mm256_loadu_si256((const __m256i *)(x + i));
            b = _mm256_loadu_si256((const __m256i *)(x + i + 8));
        } else {
            int32_t tmp[16] = {0};
            memcpy(tmp, x + i, (size_t)cnt * 4);
            a = _mm256_loadu_si256((const __m256i *)tmp);
            b = _mm256_loadu_si256((const __m256i *)(tmp + 8));
        }
        store16((char *)y + i * es, yt, rq_8x32(a, &r), rq_8x32(b, &r), cnt);
    }
}

/* ---- conv -------------------------------------------------------------------------------------
 */
/* Four output channels x 16 pixels of the packed tile t[kp][npad][2] (t offset to the block's
 * first pixel); explicit accumulators so they stay in registers. */
static void gemm4(const int16_t *w, int k2, const int16_t *t, int npad, int nkp, __m256i out[8]) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00;
    const int16_t *w0 = w, *w1 = w0 + k2, *w2 = w1 + k2, *w3 = w2 + k2;
    for (int kp = 0; kp < nkp; kp++) {
        const int16_t *tp = t + (size_t)kp * npad * 2;
        __m256i x0 = _mm256_load_si256((const __m256i *)tp);
        __m256i x1 = _mm256_load_si256((const __m256i *)(tp + 16));
#define STEP(i)                                                                                    \
    {                                                                                              \
        int32_t v;                                                                                 \
        memcpy(&v, w##i + 2 * kp, 4);                                                              \
        __m256i b = _mm256_set1_epi32(v);                                                          \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(x0, b));                             \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(x1, b));                             \
    }
        STEP(0) STEP(1) STEP(2) STEP(3)
#undef STEP
    }
    out[0] = c00, out[1] = c01, out[2] = c10, out[3] = c11;
    out[4] = c20, out[5] = c21, out[6] = c30, out[7] = c31;
}

static void gemm1(const int16_t *w, const int16_t *t, int npad, int nkp, __m256i out[2]) {
    __m256i c0 = _mm256_setzero_si256(), c1 = c0;
    for (int kp = 0; kp < nkp; kp++) {
        const int16_t *tp = t + (size_t)kp * npad * 2;
        int32_t v;
        memcpy(&v, w + 2 * kp, 4);
        __m256i b = _mm256_set1_epi32(v);
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_load_si256((const __m256i *)tp), b));
        c1 = _mm256_add_epi32(c1,
                              _mm256_madd_epi16(_mm256_load_si256((const __m256i *)(tp + 16)), b));
    }
    out[0] = c0;
    out[1] = c1;
}

static void finish(const lb_int_op *op, int co, const __m256i acc[2], void *y, lb_int_type yt,
                   size_t ybase, int cnt) {
    const size_t es = lb_int_type_size(yt), plane = (size_t)op->oh * op->ow;
    rq8 r = rq8_make(&op->rq[co], op->lo, op->hi);
    char *dst = (char *)y + ((size_t)co * plane + ybase) * es;
    store16(dst, yt, rq_8x32(acc[0], &r), rq_8x32(acc[1], &r), cnt);
}

/* Packs output rows [r0, r0+R) into t[kp][npad][2] (pairs k = 2kp, 2kp+1 per pixel), 8 pixels
 * at a time; the overhang is rewritten by the next row or lies in the slack. */
static void pack_rows(const lb_int_op *op, const int16_t *xg, const int32_t *koff, int r0, int R,
                      int npad, int16_t *t) {
    const int s = op->stride, pw = op->iw + 2 * op->pad, ow = op->ow, nkp = op->k2 / 2;
    for (int kp = 0; kp < nkp; kp++) {
        int16_t *d = t + (size_t)kp * npad * 2;
        for (int r = 0; r < R; r++) {
            size_t ro = (size_t)(r0 + r) * s * pw;
            const int16_t *a = xg + koff[2 * kp] + ro, *b = xg + koff[2 * kp + 1] + ro;
            int16_t *dr = d + (size_t)r * ow * 2;
            if (s <= 2) {
                for (int ox = 0; ox < ow; ox += 8) {
                    __m128i va, vb;
                    if (s == 1) {
                        va = _mm_loadu_si128((const __m128i *)(a + ox));
                        vb = _mm_loadu_si128((const __m128i *)(b + ox));
                    } else {
#define EVEN(p)                                                                                    \
    _mm_packs_epi32(                                                                               \
        _mm_srai_epi32(_mm_slli_epi32(_mm_loadu_si128((const __m128i *)((p) + 2 * ox)), 16), 16),  \
        _mm_srai_epi32(_mm_slli_epi32(_mm_loadu_si128((const __m128i *)((p) + 2 * ox + 8)), 16),   \
                       16))
                        va = EVEN(a);
                        vb = EVEN(b);
#undef EVEN
                    }
                    __m128i *o = (__m128i *)(dr + (size_t)ox * 2);
                    _mm_storeu_si128(o, _mm_unpacklo_epi16(va, vb));
                    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(va, vb));
                }
            } else {
                for (int ox = 0; ox < ow; ox++) {
                    dr[2 * ox] = a[ox * s];
                    dr[2 * ox + 1] = b[ox * s];
                }
            }
        }
    }
}

/* Padded copy of the input as int16 ([cin][ih+2p][iw+2p], zero border). */
static void pad_copy16(const lb_int_op *op, lb_int_type xt, const void *x, int16_t *xp) {
    const int ph = op->ih + 2 * op->pad, pw = op->iw + 2 * op->pad;
    memset(xp, 0, (size_t)op->cin * ph * pw * sizeof *xp);
    for (int c = 0; c < op->cin; c++)
        for (int iy = 0; iy < op->ih; iy++) {
            int16_t *d = xp + ((size_t)c * ph + iy + op->pad) * pw + op->pad;
            size_t s = ((size_t)c * op->ih + iy) * op->iw;
            if (xt == LB_IT_U8)
                for (int ix = 0; ix < op->iw; ix++) d[ix] = ((const uint8_t *)x)[s + ix];
            else if (xt == LB_IT_S8)
                for (int ix = 0; ix < op->iw; ix++) d[ix] = ((const int8_t *)x)[s + ix];
            else
                memcpy(d, (const int16_t *)x + s, (size_t)op->iw * sizeof *d);
        }
}

static void linear_avx2(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                        unsigned char *scratch) {
    const int K = op->cin, kv = (op->k2 + 15) / 16 * 16;
    int16_t *xs = (int16_t *)scratch;
    for (int k = 0; k < K; k++) xs[k] = (int16_t)lb_int_load(x, xt, (size_t)k);
    for (int k = K; k < kv; k++) xs[k] = 0;
    for (int co = 0; co < op->cout; co++) {
        /* rows are read 16 past their end into the next row (or the allocation's padding):
         * those products meet x = 0 */
        const int16_t *w = op->w2 + (size_t)co * op->k2;
        __m256i acc = _mm256_setzero_si256();
        for (int k = 0; k < kv; k += 16)
            acc = _mm256_add_epi32(acc,
                                   _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xs + k)),
                                                     _mm256_loadu_si256((const __m256i *)(w + k))));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        lb_int_store(y, yt, (size_t)co,
                     lb_int_requant(_mm_cvtsi128_si32(s), &op->rq[co], op->lo, op->hi));
    }
}

void lb_int_conv_avx2(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                      unsigned char *scratch) {
    if (op->linear) {
        linear_avx2(op, xt, x, yt, y, scratch);
        return;
    }
    const int k = op->k, ph = op->ih + 2 * op->pad, pw = op->iw + 2 * op->pad;
    const int cin_g = op->cin / op->groups, cout_g = op->cout / op->groups;
    const int K = cin_g * k * k, nkp = op->k2 / 2, ow = op->ow;
    lb_int_scratch_layout L;
    lb_int_scratch_plan(op, &L);
    int16_t *xp = (int16_t *)scratch, *t = (int16_t *)(scratch + L.tile_off);
    int32_t *koff = (int32_t *)(scratch + L.koff_off);
    pad_copy16(op, xt, x, xp);
    for (int kk = 0; kk < op->k2; kk++) {
        int ci = kk / (k * k), r = kk % (k * k);
        koff[kk] = kk < K ? (ci * ph + r / k) * pw + r % k : 0;
    }
    for (int g = 0; g < op->groups; g++) {
        const int16_t *xg = xp + (size_t)g * cin_g * ph * pw;
        for (int r0 = 0; r0 < op->oh; r0 += L.rows) {
            int R = op->oh - r0 < L.rows ? op->oh - r0 : L.rows;
            int np = R * ow, npad = (np + 31) / 32 * 32;
            pack_rows(op, xg, koff, r0, R, npad, t);
            size_t p0 = (size_t)r0 * ow;
            for (int c = 0; c < cout_g; c += 4) {
                int nc = cout_g - c < 4 ? cout_g - c : 4;
                int co0 = g * cout_g + c;
                for (int pb = 0; pb < np; pb += 16) {
                    int cnt = np - pb < 16 ? np - pb : 16;
                    const int16_t *tb = t + (size_t)pb * 2;
                    __m256i acc[8];
                    if (nc == 4) {
                        gemm4(op->w2 + (size_t)co0 * op->k2, op->k2, tb, npad, nkp, acc);
                        for (int i = 0; i < 4; i++)
                            finish(op, co0 + i, acc + 2 * i, y, yt, p0 + pb, cnt);
                    } else {
                        for (int i = 0; i < nc; i++) {
                            gemm1(op->w2 + (size_t)(co0 + i) * op->k2, tb, npad, nkp, acc);
                            finish(op, co0 + i, acc, y, yt, p0 + pb, cnt);
                        }
                    }
                }
            }
        }
    }
}
