/* The QDQ pieces of a quantized network's ONNX export (docs/onnx.md): weights as integer codes
 * with DequantizeLinear (per-channel where lowbit has a step per channel), activation quantizers
 * as Clip, QuantizeLinear, DequantizeLinear. Not the float graph around them (onnx_export.c) and
 * not the integer-op form (onnx_int.c). The weight codes are the integer model's own
 * (lb_int_weight_codes: the float forward's rounding and tie rules), so the dequantized weights
 * are the numbers lowbit's float evaluation convolves. */
#include "onnx_build.h"
#include "../int/int_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Quantizer kinds with a step and integer codes (the others have no QDQ form). */
static int has_grid(lb_qkind k) {
    return k == LB_Q_LSQ || k == LB_Q_FIXED || k == LB_Q_REG || k == LB_Q_DOREFA ||
           k == LB_Q_PACT || k == LB_Q_ROUNDCLIP || k == LB_Q_MSQE_PO2 || k == LB_Q_GRAD_PO2 ||
           k == LB_Q_SLICED;
}

static lb_status fail(const char *path, const lb_node *d, const char *why) {
    return lb_error_set(LB_EINVAL, "%s: layer '%s' (%s): %s (docs/onnx.md)", path, d->name,
                        lb_op_name(d->op), why);
}

lb_status ox_qdq_check(const lb_net *n, const char *path) {
    int nq = 0;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        char why[200];
        if (d->wqcfg.kind != LB_Q_NONE) {
            nq++;
            if (!has_grid(d->wqcfg.kind)) {
                snprintf(why, sizeof why, "weight quantizer '%s' has no step and integer codes",
                         lb_qkind_name(d->wqcfg.kind));
                return fail(path, d, why);
            }
            lb_int_wcodes wc;
            const lb_tensor_info *t = &n->params[d->pw];
            if (lb_int_weight_codes(n, d, (int)(t->n / (size_t)d->c), &wc) != LB_OK)
                return fail(path, d, lb_error_msg());
            lb_int_wcodes_free(&wc);
        }
        if (d->aqcfg.kind == LB_Q_NONE) continue;
        nq++;
        if (!has_grid(d->aqcfg.kind)) {
            snprintf(why, sizeof why, "activation quantizer '%s' has no step and integer codes",
                     lb_qkind_name(d->aqcfg.kind));
            return fail(path, d, why);
        }
        if (d->aq.ch != 1) return fail(path, d, "per-channel activation steps");
        float s = lb_quant_step(&d->aq, 0);
        if (!(isfinite(s) && s > 0)) return fail(path, d, "activation step is not positive");
        if (d->aq.qn ? d->aq.qn > 128 || d->aq.qp > 127 : d->aq.qp > 255) {
            snprintf(why, sizeof why,
                     "activation codes %d..%d do not fit int8/uint8, the types QuantizeLinear "
                     "has at opset 13",
                     -d->aq.qn, d->aq.qp);
            return fail(path, d, why);
        }
    }
    if (nq == 0)
        return lb_error_set(
            LB_EINVAL, "%s: the network has no quantizer: export it with --onnx-form float", path);
    return LB_OK;
}

const char *ox_qdq_act(ox_b *b, const lb_net *n, const lb_node *d, const char *x) {
    (void)n;
    const float s = lb_quant_step(&d->aq, 0);
    const int type = d->aq.qn ? OXT_INT8 : OXT_UINT8;
    const char *lo = ox_b_tmp(b, d->name, "aq_lo"), *hi = ox_b_tmp(b, d->name, "aq_hi");
    const char *sc = ox_b_tmp(b, d->name, "aq_scale"), *zp = ox_b_tmp(b, d->name, "aq_zp");
    const char *c = ox_b_tmp(b, d->name, "aq_clip"), *q = ox_b_tmp(b, d->name, "aq_q");
    const char *y = ox_b_tmp(b, d->name, "aq_dq");
    if (!lo || !hi || !sc || !zp || !c || !q || !y) return NULL;
    /* the code range first (QuantizeLinear saturates only to the 8-bit type's): clipping at
     * -qn*s, qp*s before dividing gives the codes lowbit's clamp of x/s then gives */
    ox_b_scalar(b, lo, OXT_FLOAT, (double)((float)-d->aq.qn * s));
    ox_b_scalar(b, hi, OXT_FLOAT, (double)((float)d->aq.qp * s));
    ox_b_scalar(b, sc, OXT_FLOAT, (double)s);
    ox_b_scalar(b, zp, type, 0);
    ox_b_node(b, "Clip", c, (const char *[]){x, lo, hi, NULL}, c, NULL);
    ox_b_node(b, "QuantizeLinear", q, (const char *[]){c, sc, zp, NULL}, q, NULL);
    ox_b_node(b, "DequantizeLinear", y, (const char *[]){q, sc, zp, NULL}, y, NULL);
    return y;
}

const char *ox_qdq_weight(ox_b *b, const lb_net *n, const lb_node *d) {
    const lb_tensor_info *t = &n->params[d->pw];
    const int cout = d->c, K = (int)(t->n / (size_t)cout);
    lb_int_wcodes wc;
    if (lb_int_weight_codes(n, d, K, &wc) != LB_OK) { /* checked before: only memory is left */
        b->oom = 1;
        return NULL;
    }
    int narrow = 1, same = 1;
    for (size_t j = 0; j < (size_t)cout * K; j++)
        if (wc.w[j] < -128 || wc.w[j] > 127) narrow = 0;
    float *sc = ox_b_alloc(b, (size_t)cout * sizeof *sc);
    int32_t *zp = ox_b_alloc(b, (size_t)cout * sizeof *zp);
    void *codes = ox_b_alloc(b, (size_t)cout * K * (narrow ? 1 : 4));
    const char *qn = ox_b_tmp(b, t->name, "codes"), *sn = ox_b_tmp(b, t->name, "scale");
    const char *zn = ox_b_tmp(b, t->name, "zp"), *y = ox_b_tmp(b, t->name, "dq");
    if (!sc || !zp || !codes || !qn || !sn || !zn || !y) {
        lb_int_wcodes_free(&wc);
        return NULL;
    }
    for (int co = 0; co < cout; co++) {
        sc[co] = (float)wc.sw[co];
        if (sc[co] != sc[0]) same = 0;
    }
    for (size_t j = 0; j < (size_t)cout * K; j++) {
        if (narrow)
            ((int8_t *)codes)[j] = (int8_t)wc.w[j];
        else
            ((int32_t *)codes)[j] = wc.w[j];
    }
    lb_int_wcodes_free(&wc);
    /* int8 codes, or int32 (opset 13's other signed DequantizeLinear input) for the wider codes
     * of learned reg levels */
    const int type = narrow ? OXT_INT8 : OXT_INT32;
    int64_t dims[4], nc = cout;
    for (int k = 0; k < t->ndim; k++) dims[k] = t->shape[k];
    ox_b_init(b, qn, codes, type, t->ndim, dims);
    Onnx__AttributeProto *a[2] = {NULL, NULL};
    if (same) { /* one step: per-tensor */
        ox_b_init(b, sn, sc, OXT_FLOAT, 0, NULL);
        ox_b_scalar(b, zn, type, 0);
    } else {
        ox_b_init(b, sn, sc, OXT_FLOAT, 1, &nc);
        int8_t *z8 = (int8_t *)zp; /* zeros either way */
        ox_b_init(b, zn, z8, type, 1, &nc);
        a[0] = ox_b_attr_i(b, "axis", 0);
    }
    ox_b_node(b, "DequantizeLinear", y, (const char *[]){qn, sn, zn, NULL}, y, a);
    return y;
}
