/* conv2d, depthwise (groups == cin == cout): direct plane loops with baseline, AVX2 and AVX-512
 * plane kernels (conv2d_dw_impl.h), and 16 channels at a time for short rows
 * (conv2d_dwc_avx512.c). Not the dense formulations (conv2d.c, conv2d_fast.c). */
#include "conv2d_direct.h"
#include "conv2d_internal.h"

#include <string.h>

/* ---- depthwise --------------------------------------------------------------------------------
 */
typedef void (*dw_fwd_fn)(const float *, int, const float *, float, int, int, int, int, float *);
typedef void (*dw_bwd_fn)(const float *, int, const float *, const float *, int, int, int, int,
                          float *, float *);
void lb_conv2d_dw_fwd_plane_base(const float *xp, int pw, const float *wk, float bias, int k, int s,
                                 int oh, int ow, float *y);
void lb_conv2d_dw_bwd_plane_base(const float *xp, int pw, const float *wk, const float *dy, int k,
                                 int s, int oh, int ow, float *dwk, float *dxp);
void lb_conv2d_dw_fwd_plane_avx2(const float *xp, int pw, const float *wk, float bias, int k, int s,
                                 int oh, int ow, float *y);
void lb_conv2d_dw_bwd_plane_avx2(const float *xp, int pw, const float *wk, const float *dy, int k,
                                 int s, int oh, int ow, float *dwk, float *dxp);
void lb_conv2d_dw_fwd_plane_avx512(const float *xp, int pw, const float *wk, float bias, int k,
                                   int s, int oh, int ow, float *y);
void lb_conv2d_dw_bwd_plane_avx512(const float *xp, int pw, const float *wk, const float *dy, int k,
                                   int s, int oh, int ow, float *dwk, float *dxp);

#define LB_DW_SUFFIX base
#include "conv2d_dw_impl.h"

static void dw_kernels(int simd, dw_fwd_fn *f, dw_bwd_fn *b) {
    if (simd && lb_conv2d_cpu_avx512()) {
        *f = lb_conv2d_dw_fwd_plane_avx512, *b = lb_conv2d_dw_bwd_plane_avx512;
    } else if (simd && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *f = lb_conv2d_dw_fwd_plane_avx2, *b = lb_conv2d_dw_bwd_plane_avx2;
    } else {
        *f = lb_conv2d_dw_fwd_plane_base, *b = lb_conv2d_dw_bwd_plane_base;
    }
}

/* Copies plane x[h][w] into the interior of xp[h+2p][w+2p] (whose border is already zero). */
static void pad_plane(const float *x, int h, int w, int pad, float *xp) {
    const int pw = w + 2 * pad;
    for (int r = 0; r < h; r++)
        memcpy(xp + (size_t)(r + pad) * pw + pad, x + (size_t)r * w, (size_t)w * sizeof *x);
}
/* 16 channels at a time (p->dwc): items are (image, block of 16 channels); worker t gets a
 * contiguous range of them. Its scratch: the input tile, the dX tile, the gathered dy. */
static void dwc_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                        const float *b, float *y, float *scratch) {
    const int C = d->cin, nb = (C + 15) / 16;
    const long items = (long)d->n * nb;
    const int nt = p->nt < items ? p->nt : (int)items;
    const size_t tl = p->dwt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        float *tile = worker_col(p, scratch, t);
        memset(tile, 0, tl * sizeof *tile);
        const long i0 = items * t / T, i1 = items * (t + 1) / T;
        for (long i = i0; i < i1; i++) {
            const int img = (int)(i / nb), c0 = (int)(i % nb) * 16;
            const int nc = C - c0 < 16 ? C - c0 : 16;
            const size_t pl = (size_t)img * C + c0; /* the block's first plane */
            lb_conv2d_dwc_fwd_avx512(x + pl * p->hw, d->h, d->w, nc, w + (size_t)c0 * p->kk,
                                     b ? b + c0 : NULL, p->k, d->stride, d->pad, d->oh, d->ow,
                                     y + pl * p->ohw, tile, tile + tl);
            if (d->moments)
                for (int c = 0; c < nc; c++)
                    lb_bn_plane_moments(y + (pl + c) * p->ohw, p->ohw, d->moments + 2 * (pl + c));
        }
    }
}

static void dwc_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                         const float *dy, float *dx, int dx_acc, float *dw, float *db,
                         float *scratch) {
    const int C = d->cin, nb = (C + 15) / 16, kk = p->kk;
    const long items = (long)d->n * nb;
    const int nt = p->nt < items ? p->nt : (int)items;
    const size_t tl = p->dwt;
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
#pragma omp single
        used = T;
        float *tile = worker_col(p, scratch, t), *dtile = tile + tl, *dyt = dtile + tl;
        float *pdw = worker_part(p, scratch, t), *pdb = pdw + round16((size_t)C * kk);
        memset(tile, 0, tl * sizeof *tile);
        memset(pdw, 0, p->part * sizeof *pdw);
        const long i0 = items * t / T, i1 = items * (t + 1) / T;
        for (long i = i0; i < i1; i++) {
            const int img = (int)(i / nb), c0 = (int)(i % nb) * 16;
            const int nc = C - c0 < 16 ? C - c0 : 16;
            const size_t pl = (size_t)img * C + c0;
            if (db)
                for (int c = 0; c < nc; c++)
                    pdb[c0 + c] += sum_floats(dy + (pl + c) * p->ohw, p->ohw);
            if (!dw && !dx) continue;
            lb_conv2d_dwc_bwd_avx512(x + pl * p->hw, d->h, d->w, nc, w + (size_t)c0 * kk,
                                     dy + pl * p->ohw, p->k, d->stride, d->pad, d->oh, d->ow,
                                     dw ? pdw + (size_t)c0 * kk : NULL, dx ? dx + pl * p->hw : NULL,
                                     dx_acc, tile, dtile, dyt);
        }
#pragma omp barrier
        lb_conv2d_reduce_partials(p, scratch, used, (size_t)C * kk, C, dw, db);
    }
}

/* Items are (image, channel) planes; worker t gets a contiguous range of them. */
void lb_conv2d_dw_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                          const float *b, float *y, float *scratch) {
    dw_fwd_fn fwd;
    dw_bwd_fn bwd;
    dw_kernels(p->simd, &fwd, &bwd);
    if (p->dwc) {
        dwc_forward(d, p, x, w, b, y, scratch);
        return;
    }
    const long items = (long)d->n * d->cin;
    const int nt = p->nt < items ? p->nt : (int)items;
    const int pw = d->w + 2 * d->pad;
    const size_t pl = (size_t)(d->h + 2 * d->pad) * pw;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        float *xp = worker_col(p, scratch, t);
        memset(xp, 0, pl * sizeof *xp);
        const long i0 = items * t / T, i1 = items * (t + 1) / T;
        for (long i = i0; i < i1; i++) {
            const int c = (int)(i % d->cin);
            pad_plane(x + (size_t)i * p->hw, d->h, d->w, d->pad, xp);
            if (p->dw3)
                lb_conv2d_dw3_fwd_plane_avx512(xp, pw, w + (size_t)c * 9, b ? b[c] : 0.0f, d->oh,
                                               d->ow, y + (size_t)i * p->ohw, 0);
            else
                fwd(xp, pw, w + (size_t)c * p->kk, b ? b[c] : 0.0f, p->k, d->stride, d->oh, d->ow,
                    y + (size_t)i * p->ohw);
            if (d->moments) /* plane i is image i / cin, channel c (cout == cin) */
                lb_bn_plane_moments(y + (size_t)i * p->ohw, p->ohw, d->moments + 2 * i);
        }
    }
}

void lb_conv2d_dw_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                           const float *dy, float *dx, int dx_acc, float *dw, float *db,
                           float *scratch) {
    dw_fwd_fn fwd;
    dw_bwd_fn bwd;
    dw_kernels(p->simd, &fwd, &bwd);
    if (p->dwc) {
        dwc_backward(d, p, x, w, dy, dx, dx_acc, dw, db, scratch);
        return;
    }
    const long items = (long)d->n * d->cin;
    const int nt = p->nt < items ? p->nt : (int)items;
    const int pw = d->w + 2 * d->pad, kk = p->kk, C = d->cin;
    const size_t pl = (size_t)(d->h + 2 * d->pad) * pw;
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
#pragma omp single
        used = T;
        float *xp = worker_col(p, scratch, t), *dxp = xp + p->col / 2;
        float *pdw = worker_part(p, scratch, t), *pdb = pdw + round16((size_t)C * kk);
        const int pd = 2 - d->pad, pwd = d->ow + 2 * pd; /* dw3: dy padding and width */
        memset(xp, 0, p->col * sizeof *xp);
        memset(pdw, 0, p->part * sizeof *pdw);
        const long i0 = items * t / T, i1 = items * (t + 1) / T;
        for (long i = i0; i < i1; i++) {
            const int c = (int)(i % C);
            const float *dyi = dy + (size_t)i * p->ohw;
            if (db) pdb[c] += sum_floats(dyi, p->ohw);
            if (!dw && !dx) continue;
            if (dw) pad_plane(x + (size_t)i * p->hw, d->h, d->w, d->pad, xp);
            if (p->dw3) {
                if (dw)
                    lb_conv2d_dw3_dw_plane_avx512(xp, pw, dyi, d->oh, d->ow, pdw + (size_t)c * 9);
                if (dx) {
                    float wf[9];
                    for (int q = 0; q < 9; q++) wf[q] = w[(size_t)c * 9 + 8 - q];
                    pad_plane(dyi, d->oh, d->ow, pd, dxp);
                    lb_conv2d_dw3_fwd_plane_avx512(dxp, pwd, wf, 0.0f, d->h, d->w,
                                                   dx + (size_t)i * p->hw, dx_acc);
                }
                continue;
            }
            if (dx) memset(dxp, 0, pl * sizeof *dxp);
            bwd(xp, pw, w + (size_t)c * kk, dyi, p->k, d->stride, d->oh, d->ow,
                dw ? pdw + (size_t)c * kk : NULL, dx ? dxp : NULL);
            if (dx) {
                float *dxi = dx + (size_t)i * p->hw;
                for (int r = 0; r < d->h; r++) {
                    const float *src = dxp + (size_t)(r + d->pad) * pw + d->pad;
                    float *dst = dxi + (size_t)r * d->w;
                    if (dx_acc)
                        for (int q = 0; q < d->w; q++) dst[q] += src[q];
                    else
                        memcpy(dst, src, (size_t)d->w * sizeof *dst);
                }
            }
        }
#pragma omp barrier
        /* fixed-order reduction of the partials, split over the parameter index */
        lb_conv2d_reduce_partials(p, scratch, used, (size_t)C * kk, C, dw, db);
    }
}
