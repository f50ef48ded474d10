/* AVX-512 direct kernels for stride-1 "same" convolutions (pad (k-1)/2, k in {1, 3, 5}) on
 * channel planes, without im2col: the forward (also used for dX with flipped weights) and the
 * weight gradient. See conv2d_direct.h for the data layout; conv2d.c packs weights and images,
 * builds the masks and dispatches here only when the CPU has AVX-512. Not the reference. */
#include "conv2d_direct.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* The register tiles rely on fully unrolled loops (arrays of accumulators become registers).
 * Sanitizer builds skip the forced unrolling: instrumenting every unrolled masked load makes clang
 * take minutes on this file, and speed does not matter there. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define LB_NO_UNROLL
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LB_NO_UNROLL
#endif
#define LB_PRAGMA(x) _Pragma(#x)
#ifdef LB_NO_UNROLL
#define LB_UNROLL(n)
#else
#define LB_UNROLL(n) LB_PRAGMA(GCC unroll n)
#endif

static inline __mmask16 tail_mask(int npos, int q) {
    const int r = npos - q;
    return r >= 16 ? (__mmask16)0xFFFF : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1);
}

/* ---- prefetch of the next block, spread over the tiles of this one --------------------------- */
typedef struct pf_state {
    const char *p[2];
    size_t left[2], per; /* bytes */
} pf_state;

static void pf_init(pf_state *s, const lb_conv_direct *j, size_t tiles) {
    size_t total = 0;
    for (int i = 0; i < 2; i++) {
        s->p[i] = (const char *)j->pf[i];
        s->left[i] = j->pf[i] ? j->pf_floats[i] * sizeof(float) : 0;
        total += s->left[i];
    }
    s->per = (total / (tiles ? tiles : 1) + 64) & ~(size_t)63;
}

static inline void pf_step(pf_state *s) {
    size_t n = s->per;
    for (int i = 0; i < 2 && n; i++) {
        const size_t m = s->left[i] < n ? s->left[i] : n;
        if (!m) continue;
        for (size_t o = 0; o < m; o += 64) _mm_prefetch(s->p[i] + o, _MM_HINT_T1);
        s->p[i] += m, s->left[i] -= m, n -= m;
    }
}

/* ---- forward: an R x V register tile (R output channels, V vectors of 16 positions) ---------- */
/* Weights wpb[t][ci][8] for output channels co..co+7; the tile walks all taps and input channels,
 * so each accumulator is written once. Per (tap, ci): V masked loads, R broadcasts, R*V FMAs. The
 * weight pack is zero past cout, so a last block of `rows` < 8 channels runs the full tile and
 * stores only its rows (one instantiation per V keeps the code small). */
#define R 8
AI void fwd_tile(const lb_conv_direct *j, const float *wpb, int co, int v0, int rows, const int V) {
    const int cin = j->cin, nt = j->ntaps;
    const size_t ldx = j->ldx;
    __m512 acc[8][3];
    __mmask16 tm[3];
    LB_UNROLL(8)
    for (int r = 0; r < R; r++) {
        LB_UNROLL(3)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    }
    LB_UNROLL(3)
    for (int v = 0; v < V; v++) tm[v] = tail_mask(j->npos, (v0 + v) * 16);
    for (int t = 0; t < nt; t++) {
        __mmask16 m[3];
        LB_UNROLL(3)
        for (int v = 0; v < V; v++) m[v] = j->masks[(size_t)(v0 + v) * nt + t] & tm[v];
        /* base of the shifted read; lanes outside the image are masked (never dereferenced) */
        const float *xt = j->x + ((ptrdiff_t)v0 * 16 + j->toff[t]);
        const float *wt = wpb + (size_t)t * cin * 8;
        for (int ci = 0; ci < cin; ci++) {
            __m512 xv[3];
            LB_UNROLL(3)
            for (int v = 0; v < V; v++) xv[v] = _mm512_maskz_loadu_ps(m[v], xt + 16 * v);
            LB_UNROLL(8)
            for (int r = 0; r < R; r++) {
                const __m512 w = _mm512_set1_ps(wt[r]);
                LB_UNROLL(3)
                for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(w, xv[v], acc[r][v]);
            }
            xt += ldx;
            wt += 8;
        }
    }
    LB_UNROLL(8)
    for (int r = 0; r < R; r++) {
        if (r >= rows) break;
        float *yr = j->y + (size_t)(co + r) * j->ldy + (size_t)v0 * 16;
        const __m512 b = _mm512_set1_ps(j->bias ? j->bias[co + r] : 0.0f);
        LB_UNROLL(3)
        for (int v = 0; v < V; v++) {
            __m512 o = _mm512_add_ps(acc[r][v], b);
            if (j->beta) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(tm[v], yr + 16 * v));
            _mm512_mask_storeu_ps(yr + 16 * v, tm[v], o);
        }
    }
}

#undef R

/* Positions are walked in chunks of at most CHUNK_VECS vectors (balanced), so a chunk of every
 * input plane stays in L2 while all output-channel blocks use it. */
#define CHUNK_VECS 64

void lb_conv2d_direct_fwd_avx512(const lb_conv_direct *j) {
    const int nv = (j->npos + 15) / 16;
    const int nch = (nv + CHUNK_VECS - 1) / CHUNK_VECS, per = (nv + nch - 1) / nch;
    pf_state pf;
    pf_init(&pf, j, (size_t)(j->cout + 7) / 8 * ((size_t)(nv + 2) / 3));
    for (int c0 = 0; c0 < nv; c0 += per) {
        const int c1 = c0 + per < nv ? c0 + per : nv;
        for (int co = 0; co < j->cout; co += 8) {
            const float *wpb = j->wp + (size_t)(co / 8) * j->ntaps * j->cin * 8;
            const int rows = j->cout - co >= 8 ? 8 : j->cout - co;
            for (int v = c0; v < c1;) {
                const int vr = c1 - v;
                pf_step(&pf);
                /* tiles of 3 vectors; a remainder of 1 becomes 2 + 2 (a 1-vector tile is
                 * load-bound) */
                if (vr >= 3 && vr != 4) {
                    fwd_tile(j, wpb, co, v, rows, 3);
                    v += 3;
                } else if (vr >= 2) {
                    fwd_tile(j, wpb, co, v, rows, 2);
                    v += 2;
                } else {
                    fwd_tile(j, wpb, co, v, rows, 1);
                    v += 1;
                }
            }
        }
    }
}

/* ---- weight gradient: R output channels x CB input channels x KW taps of one kernel row ------ */
/* Accumulates over all positions in registers, then adds the horizontal sums into dw. Per vector:
 * R loads of dy, KW mask loads, CB*KW masked loads of x, R*CB*KW FMAs. */
/* lane i of the result = sum of the lanes of s[i] (a transpose-and-add tree: 45 shuffles/adds for
 * 16 sums instead of 16 separate horizontal reductions) */
static inline __m512 hsum16(const __m512 *s) {
    static const int P[4] = {0, 2, 1, 3}, Q[4] = {0, 8, 4, 12};
    __m512 a[16], b[8], c[4], e[2];
    for (int i = 0; i < 16; i++) a[P[i % 4] + Q[i / 4]] = s[i];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[i], a[i + 8], 0x44),
                             _mm512_shuffle_f32x4(a[i], a[i + 8], 0xEE));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[i], b[i + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(b[i], b[i + 4], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int i = 0; i < 2; i++)
        e[i] = _mm512_add_ps(_mm512_shuffle_ps(c[i], c[i + 2], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(c[i], c[i + 2], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* One vector step of the weight-gradient tile. tm: lanes inside the block; rm[r] / cm[c]: all
 * lanes for the tile's real output / input channels, none for the padding of an edge tile. */
AI void dw_step(__m512 acc[8][6][5], const float *dyv, size_t lddy, const float *xv, size_t ldx,
                const int *to, const uint16_t *mk, __mmask16 tm, const __mmask16 *rm,
                const __mmask16 *cm, const int R, const int CB, const int KW, const int EDGE) {
    __m512 d[8];
    LB_UNROLL(8)
    for (int r = 0; r < R; r++)
        d[r] = _mm512_maskz_loadu_ps(EDGE ? tm & rm[r] : tm, dyv + r * lddy);
    LB_UNROLL(5)
    for (int kw = 0; kw < KW; kw++) {
        const __mmask16 m = mk[kw] & tm;
        const float *xs = xv + to[kw];
        LB_UNROLL(6)
        for (int c = 0; c < CB; c++) {
            const __m512 x = _mm512_maskz_loadu_ps(EDGE ? m & cm[c] : m, xs + c * ldx);
            LB_UNROLL(8)
            for (int r = 0; r < R; r++) acc[r][c][kw] = _mm512_fmadd_ps(d[r], x, acc[r][c][kw]);
        }
    }
}

/* Accumulates over all positions in registers, then adds the sums into dw. Per vector: R loads of
 * dy, KW mask loads, CB*KW masked loads of x, R*CB*KW FMAs. An edge tile (EDGE: rows < R or cols <
 * CB) runs in full with the missing channels' loads masked off and their sums dropped. */
AI void dw_tile(const lb_conv_direct *j, int co, int ci, int kh, int rows, int cols, int v0, int v1,
                const int R, const int CB, const int KW, const int EDGE) {
    const int nt = j->ntaps, nfull = j->npos / 16, vend = v1 < nfull ? v1 : nfull;
    const size_t ldx = j->ldx, lddy = j->lddy;
    __m512 acc[8][6][5];
    __mmask16 rm[8], cm[6];
    LB_UNROLL(8)
    for (int r = 0; r < R; r++) {
        rm[r] = r < rows ? (__mmask16)0xFFFF : (__mmask16)0;
        LB_UNROLL(6)
        for (int c = 0; c < CB; c++) {
            LB_UNROLL(5)
            for (int kw = 0; kw < KW; kw++) acc[r][c][kw] = _mm512_setzero_ps();
        }
    }
    LB_UNROLL(6)
    for (int c = 0; c < CB; c++) cm[c] = c < cols ? (__mmask16)0xFFFF : (__mmask16)0;
    int to[5];
    LB_UNROLL(5)
    for (int kw = 0; kw < KW; kw++) to[kw] = j->toff[kh * KW + kw];
    /* x is addressed through to[] offsets that may point before the plane, and missing channels
     * past the end: masked lanes only */
    const int nimg = j->nimg > 1 ? j->nimg : 1;
    for (int im = 0; im < nimg; im++) {
        const float *dyv = j->dy + im * j->dyimg + (size_t)co * lddy + (size_t)v0 * 16;
        const float *xv = j->x + im * j->ximg + (size_t)ci * ldx + (size_t)v0 * 16;
        const uint16_t *mk = j->masks + (size_t)v0 * nt + kh * KW;
        for (int v = v0; v < vend; v++, dyv += 16, xv += 16, mk += nt)
            dw_step(acc, dyv, lddy, xv, ldx, to, mk, (__mmask16)0xFFFF, rm, cm, R, CB, KW, EDGE);
        if (j->npos % 16 && v1 > nfull)
            dw_step(acc, dyv, lddy, xv, ldx, to, mk, tail_mask(j->npos, nfull * 16), rm, cm, R, CB,
                    KW, EDGE);
    }
    /* sums in (r, c, kw) order, 16 at a time */
    __m512 s[16];
    float out[16];
    int n = 0, base = 0;
    LB_UNROLL(8)
    for (int r = 0; r < R; r++) {
        LB_UNROLL(6)
        for (int c = 0; c < CB; c++) {
            LB_UNROLL(5)
            for (int kw = 0; kw < KW; kw++) {
                s[n++] = acc[r][c][kw];
                if (n == 16 || base + n == R * CB * KW) {
                    for (int i = n; i < 16; i++) s[i] = _mm512_setzero_ps();
                    _mm512_storeu_ps(out, hsum16(s));
                    for (int i = 0; i < n; i++) {
                        const int q = base + i, rr = q / (CB * KW), cc = q / KW % CB, kk = q % KW;
                        if (rr < rows && cc < cols)
                            j->dw[(size_t)(co + rr) * j->ldw + (size_t)(ci + cc) * nt + kh * KW +
                                  kk] += out[i];
                    }
                    base += n, n = 0;
                }
            }
        }
    }
}

/* Positions are cut into chunks of at most DW_CHUNK vectors (one reduction per chunk and tile),
 * so the tile's dy and x rows stay in L1 across the kernel rows kh of large images. */
#define DW_CHUNK 64

/* Tiles: k=3: 4 x 2 x 3 (24 accumulators; 8 x 1 x 3 when there is a single input channel); k=1:
 * 4 x 6 x 1; k=5: 2 x 2 x 5. */
#define DW_LOOP(R, CB, KW)                                                                         \
    do {                                                                                           \
        const int nv = (j->npos + 15) / 16, nch = (nv + DW_CHUNK - 1) / DW_CHUNK;                  \
        const int per = (nv + nch - 1) / nch;                                                      \
        pf_state pf;                                                                               \
        pf_init(&pf, j, (size_t)nch *(j->cout + R - 1) / R * ((j->cin + CB - 1) / CB) * KW);       \
        for (int v0 = 0; v0 < nv; v0 += per)                                                       \
            for (int co = 0; co < j->cout; co += R) {                                              \
                const int rows = j->cout - co < R ? j->cout - co : R;                              \
                for (int ci = 0; ci < j->cin; ci += CB) {                                          \
                    const int cols = j->cin - ci < CB ? j->cin - ci : CB;                          \
                    for (int kh = 0; kh < KW; kh++) {                                              \
                        pf_step(&pf);                                                              \
                        if (rows == R && cols == CB)                                               \
                            dw_tile(j, co, ci, kh, R, CB, v0, v0 + per, R, CB, KW, 0);             \
                        else                                                                       \
                            dw_tile(j, co, ci, kh, rows, cols, v0, v0 + per, R, CB, KW, 1);        \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
    } while (0)

void lb_conv2d_direct_dw_avx512(const lb_conv_direct *j) {
    if (j->k == 3 && j->cin == 1)
        DW_LOOP(8, 1, 3); /* first layer: no second input channel to pair with */
    else if (j->k == 3)
        DW_LOOP(4, 2, 3);
    else if (j->k == 1)
        DW_LOOP(4, 6, 1);
    else
        DW_LOOP(2, 2, 5);
}

/* ---- stride 2: the input's phase planes and back ------------------------------------------------
 * pk[(a*2+b)*ld + r*ow + col] = x[2r+a][2col+b] (0 past the edge): each row's even and odd columns
 * are separated with two permutes per 32 inputs. */
static const int32_t even_idx[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int32_t odd_idx[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
static const int32_t lo_idx[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int32_t hi_idx[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

void lb_conv2d_split_phases_avx512(const float *x, int h, int w, int oh, int ow, float *pk,
                                   size_t ld) {
    const __m512i ie = _mm512_loadu_si512(even_idx), io = _mm512_loadu_si512(odd_idx);
    for (int a = 0; a < 2; a++) {
        float *e = pk + (size_t)(a * 2) * ld, *o = e + ld;
        for (int r = 0; r < oh; r++, e += ow, o += ow) {
            const int ih = 2 * r + a;
            const float *src = x + (size_t)ih * w;
            for (int c0 = 0; c0 < ow; c0 += 16) {
                const __mmask16 sm = tail_mask(ow, c0);
                __m512 ev = _mm512_setzero_ps(), od = _mm512_setzero_ps();
                if (ih < h) {
                    const __m512 lo = _mm512_maskz_loadu_ps(tail_mask(w, 2 * c0), src + 2 * c0);
                    const __m512 hi =
                        _mm512_maskz_loadu_ps(tail_mask(w, 2 * c0 + 16), src + 2 * c0 + 16);
                    ev = _mm512_permutex2var_ps(lo, ie, hi);
                    od = _mm512_permutex2var_ps(lo, io, hi);
                }
                _mm512_mask_storeu_ps(e + c0, sm, ev);
                _mm512_mask_storeu_ps(o + c0, sm, od);
            }
        }
    }
}

/* The adjoint: dx[2r+a][2col+b] (+)= pk[(a*2+b)*ld + r*ow + col] for the h x w plane. */
void lb_conv2d_merge_phases_avx512(const float *pk, size_t ld, int h, int w, int ow, float *dx,
                                   int acc) {
    const __m512i il = _mm512_loadu_si512(lo_idx), ih2 = _mm512_loadu_si512(hi_idx);
    for (int ih = 0; ih < h; ih++) {
        const float *e = pk + (size_t)((ih & 1) * 2) * ld + (size_t)(ih >> 1) * ow, *o = e + ld;
        float *dst = dx + (size_t)ih * w;
        for (int c0 = 0; c0 < ow; c0 += 16) {
            const __mmask16 sm = tail_mask(ow, c0);
            const __m512 ev = _mm512_maskz_loadu_ps(sm, e + c0),
                         od = _mm512_maskz_loadu_ps(sm, o + c0);
            __m512 lo = _mm512_permutex2var_ps(ev, il, od),
                   hi = _mm512_permutex2var_ps(ev, ih2, od);
            const __mmask16 ml = tail_mask(w, 2 * c0), mh = tail_mask(w, 2 * c0 + 16);
            if (acc) {
                lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(ml, dst + 2 * c0));
                hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(mh, dst + 2 * c0 + 16));
            }
            _mm512_mask_storeu_ps(dst + 2 * c0, ml, lo);
            _mm512_mask_storeu_ps(dst + 2 * c0 + 16, mh, hi);
        }
    }
}

/* ---- depthwise 3x3, stride 1, on zero-padded planes -------------------------------------------
 * y[r][c] (+)= bias + sum w[kh][kw] * xp[(r+kh)*pw + c+kw]. NR output rows at a time share their
 * input rows: per 16 columns, (NR+2)*3 loads feed 9*NR FMAs. The weight gradient uses the same
 * row sharing; dX is this forward on the padded dy with the kernel flipped. */
AI void dw3_fwd_rows(const float *xp, int pw, const __m512 *wv, __m512 bv, int r0, int ow, float *y,
                     int acc, const int NR) {
    for (int c0 = 0; c0 < ow; c0 += 16) {
        const __mmask16 m = tail_mask(ow, c0);
        __m512 a[4];
        LB_UNROLL(4)
        for (int r = 0; r < NR; r++) a[r] = bv;
        LB_UNROLL(6)
        for (int ir = 0; ir < NR + 2; ir++) {
            const float *src = xp + (size_t)(r0 + ir) * pw + c0;
            const __m512 x0 = _mm512_maskz_loadu_ps(m, src), x1 = _mm512_maskz_loadu_ps(m, src + 1),
                         x2 = _mm512_maskz_loadu_ps(m, src + 2);
            LB_UNROLL(3)
            for (int kh = 0; kh < 3; kh++) {
                const int r = ir - kh;
                if (r < 0 || r >= NR) continue;
                a[r] = _mm512_fmadd_ps(wv[kh * 3], x0, a[r]);
                a[r] = _mm512_fmadd_ps(wv[kh * 3 + 1], x1, a[r]);
                a[r] = _mm512_fmadd_ps(wv[kh * 3 + 2], x2, a[r]);
            }
        }
        LB_UNROLL(4)
        for (int r = 0; r < NR; r++) {
            float *out = y + (size_t)(r0 + r) * ow + c0;
            __m512 v = a[r];
            if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, out));
            _mm512_mask_storeu_ps(out, m, v);
        }
    }
}

void lb_conv2d_dw3_fwd_plane_avx512(const float *xp, int pw, const float *wk, float bias, int oh,
                                    int ow, float *y, int acc) {
    __m512 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(wk[t]);
    const __m512 bv = _mm512_set1_ps(bias);
    int r0 = 0;
    for (; r0 + 4 <= oh; r0 += 4) dw3_fwd_rows(xp, pw, wv, bv, r0, ow, y, acc, 4);
    for (; r0 < oh; r0++) dw3_fwd_rows(xp, pw, wv, bv, r0, ow, y, acc, 1);
}

AI void dw3_dw_rows(const float *xp, int pw, const float *dy, int r0, int ow, __m512 *a,
                    const int NR) {
    for (int c0 = 0; c0 < ow; c0 += 16) {
        const __mmask16 m = tail_mask(ow, c0);
        __m512 d[4];
        LB_UNROLL(4)
        for (int r = 0; r < NR; r++)
            d[r] = _mm512_maskz_loadu_ps(m, dy + (size_t)(r0 + r) * ow + c0);
        LB_UNROLL(6)
        for (int ir = 0; ir < NR + 2; ir++) {
            const float *src = xp + (size_t)(r0 + ir) * pw + c0;
            const __m512 x0 = _mm512_maskz_loadu_ps(m, src), x1 = _mm512_maskz_loadu_ps(m, src + 1),
                         x2 = _mm512_maskz_loadu_ps(m, src + 2);
            LB_UNROLL(3)
            for (int kh = 0; kh < 3; kh++) {
                const int r = ir - kh;
                if (r < 0 || r >= NR) continue;
                a[kh * 3] = _mm512_fmadd_ps(d[r], x0, a[kh * 3]);
                a[kh * 3 + 1] = _mm512_fmadd_ps(d[r], x1, a[kh * 3 + 1]);
                a[kh * 3 + 2] = _mm512_fmadd_ps(d[r], x2, a[kh * 3 + 2]);
            }
        }
    }
}

/* dwk[kh*3 + kw] += sum dy[r][c] * xp[(r+kh)*pw + c+kw] */
void lb_conv2d_dw3_dw_plane_avx512(const float *xp, int pw, const float *dy, int oh, int ow,
                                   float *dwk) {
    __m512 a[16];
    for (int t = 0; t < 16; t++) a[t] = _mm512_setzero_ps();
    int r0 = 0;
    for (; r0 + 4 <= oh; r0 += 4) dw3_dw_rows(xp, pw, dy, r0, ow, a, 4);
    for (; r0 < oh; r0++) dw3_dw_rows(xp, pw, dy, r0, ow, a, 1);
    float out[16];
    _mm512_storeu_ps(out, hsum16(a));
    for (int t = 0; t < 9; t++) dwk[t] += out[t];
}
