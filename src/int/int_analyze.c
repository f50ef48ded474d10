/* The analysis half of deriving the integer model: checks that every layer of a trained network
 * has an integer form, groups conv/linear + BN + ReLU, decides which tensors hold the next layer's
 * codes and which a wide int32, and the scales of those. Making the ops is int_model.c's. */
#include "int_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- graph analysis -------------------------------------------------------------------------- */
lb_status lb_int_fail_layer(const lb_node *d, const char *why) {
    char w[256]; /* why may be lb_error_msg()'s own buffer */
    snprintf(w, sizeof w, "%s", why);
    return lb_error_set(LB_EINVAL, "layer '%s' (%s): %s", d->name, lb_op_name(d->op), w);
}

static lb_status check_quant(const lb_node *d, const lb_qcfg *c, const lb_quant *q,
                             const char *what) {
    if (c->kind == LB_Q_REG && c->levels == LB_REG_LEARNED) return LB_OK; /* weight_tables */
    if (lb_int_is_reg_fixed(c) && c->bits > 7)
        return lb_int_fail_layer(
            d, "8-bit fixed reg levels: their codes 2k-255 need 9 bits, more than "
               "the int8 weights of the integer model; train with --first-bits "
               "and --last-bits (and --wbits) 2..7 (docs/integer.md)");
    if (c->kind == LB_Q_DOREFA && c->bits > 7)
        return lb_int_fail_layer(
            d, "8-bit DoReFa weights: their odd codes -255..255 need 9 bits, more "
               "than the int8 weights of the integer model; train with "
               "--first-bits and --last-bits (and --wbits) 2..7 "
               "(docs/quantizers.md)");
    if (c->kind == LB_Q_ROUNDCLIP && (q->qn > 128 || q->qp > 255 || (q->qn && q->qp > 127))) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "round-clip %s codes %d..%d do not fit the integer model's 8-bit codes (a "
                 "mirrored activation grid on an input that can be negative: --astates at most "
                 "128 for this layer)",
                 what, -q->qn, q->qp);
        return lb_int_fail_layer(d, msg);
    }
    for (int s = 0; c->kind == LB_Q_SLICED && s < q->ch; s++) {
        /* codes -K..K must fit int8 (weights, signed activations) or uint8 (unsigned) */
        int k = lb_quant_sliced_k(q, s), lim = q->cfg.is_signed ? 127 : 255;
        if (k > lim) {
            char msg[256];
            snprintf(
                msg, sizeof msg,
                "sliced %s slice %d learned %d bits (codes up to %d), more than the integer "
                "model's 8-bit codes hold (%d): train with a smaller budget or --wbits/--abits",
                what, s, lb_quant_sliced_bits(q, s), k, lim);
            return lb_int_fail_layer(d, msg);
        }
    }
    if (!is_uniform(c)) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "%s quantizer '%s' has no integer form (only the uniform grids do: lsq, "
                 "fixed, pact, dorefa, msqe-po2, grad-po2, sliced)",
                 what, lb_qkind_name(c->kind));
        return lb_int_fail_layer(d, msg);
    }
    for (int ch = 0; ch < q->ch; ch++) {
        /* learned steps are kept above a positive floor in training (lb_quant_vt.project), so a
         * step that is not positive comes from a damaged or foreign checkpoint */
        float s = lb_quant_step(q, ch);
        if (!(isfinite(s) && s > 0)) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s step %g is not a positive number", what, s);
            return lb_int_fail_layer(d, msg);
        }
    }
    return LB_OK;
}

/* Validates every node and records groups: conv/linear [+BN] [+ReLU/ReLU6], add [+ReLU]. */
lb_status lb_int_build_analyze(build *b) {
    const lb_net *n = b->n;
    for (int i = 1; i < b->nn; i++) {
        const lb_node *d = &n->nodes[i];
        switch (d->op) {
        case LB_OP_CONV:
        case LB_OP_LINEAR: {
            if (d->wqcfg.kind == LB_Q_NONE)
                return lb_int_fail_layer(
                    d, "float weights: only fully quantized models become integer "
                       "(train with --first-bits/--last-bits >= 2, not fp32)");
            lb_status st = check_quant(d, &d->wqcfg, &d->wq, "weight");
            if (st != LB_OK) return st;
            if (d->aqcfg.kind == LB_Q_NONE) {
                if (d->in[0] != 0)
                    return lb_int_fail_layer(d,
                                             "float input activations (no activation quantizer): "
                                             "only the first layer may read a float input (the "
                                             "image); train with --last-bits >= 2");
            } else {
                if ((st = check_quant(d, &d->aqcfg, &d->aq, "activation")) != LB_OK) return st;
                if (d->aq.ch != 1) return lb_int_fail_layer(d, "per-channel activation steps");
            }
            break;
        }
        case LB_OP_BN: {
            const lb_node *s = &n->nodes[d->in[0]];
            if (!is_linear_op(s->op) || cons_n(b, d->in[0]) != 1)
                return lb_int_fail_layer(d,
                                         "batch norm must directly follow a conv or linear layer "
                                         "whose only consumer it is (it is folded into it)");
            break;
        }
        case LB_OP_RELU:
        case LB_OP_RELU6:
        case LB_OP_MAXPOOL:
        case LB_OP_AVGPOOL:
        case LB_OP_GAP:
        case LB_OP_ADD:
        case LB_OP_SHORTCUT:
        case LB_OP_FLATTEN:
        case LB_OP_DROPOUT:
            if (d->in[0] == 0)
                return lb_int_fail_layer(d, "reads the image: only a conv/linear may");
            if (d->op == LB_OP_ADD && d->in[1] == 0)
                return lb_int_fail_layer(d, "reads the image: only a conv/linear may");
            break;
        default:
            return lb_int_fail_layer(d, "op has no integer form");
        }
    }
    if (cons_n(b, 0) != 1 || !is_linear_op(n->nodes[cons_at(b, 0, 0)].op))
        return lb_error_set(LB_EINVAL, "the image must feed exactly one conv/linear layer");
    /* groups */
    for (int i = 0; i < b->nn; i++) {
        b->tail[i] = i;
        b->bn[i] = b->grp[i] = -1;
    }
    for (int i = 1; i < b->nn; i++) {
        lb_op op = n->nodes[i].op;
        if (!is_linear_op(op) && op != LB_OP_ADD) continue;
        int t = i;
        if (is_linear_op(op) && cons_n(b, t) == 1 && n->nodes[cons_at(b, t, 0)].op == LB_OP_BN) {
            t = cons_at(b, t, 0);
            b->bn[i] = t;
            b->grp[t] = i;
        }
        if (cons_n(b, t) == 1) {
            int r = cons_at(b, t, 0);
            lb_op ro = n->nodes[r].op;
            if (ro == LB_OP_RELU || ro == LB_OP_RELU6) {
                t = r;
                b->relu[i] = ro == LB_OP_RELU ? 1 : 6;
                b->grp[r] = i;
            }
        }
        b->tail[i] = t;
    }
    /* the logits: the last node, through flatten/dropout, must end a conv/linear group */
    int o = b->nn - 1;
    while (n->nodes[o].op == LB_OP_FLATTEN || n->nodes[o].op == LB_OP_DROPOUT)
        o = n->nodes[o].in[0];
    int head = -1;
    for (int i = 1; i < b->nn; i++)
        if (is_linear_op(n->nodes[i].op) && b->tail[i] == o) head = i;
    if (head < 0)
        return lb_error_set(LB_EINVAL,
                            "the network output '%s' (%s) does not come from a conv/linear layer",
                            n->nodes[o].name, lb_op_name(n->nodes[o].op));
    b->out_node = o;
    return LB_OK;
}

static int same_aq(const lb_node *a, const lb_node *c) {
    return a->aq.qn == c->aq.qn && a->aq.qp == c->aq.qp &&
           lb_quant_step(&a->aq, 0) == lb_quant_step(&c->aq, 0);
}

/* Does node v carry a tensor: not a head whose group goes on, not a BN/ReLU inside a group
 * (the group's last node carries the group's tensor). */
static int is_value(const build *b, int v) {
    if (b->grp[v] >= 0) return b->tail[b->grp[v]] == v;
    return b->tail[v] == v;
}

/* What the consumers of each value node want: the codes of one activation quantizer (a conv
 * id) when every path through pass-through ops ends in conv/linear layers sharing it, else wide.
 * Reverse order, so a pass-through consumer's wish is known. */
void lb_int_build_wishes(build *b) {
    const lb_net *n = b->n;
    for (int v = b->nn - 1; v >= 0; v--) {
        b->wish[v] = W_NONE;
        if (!is_value(b, v)) continue;
        if (v == b->out_node) {
            b->wish[v] = W_LOGITS;
            continue;
        }
        int codes = W_NONE, wide = 0;
        for (int j = 0; j < cons_n(b, v); j++) {
            int c = cons_at(b, v, j);
            const lb_node *cd = &n->nodes[c];
            int cand = W_WIDE;
            if (is_linear_op(cd->op))
                cand = cd->aqcfg.kind != LB_Q_NONE ? c : W_WIDE;
            else if (is_pass(cd->op))
                cand = b->wish[c] >= 0 ? b->wish[c] : W_WIDE;
            if (cand == W_WIDE)
                wide = 1;
            else if (codes < 0)
                codes = cand;
            else if (!same_aq(&n->nodes[codes], &n->nodes[cand]))
                wide = 1;
        }
        b->wish[v] = wide || codes < 0 ? W_WIDE : codes;
    }
}

/* The step of the first quantized conv/linear downstream of v (breadth first), 0 if none. */
static float ref_step(const build *b, int v) {
    int *queue = malloc((size_t)b->nn * sizeof *queue);
    char *seen = calloc((size_t)b->nn, 1);
    float r = 0;
    if (!queue || !seen) goto out;
    int qh = 0, qt = 0;
    queue[qt++] = v;
    seen[v] = 1;
    while (qh < qt && r == 0) {
        int x = queue[qh++];
        for (int j = 0; j < cons_n(b, x) && r == 0; j++) {
            int c = cons_at(b, x, j);
            const lb_node *cd = &b->n->nodes[c];
            if (is_linear_op(cd->op) && cd->aqcfg.kind != LB_Q_NONE)
                r = lb_quant_step(&cd->aq, 0);
            else if (!seen[c]) {
                seen[c] = 1;
                queue[qt++] = c;
            }
        }
    }
out:
    free(queue);
    free(seen);
    return r;
}

/* Wide tensors: int32 at the next quantizer's step / 2^k, k as large as keeps WIDE_RANGE real
 * units representable (at most WIDE_MAX_FRAC bits): quantizing a wide value to that layer's codes
 * is then an exact rounding shift, and the residual stream carries 2^-k-step precision. */
double lb_int_natural_scale(const build *b, int v) {
    double r = ref_step(b, v);
    if (!(r > 0)) r = 1.0;
    int k = (int)floor(log2(ldexp(r, 31) / WIDE_RANGE));
    k = k < 0 ? 0 : k > WIDE_MAX_FRAC ? WIDE_MAX_FRAC : k;
    return ldexp(r, -k);
}

/* A conv group feeding only an add writes straight into the add's scale. */
double lb_int_wide_scale(const build *b, int tail) {
    if (cons_n(b, tail) == 1 && b->n->nodes[cons_at(b, tail, 0)].op == LB_OP_ADD) {
        int a = cons_at(b, tail, 0);
        return lb_int_natural_scale(b, b->tail[a]);
    }
    return lb_int_natural_scale(b, tail);
}
