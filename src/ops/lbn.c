/* Layer-Batch Norm (MaQD, methods.md sec. 5; the formulas are our design, docs/models.md "--norm"):
 * per-sample statistics over (c, hw) while training, per-channel gamma/beta, running averages of
 * the statistics for an inference form that is BN's eval (lb_bn_forward_eval). Training forward
 * and backward, each a serial reference and an OpenMP kernel running the same per-sample and
 * per-channel sums in the same order (so they agree bit for bit). Not BN's batch statistics. */
#include "lb_ops.h"

#include <math.h>
#include <stddef.h>

/* Below this many elements a parallel region costs more than it saves. */
#define LB_LBN_PAR_MIN 32768

static float act_of(const lb_bn_desc *d, float v) {
    if (d->act) v = v > 0.0f ? v : 0.0f;
    if (d->act == 2) v = v < 6.0f ? v : 6.0f;
    return v;
}

/* Sample n: mean and biased variance over its c*hw values (two passes in double), then the
 * normalized, affine, (residual,) activated output. */
static void fwd_sample(const lb_bn_desc *d, int n, const float *x, const float *gamma,
                       const float *beta, float *y, double *mu_out, double *var_out,
                       float *is_out) {
    const size_t hw = (size_t)d->hw, cnt = (size_t)d->c * hw, o0 = (size_t)n * cnt;
    double s = 0, v = 0;
    for (size_t j = 0; j < cnt; j++) s += x[o0 + j];
    double mu = s / (double)cnt;
    for (size_t j = 0; j < cnt; j++) v += (x[o0 + j] - mu) * (x[o0 + j] - mu);
    v /= (double)cnt;
    float is = (float)(1.0 / sqrt(v + d->eps)), fm = (float)mu;
    for (int c = 0; c < d->c; c++) {
        float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        size_t o = o0 + (size_t)c * hw;
        for (size_t j = 0; j < hw; j++) {
            float t = (x[o + j] - fm) * is * g + b;
            if (d->res) t += d->res[o + j];
            y[o + j] = act_of(d, t);
        }
    }
    *mu_out = mu;
    *var_out = v;
    *is_out = is;
}

/* Every channel of the running statistics moves by the batch averages of mu_n and of the
 * unbiased var_n: inference then normalizes with the population's typical sample statistics (the
 * same number in every channel), and the per-channel affine that follows is exactly BN's eval.
 * var_n is recovered from the saved float invstd_n (1/is^2 - eps: relative error ~1e-7, far
 * below what a running average resolves), so no per-sample double buffer is needed. */
static void update_running(const lb_bn_desc *d, const float *mean, const float *invstd, float *rm,
                           float *rv) {
    double cnt = (double)d->c * d->hw, sm = 0, sv = 0, m = d->momentum;
    for (int n = 0; n < d->n; n++) {
        double is = invstd[n], v = 1.0 / (is * is) - d->eps;
        v = v > 0 ? v : 0;
        sm += mean[n];
        sv += cnt > 1 ? v * cnt / (cnt - 1) : v;
    }
    sm /= d->n;
    sv /= d->n;
    for (int c = 0; c < d->c; c++) {
        if (rm) rm[c] = (float)((1.0 - m) * rm[c] + m * sm);
        if (rv) rv[c] = (float)((1.0 - m) * rv[c] + m * sv);
    }
}

/* mean and invstd must be given ([n] each): the running update reads them. */
static void forward(const lb_bn_desc *d, const float *x, const float *gamma, const float *beta,
                    float *y, float *mean, float *invstd, float *rm, float *rv, int par) {
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int n = 0; n < d->n; n++) {
        double m, v;
        float is;
        fwd_sample(d, n, x, gamma, beta, y, &m, &v, &is);
        mean[n] = (float)m;
        invstd[n] = is;
    }
    update_running(d, mean, invstd, rm, rv);
}

void lb_lbn_forward_train_ref(const lb_bn_desc *d, const float *x, const float *gamma,
                              const float *beta, float *y, float *mean, float *invstd,
                              float *run_mean, float *run_var) {
    forward(d, x, gamma, beta, y, mean, invstd, run_mean, run_var, 0);
}

void lb_lbn_forward_train(const lb_bn_desc *d, const float *x, const float *gamma,
                          const float *beta, float *y, float *mean, float *invstd, float *run_mean,
                          float *run_var) {
    size_t total = (size_t)d->n * d->c * d->hw;
    forward(d, x, gamma, beta, y, mean, invstd, run_mean, run_var,
            total >= LB_LBN_PAR_MIN && d->n > 1);
}

/* Pass 1 (per channel): the activation's mask on dy, the folded residual's gradient, and
 * dgamma = sum dy xh, dbeta = sum dy over (n, hw). Pass 2 (per sample): with dxh = gamma dy,
 * dx = invstd_n (dxh - mean(dxh) - xh mean(dxh xh)) over the sample's c*hw values. Pass 2 reads
 * and writes only its own sample, after pass 1 has read every dy: dx may overwrite dy. */
static void backward(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                     const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                     float *dgamma, float *dbeta, int par) {
    const size_t hw = (size_t)d->hw, cnt = (size_t)d->c * hw;
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < d->c; c++) {
        double sdy = 0, sdyxh = 0;
        for (int n = 0; n < d->n; n++) {
            size_t o = (size_t)n * cnt + (size_t)c * hw;
            float fm = mean[n], is = invstd[n];
            for (size_t j = 0; j < hw; j++) {
                float g = dy[o + j];
                if (d->act && (y[o + j] <= 0.0f || (d->act == 2 && y[o + j] >= 6.0f))) g = 0.0f;
                if (d->act) {
                    dy[o + j] = g;
                    if (d->dres) d->dres[o + j] = d->dres_acc ? d->dres[o + j] + g : g;
                }
                sdy += g;
                sdyxh += (double)g * ((x[o + j] - fm) * is);
            }
        }
        if (dbeta) dbeta[c] = (float)sdy;
        if (dgamma) dgamma[c] = (float)sdyxh;
    }
    if (!dx) return;
#pragma omp parallel for schedule(static) if (par)
    for (int n = 0; n < d->n; n++) {
        size_t o0 = (size_t)n * cnt;
        float fm = mean[n], is = invstd[n];
        double a = 0, b = 0;
        for (int c = 0; c < d->c; c++) {
            double g = gamma ? gamma[c] : 1.0;
            for (size_t j = 0; j < hw; j++) {
                size_t e = o0 + (size_t)c * hw + j;
                double gx = g * dy[e];
                a += gx;
                b += gx * ((x[e] - fm) * is);
            }
        }
        a /= (double)cnt;
        b /= (double)cnt;
        for (int c = 0; c < d->c; c++) {
            double g = gamma ? gamma[c] : 1.0;
            for (size_t j = 0; j < hw; j++) {
                size_t e = o0 + (size_t)c * hw + j;
                double xh = (x[e] - fm) * is;
                float v = (float)(is * (g * dy[e] - a - xh * b));
                dx[e] = dx_acc ? dx[e] + v : v;
            }
        }
    }
}

void lb_lbn_backward_ref(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                         const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                         float *dgamma, float *dbeta) {
    backward(d, x, y, gamma, mean, invstd, dy, dx, dx_acc, dgamma, dbeta, 0);
}

void lb_lbn_backward(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                     const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                     float *dgamma, float *dbeta) {
    size_t total = (size_t)d->n * d->c * d->hw;
    backward(d, x, y, gamma, mean, invstd, dy, dx, dx_acc, dgamma, dbeta, total >= LB_LBN_PAR_MIN);
}
