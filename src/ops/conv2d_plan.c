/* conv2d's plan: descriptor checks, which formulation a convolution takes and where each scratch
 * region lives, and the reductions every formulation shares. Not the kernels (conv2d.c,
 * conv2d_dw.c, conv2d_fast.c). */
#include "conv2d_direct.h"
#include "conv2d_internal.h"
#include "conv2d_wino.h"

#include <stdlib.h>
#include <string.h>

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

int lb_conv2d_simd_allowed(void) {
    const char *e = getenv("LOWBIT_CONV_SIMD");
    return !(e && e[0] == '0');
}

/* LOWBIT_CONV_WINOGRAD=0 keeps 3x3 stride-1 convolutions on the direct kernels (A/B and tests) */
int lb_conv2d_wino_allowed(void) {
    const char *e = getenv("LOWBIT_CONV_WINOGRAD");
    return !(e && e[0] == '0');
}

int lb_conv2d_cpu_avx512(void) {
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

void lb_conv2d_plan_make(const lb_conv2d_desc *d, int nt, int simd, int wino, plan *p) {
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
        p->dw3 = simd && lb_conv2d_cpu_avx512() && p->k == 3 && d->stride == 1 && d->pad <= 2;
        const size_t px = (size_t)(d->h + 2 * d->pad) * (d->w + 2 * d->pad);
        const size_t pdy = (size_t)(d->oh + 4 - 2 * d->pad) * (d->ow + 4 - 2 * d->pad);
        p->col = 2 * round16(p->dw3 && pdy > px ? pdy : px);
        /* short rows: 16 channels at a time instead, in pixel-major tiles (input, dX) and the
         * transposed dy; planes this small keep them in L1. Measured on mobilenetv1 (bench
         * --profile): it beats the generic plane loops up to rows of 16 (stride 2: 14 -> 7 wide
         * 2.7x) and the 3x3 stride-1 plane kernel on rows of 4 (3x), not on rows of 7 (0.8x) */
        p->dwc = simd && lb_conv2d_cpu_avx512() && p->k <= LB_DWC_MAXK && px <= LB_DWC_MAX_PLANE &&
                 d->ow <= (p->dw3 ? LB_DWC_MAX_OW_DW3 : LB_DWC_MAX_OW);
        if (p->dwc) {
            p->dw3 = 0;
            p->dwt = round16(16 * px);
            p->col = 2 * p->dwt + round16(16 * p->ohw);
        }
        return;
    }
    /* "same" padding, stride 1 or 2: the output grid (or, at stride 2, each of the 4 phase planes
     * of the input) lines up with the input so every tap is a constant offset */
    p->direct = simd && lb_conv2d_cpu_avx512() && (d->stride == 1 || d->stride == 2) &&
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
    lb_conv2d_plan_make(d, nthreads, 1, 1, &a);
    lb_conv2d_plan_make(d, nthreads, 0, 0, &b);
    const size_t fa = plan_floats(&a), fb = plan_floats(&b);
    return fa > fb ? fa : fb;
}

/* dw[q] and db[c] from the `used` workers' partials (dW then db at round16(nw)), summed in
 * worker order; called by the whole team inside its parallel region, after a barrier (the loops
 * are split among the team). */
void lb_conv2d_reduce_partials(const plan *p, float *scratch, int used, size_t nw, int nb,
                               float *dw, float *db) {
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

/* Moments of the output planes of images [n0, n1), taken right after they were written (in L1/L2)
 * for the batch norm that reads y next; see lb_conv2d_desc.moments. */
void lb_conv2d_out_moments(const lb_conv2d_desc *d, const float *y, int n0, int n1) {
    if (!d->moments) return;
    const size_t ohw = (size_t)d->oh * d->ow;
    for (size_t pl = (size_t)n0 * d->cout; pl < (size_t)n1 * d->cout; pl++)
        lb_bn_plane_moments(y + pl * ohw, ohw, d->moments + 2 * pl);
}
