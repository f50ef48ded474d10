/* The weight codes of the integer model: a uniform grid's codes, or (reg fixed/learned levels,
 * DoReFa) the stored b-bit index and a per-channel code table. Not the graph derivation
 * (int_model.c) nor the kernels. */
#include "int_internal.h"
#include "lb_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Weight codes of conv/linear d. Uniform grids (lsq, fixed, pact, reg step levels): the
 * quantizer's codes at its step. Reg fixed and learned levels and DoReFa are stored as their b-bit
 * level index k (what the memory holds, methods.md sec. 2) and become integer codes through a
 * table per weight channel: fixed levels s(k - (2^b-1)/2) and DoReFa's (2k - (2^b-1))/(2^b-1)
 * are exactly the odd codes 2k - (2^b-1); learned levels are their deployed values a_k = g *
 * integer (weight_tables). k is the float eval's own choice (its tie rule), never a rounding of
 * w/step. */

void lb_int_wcodes_free(lb_int_wcodes *o) {
    free(o->w);
    free(o->sw);
    free(o->idx);
    free(o->tab);
    memset(o, 0, sizeof *o);
}

int lb_int_has_table(const lb_qcfg *c) {
    return (c->kind == LB_Q_REG && c->levels != LB_REG_STEP) || c->kind == LB_Q_DOREFA;
}

/* Learned levels are deployed on a power-of-two grid g (lb_quant_levels_deployed): the code of
 * level a_k is the integer a_k / g (|code| <= about 2^LB_REG_DEPLOY_BITS, int16), exactly the
 * level the float eval snaps to. Rounding the levels onto a finer int8 or int16 grid instead
 * changed 1-5% of a cnn's predictions against the snapped float model (docs/integer.md). */
static lb_status weight_tables(const lb_node *d, lb_int_wcodes *o) {
    const lb_quant *q = &d->wq;
    int L = 1 << q->cfg.bits;
    o->ibits = q->cfg.bits;
    o->ntab = q->ch;
    float a[256];
    if (!(o->tab = malloc((size_t)o->ntab * L * sizeof *o->tab))) return lb_int_oom();
    for (int t = 0; t < o->ntab; t++) {
        int16_t *tab = o->tab + (size_t)t * L;
        if (lb_int_is_reg_fixed(&d->wqcfg) || d->wqcfg.kind == LB_Q_DOREFA) {
            for (int k = 0; k < L; k++) tab[k] = (int16_t)(2 * k - (L - 1));
            continue;
        }
        double g;
        if (lb_quant_levels_deployed(q, t, a, &g) != L || !(g > 0))
            return lb_int_fail_layer(d, "learned reg levels are not on their deployment grid");
        for (int k = 0; k < L; k++) {
            double code = (double)a[k] / g;
            if (!(fabs(code) <= 32767.0) || code != rint(code))
                return lb_int_fail_layer(d, "a learned reg level is not finite or not on its grid");
            tab[k] = (int16_t)code;
        }
    }
    return LB_OK;
}

lb_status lb_int_weight_codes(const lb_net *n, const lb_node *d, int K, lb_int_wcodes *o) {
    memset(o, 0, sizeof *o);
    const float *wf = (n->param + n->params[d->pw].off);
    float *ws = NULL;
    lb_status st = LB_OK;
    /* weight standardization (MaQD) is a training-time reparametrization: the codes are those of
     * the standardized weights, exactly what the float forward quantizes */
    if (d->wstd) {
        if (!(ws = malloc((size_t)d->c * K * sizeof *ws))) return lb_int_oom();
        lb_wstd_forward(d->c, (size_t)K, wf, ws, NULL, NULL);
        wf = ws;
    }
    if (!(o->w = malloc((size_t)d->c * K * sizeof *o->w)) ||
        !(o->sw = malloc((size_t)d->c * sizeof *o->sw))) {
        st = lb_int_oom();
        goto out;
    }
    int table = lb_int_has_table(&d->wqcfg);
    if (table) {
        if (!(o->idx = malloc((size_t)d->c * K))) {
            st = lb_int_oom();
            goto out;
        }
        if (d->wqcfg.kind == LB_Q_DOREFA) {
            /* the forward's own odd codes 2j - (2^b-1) (not a rounding of w): stored as j */
            signed char *c8 = (signed char *)o->idx;
            if ((st = lb_quant_dorefa_codes(&d->wq, 1, wf, c8)) != LB_OK) goto out;
            for (size_t j = 0; j < (size_t)d->c * K; j++)
                o->idx[j] = (unsigned char)(((int)c8[j] + (1 << d->wqcfg.bits) - 1) / 2);
        } else if ((st = lb_quant_reg_codes(&d->wq, 1, wf, o->idx)) != LB_OK) {
            goto out;
        }
        if ((st = weight_tables(d, o)) != LB_OK) goto out;
    }
    int L = 1 << d->wqcfg.bits;
    for (int co = 0; co < d->c; co++) {
        int qc = d->wq.ch > 1 ? co : 0;
        float s = lb_quant_step(&d->wq, qc);
        const int16_t *tab = table ? o->tab + (size_t)qc * L : NULL;
        if (table && d->wqcfg.levels == LB_REG_LEARNED) {
            float a[256];
            lb_quant_levels_deployed(&d->wq, qc, a, &o->sw[co]);
        } else {
            o->sw[co] = s;
        }
        /* sliced: each slice clips at its own K (round and clip commute: sliced.c) */
        int qn = d->wq.qn, qp = d->wq.qp;
        if (d->wqcfg.kind == LB_Q_SLICED) qn = qp = lb_quant_sliced_k(&d->wq, qc);
        double sa = 0;
        for (int k = 0; k < K; k++) {
            size_t j = (size_t)co * K + k;
            int32_t c = tab ? tab[o->idx[j]] : lb_int_qcode(wf[j], s, qn, qp);
            o->w[j] = (int16_t)c;
            sa += abs(c);
        }
        if (sa > o->sumabs) o->sumabs = sa;
    }
out:
    free(ws);
    if (st != LB_OK) lb_int_wcodes_free(o);
    return st;
}
