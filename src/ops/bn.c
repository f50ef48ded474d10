/* Batch norm over (n, hw) per channel: training/eval forward and backward, scalar references and
 * OpenMP kernels. Not a layer: parameters, running buffers and saved statistics belong to callers.
 * A NULL gamma/beta is taken as 1/0 (a non-affine BN). */
#include "lb_ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements a parallel region costs more than it saves. */
#define LB_BN_PAR_MIN 32768
/* Plane sums run in float over chunks of this many elements (vector lanes, no double converts)
 * and the chunk sums are added in double: float error stays at chunk scale, the total is exact
 * enough for any n*hw. */
#define LB_BN_CHUNK 256
/* Channels per block of a thread's range: their accumulators live on the stack. */
#define LB_BN_GROUP 128

static inline float gamma_of(const float *gamma, int c) {
    return gamma ? gamma[c] : 1.0f;
}
static inline float beta_of(const float *beta, int c) {
    return beta ? beta[c] : 0.0f;
}

/* Running statistics as PyTorch: unbiased batch variance, run = (1-m)*run + m*batch. */
static void update_running(const lb_bn_desc *d, int c, double mean, double var, float *run_mean,
                           float *run_var) {
    double cnt = (double)d->n * d->hw, m = d->momentum;
    if (run_mean) run_mean[c] = (float)((1.0 - m) * run_mean[c] + m * mean);
    if (run_var) {
        double unbiased = cnt > 1 ? var * cnt / (cnt - 1) : var;
        run_var[c] = (float)((1.0 - m) * run_var[c] + m * unbiased);
    }
}

/* ---- references: plain two-pass double loops ------------------------------------------------- */

void lb_bn_forward_train_ref(const lb_bn_desc *d, const float *x, const float *gamma,
                             const float *beta, float *y, float *mean, float *invstd,
                             float *run_mean, float *run_var) {
    const size_t hw = (size_t)d->hw, cnt = (size_t)d->n * hw;
    for (int c = 0; c < d->c; c++) {
        double s = 0;
        for (int i = 0; i < d->n; i++) {
            const float *p = x + ((size_t)i * d->c + c) * hw;
            for (size_t j = 0; j < hw; j++) s += p[j];
        }
        double mu = s / (double)cnt, v = 0;
        for (int i = 0; i < d->n; i++) {
            const float *p = x + ((size_t)i * d->c + c) * hw;
            for (size_t j = 0; j < hw; j++) v += (p[j] - mu) * (p[j] - mu);
        }
        v /= (double)cnt;
        float is = (float)(1.0 / sqrt(v + d->eps));
        float g = gamma_of(gamma, c), b = beta_of(beta, c), fm = (float)mu;
        for (int i = 0; i < d->n; i++) {
            size_t o = ((size_t)i * d->c + c) * hw;
            for (size_t j = 0; j < hw; j++) {
                float v = (x[o + j] - fm) * is * g + b;
                if (d->res) v += d->res[o + j];
                if (d->act) v = v > 0.0f ? v : 0.0f;
                if (d->act == 2) v = v < 6.0f ? v : 6.0f;
                y[o + j] = v;
            }
        }
        if (mean) mean[c] = fm;
        if (invstd) invstd[c] = is;
        update_running(d, c, mu, v, run_mean, run_var);
    }
}

void lb_bn_backward_ref(const lb_bn_desc *d, const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, int dx_acc, float *dgamma,
                        float *dbeta) {
    const size_t hw = (size_t)d->hw, cnt = (size_t)d->n * hw;
    for (int c = 0; c < d->c; c++) {
        double sdy = 0, sdyxh = 0, is = invstd[c], mu = mean[c];
        for (int i = 0; i < d->n; i++) {
            size_t o = ((size_t)i * d->c + c) * hw;
            for (size_t j = 0; j < hw; j++) {
                sdy += dy[o + j];
                sdyxh += dy[o + j] * (x[o + j] - mu) * is;
            }
        }
        if (dbeta) dbeta[c] = (float)sdy;
        if (dgamma) dgamma[c] = (float)sdyxh;
        if (!dx) continue;
        double g = gamma_of(gamma, c), mdy = sdy / (double)cnt, mdyxh = sdyxh / (double)cnt;
        for (int i = 0; i < d->n; i++) {
            size_t o = ((size_t)i * d->c + c) * hw;
            for (size_t j = 0; j < hw; j++) {
                double xh = (x[o + j] - mu) * is;
                float v = (float)(g * is * (dy[o + j] - mdy - xh * mdyxh));
                dx[o + j] = dx_acc ? dx[o + j] + v : v;
            }
        }
    }
}

/* ---- fast kernels ---------------------------------------------------------------------------- */

/* Four 4-float vectors of partial sums (GCC/clang vector extensions: plain SSE2, no ISA flags).
 * Written out rather than left to the auto-vectorizer, which may not reassociate a float sum: the
 * summation order, hence every bit of the result, is fixed by the source. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline double hsum(const v4f *a) {
    v4f t = (a[0] + a[1]) + (a[2] + a[3]);
    return (double)((t[0] + t[1]) + (t[2] + t[3]));
}

/* Sums of (p - shift) and its square over one plane. */
static void plane_moments(const float *restrict p, size_t len, float shift, double *s1,
                          double *s2) {
    const v4f sh = {shift, shift, shift, shift};
    double d1 = 0, d2 = 0;
    for (size_t j0 = 0; j0 < len; j0 += LB_BN_CHUNK) {
        const size_t e = len - j0 < LB_BN_CHUNK ? len : j0 + LB_BN_CHUNK;
        v4f a1[4] = {{0}}, a2[4] = {{0}};
        size_t j = j0;
        for (; j + 16 <= e; j += 16)
            for (int l = 0; l < 4; l++) {
                v4f v = load4(p + j + 4 * l) - sh;
                a1[l] += v;
                a2[l] += v * v;
            }
        d1 += hsum(a1);
        d2 += hsum(a2);
        float t1 = 0, t2 = 0;
        for (; j < e; j++) {
            float v = p[j] - shift;
            t1 += v;
            t2 += v * v;
        }
        d1 += t1;
        d2 += t2;
    }
    *s1 += d1;
    *s2 += d2;
}

/* Sums of dy and dy*(x - mean) over one plane, laid out as plane_moments. */
static void plane_dy_sums(const float *restrict x, const float *restrict dy, size_t len, float mu,
                          double *sdy, double *sdyxc) {
    const v4f m4 = {mu, mu, mu, mu};
    double d1 = 0, d2 = 0;
    for (size_t j0 = 0; j0 < len; j0 += LB_BN_CHUNK) {
        const size_t e = len - j0 < LB_BN_CHUNK ? len : j0 + LB_BN_CHUNK;
        v4f a1[4] = {{0}}, a2[4] = {{0}};
        size_t j = j0;
        for (; j + 16 <= e; j += 16)
            for (int l = 0; l < 4; l++) {
                v4f g = load4(dy + j + 4 * l);
                a1[l] += g;
                a2[l] += g * (load4(x + j + 4 * l) - m4);
            }
        d1 += hsum(a1);
        d2 += hsum(a2);
        float t1 = 0, t2 = 0;
        for (; j < e; j++) {
            t1 += dy[j];
            t2 += dy[j] * (x[j] - mu);
        }
        d1 += t1;
        d2 += t2;
    }
    *sdy += d1;
    *sdyxc += d2;
}

/* Backward sums over small planes (hw < LB_BN_CHUNK, e.g. 14x14 and 7x7): reducing every plane to
 * double would cost more than its arithmetic, so a channel keeps 16 float lanes across images
 * (element j of a plane goes to lane j % 16) and adds them into double every `k` images, k chosen
 * so that no lane sums more than 16 elements in float: the same error bound as the chunked path
 * above. */
typedef struct lanes16 {
    v4f v[4];
} lanes16;

typedef int v4i __attribute__((vector_size(16)));

static int small_flush_every(size_t hw) {
    const size_t per = (hw + 15) / 16; /* elements per lane per image */
    return per >= 16 ? 1 : (int)(16 / per);
}

static inline void lanes_flush(lanes16 *a, double *s) {
    *s += hsum(a->v);
    memset(a, 0, sizeof *a);
}

/* Mean and M2 (sum of squared deviations) of one plane: sums shifted by the plane's first value
 * (no cancellation when |mean| >> std), chunked as plane_moments. A pure function of the plane,
 * so a conv that calls it on its freshly written output (lb_conv2d_desc.moments) gives BN the
 * same bits as BN computing it here. */
void lb_bn_plane_moments(const float *p, size_t hw, double *out) {
    double s1 = 0, s2 = 0;
    plane_moments(p, hw, p[0], &s1, &s2);
    const double m = s1 / (double)hw, m2 = s2 - s1 * m;
    out[0] = (double)p[0] + m;
    out[1] = m2 > 0 ? m2 : 0;
}

/* Adds plane moments q (hw elements) to a channel's running (mean, M2) over the k planes before
 * it (Chan et al.'s pairwise update; all parts have hw elements). */
static inline void moments_merge(double *mean, double *m2, int k, const double *q, size_t hw) {
    if (k == 0) {
        *mean = q[0], *m2 = q[1];
        return;
    }
    const double delta = q[0] - *mean, w = 1.0 / (double)(k + 1);
    *mean += delta * w;
    *m2 += q[1] + delta * delta * (double)hw * (double)k * w;
}

/* The residual operand's gradient: the masked gradient g, stored or added. */
static void plane_res_grad(const float *g, float *dr, size_t len, int acc) {
    if (acc)
        for (size_t j = 0; j < len; j++) dr[j] += g[j];
    else
        memcpy(dr, g, len * sizeof *dr);
}

/* The activation's mask as a lane mask (lb_relu_backward's rule: y > 0, and y < 6 for ReLU6). */
static inline v4i act_mask4(v4f y, int act) {
    const v4f z = {0, 0, 0, 0}, six = {6, 6, 6, 6};
    v4i m = (v4i)(y > z);
    if (act == 2) m &= (v4i)(y < six);
    return m;
}

/* sdy/sdyxc += sums of g and g*(x - mean) over channels g0..g0+G-1 of all N images, where g is dy
 * masked by the activation on yact (written back into dy, as plane_mask does, and to dres when a
 * residual add is folded in) or dy itself. */
static void small_dy_sums(const float *x, const float *yact, int act, float *dy, float *dres,
                          int dres_acc, int N, int C, int g0, int G, size_t hw, const float *mean,
                          double *sdy, double *sdyxc, lanes16 *a1, lanes16 *a2) {
    const int k = small_flush_every(hw);
    memset(a1, 0, (size_t)G * sizeof *a1);
    memset(a2, 0, (size_t)G * sizeof *a2);
    for (int i = 0; i < N; i++) {
        const size_t o = ((size_t)i * C + g0) * hw;
        for (int g = 0; g < G; g++) {
            const float *restrict xp = x + o + (size_t)g * hw;
            const float *restrict yp = yact ? yact + o + (size_t)g * hw : NULL;
            float *restrict gp = dy + o + (size_t)g * hw;
            const float mu = mean[g0 + g];
            const v4f m4 = {mu, mu, mu, mu};
            size_t j = 0;
            for (; j + 16 <= hw; j += 16)
                for (int l = 0; l < 4; l++) {
                    v4f gv = load4(gp + j + 4 * l);
                    if (yp) {
                        gv = (v4f)((v4i)gv & act_mask4(load4(yp + j + 4 * l), act));
                        memcpy(gp + j + 4 * l, &gv, sizeof gv);
                    }
                    a1[g].v[l] += gv;
                    a2[g].v[l] += gv * (load4(xp + j + 4 * l) - m4);
                }
            for (; j < hw; j++) {
                float gv = gp[j];
                if (yp) {
                    int pass = yp[j] > 0.0f && (act != 2 || yp[j] < 6.0f);
                    gv = pass ? gv : 0.0f;
                    gp[j] = gv;
                }
                a1[g].v[(j % 16) / 4][j % 4] += gv;
                a2[g].v[(j % 16) / 4][j % 4] += gv * (xp[j] - mu);
            }
            if (yp && dres) plane_res_grad(gp, dres + o + (size_t)g * hw, hw, dres_acc);
        }
        if ((i + 1) % k == 0 || i == N - 1)
            for (int g = 0; g < G; g++) {
                lanes_flush(&a1[g], &sdy[g]);
                lanes_flush(&a2[g], &sdyxc[g]);
            }
    }
}

/* y = (x - mu)*a + b. Centering first costs one subtract but keeps y accurate when |mu| >> std
 * (x*a + (b - mu*a) would cancel). Planes are short (64 floats at 8x8), so the common distinct
 * case takes restrict pointers (no run-time overlap checks); y == x (in place) has its own loop. */
static void plane_affine(const float *x, float *y, size_t len, float mu, float a, float b) {
    if (x == y) {
        for (size_t j = 0; j < len; j++) y[j] = (y[j] - mu) * a + b;
        return;
    }
    const float *restrict xr = x;
    float *restrict yr = y;
    for (size_t j = 0; j < len; j++) yr[j] = (xr[j] - mu) * a + b;
}

/* The fused activation, applied to a plane just written (still in L1/L2). Same comparisons as
 * lb_relu_forward / lb_relu6_forward, so fused and separate runs give the same bits. */
static void plane_act(float *y, size_t len, int act) {
    if (act == 1)
        for (size_t j = 0; j < len; j++) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
    else if (act == 2)
        for (size_t j = 0; j < len; j++) y[j] = y[j] > 0.0f ? (y[j] < 6.0f ? y[j] : 6.0f) : 0.0f;
}

/* y = act(y + r) for a folded residual add: lb_add_forward's sum and comparisons (which differ
 * from plane_act's on -0), so the fused pair gives the bits of BN and the add run apart. */
static void plane_res_act(float *y, const float *r, size_t len, int act) {
    if (act == 1)
        for (size_t j = 0; j < len; j++) {
            const float v = y[j] + r[j];
            y[j] = v < 0.0f ? 0.0f : v;
        }
    else if (act == 2)
        for (size_t j = 0; j < len; j++) {
            float v = y[j] + r[j];
            v = v < 0.0f ? 0.0f : v;
            y[j] = v > 6.0f ? 6.0f : v;
        }
    else
        for (size_t j = 0; j < len; j++) y[j] = y[j] + r[j];
}

/* Fast kernels split the channels into one contiguous range per thread and walk each range
 * sample by sample, so every pass streams runs of (channels in range)*hw floats: much faster here
 * than visiting one channel's n scattered planes at a time (measured 2x, in and out of cache).
 * A channel is summed by one thread, in sample order, whatever the thread count: the results are
 * the same bits for any number of threads. */
static void my_channels(int C, int *c0, int *c1) {
    int t = 0, T = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    T = omp_get_num_threads();
#endif
    *c0 = (int)((long long)C * t / T);
    *c1 = (int)((long long)C * (t + 1) / T);
}

void lb_bn_forward_train(const lb_bn_desc *d, const float *x, const float *gamma, const float *beta,
                         float *y, float *mean, float *invstd, float *run_mean, float *run_var) {
    const int N = d->n, C = d->c;
    const size_t hw = (size_t)d->hw, total = (size_t)N * C * hw;
    const double cnt = (double)N * (double)hw;
    if (N <= 0 || C <= 0 || hw == 0) return;
#pragma omp parallel if (total >= LB_BN_PAR_MIN)
    {
        int c0, c1;
        my_channels(C, &c0, &c1);
        for (int g0 = c0; g0 < c1; g0 += LB_BN_GROUP) {
            const int G = c1 - g0 < LB_BN_GROUP ? c1 - g0 : LB_BN_GROUP;
            double mom[LB_BN_GROUP], m2[LB_BN_GROUP];
            float mu[LB_BN_GROUP], a[LB_BN_GROUP];
            /* per-plane moments (from the producing conv, or computed here), merged in image
             * order: the same bits for any thread count and either source */
            for (int i = 0; i < N; i++)
                for (int g = 0; g < G; g++) {
                    const size_t pl = (size_t)i * C + g0 + g;
                    double q[2];
                    if (d->moments)
                        q[0] = d->moments[2 * pl], q[1] = d->moments[2 * pl + 1];
                    else
                        lb_bn_plane_moments(x + pl * hw, hw, q);
                    moments_merge(&mom[g], &m2[g], i, q, hw);
                }
            for (int g = 0; g < G; g++) {
                const int c = g0 + g;
                double var = m2[g] / cnt;
                if (var < 0) var = 0;
                const double m = mom[g];
                const float is = (float)(1.0 / sqrt(var + d->eps));
                mu[g] = (float)m;
                a[g] = gamma_of(gamma, c) * is;
                if (mean) mean[c] = mu[g];
                if (invstd) invstd[c] = is;
                update_running(d, c, m, var, run_mean, run_var);
            }
            for (int i = 0; i < N; i++) {
                const size_t o = ((size_t)i * C + g0) * hw;
                for (int g = 0; g < G; g++) {
                    plane_affine(x + o + (size_t)g * hw, y + o + (size_t)g * hw, hw, mu[g], a[g],
                                 beta_of(beta, g0 + g));
                    if (d->res)
                        plane_res_act(y + o + (size_t)g * hw, d->res + o + (size_t)g * hw, hw,
                                      d->act);
                    else
                        plane_act(y + o + (size_t)g * hw, hw, d->act);
                }
            }
        }
    }
}

void lb_bn_forward_eval(const lb_bn_desc *d, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float *y) {
    const int N = d->n, C = d->c;
    const size_t hw = (size_t)d->hw, total = (size_t)N * C * hw;
    const int planes = N * C;
#pragma omp parallel for schedule(static) if (total >= LB_BN_PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        int c = pl % C;
        float a = (float)(gamma_of(gamma, c) / sqrt((double)run_var[c] + d->eps));
        plane_affine(x + (size_t)pl * hw, y + (size_t)pl * hw, hw, run_mean[c], a,
                     beta_of(beta, c));
        if (d->res)
            plane_res_act(y + (size_t)pl * hw, d->res + (size_t)pl * hw, hw, d->act);
        else
            plane_act(y + (size_t)pl * hw, hw, d->act);
    }
}

/* dx = g*is*(dy - mean(dy) - xhat*mean(dy*xhat)) = k1*dy + k2*(x - mu) + k3 per element. The
 * restrict loops serve distinct buffers; dx == dy (in place) takes the plain loop. */
static void plane_dx(const float *x, const float *dy, float *dx, size_t len, float mu, float k1,
                     float k2, float k3, int acc) {
    if (dx == dy) {
        for (size_t j = 0; j < len; j++)
            dx[j] = (acc ? dx[j] : 0.0f) + dx[j] * k1 + (x[j] - mu) * k2 + k3;
        return;
    }
    const float *restrict xr = x, *restrict gr = dy;
    float *restrict o = dx;
    if (acc)
        for (size_t j = 0; j < len; j++) o[j] += gr[j] * k1 + (xr[j] - mu) * k2 + k3;
    else
        for (size_t j = 0; j < len; j++) o[j] = gr[j] * k1 + (xr[j] - mu) * k2 + k3;
}

/* The activation's gradient mask folded into dy: g = dy where the activation passed, else 0
 * (lb_relu_backward / lb_relu6_backward semantics: y > 0, and y < 6 for ReLU6). */
static void plane_mask(const float *y, float *g, size_t len, int act) {
    if (act == 1)
        for (size_t j = 0; j < len; j++) g[j] = y[j] > 0.0f ? g[j] : 0.0f;
    else if (act == 2)
        for (size_t j = 0; j < len; j++) g[j] = (y[j] > 0.0f && y[j] < 6.0f) ? g[j] : 0.0f;
}

static void bn_backward(const lb_bn_desc *d, const float *x, const float *yact, const float *gamma,
                        const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                        float *dgamma, float *dbeta);

void lb_bn_backward(const lb_bn_desc *d, const float *x, const float *gamma, const float *mean,
                    const float *invstd, const float *dy, float *dx, int dx_acc, float *dgamma,
                    float *dbeta) {
    /* without a mask bn_backward only reads dy */
    bn_backward(d, x, NULL, gamma, mean, invstd, (float *)dy, dx, dx_acc, dgamma, dbeta);
}

/* dy is masked in place plane by plane right before the plane's sums read it (the plane is then
 * hot in cache for the dx pass): the caller's dy buffer ends up holding the masked gradient. */
void lb_bn_backward_act(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                        const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                        float *dgamma, float *dbeta) {
    bn_backward(d, x, d->act ? y : NULL, gamma, mean, invstd, dy, dx, dx_acc, dgamma, dbeta);
}

static void bn_backward(const lb_bn_desc *d, const float *x, const float *yact, const float *gamma,
                        const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                        float *dgamma, float *dbeta) {
    const int N = d->n, C = d->c;
    const size_t hw = (size_t)d->hw, total = (size_t)N * C * hw;
    const double cnt = (double)N * (double)hw;
    if (N <= 0 || C <= 0 || hw == 0) return;
#pragma omp parallel if (total >= LB_BN_PAR_MIN)
    {
        int c0, c1;
        my_channels(C, &c0, &c1);
        for (int g0 = c0; g0 < c1; g0 += LB_BN_GROUP) {
            const int G = c1 - g0 < LB_BN_GROUP ? c1 - g0 : LB_BN_GROUP;
            double sdy[LB_BN_GROUP], sdyxc[LB_BN_GROUP];
            float k1[LB_BN_GROUP], k2[LB_BN_GROUP], k3[LB_BN_GROUP];
            for (int g = 0; g < G; g++) sdy[g] = sdyxc[g] = 0;
            if (hw < LB_BN_CHUNK) {
                lanes16 a1[LB_BN_GROUP], a2[LB_BN_GROUP];
                small_dy_sums(x, yact, d->act, dy, d->dres, d->dres_acc, N, C, g0, G, hw, mean, sdy,
                              sdyxc, a1, a2);
            } else
                for (int i = 0; i < N; i++) {
                    const size_t o = ((size_t)i * C + g0) * hw;
                    for (int g = 0; g < G; g++) {
                        if (yact) {
                            plane_mask(yact + o + (size_t)g * hw, dy + o + (size_t)g * hw, hw,
                                       d->act);
                            if (d->dres)
                                plane_res_grad(dy + o + (size_t)g * hw,
                                               d->dres + o + (size_t)g * hw, hw, d->dres_acc);
                        }
                        plane_dy_sums(x + o + (size_t)g * hw, dy + o + (size_t)g * hw, hw,
                                      mean[g0 + g], &sdy[g], &sdyxc[g]);
                    }
                }
            for (int g = 0; g < G; g++) {
                const int c = g0 + g;
                const double is = invstd[c], gis = (double)gamma_of(gamma, c) * is;
                if (dbeta) dbeta[c] = (float)sdy[g];
                if (dgamma) dgamma[c] = (float)(sdyxc[g] * is);
                k1[g] = (float)gis;
                k2[g] = (float)(-gis * is * is * sdyxc[g] / cnt);
                k3[g] = (float)(-gis * sdy[g] / cnt);
            }
            if (!dx) continue;
            for (int i = 0; i < N; i++) {
                const size_t o = ((size_t)i * C + g0) * hw;
                for (int g = 0; g < G; g++) {
                    const size_t og = o + (size_t)g * hw;
                    plane_dx(x + og, dy + og, dx + og, hw, mean[g0 + g], k1[g], k2[g], k3[g],
                             dx_acc);
                }
            }
        }
    }
}
