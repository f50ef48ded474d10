/* The classifier's learning rate from the curvature of the loss at the first batch (docs/robust.md,
 * "The classifier's rate"). Not a schedule (recipe.c, sched.c) and not an optimizer: it finds
 * the head, measures, and sets the lr_scale of the head's optimizer segments.
 *
 * Why: a classifier fed by many features with a large common mean (the cnn's 3136 or 4096
 * flattened max-pooled ReLU outputs) has a curvature along its class-differential directions of
 * about 250 at init; SGD with Nesterov momentum 0.9 diverges along such a direction above
 * lr 2(1+b)/((1+2b) lambda), about 0.005, and every default rate crosses that during the warm-up.
 * The spikes that follow drove the head's LSQ step to its floor and every code to 0 (issue 10).
 * The rest of the network sits far below its own bound, so only the head's rate is lowered. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "train_internal.h"

/* Power iterations: the top eigenvalue is separated from the rest by the features' mean (a
 * factor of tens), so 30 give it to well under a percent. */
enum { HEAD_ITERS = 30 };
/* Above this many weights (classes x inputs) the estimate is skipped: 2*batch*C*D flops an
 * iteration would rival a training step of a large model. */
#define HEAD_MAX_WEIGHTS (1 << 24)

int lb_head_node(const lb_net *n) {
    int i = n->nnodes - 1;
    while (i > 0 && (n->nodes[i].op == LB_OP_FLATTEN || n->nodes[i].op == LB_OP_DROPOUT))
        i = n->nodes[i].in[0];
    if (i <= 0 || n->nodes[i].op != LB_OP_LINEAR || n->nodes[i].pw < 0 || n->nodes[i].tm != 1)
        return -1;
    return i;
}

double lb_head_rate_bound(const lb_opt_cfg *o, double lambda) {
    if (!(lambda > 0)) return INFINITY;
    double mu = o->momentum;
    if (mu == 0) return 2.0 / lambda;
    /* the characteristic polynomial of momentum SGD on a quadratic has a root at -1 there:
     * heavy ball z^2-(1+mu-a)z+mu, Nesterov z^2-(1+mu)(1-a)z+mu(1-a), a = lr*lambda */
    return o->nesterov ? 2.0 * (1 + mu) / ((1 + 2 * mu) * lambda) : 2.0 * (1 + mu) / lambda;
}

/* H v for the Gauss-Newton matrix of the mean cross-entropy over the batch with respect to the
 * head's weights [C][D] (and bias [C], the input extended by a 1): sum_i (diag(p_i) - p_i p_i^T)
 * (V x_i) x_i^T / b. The logits are linear in these parameters, so this is the loss's Hessian
 * there, whatever the label smoothing. */
static void gn_apply(const float *x, int b, int d, int bias, const float *p, int C, const double *v,
                     double *u, double *z) {
    int dd = d + bias;
    for (size_t k = 0; k < (size_t)C * dd; k++) u[k] = 0;
    for (int i = 0; i < b; i++) {
        const float *xi = x + (size_t)i * d;
        const float *pi = p + (size_t)i * C;
        double pz = 0;
        for (int c = 0; c < C; c++) {
            const double *vc = v + (size_t)c * dd;
            double s = bias ? vc[d] : 0;
            for (int k = 0; k < d; k++) s += vc[k] * xi[k];
            z[c] = s;
            pz += pi[c] * s;
        }
        for (int c = 0; c < C; c++) {
            double w = pi[c] * (z[c] - pz) / b;
            double *uc = u + (size_t)c * dd;
            for (int k = 0; k < d; k++) uc[k] += w * xi[k];
            if (bias) uc[d] += w;
        }
    }
}

lb_status lb_head_gn_top(const float *x, int b, int d, int bias, const float *probs, int C,
                         double *lambda) {
    size_t dd = (size_t)d + (bias ? 1 : 0), nv = (size_t)C * dd;
    double *v = malloc(nv * sizeof *v), *u = malloc(nv * sizeof *u);
    double *z = malloc((size_t)C * sizeof *z);
    if (!v || !u || !z) {
        free(v), free(u), free(z);
        return lb_error_set(LB_ENOMEM, "out of memory (head curvature)");
    }
    /* a fixed +-1 pattern (no run seed: the estimate is the same for every seed's first batch) */
    uint32_t s = 0x9e3779b9u;
    for (size_t k = 0; k < nv; k++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        v[k] = (s & 1) ? 1.0 : -1.0;
    }
    double lam = 0;
    for (int it = 0; it < HEAD_ITERS; it++) {
        gn_apply(x, b, d, bias, probs, C, v, u, z);
        double vu = 0, vv = 0, uu = 0;
        for (size_t k = 0; k < nv; k++) vu += v[k] * u[k], vv += v[k] * v[k], uu += u[k] * u[k];
        lam = vv > 0 ? vu / vv : 0;
        if (!(uu > 0)) break;
        double r = 1 / sqrt(uu);
        for (size_t k = 0; k < nv; k++) v[k] = u[k] * r;
    }
    free(v), free(u), free(z);
    *lambda = lam;
    return LB_OK;
}

lb_status lb_head_curvature(const lb_net *n, int node, int b, const float *probs, double *lambda) {
    const lb_node *h = &n->nodes[node];
    const lb_node *in = &n->nodes[h->in[0]];
    int d = in->c * in->h * in->w, bias = h->pb >= 0;
    *lambda = NAN;
    if ((size_t)h->c * (size_t)(d + bias) > HEAD_MAX_WEIGHTS) return LB_OK;
    return lb_head_gn_top(in->y, b, d, bias, probs, h->c, lambda);
}

void lb_head_rate_apply(const lb_net *n, int node, lb_opt_segment *seg, int nseg, float scale) {
    const lb_node *h = &n->nodes[node];
    /* the weights, the bias and the weights' quantizer: the step of an LSQ head moves with its
     * weights (its gradient is theirs, summed); the input's quantizer belongs to the features */
    int idx[3] = {h->pw, h->pb, h->pwq};
    for (int k = 0; k < 3; k++)
        if (idx[k] >= 0 && idx[k] < nseg) seg[idx[k]].lr_scale = scale;
}

/* What the run does with the head's rate (fresh, resumed, fixed, auto), and its start line. */
void lb_head_rate_setup(run *r, lb_train_cfg *c, float lr_peak, char *note, size_t cap) {
    r->head = lb_head_node(r->net);
    r->head_pending = 0;
    r->head_lr_peak = lr_peak;
    note[0] = 0;
    if (r->head < 0) {
        c->head_lr_scale = 1;
        return; /* no linear classifier (spiking readouts, graphs ending elsewhere) */
    }
    const char *name = r->net->nodes[r->head].name;
    if (c->head_lr_scale > 0) { /* resumed: the rate the run has trained with */
        lb_head_rate_apply(r->net, r->head, r->seg, r->nseg, c->head_lr_scale);
        if (c->head_lr_scale != 1)
            snprintf(note, cap, "head rate: layer '%s' learns at %.3gx the rate (as recorded)",
                     name, (double)c->head_lr_scale);
    } else if (c->head_lr >= 0) {
        c->head_lr_scale = c->head_lr;
        lb_head_rate_apply(r->net, r->head, r->seg, r->nseg, c->head_lr_scale);
        if (c->head_lr != 1)
            snprintf(note, cap, "head rate: layer '%s' learns at %.3gx the rate (--head-lr)", name,
                     (double)c->head_lr);
    } else if (c->opt.kind != LB_OPT_SGD) {
        c->head_lr_scale = 1; /* Adam's steps do not scale with the curvature */
    } else {
        r->head_pending = 1;
    }
}

lb_status lb_head_rate_measure(run *r, const lb_train_cfg *c, int b, const float *probs) {
    double lam;
    lb_status st = lb_head_curvature(r->net, r->head, b, probs, &lam);
    if (st != LB_OK) return st;
    double bound = lb_head_rate_bound(&c->opt, lam);
    double s = bound / (double)r->head_lr_peak;
    r->head_scale = !(s < 1) ? 1.0f : (float)s; /* NaN (skipped) and above the bound: 1 */
    r->head_lambda = lam;
    r->head_bound = bound;
    lb_head_rate_apply(r->net, r->head, r->seg, r->nseg, r->head_scale);
    r->head_pending = 0;
    r->head_resolved = 1;
    return LB_OK;
}

void lb_head_rate_note(const run *r, char *note, size_t cap) {
    const char *name = r->net->nodes[r->head].name;
    if (isnan(r->head_lambda))
        snprintf(note, cap, "head rate: layer '%s' is too large to measure: it learns at the rate",
                 name);
    else if (r->head_scale < 1)
        snprintf(note, cap,
                 "head rate: layer '%s' learns at %.3gx the rate: the loss's curvature there is "
                 "%.4g at the first batch, and SGD is stable below lr %.3g (--head-lr 1 turns "
                 "this off)",
                 name, (double)r->head_scale, r->head_lambda, r->head_bound);
    else
        snprintf(note, cap,
                 "head rate: layer '%s' learns at the rate: the loss's curvature there is %.4g at "
                 "the first batch, stable up to lr %.3g",
                 name, r->head_lambda, r->head_bound);
}
