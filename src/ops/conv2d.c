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
#include "lb_ops.h"

#include "conv2d_direct.h"
#include "conv2d_wino.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Column-buffer budget per worker (floats): big enough to hold a whole 28x28 image's columns for
 * K = 288 (cnn conv2), small enough to stay in a 2 MiB L2 with the GEMM's other operands. */
#define COL_BUDGET (256 * 1024)

static size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

/* Sum with 16 independent partial sums combined in a fixed order: vectorizes without
 * reassociation flags and gives the same bits on every call. */
static float sum_floats(const float *p, size_t n) {
    float a[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) a[j] += p[i + j];
    for (int j = 0; i < n; i++, j++) a[j] += p[i];
    float s = 0;
    for (int j = 0; j < 16; j++) s += a[j];
    return s;
}

lb_status lb_conv2d_desc_init(lb_conv2d_desc *d, int n, int cin, int h, int w, int cout, int k,
                              int stride, int pad, int groups) {
    if (n < 1 || cin < 1 || h < 1 || w < 1 || cout < 1 || k < 1)
        return lb_error_set(LB_EINVAL,
                            "conv2d: sizes must be positive (n %d, cin %d, h %d, w %d, cout %d, "
                            "k %d)",
                            n, cin, h, w, cout, k);
    if (stride < 1) return lb_error_set(LB_EINVAL, "conv2d: stride %d must be >= 1", stride);
    if (pad < 0) return lb_error_set(LB_EINVAL, "conv2d: pad %d must be >= 0", pad);
    if (groups < 1 || cin % groups || cout % groups)
        return lb_error_set(LB_EINVAL, "conv2d: groups %d must divide cin %d and cout %d", groups,
                            cin, cout);
    const long oh = ((long)h + 2L * pad - k) / stride + 1,
               ow = ((long)w + 2L * pad - k) / stride + 1;
    if ((long)h + 2L * pad < k || (long)w + 2L * pad < k || oh < 1 || ow < 1)
        return lb_error_set(LB_EINVAL,
                            "conv2d: kernel %d larger than the padded input %dx%d (pad %d)", k, h,
                            w, pad);
    const double elems = (double)n * ((double)cin * h * w + (double)cout * oh * ow);
    if (elems > 1e12 || (double)cout * cin * k * k > 1e12 || oh > 1 << 24 || ow > 1 << 24)
        return lb_error_set(LB_EINVAL, "conv2d: tensor sizes too large");
    d->n = n, d->cin = cin, d->h = h, d->w = w;
    d->cout = cout, d->kh = k, d->kw = k;
    d->stride = stride, d->pad = pad, d->groups = groups;
    d->oh = (int)oh, d->ow = (int)ow;
    d->moments = NULL;
    return LB_OK;
}

/* ---- plan: which formulation and where each scratch region lives ------------------------------
 * scratch = [shared: weights repacked for the kernels, masks, tap offsets]
 *           [per worker: column buffer / packed image blocks] x nt
 *           [per worker: dW|db partial] x nt */
typedef struct plan {
    int nt;              /* workers the scratch is sized for */
    int cig, cog, k, kk; /* channels per group, kernel, k*k */
    int kdim;            /* GEMM depth of the forward: cig*k*k */
    int dw;              /* depthwise: direct loops instead of GEMM */
    int dw3;             /* depthwise 3x3 stride 1 with the AVX-512 plane kernels */
    int simd;            /* SIMD kernels allowed (CPU has them and LOWBIT_CONV_SIMD != 0) */
    int direct;          /* AVX-512 direct kernels */
    int G;               /* direct: images per block (small images are packed side by side) */
    int packed;          /* direct: blocks are copied into per-worker planes of ld positions */
    size_t ld;           /* direct: positions per plane (G*oh*ow, or h*w when not packed) */
    size_t nvec;         /* direct: 16-lane vectors per plane */
    int dwb;             /* direct, unpacked: images per weight-gradient call */
    int pointwise;       /* 1x1, stride 1, pad 0: the input is its own column matrix */
    int dx_flip;         /* stride 1 and pad <= k-1: dX is a forward conv of dY (flipped w) */
    int rb;              /* output rows per column block (forward, dW, col2im dX) */
    int rbx;             /* input rows per column block (dX as flipped conv) */
    int wino;            /* direct, 3x3 s1 p1: forward, dX and dW by Winograd (conv2d_wino.h) */
    int wgh;             /* wino: images side by side in one unit (a zero column between) */
    int wW;              /* wino: width of a unit, wgh * (w + 1) - 1 */
    int wg;              /* wino: units per block (forward, dX) */
    int wgd;             /* wino: units per block of the weight gradient */
    size_t wpk;          /* wino, wgh > 1: floats of each of a worker's 3 packed-unit buffers */
    size_t wldt;         /* wino: tile stride of the transformed planes */
    size_t wU;           /* wino: offset in `shared` of the forward U (the dX U follows) */
    size_t wofs;         /* wino: offset in a worker's `col` of its V and M planes */
    size_t ohw, hw;
    size_t shared; /* floats: repacked weights (+ masks and offsets for direct) */
    size_t wpack;  /* floats of `shared` that hold repacked weights */
    size_t wfwd;   /* direct: floats of the forward weight pack (the dX pack follows) */
    size_t col;    /* floats per worker: column buffer, padded planes or packed blocks */
    size_t part;   /* floats per worker: dW partial then db partial */
} plan;

static int simd_allowed(void) {
    const char *e = getenv("LOWBIT_CONV_SIMD");
    return !(e && e[0] == '0');
}

/* LOWBIT_CONV_WINOGRAD=0 keeps 3x3 stride-1 convolutions on the direct kernels (A/B and tests) */
static int wino_allowed(void) {
    const char *e = getenv("LOWBIT_CONV_WINOGRAD");
    return !(e && e[0] == '0');
}

static int cpu_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

/* Images per direct block: one when an image has enough positions to amortize a tile's setup,
 * else enough images for ~512 positions, preferring a multiple of 16 positions (no ragged tail
 * vector). */
static int direct_block(size_t hw) {
    if (hw >= 256) return 1;
    const int need = (int)((512 + hw - 1) / hw);
    for (int g = need; g <= 2 * need; g++)
        if ((g * hw) % 16 == 0) return g;
    return need;
}

/* Winograd images per block: at least `tiles` tiles (the GEMMs' blocking) where the L2 allows,
 * with the fewest padding tiles up to twice that; V and M of the block (16 planes per channel
 * each) stay within ~896 KiB of the 1 MiB L2 (one image at least) */
static int wino_block(size_t T, size_t chans, size_t tiles) {
    int fit = 1;
    while (16 * chans * round16((size_t)(fit + 1) * T) * sizeof(float) <= (896u << 10) &&
           fit < 4096)
        fit++;
    int lo = (int)((tiles + T - 1) / T), hi = 2 * lo;
    if (hi > fit) hi = fit;
    if (lo > hi) lo = (hi + 1) / 2;
    int g = hi;
    double best = 2;
    for (int c = hi; c >= lo; c--) { /* ties go to the larger block */
        const size_t ldt = round16((size_t)c * T);
        const double waste = (double)(ldt - (size_t)c * T) / (double)ldt;
        if (waste < best - 1e-9) best = waste, g = c;
    }
    return g;
}

/* Images of width w per Winograd unit: the count (up to 16) whose unit's tile row fills its
 * 16-lane vectors best; wide images stand alone. */
static int wino_side_by_side(int w) {
    if (w >= 24) return 1;
    int best = 1;
    double bu = 0;
    for (int g = 1; g <= 16; g++) {
        const int tw = (g * (w + 1) - 1 + 1) / 2, vec = (tw + 15) / 16 * 16;
        const double u = (double)tw / vec;
        if (u > bu + 1e-9) bu = u, best = g;
    }
    return best;
}

static void make_plan(const lb_conv2d_desc *d, int nt, int simd, int wino, plan *p) {
    memset(p, 0, sizeof *p);
    p->nt = nt < 1 ? 1 : nt;
    p->cig = d->cin / d->groups, p->cog = d->cout / d->groups;
    p->k = d->kh, p->kk = d->kh * d->kh;
    p->kdim = p->cig * p->kk;
    p->ohw = (size_t)d->oh * d->ow, p->hw = (size_t)d->h * d->w;
    p->simd = simd;
    p->dw = d->groups == d->cin && d->groups == d->cout && d->groups > 1;
    p->pointwise = p->k == 1 && d->stride == 1 && d->pad == 0;
    p->dx_flip = d->stride == 1 && d->pad <= p->k - 1;
    p->part = round16((size_t)d->cout * p->kdim) + round16((size_t)d->cout);
    if (p->dw) {
        /* two padded planes: the input, and the dX accumulator (or, for the AVX-512 3x3 stride-1
         * kernels, dy padded by k-1-pad so dX is a forward pass with the flipped kernel) */
        p->dw3 = simd && cpu_avx512() && p->k == 3 && d->stride == 1 && d->pad <= 2;
        const size_t px = (size_t)(d->h + 2 * d->pad) * (d->w + 2 * d->pad);
        const size_t pdy = (size_t)(d->oh + 4 - 2 * d->pad) * (d->ow + 4 - 2 * d->pad);
        p->col = 2 * round16(p->dw3 && pdy > px ? pdy : px);
        return;
    }
    /* "same" padding, stride 1 or 2: the output grid (or, at stride 2, each of the 4 phase planes
     * of the input) lines up with the input so every tap is a constant offset */
    p->direct = simd && cpu_avx512() && (d->stride == 1 || d->stride == 2) &&
                2 * d->pad == p->k - 1 && (p->k == 1 || p->k == 3 || p->k == 5);
    if (p->direct) {
        p->G = direct_block(p->ohw);
        /* tap offsets are ints spanning up to 4 planes */
        if ((size_t)p->G * p->ohw >= ((size_t)1 << 28)) p->direct = 0;
    }
    if (p->direct) {
        const int ph = d->stride * d->stride; /* phase planes per input channel */
        p->packed = p->G > 1 || d->stride > 1;
        /* unpacked dW sums a few images per tile (fewer reductions) while x and dy of those
         * images stay within ~1 MiB of L2 */
        const size_t img = ((size_t)d->cin * p->hw + (size_t)d->cout * p->ohw) * sizeof(float);
        p->dwb = img * 4 <= (1u << 20) ? 4 : img * 2 <= (1u << 20) ? 2 : 1;
        p->ld = (size_t)p->G * p->ohw;
        p->nvec = (p->ld + 15) / 16;
        const size_t cob = (size_t)(p->cog + 7) / 8 * 8, cib = (size_t)(p->cig + 7) / 8 * 8;
        p->wfwd = round16((size_t)d->groups * cob * p->kk * p->cig);
        p->wpack = p->wfwd + round16((size_t)d->groups * cib * p->kk * p->cog);
        /* masks: forward [nvec][kk], dX passes [nvec][taps of the pass] back to back; offsets */
        p->shared = p->wpack + round16(p->nvec * p->kk) + round16((size_t)2 * p->kk);
        /* per worker: x (phase planes), dy or y, dx (phase planes) */
        if (p->packed) p->col = round16(p->ld * ph * d->cin) * 2 + round16(p->ld * d->cout);
        p->wino = wino && d->stride == 1 && p->k == 3 && d->pad == 1 && d->groups == 1 &&
                  d->cin % 8 == 0 && d->cout % 8 == 0;
        if (p->wino) {
            /* The transforms run a tile row (16 tiles) per vector, so narrow images would leave
             * most lanes idle (7x7: 4 of 16). Narrow images are therefore laid side by side with
             * one zero column between, which is exactly the padding each of them needs: the conv
             * of such a unit is the conv of each image, whatever the tiling. */
            p->wgh = wino_side_by_side(d->w), p->wW = p->wgh * (d->w + 1) - 1;
            const size_t T = (size_t)((d->h + 1) / 2) * ((p->wW + 1) / 2);
            p->wg = wino_block(T, (size_t)d->cin + d->cout, 96);
            /* dW sums over tiles: longer blocks amortize the reduction of each 4x4 block of
             * (co, ci) accumulators */
            p->wgd = wino_block(T, (size_t)d->cin + d->cout, 384);
            p->wldt = round16((size_t)(p->wg > p->wgd ? p->wg : p->wgd) * T);
            p->wU = p->shared;
            p->shared += 2 * round16((size_t)16 * d->cin * d->cout);
            p->wofs = p->col;
            const size_t cmax = (size_t)(d->cin > d->cout ? d->cin : d->cout);
            p->col += 2 * 16 * lb_wino_xi_stride((int)cmax, p->wldt) +
                      round16(lb_wino_dw_acc_floats(d->cout, d->cin));
            if (p->wgh > 1) {
                const int u = p->wg > p->wgd ? p->wg : p->wgd;
                p->wpk = round16((size_t)u * cmax * d->h * p->wW);
                p->col += 3 * p->wpk;
            }
        }
        return;
    }
    long rb = COL_BUDGET / ((long)p->kdim * d->ow);
    p->rb = rb < 1 ? 1 : rb > d->oh ? d->oh : (int)rb;
    long rbx = COL_BUDGET / ((long)p->cog * p->kk * d->w);
    p->rbx = rbx < 1 ? 1 : rbx > d->h ? d->h : (int)rbx;
    if (!p->pointwise) {
        p->col = round16((size_t)p->kdim * p->rb * d->ow);
        if (p->dx_flip) {
            size_t cx = round16((size_t)p->cog * p->kk * p->rbx * d->w);
            if (cx > p->col) p->col = cx;
            p->wpack = p->shared = round16((size_t)d->cin * p->cog * p->kk);
        }
    }
}

static size_t plan_floats(const plan *p) {
    return p->shared + (size_t)p->nt * (p->col + p->part);
}

/* Covers every formulation, so LOWBIT_CONV_SIMD may change between sizing and use. */
size_t lb_conv2d_scratch_floats(const lb_conv2d_desc *d, int nthreads) {
    plan a, b;
    make_plan(d, nthreads, 1, 1, &a);
    make_plan(d, nthreads, 0, 0, &b);
    const size_t fa = plan_floats(&a), fb = plan_floats(&b);
    return fa > fb ? fa : fb;
}

static float *worker_col(const plan *p, float *scratch, int t) {
    return scratch + p->shared + (size_t)t * p->col;
}
static float *worker_part(const plan *p, float *scratch, int t) {
    return scratch + p->shared + (size_t)p->nt * p->col + (size_t)t * p->part;
}

/* This worker's index and the team's size, inside a parallel region (0 of 1 without OpenMP). */
static void team(int *t, int *T) {
#ifdef _OPENMP
    *t = omp_get_thread_num(), *T = omp_get_num_threads();
#else
    *t = 0, *T = 1;
#endif
}

/* Worker t of nt gets images [*n0, *n1): contiguous, in order, as even as possible. */
static void image_range(int n, int t, int nt, int *n0, int *n1) {
    *n0 = (int)((long)n * t / nt);
    *n1 = (int)((long)n * (t + 1) / nt);
}

static int workers(const plan *p, int n) {
    return p->nt < n ? p->nt : n;
}

/* dw[q] and db[c] from the `used` workers' partials (dW then db at round16(nw)), summed in
 * worker order; called by the whole team inside its parallel region, after a barrier (the loops
 * are split among the team). */
static void reduce_partials(const plan *p, float *scratch, int used, size_t nw, int nb, float *dw,
                            float *db) {
    const size_t bofs = round16(nw);
    if (dw) {
#pragma omp for schedule(static)
        for (size_t q = 0; q < nw; q++) {
            float s = 0;
            for (int u = 0; u < used; u++) s += worker_part(p, scratch, u)[q];
            dw[q] = s;
        }
    }
    if (db) {
#pragma omp for schedule(static)
        for (int c = 0; c < nb; c++) {
            float s = 0;
            for (int u = 0; u < used; u++) s += worker_part(p, scratch, u)[bofs + c];
            db[c] = s;
        }
    }
}

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
    if (simd && cpu_avx512()) {
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

/* Items are (image, channel) planes; worker t gets a contiguous range of them. */
/* Moments of the output planes of images [n0, n1), taken right after they were written (in L1/L2)
 * for the batch norm that reads y next; see lb_conv2d_desc.moments. */
static void out_moments(const lb_conv2d_desc *d, const float *y, int n0, int n1) {
    if (!d->moments) return;
    const size_t ohw = (size_t)d->oh * d->ow;
    for (size_t pl = (size_t)n0 * d->cout; pl < (size_t)n1 * d->cout; pl++)
        lb_bn_plane_moments(y + pl * ohw, ohw, d->moments + 2 * pl);
}

static void dw_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                       const float *b, float *y, float *scratch) {
    dw_fwd_fn fwd;
    dw_bwd_fn bwd;
    dw_kernels(p->simd, &fwd, &bwd);
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

static void dw_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                        const float *dy, float *dx, int dx_acc, float *dw, float *db,
                        float *scratch) {
    dw_fwd_fn fwd;
    dw_bwd_fn bwd;
    dw_kernels(p->simd, &fwd, &bwd);
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
        reduce_partials(p, scratch, used, (size_t)C * kk, C, dw, db);
    }
}

/* ---- direct path (AVX-512) -------------------------------------------------------------------
 * Stride 1: planes are the images themselves (or G small images packed side by side).
 * Stride 2: each input channel is split into 4 phase planes x[c][a][b] = x[c][2i+a][2j+b] on the
 * output grid, so tap (kh, kw) reads phase ((kh-p) mod 2, (kw-p) mod 2) at a constant offset; dX is
 * computed per phase (only the taps of that phase reach it) and scattered back. */
typedef struct dpass {
    int ntaps;
    const int *toff;
    const uint16_t *masks; /* [nvec][ntaps] */
    const float *wp;       /* [groups][cout/8][ntaps][cin][8] */
    size_t wpg;            /* floats per group */
    size_t yoff;           /* dX: offset of this phase's plane in the output */
} dpass;

typedef struct dgeom {
    dpass fwd, dx[4];
    int ndx;
} dgeom;

static int floordiv(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Fills the tap offsets and validity masks of the forward and dX passes (weights are packed
 * separately, as forward or backward needs them). */
/* masks[v*nt + t] bit l: position q = 16v + l of the block lies in rows [rlo, rhi) and columns
 * [clo, chi) of its image (and inside the block) */
static void build_masks(const plan *p, int oh, int ow, int nt, const int *rlo, const int *rhi,
                        const int *clo, const int *chi, uint16_t *masks) {
    memset(masks, 0, p->nvec * nt * sizeof *masks);
    int r = 0, c = 0;
    for (size_t q = 0; q < p->ld; q++) {
        uint16_t *mv = masks + q / 16 * nt;
        const uint16_t bit = (uint16_t)(1u << (q % 16));
        for (int t = 0; t < nt; t++)
            if (r >= rlo[t] && r < rhi[t] && c >= clo[t] && c < chi[t]) mv[t] |= bit;
        if (++c == ow) {
            c = 0;
            if (++r == oh) r = 0;
        }
    }
}

/* Tap offsets and pass layout (cheap, every caller); the validity masks only where `build` asks:
 * bit 0 the forward/dW masks, bit 1 the dX passes' masks (one worker builds them). */
static dgeom direct_setup(const lb_conv2d_desc *d, const plan *p, float *scratch, int build) {
    dgeom g;
    memset(&g, 0, sizeof g);
    const int k = p->k, pad = d->pad, s = d->stride, kk = p->kk, ow = d->ow, oh = d->oh;
    uint16_t *masks = (uint16_t *)(scratch + p->wpack);
    int *toff = (int *)(scratch + p->wpack + round16(p->nvec * kk));
    int *dxoff = toff + kk;
    /* forward: tap t reads plane phase(t) at offset di*ow + dj (s = 1: the image, di = kh - pad) */
    int di[25], dj[25], ph[25];
    for (int t = 0; t < kk; t++) {
        const int eh = t / k - pad, ew = t % k - pad;
        di[t] = floordiv(eh, s), dj[t] = floordiv(ew, s);
        ph[t] = (eh - s * di[t]) * s + (ew - s * dj[t]);
        toff[t] = (int)(ph[t] * p->ld) + di[t] * ow + dj[t];
    }
    /* row/column ranges of the output grid where each tap reads inside the input */
    int rlo[25], rhi[25], clo[25], chi[25];
    for (int t = 0; t < kk; t++) {
        rlo[t] = rhi[t] = clo[t] = chi[t] = 0;
        for (int r = oh - 1; r >= 0; r--) {
            const int ih = s * r + t / k - pad;
            if (ih >= 0 && ih < d->h) rlo[t] = r, rhi[t] = rhi[t] ? rhi[t] : r + 1;
        }
        for (int c = ow - 1; c >= 0; c--) {
            const int iw = s * c + t % k - pad;
            if (iw >= 0 && iw < d->w) clo[t] = c, chi[t] = chi[t] ? chi[t] : c + 1;
        }
    }
    if (build & 1) build_masks(p, oh, ow, kk, rlo, rhi, clo, chi, masks);
    g.fwd.ntaps = kk, g.fwd.toff = toff, g.fwd.masks = masks;
    g.fwd.wp = scratch, g.fwd.wpg = (size_t)(p->cog + 7) / 8 * 8 * kk * p->cig;
    /* dX: per phase, the taps of that phase read dy at -(di*ow + dj), valid where that output
     * position exists */
    g.ndx = s * s;
    uint16_t *mdx = masks + p->nvec * kk;
    float *wdx = scratch + p->wfwd;
    int *o = dxoff;
    for (int f = 0; f < g.ndx; f++) {
        dpass *ps = &g.dx[f];
        ps->toff = o, ps->masks = mdx, ps->wp = wdx, ps->yoff = (size_t)f * p->ld;
        for (int t = 0; t < kk; t++)
            if (ph[t] == f) o[ps->ntaps++] = -(di[t] * ow + dj[t]);
        if (build & 2) {
            int n = 0;
            for (int t = 0; t < kk; t++) {
                if (ph[t] != f) continue;
                rlo[n] = di[t] > 0 ? di[t] : 0, rhi[n] = oh + di[t] < oh ? oh + di[t] : oh;
                clo[n] = dj[t] > 0 ? dj[t] : 0, chi[n] = ow + dj[t] < ow ? ow + dj[t] : ow;
                n++;
            }
            build_masks(p, oh, ow, ps->ntaps, rlo, rhi, clo, chi, mdx);
        }
        ps->wpg = (size_t)(p->cig + 7) / 8 * 8 * ps->ntaps * p->cog;
        o += ps->ntaps, mdx += p->nvec * ps->ntaps, wdx += d->groups * ps->wpg;
    }
    return g;
}

/* wp[g][cb][t][ci][8] = w[g*cog + 8cb + r][ci][t] (zero rows past cog) */
static void pack_fwd_weights(const lb_conv2d_desc *d, const plan *p, const float *w, float *wp) {
    const int cig = p->cig, cog = p->cog, kk = p->kk, cob = (cog + 7) / 8;
    for (int g = 0; g < d->groups; g++)
        for (int cb = 0; cb < cob; cb++)
            for (int t = 0; t < kk; t++)
                for (int ci = 0; ci < cig; ci++)
                    for (int r = 0; r < 8; r++) {
                        const int co = cb * 8 + r;
                        *wp++ = co < cog ? w[((size_t)(g * cog + co) * cig + ci) * kk + t] : 0.0f;
                    }
}

/* The dX pass of phase f: wp[g][cb][n][co][8] = w[g*cog + co][8cb + r][t_n], t_n its n-th tap */
static void pack_dx_weights(const lb_conv2d_desc *d, const plan *p, const dgeom *g,
                            const float *w) {
    const int cig = p->cig, cog = p->cog, kk = p->kk, k = p->k, s = d->stride;
    const int cib = (cig + 7) / 8;
    for (int f = 0; f < g->ndx; f++) {
        int taps[25], n = 0;
        for (int t = 0; t < kk; t++) {
            const int eh = t / k - d->pad, ew = t % k - d->pad;
            const int phase = (eh - s * floordiv(eh, s)) * s + (ew - s * floordiv(ew, s));
            if (phase == f) taps[n++] = t;
        }
        float *wp = (float *)g->dx[f].wp;
        for (int gr = 0; gr < d->groups; gr++)
            for (int cb = 0; cb < cib; cb++)
                for (int i = 0; i < n; i++)
                    for (int co = 0; co < cog; co++)
                        for (int r = 0; r < 8; r++) {
                            const int ci = cb * 8 + r;
                            *wp++ = ci < cig
                                        ? w[((size_t)(gr * cog + co) * cig + ci) * kk + taps[i]]
                                        : 0.0f;
                        }
    }
}

/* pk[c][i*hw + q] = t[n0 + i][c][q] for i < g; planes ld apart */
static void pack_images(const float *t, int ch, size_t hw, int n0, int g, size_t ld, float *pk) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < g; i++)
            memcpy(pk + (size_t)c * ld + i * hw, t + ((size_t)(n0 + i) * ch + c) * hw,
                   hw * sizeof *pk);
}

static void unpack_images(const float *pk, int ch, size_t hw, int n0, int g, size_t ld, float *t,
                          int acc) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < g; i++) {
            const float *src = pk + (size_t)c * ld + i * hw;
            float *dst = t + ((size_t)(n0 + i) * ch + c) * hw;
            if (acc)
                for (size_t q = 0; q < hw; q++) dst[q] += src[q];
            else
                memcpy(dst, src, hw * sizeof *dst);
        }
}

/* Stride 2: pk[c][a*2+b][i*ohw + r*ow + col] = x[n0+i][c][2r+a][2col+b] (0 past the edge) */
static void pack_phases(const lb_conv2d_desc *d, const plan *p, const float *x, int n0, int g,
                        float *pk) {
    for (int c = 0; c < d->cin; c++)
        for (int i = 0; i < g; i++)
            lb_conv2d_split_phases_avx512(x + ((size_t)(n0 + i) * d->cin + c) * p->hw, d->h, d->w,
                                          d->oh, d->ow, pk + (size_t)c * 4 * p->ld + i * p->ohw,
                                          p->ld);
}

/* The adjoint of pack_phases: dx[n0+i][c][2r+a][2col+b] (+)= pk[c][a*2+b][...] */
static void unpack_phases(const lb_conv2d_desc *d, const plan *p, const float *pk, int n0, int g,
                          float *dx, int acc) {
    for (int c = 0; c < d->cin; c++)
        for (int i = 0; i < g; i++)
            lb_conv2d_merge_phases_avx512(pk + (size_t)c * 4 * p->ld + i * p->ohw, p->ld, d->h,
                                          d->w, d->ow, dx + ((size_t)(n0 + i) * d->cin + c) * p->hw,
                                          acc);
}

static lb_conv_direct direct_job(const plan *p, const dpass *ps, int npos) {
    lb_conv_direct j;
    memset(&j, 0, sizeof j);
    j.k = p->k, j.ntaps = ps->ntaps;
    j.toff = ps->toff, j.masks = ps->masks;
    j.npos = npos;
    return j;
}

static void direct_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                           const float *b, float *y, float *scratch) {
    const dgeom geo = direct_setup(d, p, scratch, 0);
    const int nt = workers(p, d->n), G = p->G, cig = p->cig, cog = p->cog, s = d->stride;
    const size_t hw = p->hw, ohw = p->ohw, ld = p->ld, xch = (size_t)s * s * ld;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        /* per-call setup split between the first and the last worker */
        if (t == 0) direct_setup(d, p, scratch, 1);
        if (t == T - 1) pack_fwd_weights(d, p, w, scratch);
#pragma omp barrier
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        float *xpk = worker_col(p, scratch, t);
        float *ypk = xpk + round16(xch * d->cin) * 2;
        for (int nb = n0; nb < n1; nb += G) {
            const int g = n1 - nb < G ? n1 - nb : G;
            const float *xs = x + (size_t)nb * d->cin * hw;
            float *ys = y + (size_t)nb * d->cout * ohw;
            size_t ldx = hw, ldy = ohw;
            if (p->packed) {
                if (s == 2)
                    pack_phases(d, p, x, nb, g, xpk);
                else
                    pack_images(x, d->cin, hw, nb, g, ld, xpk);
                xs = xpk, ys = ypk, ldx = xch, ldy = ld;
            }
            /* prefetched while this block computes: the next block's input, and the output lines
             * written next (this block's y when it is unpacked after the kernel, else the next
             * block's), so neither the reads nor the stores wait on DRAM */
            const int gn = n1 - nb - g < G ? n1 - nb - g : G;
            const float *xn = gn > 0 ? x + (size_t)(nb + g) * d->cin * hw : NULL;
            const float *yn = p->packed ? y + (size_t)nb * d->cout * ohw
                              : gn > 0  ? y + (size_t)(nb + g) * d->cout * ohw
                                        : NULL;
            const size_t ynf = (size_t)(p->packed ? g : gn > 0 ? gn : 0) * d->cout * ohw;
            for (int gr = 0; gr < d->groups; gr++) {
                lb_conv_direct j = direct_job(p, &geo.fwd, g * (int)ohw);
                j.cin = cig, j.cout = cog;
                if (gr == 0) {
                    j.pf[0] = xn, j.pf_floats[0] = (size_t)(gn > 0 ? gn : 0) * d->cin * hw;
                    j.pf[1] = yn, j.pf_floats[1] = yn ? ynf : 0;
                }
                j.x = xs + (size_t)gr * cig * ldx, j.ldx = ldx;
                j.y = ys + (size_t)gr * cog * ldy, j.ldy = ldy;
                j.wp = geo.fwd.wp + gr * geo.fwd.wpg, j.bias = b ? b + (size_t)gr * cog : NULL;
                lb_conv2d_direct_fwd_avx512(&j);
            }
            if (p->packed) unpack_images(ypk, d->cout, ohw, nb, g, ld, y, 0);
            out_moments(d, y, nb, nb + g);
        }
    }
}

/* Images [n0, n0 + nimg) of t (ch channels) as Winograd units [unit][ch][h][wW]: p->wgh images
 * side by side, a zero column between, zero images past the end. */
static void wino_pack(const lb_conv2d_desc *d, const plan *p, const float *t, int ch, int n0,
                      int nimg, float *buf) {
    const int G = p->wgh, W = p->wW, h = d->h, w = d->w, units = (nimg + G - 1) / G;
    for (int u = 0; u < units; u++)
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < h; r++) {
                float *dst = buf + (((size_t)u * ch + c) * h + r) * W;
                for (int k = 0; k < G; k++, dst += w + 1) {
                    const int i = u * G + k;
                    if (i < nimg)
                        memcpy(dst, t + ((size_t)(n0 + i) * ch + c) * p->hw + (size_t)r * w,
                               (size_t)w * sizeof *buf);
                    else
                        memset(dst, 0, (size_t)w * sizeof *buf);
                    if (k < G - 1) dst[w] = 0.0f;
                }
            }
}

/* The adjoint layout move: t[n0 + i] (+)= image i of the units (separator columns dropped). */
static void wino_unpack(const lb_conv2d_desc *d, const plan *p, const float *buf, int ch, int n0,
                        int nimg, float *t, int acc) {
    const int G = p->wgh, W = p->wW, h = d->h, w = d->w;
    for (int i = 0; i < nimg; i++)
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < h; r++) {
                const float *src =
                    buf + (((size_t)(i / G) * ch + c) * h + r) * W + (size_t)(i % G) * (w + 1);
                float *dst = t + ((size_t)(n0 + i) * ch + c) * p->hw + (size_t)r * w;
                if (acc)
                    for (int q = 0; q < w; q++) dst[q] += src[q];
                else
                    memcpy(dst, src, (size_t)w * sizeof *dst);
            }
}

/* A worker's Winograd scratch: V and M planes, dW accumulators, packed units (x, y, dy). */
typedef struct wino_ws {
    float *V, *M, *Mw, *px, *py, *pdy;
} wino_ws;

static wino_ws wino_scratch(const lb_conv2d_desc *d, const plan *p, float *scratch, int t) {
    const size_t cmax = (size_t)(d->cin > d->cout ? d->cin : d->cout);
    const size_t plane = 16 * lb_wino_xi_stride((int)cmax, p->wldt);
    wino_ws s;
    s.V = worker_col(p, scratch, t) + p->wofs, s.M = s.V + plane, s.Mw = s.M + plane;
    s.px = s.Mw + round16(lb_wino_dw_acc_floats(d->cout, d->cin));
    s.py = s.px + p->wpk, s.pdy = s.py + p->wpk;
    return s;
}

/* One Winograd conv over images [nb, nb + nimg) (at most a block): x (ci channels) into y (co
 * channels), y (+)= as acc says; `xin` is x already packed into units, or NULL. */
static void wino_conv(const lb_conv2d_desc *d, const plan *p, const wino_ws *ws, int ci, int co,
                      const float *U, const float *b, const float *x, const float *xin, float *y,
                      int acc, int nb, int nimg) {
    const int G = p->wgh, units = (nimg + G - 1) / G;
    lb_conv_wino j;
    j.cin = ci, j.cout = co, j.h = d->h, j.w = p->wW, j.g = units;
    j.ldt = round16((size_t)units * ((d->h + 1) / 2) * ((p->wW + 1) / 2));
    j.U = U, j.bias = b, j.V = ws->V, j.M = ws->M;
    if (G > 1) {
        if (!xin) wino_pack(d, p, x, ci, nb, nimg, ws->px), xin = ws->px;
        j.x = xin, j.y = ws->py, j.acc = 0;
    } else {
        j.x = x + (size_t)nb * ci * p->hw, j.y = y + (size_t)nb * co * p->hw, j.acc = acc;
    }
    lb_conv2d_wino_avx512(&j);
    if (G > 1) wino_unpack(d, p, ws->py, co, nb, nimg, y, acc);
}

static void wino_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                         const float *b, float *y, float *scratch) {
    const int nt = workers(p, d->n);
    float *U = scratch + p->wU;
    lb_conv2d_wino_weights(w, d->cout, d->cin, 0, U);
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        const wino_ws ws = wino_scratch(d, p, scratch, t);
        const int per = p->wg * p->wgh;
        for (int nb = n0; nb < n1; nb += per) {
            const int nimg = n1 - nb < per ? n1 - nb : per;
            wino_conv(d, p, &ws, d->cin, d->cout, U, b, x, NULL, y, 0, nb, nimg);
            out_moments(d, y, nb, nb + nimg);
        }
    }
}

/* Winograd for both gradients: per block of p->wgd images, dW accumulates in the transformed
 * domain (per worker) and dX runs on the same images while their dy is in L2. */
static void wino_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                          const float *dy, float *dx, int dx_acc, float *dw, float *db,
                          float *scratch) {
    const int nt = workers(p, d->n), T2 = ((d->h + 1) / 2) * ((p->wW + 1) / 2);
    const size_t hw = p->hw, nw = (size_t)d->cout * p->kdim, bofs = round16(nw);
    float *const Udx = scratch + p->wU + round16((size_t)16 * d->cin * d->cout);
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        if (t == 0) used = T;
        if (t == T - 1 && dx) lb_conv2d_wino_weights(w, d->cin, d->cout, 1, Udx);
#pragma omp barrier
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        const wino_ws ws = wino_scratch(d, p, scratch, t);
        float *const Mw = ws.Mw, *pdw = worker_part(p, scratch, t);
        const int G = p->wgh, per = p->wgd * G;
        if (dw) memset(Mw, 0, lb_wino_dw_acc_floats(d->cout, d->cin) * sizeof *Mw);
        if (db) memset(pdw + bofs, 0, (size_t)d->cout * sizeof *pdw);
        for (int nb = n0; nb < n1; nb += per) {
            const int g = n1 - nb < per ? n1 - nb : per, units = (g + G - 1) / G;
            const float *dyin = NULL; /* dy of the block packed into units, when G > 1 */
            if (G > 1 && (dw || dx)) wino_pack(d, p, dy, d->cout, nb, g, ws.pdy), dyin = ws.pdy;
            if (db)
                for (int i = nb; i < nb + g; i++)
                    for (int c = 0; c < d->cout; c++)
                        pdw[bofs + c] += sum_floats(dy + ((size_t)i * d->cout + c) * hw, hw);
            if (dw) {
                lb_conv_wino_dw jd;
                memset(&jd, 0, sizeof jd);
                jd.j.cin = d->cin, jd.j.cout = d->cout, jd.j.h = d->h, jd.j.w = p->wW;
                jd.j.g = units, jd.j.ldt = round16((size_t)units * T2);
                if (G > 1) {
                    wino_pack(d, p, x, d->cin, nb, g, ws.px);
                    jd.j.x = ws.px, jd.dy = dyin;
                } else {
                    jd.j.x = x + (size_t)nb * d->cin * hw, jd.dy = dy + (size_t)nb * d->cout * hw;
                }
                jd.j.V = ws.V, jd.j.M = ws.M, jd.Mw = Mw;
                lb_conv2d_wino_dw_avx512(&jd);
            }
            /* on the same images while their dy is in L2 */
            if (dx) wino_conv(d, p, &ws, d->cout, d->cin, Udx, NULL, dy, dyin, dx, dx_acc, nb, g);
        }
        if (dw) lb_conv2d_wino_dw_finish(Mw, d->cout, d->cin, pdw);
#pragma omp barrier
        reduce_partials(p, scratch, used, nw, d->cout, dw, db);
    }
}

static void direct_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                            const float *dy, float *dx, int dx_acc, float *dw, float *db,
                            float *scratch) {
    const dgeom geo = direct_setup(d, p, scratch, 0);
    const int nt = workers(p, d->n), cig = p->cig, cog = p->cog, s = d->stride;
    const int B = p->packed ? p->G : p->dwb;
    const size_t hw = p->hw, ohw = p->ohw, ld = p->ld, xch = (size_t)s * s * ld;
    const size_t nw = (size_t)d->cout * p->kdim, bofs = round16(nw);
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        if (t == 0) used = T, direct_setup(d, p, scratch, (dw ? 1 : 0) | (dx ? 2 : 0));
        if (t == T - 1 && dx) pack_dx_weights(d, p, &geo, w);
#pragma omp barrier
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        float *xpk = worker_col(p, scratch, t), *dxpk = xpk + round16(xch * d->cin);
        float *dypk = dxpk + round16(xch * d->cin), *pdw = worker_part(p, scratch, t);
        if (dw) memset(pdw, 0, nw * sizeof *pdw);
        if (db) memset(pdw + bofs, 0, (size_t)d->cout * sizeof *pdw);
        for (int nb = n0; nb < n1; nb += B) {
            const int g = n1 - nb < B ? n1 - nb : B;
            /* packed: one kernel call covers the block; unpacked: dW loops over the g images
             * inside each tile (one reduction per tile), dX runs per image */
            const int npos = p->packed ? g * (int)ohw : (int)ohw, nimg = p->packed ? 1 : g;
            const float *xs = x + (size_t)nb * d->cin * hw, *dys = dy + (size_t)nb * d->cout * ohw;
            float *dxs = dx ? dx + (size_t)nb * d->cin * hw : NULL;
            size_t ldx = hw, ldy = ohw;
            if (p->packed) {
                if (dw && s == 2) pack_phases(d, p, x, nb, g, xpk);
                if (dw && s == 1) pack_images(x, d->cin, hw, nb, g, ld, xpk);
                if (dw || dx) pack_images(dy, d->cout, ohw, nb, g, ld, dypk);
                xs = xpk, dys = dypk, dxs = dxpk, ldx = xch, ldy = ld;
            }
            if (db)
                for (int i = nb; i < nb + g; i++)
                    for (int c = 0; c < d->cout; c++)
                        pdw[bofs + c] += sum_floats(dy + ((size_t)i * d->cout + c) * ohw, ohw);
            const int gn = n1 - nb - g < B ? n1 - nb - g : B;
            const size_t xnf = gn > 0 ? (size_t)gn * d->cin * hw : 0;
            const size_t dynf = gn > 0 ? (size_t)gn * d->cout * ohw : 0;
            const float *xn = x + (size_t)(nb + g) * d->cin * hw;
            const float *dyn = dy + (size_t)(nb + g) * d->cout * ohw;
            for (int gr = 0; gr < d->groups; gr++) {
                if (dw) {
                    lb_conv_direct j = direct_job(p, &geo.fwd, npos);
                    j.cin = cig, j.cout = cog;
                    if (gr == 0 && gn > 0) {
                        j.pf[0] = xn, j.pf_floats[0] = xnf;
                        if (!dx) j.pf[1] = dyn, j.pf_floats[1] = dynf;
                    }
                    j.x = xs + (size_t)gr * cig * ldx, j.ldx = ldx;
                    j.dy = dys + (size_t)gr * cog * ldy, j.lddy = ldy;
                    j.nimg = nimg, j.ximg = (size_t)d->cin * hw, j.dyimg = (size_t)d->cout * ohw;
                    j.dw = pdw + (size_t)gr * cog * p->kdim, j.ldw = (size_t)p->kdim;
                    lb_conv2d_direct_dw_avx512(&j);
                }
                if (dx)
                    for (int i = 0; i < nimg; i++)
                        for (int f = 0; f < geo.ndx; f++) {
                            const dpass *ps = &geo.dx[f];
                            lb_conv_direct j = direct_job(p, ps, npos);
                            j.cin = cog, j.cout = cig;
                            if (gr == 0 && i == 0 && f == 0) {
                                if (gn > 0) j.pf[0] = dyn, j.pf_floats[0] = dynf;
                                /* the dx lines written next (as for y in the forward) */
                                if (p->packed)
                                    j.pf[1] = dx + (size_t)nb * d->cin * hw,
                                    j.pf_floats[1] = (size_t)g * d->cin * hw;
                                else if (gn > 0)
                                    j.pf[1] = dx + (size_t)(nb + g) * d->cin * hw,
                                    j.pf_floats[1] = (size_t)gn * d->cin * hw;
                            }
                            j.x = dys + (size_t)i * d->cout * ohw + (size_t)gr * cog * ldy;
                            j.y = dxs + (size_t)i * d->cin * hw + (size_t)gr * cig * ldx + ps->yoff;
                            j.ldx = ldy, j.ldy = ldx;
                            j.wp = ps->wp + gr * ps->wpg, j.beta = p->packed ? 0 : dx_acc;
                            lb_conv2d_direct_fwd_avx512(&j);
                        }
            }
            if (dx && p->packed) {
                if (s == 2)
                    unpack_phases(d, p, dxpk, nb, g, dx, dx_acc);
                else
                    unpack_images(dxpk, d->cin, hw, nb, g, ld, dx, dx_acc);
            }
        }
#pragma omp barrier
        reduce_partials(p, scratch, used, nw, d->cout, dw, db);
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
    make_plan(d, lb_threads_get(), simd_allowed(), wino_allowed(), &p);
    if (p.dw) {
        dw_forward(d, &p, x, w, b, y, scratch);
        return;
    }
    if (p.wino) {
        wino_forward(d, &p, x, w, b, y, scratch);
        return;
    }
    if (p.direct) {
        direct_forward(d, &p, x, w, b, y, scratch);
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
            out_moments(d, y, n, n + 1);
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
    make_plan(d, lb_threads_get(), simd_allowed(), wino_allowed(), &p);
    if (p.dw) {
        dw_backward(d, &p, x, w, dy, dx, dx_acc, dw, db, scratch);
        return;
    }
    if (p.wino) {
        wino_backward(d, &p, x, w, dy, dx, dx_acc, dw, db, scratch);
        return;
    }
    if (p.direct) {
        direct_backward(d, &p, x, w, dy, dx, dx_acc, dw, db, scratch);
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
        reduce_partials(&p, scratch, used, nw, d->cout, dw, db);
    }
}
