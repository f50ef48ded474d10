/* Private to the conv2d kernels (conv2d.c, conv2d_plan.c, conv2d_dw.c, conv2d_fast.c): the plan of
 * one convolution's formulation and scratch, the per-worker helpers, and the formulations' entry
 * points. Not a public interface: lb_ops.h is. */
#ifndef LB_CONV2D_INTERNAL_H
#define LB_CONV2D_INTERNAL_H

#include "lb_ops.h"

#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Column-buffer budget per worker (floats): big enough to hold a whole 28x28 image's columns for
 * K = 288 (cnn conv2), small enough to stay in a 2 MiB L2 with the GEMM's other operands. */
#define COL_BUDGET (256 * 1024)

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
    int dwc;             /* depthwise, short rows: 16 channels at a time (conv2d_dwc_avx512.c) */
    size_t dwt;          /* dwc: floats of one pixel-major tile, (h+2 pad)(w+2 pad)*16 rounded */
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

static inline size_t round16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

/* Sum with 16 independent partial sums combined in a fixed order: vectorizes without
 * reassociation flags and gives the same bits on every call. */
static inline float sum_floats(const float *p, size_t n) {
    float a[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) a[j] += p[i + j];
    for (int j = 0; i < n; i++, j++) a[j] += p[i];
    float s = 0;
    for (int j = 0; j < 16; j++) s += a[j];
    return s;
}

static inline float *worker_col(const plan *p, float *scratch, int t) {
    return scratch + p->shared + (size_t)t * p->col;
}
static inline float *worker_part(const plan *p, float *scratch, int t) {
    return scratch + p->shared + (size_t)p->nt * p->col + (size_t)t * p->part;
}

/* This worker's index and the team's size, inside a parallel region (0 of 1 without OpenMP). */
static inline void team(int *t, int *T) {
#ifdef _OPENMP
    *t = omp_get_thread_num(), *T = omp_get_num_threads();
#else
    *t = 0, *T = 1;
#endif
}

/* Worker t of nt gets images [*n0, *n1): contiguous, in order, as even as possible. */
static inline void image_range(int n, int t, int nt, int *n0, int *n1) {
    *n0 = (int)((long)n * t / nt);
    *n1 = (int)((long)n * (t + 1) / nt);
}

static inline int workers(const plan *p, int n) {
    return p->nt < n ? p->nt : n;
}

/* conv2d_dwc_avx512.c: one block of nc <= 16 channels of one image (x, dy, y, dx at its first
 * channel; wk at its first channel's k*k weights, b at its first bias). `tile` and `dtile` hold
 * (h+2 pad)(w+2 pad)*16 floats, `dyt` and `yt` oh*ow*16; the border of `tile` must
 * be zero (it is never written). dwk (the first channel's k*k partial, may be NULL) is added to;
 * dx (may be NULL) is written, or added to with dx_acc. */
#define LB_DWC_MAXK 7
#define LB_DWC_MAX_OW 16      /* output rows at most this long ... */
#define LB_DWC_MAX_OW_DW3 4   /* ... or this long where the 3x3 stride-1 plane kernel applies */
#define LB_DWC_MAX_PLANE 1024 /* padded input planes of at most this many pixels */
void lb_conv2d_dwc_fwd_avx512(const float *x, int h, int w, int nc, const float *wk, const float *b,
                              int k, int s, int pad, int oh, int ow, float *y, float *tile,
                              float *yt);
void lb_conv2d_dwc_bwd_avx512(const float *x, int h, int w, int nc, const float *wk,
                              const float *dy, int k, int s, int pad, int oh, int ow, float *dwk,
                              float *dx, int dx_acc, float *tile, float *dtile, float *dyt);

/* conv2d_plan.c */
int lb_conv2d_simd_allowed(void);
int lb_conv2d_wino_allowed(void);
int lb_conv2d_cpu_avx512(void);
void lb_conv2d_plan_make(const lb_conv2d_desc *d, int nt, int simd, int wino, plan *p);
/* dw[q] and db[c] from the `used` workers' partials (dW then db at round16(nw)), summed in
 * worker order; called by the whole team inside its parallel region, after a barrier (the loops
 * are split among the team). */
void lb_conv2d_reduce_partials(const plan *p, float *scratch, int used, size_t nw, int nb,
                               float *dw, float *db);
/* Moments of the output planes of images [n0, n1), taken right after they were written (in L1/L2)
 * for the batch norm that reads y next; see lb_conv2d_desc.moments. */
void lb_conv2d_out_moments(const lb_conv2d_desc *d, const float *y, int n0, int n1);

/* conv2d_dw.c: depthwise (groups == cin == cout) */
void lb_conv2d_dw_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                          const float *b, float *y, float *scratch);
void lb_conv2d_dw_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                           const float *dy, float *dx, int dx_acc, float *dw, float *db,
                           float *scratch);

/* conv2d_fast.c: the AVX-512 direct kernels and Winograd */
void lb_conv2d_direct_forward(const lb_conv2d_desc *d, const plan *p, const float *x,
                              const float *w, const float *b, float *y, float *scratch);
void lb_conv2d_direct_backward(const lb_conv2d_desc *d, const plan *p, const float *x,
                               const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                               float *db, float *scratch);
void lb_conv2d_wino_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                            const float *b, float *y, float *scratch);
void lb_conv2d_wino_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                             const float *dy, float *dx, int dx_acc, float *dw, float *db,
                             float *scratch);

#endif
