/* Derives the integer model from a trained lb_net: checks that every layer has an integer form,
 * fuses conv/linear + BN + ReLU, decides each tensor's domain (the next layer's codes or a wide
 * int32), computes the requantization constants and plans the per-image arena. Running the model
 * is int_run.c's; writing it as C is src/export's. */
#include "int_build.h"
#include "int_snn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tensors and ops ------------------------------------------------------------------------- */
static int code_tensor(lb_int_model *m, const char *name, int c, int h, int w, const lb_node *q) {
    float step = lb_quant_step(&q->aq, 0);
    int bits = q->aqcfg.kind == LB_Q_SLICED ? lb_quant_sliced_bits(&q->aq, 0) : q->aqcfg.bits;
    return lb_int_tensor_new(m, name, c, h, w, q->aq.qn ? LB_IT_S8 : LB_IT_U8, step, -q->aq.qn,
                             q->aq.qp, bits);
}

/* Does tensor t hold the codes of node q's activation quantizer? */
static int holds_codes_of(const lb_int_tensor *t, const lb_node *q) {
    if (t->type != (q->aq.qn ? LB_IT_S8 : LB_IT_U8)) return 0;
    return t->scale == (double)lb_quant_step(&q->aq, 0) && t->lo >= -q->aq.qn && t->hi <= q->aq.qp;
}

static int32_t rne_code(double v) {
    double r = rint(v);
    return r > 2147483647.0 ? INT32_MAX : r < -2147483648.0 ? INT32_MIN : (int32_t)r;
}

/* The image: raw uint8 pixels through a per-channel table. Float first-layer input: int16 at
 * scale 1/E of the loader's normalized value (E as large as int16 and the first accumulator
 * allow); quantized first-layer input: that quantizer's codes of the normalized value. */
static lb_status make_input(build *b) {
    const lb_net *n = b->n;
    lb_int_model *m = b->m;
    const lb_node *in = &n->nodes[0];
    const lb_node *c = &n->nodes[cons_at(b, 0, 0)];
    float xn[3][256];
    double maxabs = 0;
    for (int ch = 0; ch < in->c; ch++)
        for (int p = 0; p < 256; p++) {
            xn[ch][p] = ((float)p / 255.0f - m->mean[ch]) / m->std[ch];
            if (!isfinite(xn[ch][p])) return lb_error_set(LB_EINVAL, "bad normalization constants");
            if (fabs(xn[ch][p]) > maxabs) maxabs = fabs(xn[ch][p]);
        }
    lb_int_op *op = lb_int_op_new(m, LB_IOP_INPUT, "input");
    if (!op) return lb_int_oom();
    op->lut = malloc((size_t)in->c * 256 * sizeof *op->lut);
    if (!op->lut) return lb_int_oom();
    op->cin = op->cout = in->c;
    op->ih = op->oh = in->h;
    op->iw = op->ow = in->w;
    int t;
    if (c->aqcfg.kind != LB_Q_NONE) {
        float s = lb_quant_step(&c->aq, 0);
        for (int ch = 0; ch < in->c; ch++)
            for (int p = 0; p < 256; p++)
                op->lut[ch * 256 + p] = (int16_t)lb_int_qcode(xn[ch][p], s, c->aq.qn, c->aq.qp);
        t = code_tensor(m, "input", in->c, in->h, in->w, c);
    } else {
        int K = (int)(n->params[c->pw].n / (size_t)c->c);
        lb_int_wcodes wc;
        lb_status st = lb_int_weight_codes(n, c, K, &wc);
        if (st != LB_OK) return st;
        double sumabs = wc.sumabs;
        lb_int_wcodes_free(&wc);
        /* Candidates: the rounded table at the largest scale E int16 allows, and, when every
         * channel has the same std, the affine codes D*p - Z[c] at E = 255*std*D (D = 1..128),
         * exact up to the zero point's rounding (Fashion-MNIST: D = 100, Z = 7293, an error of
         * 3e-6 pixel levels against 1e-3 for the table). The one nearer the loader's floats. */
        double E = 32767.0 / (maxabs > 0 ? maxabs : 1.0);
        if (sumabs * 32767.0 > ACC_LIMIT) E *= ACC_LIMIT / (sumabs * 32767.0);
        double best = 0;
        for (int ch = 0; ch < in->c; ch++)
            for (int p = 0; p < 256; p++) {
                double e = fabs(rint(xn[ch][p] * E) - xn[ch][p] * E) / E;
                best = e > best ? e : best;
            }
        int bestD = 0, same_std = 1;
        for (int ch = 1; ch < in->c; ch++) same_std &= m->std[ch] == m->std[0];
        for (int D = 1; D <= 128 && same_std; D++) {
            double ED = 255.0 * m->std[0] * D, err = 0;
            for (int ch = 0; ch < in->c; ch++) {
                double Z = rint(255.0 * m->mean[ch] * D);
                for (int p = 0; p < 256; p++) {
                    double v = (double)D * p - Z;
                    if (fabs(v) > 32767 || sumabs * fabs(v) > ACC_LIMIT) err = INFINITY;
                    double e = fabs(v - xn[ch][p] * ED) / ED;
                    err = e > err ? e : err;
                }
            }
            if (err < best) {
                best = err;
                bestD = D;
            }
        }
        if (bestD) E = 255.0 * m->std[0] * bestD;
        int32_t lo = 0, hi = 0;
        for (int ch = 0; ch < in->c; ch++)
            for (int p = 0; p < 256; p++) {
                int16_t v = (int16_t)(bestD ? (double)bestD * p - rint(255.0 * m->mean[ch] * bestD)
                                            : rint(xn[ch][p] * E));
                op->lut[ch * 256 + p] = v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        t = lb_int_tensor_new(m, "input", in->c, in->h, in->w, LB_IT_S16, 1.0 / E, lo, hi, 16);
    }
    if (t < 0) return lb_int_oom();
    op->out = t;
    b->val[0] = t;
    return LB_OK;
}

/* A wide tensor quantized to the codes of conv q (shared by consumers with the same quantizer). */
static int quant_of(build *b, int tw, const lb_node *q) {
    lb_int_model *m = b->m;
    for (int i = 0; i < m->nops; i++) {
        const lb_int_op *op = &m->ops[i];
        if (op->kind == LB_IOP_QUANT && op->in[0] == tw && holds_codes_of(&m->t[op->out], q))
            return op->out;
    }
    char name[LB_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s.in", q->name);
    const lb_int_tensor *src = &m->t[tw];
    int c = src->c, h = src->h, w = src->w;
    int t = code_tensor(m, name, c, h, w, q);
    if (t < 0) return -1;
    lb_int_op *op = lb_int_op_new(m, LB_IOP_QUANT, name);
    if (!op || !(op->rq = calloc(1, sizeof *op->rq))) return -1;
    if (lb_int_rq_from_real(m->t[tw].scale / m->t[t].scale, 0, op->rq) != LB_OK) return -1;
    op->in[0] = tw;
    op->out = t;
    op->lo = m->t[t].lo;
    op->hi = m->t[t].hi;
    op->cin = op->cout = c;
    op->ih = op->oh = h;
    op->iw = op->ow = w;
    return t;
}

static lb_status make_conv(build *b, int i) {
    const lb_net *n = b->n;
    lb_int_model *m = b->m;
    const lb_node *d = &n->nodes[i], *src = &n->nodes[d->in[0]];
    int tl = b->tail[i];
    int tin = b->val[d->in[0]];
    if (tin < 0) return lb_int_fail_layer(d, "input has no integer tensor");
    if (d->aqcfg.kind != LB_Q_NONE && !holds_codes_of(&m->t[tin], d)) {
        if (m->t[tin].type != LB_IT_S32)
            return lb_int_fail_layer(d, "input codes do not match its activation quantizer");
        if ((tin = quant_of(b, tin, d)) < 0) return lb_int_oom();
    }
    lb_int_op *op = lb_int_op_new(m, LB_IOP_CONV, d->name);
    if (!op) return lb_int_oom();
    op->in[0] = tin;
    op->linear = d->op == LB_OP_LINEAR;
    if (op->linear) {
        op->cin = src->c * src->h * src->w;
        op->ih = op->iw = 1;
    } else {
        op->cin = src->c;
        op->ih = src->h;
        op->iw = src->w;
        op->k = d->k;
        op->stride = d->stride;
        op->pad = d->pad;
        op->groups = d->groups;
    }
    op->cout = d->c;
    op->oh = op->linear ? 1 : d->h;
    op->ow = op->linear ? 1 : d->w;
    int K = op->cin / op->groups * op->k * op->k;
    lb_int_wcodes wc;
    lb_status st = lb_int_weight_codes(n, d, K, &wc);
    if (st != LB_OK) return st;
    double sumabs = wc.sumabs;
    /* code bits: the odd codes of b-bit fixed reg levels and DoReFa span [-(2^b-1), 2^b-1], b+1
     * bits signed; learned levels' codes are int16; the memory holds the b-bit index (ibits) */
    op->wbits = d->wqcfg.bits + (lb_int_is_reg_fixed(&d->wqcfg) || d->wqcfg.kind == LB_Q_DOREFA);
    if (lb_int_has_table(&d->wqcfg) && d->wqcfg.levels == LB_REG_LEARNED) op->wbits = 16;
    /* sliced: each slice has its own width; wbits is the widest, rbits every channel's (the
     * export packs each row at its own width when that is smaller: docs/mixed.md) */
    for (int s = 0; d->wqcfg.kind == LB_Q_SLICED && s < d->wq.ch; s++) {
        int bs = lb_quant_sliced_bits(&d->wq, s);
        op->wbits = s == 0 || bs > op->wbits ? bs : op->wbits;
    }
    if (d->wqcfg.kind == LB_Q_SLICED && d->wq.ch == d->c && d->c > 1) {
        if (!(op->rbits = malloc((size_t)d->c))) {
            lb_int_wcodes_free(&wc);
            return lb_int_oom();
        }
        for (int co = 0; co < d->c; co++)
            op->rbits[co] = (signed char)lb_quant_sliced_bits(&d->wq, co);
    }
    op->w = wc.w;
    op->widx = wc.idx;
    op->wtab = wc.tab;
    op->ntab = wc.ntab;
    op->ibits = wc.ibits;
    double *sw = wc.sw;
    const lb_int_tensor *ti = &m->t[tin];
    double xmax = fmax(fabs((double)ti->lo), fabs((double)ti->hi));
    double accmax = sumabs * xmax;
    if (accmax > ACC_LIMIT) {
        char msg[256];
        snprintf(msg, sizeof msg, "accumulator could reach %.3g, beyond int32%s", accmax,
                 op->wbits > 8 ? " (learned reg levels are int16 codes: give this layer 7 or "
                                 "fewer bits, e.g. --first-bits/--last-bits 7)"
                               : "");
        free(sw);
        return lb_int_fail_layer(d, msg);
    }
    /* per channel: real output = alpha*acc + beta */
    double *alpha = malloc((size_t)d->c * sizeof *alpha),
           *beta = malloc((size_t)d->c * sizeof *beta);
    if (!alpha || !beta || !(op->rq = malloc((size_t)d->c * sizeof *op->rq))) {
        free(alpha);
        free(beta);
        free(sw);
        return lb_int_oom();
    }
    const float *bias = P(n, d->pb);
    const lb_node *bn = b->bn[i] >= 0 ? &n->nodes[b->bn[i]] : NULL;
    for (int co = 0; co < d->c; co++) {
        alpha[co] = ti->scale * sw[co];
        /* a channel whose codes are all 0 (stored without a table, so no chip can change them)
         * accumulates 0 for every input: its step does not matter, and the integer model need
         * not represent it. msqe-po2 with second moments can leave such a dead channel's
         * exponent at 2^64, whose multiplier no int32 holds (bench/RESULTS.md, MobileNets) */
        int dead = wc.idx == NULL;
        for (int k = 0; dead && k < K; k++) dead = op->w[(size_t)co * (size_t)K + (size_t)k] == 0;
        if (dead) alpha[co] = 0;
        beta[co] = bias ? bias[co] : 0.0;
        if (bn) {
            /* the factor exactly as lb_bn_forward_eval rounds it */
            const float g = P(n, bn->pw)[co], bt = P(n, bn->pb)[co];
            const float mu = S(n, bn->smean)[co], var = S(n, bn->svar)[co];
            double a = (double)(float)(g / sqrt((double)var + 1e-5f));
            alpha[co] *= a;
            beta[co] = a * (beta[co] - mu) + bt;
        }
    }
    free(sw);
    /* output domain */
    int relu = b->relu[i];
    char tname[LB_NAME_MAX + 8];
    snprintf(tname, sizeof tname, "%s", n->nodes[tl].name);
    int to;
    if (tl == b->out_node) {
        double zmax = 0;
        for (int co = 0; co < d->c; co++) {
            double z = fabs(alpha[co]) * accmax + fabs(beta[co]);
            if (z > zmax) zmax = z;
        }
        /* logits use about 30 bits at their largest possible value; the multiplier of every
         * channel must still leave a shift >= 1 */
        double amax = 0;
        for (int co = 0; co < d->c; co++) amax = fmax(amax, fabs(alpha[co]));
        int f = zmax > 0 ? (int)floor(log2(ldexp(1.0, 30) / zmax)) : 30;
        if (amax > 0 && f > (int)floor(log2(ldexp(1.0, 29) / amax)))
            f = (int)floor(log2(ldexp(1.0, 29) / amax));
        f = f < -30 ? -30 : f > 30 ? 30 : f;
        m->logit_frac_bits = f;
        to = lb_int_tensor_new(m, "logits", d->c, op->oh, op->ow, LB_IT_S32, ldexp(1.0, -f),
                               INT32_MIN, INT32_MAX, 32);
    } else if (b->wish[tl] >= 0) {
        to = code_tensor(m, tname, d->c, op->oh, op->ow, &n->nodes[b->wish[tl]]);
    } else {
        to = lb_int_tensor_new(m, tname, d->c, op->oh, op->ow, LB_IT_S32, lb_int_wide_scale(b, tl),
                               INT32_MIN, INT32_MAX, 32);
    }
    if (to < 0) {
        free(alpha);
        free(beta);
        return lb_int_oom();
    }
    lb_int_tensor *t = &m->t[to];
    if (relu) t->lo = t->lo > 0 ? t->lo : 0;
    if (relu == 6) {
        int32_t six;
        if (t->type == LB_IT_S32)
            six = rne_code(6.0 / t->scale);
        else
            six = lb_int_qcode(6.0f, (float)t->scale, -t->lo, t->hi);
        t->hi = t->hi < six ? t->hi : six;
    }
    op->out = to;
    op->lo = t->lo;
    op->hi = t->hi;
    for (int co = 0; co < d->c && st == LB_OK; co++)
        st = lb_int_rq_from_real(alpha[co] / t->scale, beta[co] / t->scale, &op->rq[co]);
    free(alpha);
    free(beta);
    if (st != LB_OK) return lb_int_fail_layer(d, lb_error_msg());
    b->val[tl] = to;
    return LB_OK;
}

static lb_status make_add(build *b, int i) {
    const lb_net *n = b->n;
    lb_int_model *m = b->m;
    const lb_node *d = &n->nodes[i];
    int tl = b->tail[i];
    int ta = b->val[d->in[0]], tb = b->val[d->in[1]];
    if (ta < 0 || tb < 0 || m->t[ta].type != LB_IT_S32 || m->t[tb].type != LB_IT_S32)
        return lb_int_fail_layer(d, "inputs are not wide integer tensors");
    double s = lb_int_natural_scale(b, tl);
    int to = lb_int_tensor_new(m, n->nodes[tl].name, d->c, d->h, d->w, LB_IT_S32, s,
                               b->relu[i] ? 0 : INT32_MIN, INT32_MAX, 32);
    if (to < 0) return lb_int_oom();
    if (b->relu[i] == 6) m->t[to].hi = rne_code(6.0 / s);
    lb_int_op *op = lb_int_op_new(m, LB_IOP_ADD, d->name);
    if (!op || !(op->rq = calloc(2, sizeof *op->rq))) return lb_int_oom();
    op->in[0] = ta;
    op->in[1] = tb;
    op->out = to;
    op->lo = m->t[to].lo;
    op->hi = m->t[to].hi;
    op->cin = op->cout = d->c;
    op->ih = op->oh = d->h;
    op->iw = op->ow = d->w;
    for (int j = 0; j < 2; j++) {
        double r = m->t[op->in[j]].scale / s;
        op->rq_id[j] = r == 1.0;
        if (!op->rq_id[j] && lb_int_rq_from_real(r, 0, &op->rq[j]) != LB_OK)
            return lb_int_fail_layer(d, lb_error_msg());
    }
    b->val[tl] = to;
    return LB_OK;
}

/* Max/avg pool, GAP, shortcut, standalone ReLU: same scale in and out. */
static lb_status make_simple(build *b, int i) {
    const lb_net *n = b->n;
    lb_int_model *m = b->m;
    const lb_node *d = &n->nodes[i], *src = &n->nodes[d->in[0]];
    int tin = b->val[d->in[0]];
    if (tin < 0) return lb_int_fail_layer(d, "input has no integer tensor");
    lb_int_opkind kind = d->op == LB_OP_MAXPOOL    ? LB_IOP_MAXPOOL
                         : d->op == LB_OP_AVGPOOL  ? LB_IOP_AVGPOOL
                         : d->op == LB_OP_GAP      ? LB_IOP_GAP
                         : d->op == LB_OP_SHORTCUT ? LB_IOP_SHORTCUT
                                                   : LB_IOP_CLAMP;
    if ((kind == LB_IOP_AVGPOOL || kind == LB_IOP_GAP) && m->t[tin].type != LB_IT_S32)
        return lb_int_fail_layer(d, "averages only wide integer tensors");
    const lb_int_tensor ti = m->t[tin];
    int to =
        lb_int_tensor_new(m, d->name, d->c, d->h, d->w, ti.type, ti.scale, ti.lo, ti.hi, ti.bits);
    if (to < 0) return lb_int_oom();
    lb_int_tensor *t = &m->t[to];
    if (kind == LB_IOP_SHORTCUT) {
        t->lo = t->lo < 0 ? t->lo : 0; /* zero channels */
        t->hi = t->hi > 0 ? t->hi : 0;
    }
    if (kind == LB_IOP_CLAMP) {
        t->lo = t->lo > 0 ? t->lo : 0;
        if (d->op == LB_OP_RELU6) {
            int32_t six = t->type == LB_IT_S32 ? rne_code(6.0 / t->scale)
                                               : lb_int_qcode(6.0f, (float)t->scale, -ti.lo, ti.hi);
            t->hi = t->hi < six ? t->hi : six;
        }
    }
    lb_int_op *op = lb_int_op_new(m, kind, d->name);
    if (!op) return lb_int_oom();
    op->in[0] = tin;
    op->out = to;
    op->cin = src->c;
    op->ih = src->h;
    op->iw = src->w;
    op->cout = d->c;
    op->oh = d->h;
    op->ow = d->w;
    op->k = d->k;
    op->stride = d->stride;
    op->pad = d->pad;
    op->lo = t->lo;
    op->hi = t->hi;
    if (kind == LB_IOP_GAP) op->k = 0;
    b->val[i] = to;
    return LB_OK;
}

/* ---- entry ----------------------------------------------------------------------------------- */
static void build_free(build *b) {
    free(b->ncons);
    free(b->cons);
    free(b->cons_off);
    free(b->tail);
    free(b->grp);
    free(b->relu);
    free(b->bn);
    free(b->wish);
    free(b->val);
}

lb_status lb_int_from_net(const lb_net *n, const float mean[3], const float std[3],
                          lb_int_model **out) {
    *out = NULL;
    if (!n->param) return lb_error_set(LB_EINVAL, "integer model: the network is not planned");
    for (int i = 1; i < n->nnodes; i++)
        if (n->nodes[i].op == LB_OP_ENCODE) return lb_int_from_snn(n, mean, std, out);
    build b;
    memset(&b, 0, sizeof b);
    b.n = n;
    b.nn = n->nnodes;
    size_t nn = (size_t)b.nn;
    b.ncons = calloc(nn, sizeof(int));
    b.cons_off = calloc(nn + 1, sizeof(int));
    b.cons = calloc(2 * nn + 1, sizeof(int));
    b.tail = calloc(nn, sizeof(int));
    b.grp = calloc(nn, sizeof(int));
    b.relu = calloc(nn, sizeof(int));
    b.bn = calloc(nn, sizeof(int));
    b.wish = calloc(nn, sizeof(int));
    b.val = malloc(nn * sizeof(int));
    lb_int_model *m = calloc(1, sizeof *m);
    b.m = m;
    lb_status st = LB_OK;
    if (!b.ncons || !b.cons_off || !b.cons || !b.tail || !b.grp || !b.relu || !b.bn || !b.wish ||
        !b.val || !m) {
        st = lb_int_oom();
        goto out;
    }
    for (int i = 0; i < b.nn; i++) b.val[i] = -1;
    for (int i = 1; i < b.nn; i++)
        for (int j = 0; j < 2; j++)
            if (n->nodes[i].in[j] >= 0) b.ncons[n->nodes[i].in[j]]++;
    for (int i = 0; i < b.nn; i++) b.cons_off[i + 1] = b.cons_off[i] + b.ncons[i];
    {
        int *fill = calloc(nn, sizeof(int));
        if (!fill) {
            st = lb_int_oom();
            goto out;
        }
        for (int i = 1; i < b.nn; i++)
            for (int j = 0; j < 2; j++) {
                int s = n->nodes[i].in[j];
                if (s >= 0) b.cons[b.cons_off[s] + fill[s]++] = i;
            }
        free(fill);
    }
    const lb_node *in = &n->nodes[0];
    m->in_c = in->c;
    m->in_h = in->h;
    m->in_w = in->w;
    m->classes = lb_net_classes(n);
    for (int c = 0; c < 3; c++) {
        m->mean[c] = mean[c];
        m->std[c] = std[c];
    }
    if ((st = lb_int_build_analyze(&b)) != LB_OK) goto out;
    lb_int_build_wishes(&b);
    if ((st = make_input(&b)) != LB_OK) goto out;
    for (int i = 1; i < b.nn && st == LB_OK; i++) {
        const lb_node *d = &n->nodes[i];
        if (is_linear_op(d->op)) {
            st = make_conv(&b, i);
        } else if (d->op == LB_OP_ADD) {
            st = make_add(&b, i);
        } else if (d->op == LB_OP_FLATTEN || d->op == LB_OP_DROPOUT) {
            b.val[i] = b.val[d->in[0]];
        } else if (b.grp[i] < 0) {
            st = make_simple(&b, i);
        }
    }
    if (st != LB_OK) goto out;
    m->input = b.val[0];
    m->logits = b.val[b.out_node];
    if ((st = lb_int_pack_all(m)) != LB_OK) goto out;
    lb_int_plan(m);
out:
    build_free(&b);
    if (st != LB_OK) {
        lb_int_free(m);
        return st;
    }
    *out = m;
    return LB_OK;
}
