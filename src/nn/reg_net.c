/* The LB_Q_REG quantizers seen from the net: lambda for all of them, the Gaussian clamp after an
 * update, unsnapped eval, where the weights stand against their levels, and the validation of
 * loaded levels. Not the method (src/quant/reg.c) and not the schedule (the trainer's). */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>

static float *Pw(const lb_net *n, const lb_node *d) {
    return n->param + n->params[d->pw].off;
}

/* The reg weight quantizer of node i, NULL for any other node. */
static const lb_quant *reg_of(const lb_net *n, int i) {
    const lb_node *d = &n->nodes[i];
    if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) return NULL;
    return d->wqcfg.kind == LB_Q_REG ? &d->wq : NULL;
}

int lb_net_reg_set_lambda(lb_net *n, float lambda) {
    int k = 0;
    for (int i = 1; i < n->nnodes; i++)
        if (reg_of(n, i)) n->nodes[i].wq.reg_weight = lambda, k++;
    return k;
}

size_t lb_net_reg_clamp(lb_net *n) {
    size_t moved = 0;
    if (n->quant_off) return 0; /* no levels to clamp to before the quantizers start */
    for (int i = 1; i < n->nnodes; i++)
        if (reg_of(n, i)) moved += lb_quant_reg_clamp(&n->nodes[i].wq, 1, Pw(n, &n->nodes[i]));
    return moved;
}

void lb_net_reg_float(lb_net *n, int on) {
    n->reg_float = on != 0;
}

lb_status lb_net_reg_stats(const lb_net *n, lb_reg_stats *out) {
    *out = (lb_reg_stats){0, 0, 0, 0};
    size_t maxw = 0;
    for (int i = 1; i < n->nnodes; i++)
        if (reg_of(n, i) && n->params[n->nodes[i].pw].n > maxw) maxw = n->params[n->nodes[i].pw].n;
    if (maxw == 0) return LB_OK;
    unsigned char *k = malloc(maxw); /* once per call (per epoch), not per batch */
    if (!k) return lb_error_set(LB_ENOMEM, "out of memory (reg statistics)");
    double dist = 0, near = 0, cnt = 0;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_quant *q = reg_of(n, i);
        if (!q || q->state[0] == 0.0f) continue;
        const float *w = Pw(n, &n->nodes[i]);
        size_t nw = n->params[n->nodes[i].pw].n;
        lb_status st = lb_quant_reg_codes(q, 1, w, k);
        if (st != LB_OK) {
            free(k);
            return st;
        }
        int b = q->cfg.bits, Q = (1 << b) - 1;
        double L = 0;
        for (int c = 0; c < q->ch; c++) {
            float lv[256], R[9];
            lb_quant_levels_deployed(q, c, lv, NULL); /* the levels the indices refer to */
            lb_quant_reg_R(q, c, R);
            double sp = R[0]; /* level spacing, also the Gaussian sigma */
            for (size_t j = (size_t)c * q->inner; j < (size_t)(c + 1) * q->inner; j++) {
                double d = (double)w[j] - (double)lv[k[j]];
                L += q->cfg.form == LB_REG_GAUSS ? 1.0 - exp(-d * d / (sp * sp)) : d * d;
                dist += fabs(d) / sp;
                near += fabs(d) <= 0.1 * sp;
            }
        }
        out->reg += (double)Q / (double)nw * L;
        cnt += (double)nw;
        out->layers++;
    }
    free(k);
    if (cnt > 0) {
        out->dist_steps = dist / cnt;
        out->near_share = near / cnt;
    }
    return LB_OK;
}

static lb_status bad_levels(const char *path, const lb_node *d, int c, const char *why) {
    return lb_error_set(LB_EFORMAT, "%s: layer '%s': reg levels of channel %d %s", path, d->name, c,
                        why);
}

lb_status lb_net_reg_check(const lb_net *n, const char *path) {
    for (int i = 1; i < n->nnodes; i++) {
        const lb_quant *q = reg_of(n, i);
        if (!q || q->state[0] == 0.0f) continue;
        const lb_node *d = &n->nodes[i];
        int b = q->cfg.bits, nl = 1 << b;
        for (int c = 0; c < q->ch; c++) {
            float lv[256], R[9];
            lb_quant_reg_R(q, c, R);
            for (int j = 0; j <= b; j++)
                if (!isfinite(R[j])) return bad_levels(path, d, c, "are not finite");
            for (int j = 0; j < b; j++)
                if (!(R[j] > 0)) return bad_levels(path, d, c, "have a bit weight <= 0");
            lb_quant_levels(q, c, lv);
            for (int j = 0; j < nl; j++)
                if (!isfinite(lv[j])) return bad_levels(path, d, c, "are not finite");
            if (q->cfg.levels == LB_REG_LEARNED) continue; /* sorted at every search */
            for (int j = 1; j < nl; j++)
                if (!(lv[j] > lv[j - 1]))
                    return bad_levels(path, d, c, "are not ordered (increasing in the index)");
        }
    }
    return LB_OK;
}
