/* Tensor-sliced learned precision (Schaefer et al., methods.md sec. 4, seed 004): a step d and a
 * range xmax per slice, y = d * round(clip(x, -xmax, xmax)/d), the bit-width those imply and its
 * straight-through gradient. Not the size penalty's schedule or the phases
 * (src/train/sliced_train.c).
 *
 * Slices are the quantizer's channels: per output channel for conv weights (per_channel), one for
 * dense weights and activations. Layouts: param[c] = d of slice c, param[ch + c] = xmax of slice c;
 * state[0] = initialized flag. The side decides three things, and a weight quantizer is told from
 * an activation one by cfg.numel > 0 (the graph planner sets it for weights only): the d clip
 * ([2^-12, 1] weights, [2^-12, 8] activations), the rounding-gradient modification (EWGS for
 * weights, the inverse-tanh one for activations) and the init (mean +- 3 sigma per slice for
 * weights, the 99.9th percentile of |x| for activations).
 *
 * Gradients are those PyTorch's autograd gives for the formula above with a custom backward on
 * the round only (tests/torch/ref_sliced.py): with u = clip(x)/d, R = round(u), r = u - R and g the
 * incoming gradient, the round passes gu = g*d*m (m = 1 + delta*sign(g)*r for weights, 1 +
 * delta*sign(g)*(0.5/atanh(0.95))*atanh(1.9 r) for activations; d > 0 so sign(g*d) = sign(g));
 * dx = gu/d where lo <= x <= xmax (clamp's gradient, bounds included), dd = sum g*R - gu*u/d,
 * dxmax = sum gu/d over x > xmax (minus over x < -xmax when signed). The round-then-clip order of
 * the integer path gives the same values: round is monotone, so round(min(u, xmax/d)) =
 * min(round(u), K) with K = round(xmax/d) (lb_quant_sliced_k).
 *
 * The scalar loops here are the reference (lb_quant_sliced_forward_ref / _backward_ref); the kind
 * runs the SIMD kernels of quant_seg_impl.h over the shared chunk plan with threads, which give the
 * same element values bit for bit (tests/test_sliced.c) and add the two double sums in lane order.
 * Both use lb_sl_atanhf (sliced_atanh.h) for the inverse tanh, in float as PyTorch's twin. Sums are
 * the same for any thread count. */
#include "lb_quant.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "quant_chunk.h"
#include "quant_seg.h"
#include "sliced_atanh.h"

#define SL_DELTAF 5e-3f /* methods.md: the strength of both rounding-gradient modifications */

static int is_weight(const lb_quant *q) {
    return q->cfg.numel > 0;
}

float lb_sliced_dmax(const lb_quant *q) {
    return is_weight(q) ? LB_SLICED_DMAX_W : LB_SLICED_DMAX_A;
}

static int sl_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return 2 * ch;
}

static int sl_nstate(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 1;
}

/* The largest code of b0 bits: the init's d is xmax over it. */
static float top_code(const lb_quant *q) {
    int b = q->cfg.bits;
    return (float)(q->cfg.is_signed ? (1 << (b - 1)) - 1 : (1 << b) - 1);
}

float lb_quant_sliced_d(const lb_quant *q, int c) {
    return q->cfg.po2 ? lb_po2_step(q->param[c]) : q->param[c];
}

int lb_sliced_k(float d, float xmax) {
    float k = rintf(xmax / d);
    return k > 1e6f ? 1000000 : (int)k;
}

int lb_quant_sliced_k(const lb_quant *q, int c) {
    return lb_sliced_k(lb_quant_sliced_d(q, c), q->param[q->ch + c]);
}

int lb_sliced_bits(float d, float xmax, int is_signed) {
    int k = lb_sliced_k(d, xmax), b = 0;
    while ((1L << b) < (long)k + 1) b++; /* ceil(log2(k + 1)), exact on integers */
    return b + (is_signed ? 1 : 0);
}

int lb_quant_sliced_bits(const lb_quant *q, int c) {
    return lb_sliced_bits(lb_quant_sliced_d(q, c), q->param[q->ch + c], q->cfg.is_signed);
}

/* The grid bounds other modules read (scale logs, the integer model's checks): the widest slice.
 * Each slice's own bound is lb_quant_sliced_k. */
static void set_k(lb_quant *q) {
    int kmax = 1;
    for (int c = 0; c < q->ch; c++) {
        int k = lb_quant_sliced_k(q, c);
        kmax = k > kmax ? k : kmax;
    }
    q->qp = kmax;
    q->qn = q->cfg.is_signed ? kmax : 0;
}

lb_status lb_quant_sliced_sync(lb_quant *q, const char *what) {
    if (q->cfg.kind != LB_Q_SLICED) return LB_OK;
    for (int c = 0; c < q->ch; c++) {
        float d = q->param[c], xm = q->param[q->ch + c];
        if (!(d >= LB_SLICED_DMIN && d <= lb_sliced_dmax(q) && xm >= LB_SLICED_XMIN &&
              xm <= LB_SLICED_XMAX && d <= xm))
            return lb_error_set(LB_EFORMAT,
                                "%s: sliced slice %d has d %g, xmax %g: outside d in [2^-12, %g], "
                                "xmax in [2^-8, 127], d <= xmax (a damaged checkpoint)",
                                what, c, d, xm, lb_sliced_dmax(q));
    }
    set_k(q);
    return LB_OK;
}

/* Returns how many slices sit at the floors (d at 2^-12 or xmax at 2^-8): what the trainer's
 * watch reports as a step held at its floor. The ceilings and d <= xmax are ordinary limits of
 * the learned range, not a collapse, and are not counted. Beyond methods.md: d stays >= xmax/127
 * (xmax/255 unsigned), so no slice learns more than 8 bits, the integer model's widest codes. */
static int clip_params(lb_quant *q) {
    int at = 0;
    float dmax = lb_sliced_dmax(q);
    for (int c = 0; c < q->ch; c++) {
        float *d = &q->param[c], *xm = &q->param[q->ch + c];
        int low = 0;
        if (!(*xm > LB_SLICED_XMIN))
            *xm = LB_SLICED_XMIN, low = 1;
        else if (*xm > LB_SLICED_XMAX)
            *xm = LB_SLICED_XMAX;
        if (!(*d > LB_SLICED_DMIN))
            *d = LB_SLICED_DMIN, low = 1;
        else if (*d > dmax)
            *d = dmax;
        if (*d > *xm) *d = *xm; /* at least one step inside the range */
        /* at most 8 bits (K <= 127 signed, 255 unsigned): wider codes have no integer form */
        float kmax = q->cfg.is_signed ? 127.0f : 255.0f;
        if (*xm / *d > kmax) *d = *xm / kmax;
        if (q->cfg.po2 && *xm / lb_po2_step(*d) > kmax)
            *d = 2 * lb_po2_step(*d); /* the octave up */
        at += low;
    }
    set_k(q);
    return at;
}

static void sl_reset(lb_quant *q) {
    for (int c = 0; c < q->ch; c++) {
        q->param[q->ch + c] = 1.0f;
        q->param[c] = 1.0f / top_code(q);
    }
    q->state[0] = 0.0f;
    clip_params(q);
}

/* Rearranges a[0..n) so that a[k] is the k-th smallest value, none above it before and none below
 * it after (Wirth's selection: Hoare partitions around a[k], which keep the many equal values of
 * a ReLU's output from degrading it). Expected O(n), where a sort was O(n log n): at the init of
 * every activation slice the first batch is millions of values. Indices are signed so that j can
 * step below l. */
static void select_kth(float *a, ptrdiff_t n, ptrdiff_t k) {
    ptrdiff_t l = 0, m = n - 1;
    while (l < m) {
        float x = a[k];
        ptrdiff_t i = l, j = m;
        do {
            while (i < m && a[i] < x) i++; /* the bounds matter only for NaN, unordered */
            while (j > l && x < a[j]) j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        } while (i <= j);
        if (j < k) l = i;
        if (k < i) m = j;
    }
}

/* Activations: the 99.9th percentile of |x| over the first training batch, interpolated between
 * order statistics as numpy's default. One allocation, at the init only; a batch of more than
 * SL_PCT_MAX values (large images) is read at an even stride, SL_PCT_MAX of them, so the copy
 * stays bounded (16 MB). */
#define SL_PCT_MAX ((size_t)1 << 22)
static float percentile_abs(const float *x, size_t n, double p) {
    size_t stride = n > SL_PCT_MAX ? (n + SL_PCT_MAX - 1) / SL_PCT_MAX : 1;
    n = (n + stride - 1) / stride;
    float *a = malloc(n * sizeof *a);
    if (!a) return 1.0f; /* no memory: the reset's range, still valid */
    for (size_t i = 0; i < n; i++) a[i] = fabsf(x[i * stride]);
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)pos;
    double f = pos - (double)lo;
    select_kth(a, (ptrdiff_t)n, (ptrdiff_t)lo);
    double v = a[lo];
    if (lo + 1 < n) { /* the next order statistic: the least of what lies above a[lo] */
        float hi = a[lo + 1];
        for (size_t i = lo + 2; i < n; i++) hi = a[i] < hi ? a[i] : hi;
        v = a[lo] + f * ((double)hi - a[lo]);
    }
    free(a);
    return (float)v;
}

static void sl_init(lb_quant *q, size_t outer, const float *x) {
    size_t ch = (size_t)q->ch, in = q->inner;
    for (size_t c = 0; c < ch; c++) {
        float xm;
        if (is_weight(q)) { /* max(|mu - 3 sigma|, |mu + 3 sigma|) per slice, in double */
            double s = 0, s2 = 0, n = (double)(outer * in);
            for (size_t o = 0; o < outer; o++)
                for (size_t i = 0; i < in; i++) {
                    double v = x[(o * ch + c) * in + i];
                    s += v, s2 += v * v;
                }
            double mu = s / n, var = s2 / n - mu * mu;
            double sd = sqrt(var > 0 ? var : 0);
            xm = (float)fmax(fabs(mu - 3 * sd), fabs(mu + 3 * sd));
        } else {
            xm = percentile_abs(x, outer * ch * in, 0.999);
        }
        q->param[ch + c] = xm;
        q->param[c] = xm / top_code(q);
    }
    q->state[0] = 1.0f;
    clip_params(q);
}

void lb_quant_sliced_forward_ref(lb_quant *q, size_t outer, const float *x, float *y) {
    size_t ch = (size_t)q->ch, in = q->inner;
    int sg = q->cfg.is_signed;
    for (size_t c = 0; c < ch; c++) {
        float d = lb_quant_sliced_d(q, (int)c), xm = q->param[ch + c], lo = sg ? -xm : 0.0f;
        for (size_t o = 0; o < outer; o++) {
            const float *xs = x + (o * ch + c) * in;
            float *ys = y + (o * ch + c) * in;
            for (size_t i = 0; i < in; i++) {
                float v = xs[i] < lo ? lo : xs[i] > xm ? xm : xs[i];
                ys[i] = d * rintf(v / d);
            }
        }
    }
}

/* The SIMD kernels round by the magic number, exact while |x/d| < 2^22 after the clamp; inside
 * the projection's box xmax/d <= 127 * 4096. A slice outside it (a test's raw parameters, NaN)
 * takes the scalar loop. */
static int fast_ok(float d, float xm) {
    return d > 0.0f && xm / d < 2097152.0f;
}

static void sl_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    if (training && q->state[0] == 0.0f) sl_init(q, outer, x);
    const lb_qseg_kernels *K = lb_qseg_get();
    size_t ch = (size_t)q->ch;
    int sg = q->cfg.is_signed;
    for (size_t c = 0; c < ch; c++)
        if (!fast_ok(lb_quant_sliced_d(q, (int)c), q->param[ch + c])) {
            lb_quant_sliced_forward_ref(q, outer, x, y);
            return;
        }
    q_plan p = plan_of(q, outer);
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float d = lb_quant_sliced_d(q, (int)it.c), xm = q->param[ch + it.c], lo = sg ? -xm : 0.0f;
        q_run r;
        while (iter_next(&it, &r)) K->sl_forward(x + r.off, y + r.off, r.len, d, lo, xm);
    }
}

/* po2: d_eff = 2^round(log2 d), straight through the rounding of log2 d (as LSQ's po2) */
static void put_grads(lb_quant *q, size_t c, double ad, double ax) {
    if (q->cfg.po2) ad *= (double)lb_quant_sliced_d(q, (int)c) / q->param[c];
    q->dparam[c] = (float)ad;
    q->dparam[(size_t)q->ch + c] = (float)ax;
}

void lb_quant_sliced_backward_ref(lb_quant *q, size_t outer, const float *x, const float *dy,
                                  float *dx, int dx_acc) {
    size_t ch = (size_t)q->ch;
    int sg = q->cfg.is_signed, w = is_weight(q);
    const float kt = (float)(0.5 / atanh(0.95));
    q_plan p = plan_of(q, outer);
    double pd[LB_Q_MAXPART], px[LB_Q_MAXPART]; /* partials when slices are split in chunks */
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        double d = lb_quant_sliced_d(q, (int)it.c);
        float df = (float)d, xm = q->param[ch + it.c], lo = sg ? -xm : 0.0f;
        double ad = 0, ax = 0;
        q_run r;
        while (iter_next(&it, &r)) {
            for (size_t i = r.off; i < r.off + r.len; i++) {
                float xv = x[i], cv = xv < lo ? lo : xv > xm ? xm : xv;
                float uf = cv / df;
                float g = dy[i], R = rintf(uf), rr = uf - R; /* rr exact: |uf| < 2^22 */
                float sgn = g > 0 ? 1.0f : g < 0 ? -1.0f : 0.0f;
                float m = w ? 1.0f + SL_DELTAF * sgn * rr
                            : 1.0f + SL_DELTAF * sgn * kt * lb_sl_atanhf(1.9f * rr);
                /* d's gradient through y = d round(u), u = x/d with the factor on du: the
                 * autograd expression g R - (g d m) u / d, i.e. g (R - m u); x's is g m */
                float q = g * m;
                float gx = (xv >= lo && xv <= xm) ? q : 0.0f;
                ad += (double)g * ((double)R - (double)m * (double)uf);
                if (xv > xm) ax += (double)q;
                if (sg && xv < lo) ax -= (double)q;
                dx[i] = dx_acc ? dx[i] + gx : gx;
            }
        }
        if (p.groups == 1) /* a chunk is the whole slice (always so from LB_Q_MAXPART slices) */
            put_grads(q, it.c, ad, ax);
        else
            pd[t] = ad, px[t] = ax;
    }
    for (size_t c = 0; p.groups > 1 && c < ch; c++) {
        double ad = 0, ax = 0;
        for (size_t g = 0; g < p.groups; g++)
            ad += pd[c * p.groups + g], ax += px[c * p.groups + g];
        put_grads(q, c, ad, ax);
    }
}

static void sl_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                        int dx_acc) {
    const lb_qseg_kernels *K = lb_qseg_get();
    size_t ch = (size_t)q->ch;
    int sg = q->cfg.is_signed, w = is_weight(q);
    for (size_t c = 0; c < ch; c++)
        if (!fast_ok(lb_quant_sliced_d(q, (int)c), q->param[ch + c])) {
            lb_quant_sliced_backward_ref(q, outer, x, dy, dx, dx_acc);
            return;
        }
    const float kt = (float)(0.5 / atanh(0.95));
    q_plan p = plan_of(q, outer);
    double pd[LB_Q_MAXPART], px[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float d = lb_quant_sliced_d(q, (int)it.c), xm = q->param[ch + it.c], lo = sg ? -xm : 0.0f;
        double acc[2] = {0, 0};
        q_run r;
        while (iter_next(&it, &r))
            K->sl_backward(x + r.off, dy + r.off, dx + r.off, r.len, d, lo, xm, sg, w, kt, dx_acc,
                           acc);
        if (p.groups == 1)
            put_grads(q, it.c, acc[0], acc[1]);
        else
            pd[t] = acc[0], px[t] = acc[1];
    }
    for (size_t c = 0; p.groups > 1 && c < ch; c++) {
        double ad = 0, ax = 0;
        for (size_t g = 0; g < p.groups; g++)
            ad += pd[c * p.groups + g], ax += px[c * p.groups + g];
        put_grads(q, c, ad, ax);
    }
}

static float sl_step(const lb_quant *q, int c) {
    return lb_quant_sliced_d(q, c);
}

/* Before the init nothing is moved (the reset's values are valid already). */
static int sl_project(lb_quant *q) {
    return q->state[0] == 0.0f ? 0 : clip_params(q);
}

double lb_quant_sliced_kb(const lb_quant *q, size_t n, float *dd, float *dxmax) {
    double sum = 0, ln2 = log(2.0);
    for (int c = 0; c < q->ch; c++) sum += lb_quant_sliced_bits(q, c);
    double kb = (double)n * (sum / q->ch) / 8000.0, f = (double)n / (8000.0 * q->ch);
    for (int c = 0; dd && c < q->ch; c++) {
        /* straight through the round and the ceil, as autograd does with x + (f(x) - x).detach():
         * b = log2(K + 1) (+1) differentiated at the rounded K, d(xmax/e) passing unchanged, e the
         * effective d: db/dxmax = 1/(ln2 (K + 1) e), db/de = -xmax/(ln2 (K + 1) e^2), and po2's
         * de/dd = e/d (straight through the rounding of log2 d, as in the backward) */
        double d = q->param[c], e = lb_quant_sliced_d(q, c), xm = q->param[q->ch + c];
        double k1 = lb_quant_sliced_k(q, c) + 1.0;
        dd[c] = (float)(f * (-xm / (e * e * ln2 * k1)) * (e / d));
        dxmax[c] = (float)(f / (ln2 * k1 * e));
    }
    return kb;
}

const lb_quant_vt lb_quant_vt_sliced = {
    .name = "sliced",
    .nparam = sl_nparam,
    .nstate = sl_nstate,
    .forward = sl_forward,
    .backward = sl_backward,
    .reg = NULL,
    .step = sl_step,
    .reset = sl_reset,
    .project = sl_project,
};
