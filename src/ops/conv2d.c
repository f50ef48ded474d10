/* conv2d: descriptor checks, scratch planning and the fast kernels. The scalar ground truth is
 * conv2d_ref.c. Four formulations, all parallel over images:
 *  - direct (AVX-512, conv2d_direct_avx512.c): "same" convs (pad (k-1)/2, k in {1, 3, 5}) at
 *    stride 1 or 2; no im2col: masked shifted loads on the image planes (at stride 2 on the input's
 *    four phase planes); dX runs the same kernel on dY; ~100-115 GFLOP/s per core;
 *  - GEMM: per-image im2col + single-threaded sgemm, for everything else (other pads, strides,
 *    kernels) and for every conv on CPUs without AVX-512;
 *  - Winograd F(2x2, 3x3) (AVX-512, conv2d_wino_avx512.c): forward, dX and dW of 3x3 stride-1
 *    pad-1 convs with channels in multiples of 8 (narrow images laid side by side);
 *  - depthwise (groups == cin == cout): direct plane loops (conv2d_dw_impl.h).
 * Setting LOWBIT_CONV_SIMD=0 in the environment forces the GEMM path and the baseline depthwise
 * loops (tests use it to cover both on any machine); LOWBIT_CONV_WINOGRAD=0 keeps 3x3 stride-1
 * convs on the direct kernels.
 *
 * Why per image: a batch-wide column matrix (B*HW x K) streams from DRAM and caps sgemm at 53-100
 * GFLOP/s on the target machine, while one image's columns stay in its core's L2 and run at ~90
 * GFLOP/s per core. Each OpenMP worker therefore owns a slice of the scratch (its column buffer and
 * its dW/db partial) and a contiguous range of images (static partition), and the partials are
 * summed in fixed thread order, so results depend only on the thread count.
 *
 * The scratch must be sized with the worker count lb_threads_get() has when the kernels run. */
#include "conv2d_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* ---- im2col / col2im over output rows [r0, r1) -------------------------------------------------
 * col[(c*k + kh)*k + kw][(oh - r0)*ow + ow] = x[c][oh*s - pad + kh][ow*s - pad + kw] (0 outside) */
static void valid_cols(int w, int ow, int s, int pad, int kw, int *lo, int *hi) {
    const int a = pad - kw; /* ow*s >= a */
    int l = a > 0 ? (a + s - 1) / s : 0;
    const int b = w - 1 + pad - kw; /* ow*s <= b */
    int h = b < 0 ? 0 : b / s + 1;
    if (h > ow) h = ow;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

static void im2col(const float *x, int ch, int h, int w, int k, int s, int pad, int ow, int r0,
                   int r1, float *col) {
    const size_t nb = (size_t)(r1 - r0) * ow;
    for (int c = 0; c < ch; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                float *dst = col + ((size_t)(c * k + kh) * k + kw) * nb;
                int lo, hi;
                valid_cols(w, ow, s, pad, kw, &lo, &hi);
                for (int r = r0; r < r1; r++, dst += ow) {
                    const int ih = r * s - pad + kh;
                    if (ih < 0 || ih >= h || lo == hi) {
                        memset(dst, 0, (size_t)ow * sizeof *dst);
                        continue;
                    }
                    const float *src = xc + (size_t)ih * w + (lo * s - pad + kw);
                    for (int j = 0; j < lo; j++) dst[j] = 0;
                    if (s == 1) {
                        memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof *dst);
                    } else {
                        for (int j = 0; j < hi - lo; j++) dst[lo + j] = src[(size_t)j * s];
                    }
                    for (int j = hi; j < ow; j++) dst[j] = 0;
                }
            }
    }
}

/* x[c][...] += the column entries (the adjoint of im2col). */
static void col2im(const float *col, int ch, int h, int w, int k, int s, int pad, int ow, int r0,
                   int r1, float *x) {
    const size_t nb = (size_t)(r1 - r0) * ow;
    for (int c = 0; c < ch; c++) {
        float *xc = x + (size_t)c * h * w;
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                const float *src = col + ((size_t)(c * k + kh) * k + kw) * nb;
                int lo, hi;
                valid_cols(w, ow, s, pad, kw, &lo, &hi);
                for (int r = r0; r < r1; r++, src += ow) {
                    const int ih = r * s - pad + kh;
                    if (ih < 0 || ih >= h) continue;
                    float *dst = xc + (size_t)ih * w + (lo * s - pad + kw);
                    for (int j = 0; j < hi - lo; j++) dst[(size_t)j * s] += src[lo + j];
                }
            }
    }
}

/* ---- GEMM path --------------------------------------------------------------------------------
 */
static void forward_image(const lb_conv2d_desc *d, const plan *p, const float *xn, const float *w,
                          const float *b, float *yn, float *col) {
    const int cig = p->cig, cog = p->cog, K = p->kdim;
    for (int g = 0; g < d->groups; g++) {
        const float *xg = xn + (size_t)g * cig * p->hw;
        const float *wg = w + (size_t)g * cog * K;
        float *yg = yn + (size_t)g * cog * p->ohw;
        if (p->pointwise) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cog, (int)p->ohw, K, 1.0f, wg, K,
                        xg, (int)p->hw, 0.0f, yg, (int)p->ohw);
            continue;
        }
        for (int r0 = 0; r0 < d->oh; r0 += p->rb) {
            const int r1 = r0 + p->rb < d->oh ? r0 + p->rb : d->oh, nb = (r1 - r0) * d->ow;
            im2col(xg, cig, d->h, d->w, p->k, d->stride, d->pad, d->ow, r0, r1, col);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cog, nb, K, 1.0f, wg, K, col, nb,
                        0.0f, yg + (size_t)r0 * d->ow, (int)p->ohw);
        }
    }
    if (b)
        for (int c = 0; c < d->cout; c++) {
            float *yc = yn + (size_t)c * p->ohw;
            const float bc = b[c];
            for (size_t q = 0; q < p->ohw; q++) yc[q] += bc;
        }
}

void lb_conv2d_forward(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                       float *y, float *scratch) {
    plan p;
    lb_conv2d_plan_make(d, lb_threads_get(), lb_conv2d_simd_allowed(), lb_conv2d_wino_allowed(),
                        &p);
    if (p.dw) {
        lb_conv2d_dw_forward(d, &p, x, w, b, y, scratch);
        return;
    }
    if (p.wino) {
        lb_conv2d_wino_forward(d, &p, x, w, b, y, scratch);
        return;
    }
    if (p.direct) {
        lb_conv2d_direct_forward(d, &p, x, w, b, y, scratch);
        return;
    }
    const int nt = workers(&p, d->n);
    const size_t xs = (size_t)d->cin * p.hw, ys = (size_t)d->cout * p.ohw;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        float *col = worker_col(&p, scratch, t);
        for (int n = n0; n < n1; n++) {
            forward_image(d, &p, x + (size_t)n * xs, w, b, y + (size_t)n * ys, col);
            lb_conv2d_out_moments(d, y, n, n + 1);
        }
    }
}

/* dW partial += dY_n * col(x_n)^T, per group */
static void dw_image(const lb_conv2d_desc *d, const plan *p, const float *xn, const float *dyn,
                     float *pdw, float *col) {
    const int cig = p->cig, cog = p->cog, K = p->kdim;
    for (int g = 0; g < d->groups; g++) {
        const float *xg = xn + (size_t)g * cig * p->hw;
        const float *dyg = dyn + (size_t)g * cog * p->ohw;
        float *dwg = pdw + (size_t)g * cog * K;
        if (p->pointwise) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cog, K, (int)p->ohw, 1.0f, dyg,
                        (int)p->ohw, xg, (int)p->hw, 1.0f, dwg, K);
            continue;
        }
        for (int r0 = 0; r0 < d->oh; r0 += p->rb) {
            const int r1 = r0 + p->rb < d->oh ? r0 + p->rb : d->oh, nb = (r1 - r0) * d->ow;
            im2col(xg, cig, d->h, d->w, p->k, d->stride, d->pad, d->ow, r0, r1, col);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cog, K, nb, 1.0f,
                        dyg + (size_t)r0 * d->ow, (int)p->ohw, col, nb, 1.0f, dwg, K);
        }
    }
}

/* dX_n (=, or += when acc) from dY_n */
static void dx_image(const lb_conv2d_desc *d, const plan *p, const float *w, const float *wt,
                     const float *dyn, float *dxn, int acc, float *col) {
    const int cig = p->cig, cog = p->cog, K = p->kdim, k = p->k;
    const float beta = acc ? 1.0f : 0.0f;
    for (int g = 0; g < d->groups; g++) {
        const float *dyg = dyn + (size_t)g * cog * p->ohw;
        const float *wg = w + (size_t)g * cog * K;
        float *dxg = dxn + (size_t)g * cig * p->hw;
        if (p->pointwise) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cig, (int)p->hw, cog, 1.0f, wg, K,
                        dyg, (int)p->ohw, beta, dxg, (int)p->hw);
        } else if (p->dx_flip) {
            /* dX = conv(dY, w flipped and transposed), stride 1, pad k-1-pad: a forward conv */
            const int kx = cog * p->kk, padx = k - 1 - d->pad;
            const float *wtg = wt + (size_t)g * cig * kx;
            for (int r0 = 0; r0 < d->h; r0 += p->rbx) {
                const int r1 = r0 + p->rbx < d->h ? r0 + p->rbx : d->h, nb = (r1 - r0) * d->w;
                im2col(dyg, cog, d->oh, d->ow, k, 1, padx, d->w, r0, r1, col);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cig, nb, kx, 1.0f, wtg, kx,
                            col, nb, beta, dxg + (size_t)r0 * d->w, (int)p->hw);
            }
        } else {
            if (!acc) memset(dxg, 0, (size_t)cig * p->hw * sizeof *dxg);
            for (int r0 = 0; r0 < d->oh; r0 += p->rb) {
                const int r1 = r0 + p->rb < d->oh ? r0 + p->rb : d->oh, nb = (r1 - r0) * d->ow;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, nb, cog, 1.0f, wg, K,
                            dyg + (size_t)r0 * d->ow, (int)p->ohw, 0.0f, col, nb);
                col2im(col, cig, d->h, d->w, k, d->stride, d->pad, d->ow, r0, r1, dxg);
            }
        }
    }
}

/* wt[g][ci][co][kh][kw] = w[g*cog + co][ci][k-1-kh][k-1-kw] */
static void flip_weights(const lb_conv2d_desc *d, const plan *p, const float *w, float *wt) {
    const int cig = p->cig, cog = p->cog, kk = p->kk;
    for (int g = 0; g < d->groups; g++)
        for (int co = 0; co < cog; co++)
            for (int ci = 0; ci < cig; ci++) {
                const float *src = w + ((size_t)(g * cog + co) * cig + ci) * kk;
                float *dst = wt + (((size_t)g * cig + ci) * cog + co) * kk;
                for (int q = 0; q < kk; q++) dst[q] = src[kk - 1 - q];
            }
}

void lb_conv2d_backward(const lb_conv2d_desc *d, const float *x, const float *w, const float *dy,
                        float *dx, int dx_acc, float *dw, float *db, float *scratch) {
    plan p;
    lb_conv2d_plan_make(d, lb_threads_get(), lb_conv2d_simd_allowed(), lb_conv2d_wino_allowed(),
                        &p);
    if (p.dw) {
        lb_conv2d_dw_backward(d, &p, x, w, dy, dx, dx_acc, dw, db, scratch);
        return;
    }
    if (p.wino) {
        lb_conv2d_wino_backward(d, &p, x, w, dy, dx, dx_acc, dw, db, scratch);
        return;
    }
    if (p.direct) {
        lb_conv2d_direct_backward(d, &p, x, w, dy, dx, dx_acc, dw, db, scratch);
        return;
    }
    const int nt = workers(&p, d->n);
    const size_t xs = (size_t)d->cin * p.hw, ys = (size_t)d->cout * p.ohw;
    const size_t nw = (size_t)d->cout * p.kdim, bofs = round16(nw);
    float *wt = scratch; /* p.wt floats at the start */
    if (dx && p.dx_flip && !p.pointwise) flip_weights(d, &p, w, wt);
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
#pragma omp single
        used = T;
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        float *col = worker_col(&p, scratch, t), *pdw = worker_part(&p, scratch, t);
        if (dw) memset(pdw, 0, nw * sizeof *pdw);
        if (db) memset(pdw + bofs, 0, (size_t)d->cout * sizeof *pdw);
        for (int n = n0; n < n1; n++) {
            const float *dyn = dy + (size_t)n * ys;
            if (dw) dw_image(d, &p, x + (size_t)n * xs, dyn, pdw, col);
            if (db)
                for (int c = 0; c < d->cout; c++)
                    pdw[bofs + c] += sum_floats(dyn + (size_t)c * p.ohw, p.ohw);
            if (dx) dx_image(d, &p, w, wt, dyn, dx + (size_t)n * xs, dx_acc, col);
        }
#pragma omp barrier
        lb_conv2d_reduce_partials(&p, scratch, used, nw, d->cout, dw, db);
    }
}
