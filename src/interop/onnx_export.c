/* Writing a lowbit network as ONNX (opset 13) with protobuf-c: the graph lowbit evaluates, node
 * for node, its weights as initializers; the float form, and the QDQ form of a quantized network
 * (onnx_qdq.c supplies the quantizer pieces). Not the integer-op form (onnx_int.c) and not
 * reading (onnx_read.c). */
#include "onnx_build.h"
#include "lb_ops.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void init_tensor(ox_b *b, const lb_tensor_info *ti, const float *base) {
    int64_t d[4];
    for (int i = 0; i < ti->ndim; i++) d[i] = ti->shape[i];
    ox_b_init(b, ti->name, base + ti->off, OXT_FLOAT, ti->ndim, d);
}

/* The float weights of conv/linear d: the initializer, or MaQD's standardized copy. */
static const char *float_weight(ox_b *b, const lb_net *n, const lb_node *d) {
    const lb_tensor_info *t = &n->params[d->pw];
    if (d->op == LB_OP_CONV && d->wstd) { /* weight standardization: what the model convolves */
        float *ws = ox_b_alloc(b, t->n * sizeof *ws);
        int64_t dims[4];
        for (int k = 0; k < t->ndim; k++) dims[k] = t->shape[k];
        if (ws) lb_wstd_forward(d->c, t->n / (size_t)d->c, n->param + t->off, ws, NULL, NULL);
        if (ws) ox_b_init(b, t->name, ws, OXT_FLOAT, t->ndim, dims);
    } else {
        init_tensor(b, t, n->param);
    }
    return t->name;
}

/* One lowbit node; `rank` tracks which outputs are 2-D (after flatten/linear). qdq: quantized
 * layers read QDQ'd inputs and dequantized weight codes. */
static void emit(ox_b *b, const lb_net *n, int i, int *rank, int qdq) {
    const lb_node *d = &n->nodes[i];
    const char *x = n->nodes[d->in[0]].name, *y = d->name;
    char t1[LB_NAME_MAX + 32], t3[LB_NAME_MAX + 32];
    rank[i] = rank[d->in[0]];
    Onnx__AttributeProto *a[7] = {NULL};
    switch (d->op) {
    case LB_OP_CONV:
    case LB_OP_LINEAR: {
        if (d->op == LB_OP_LINEAR && rank[d->in[0]] != 2) { /* lowbit's linear flattens itself */
            snprintf(t1, sizeof t1, "%s.flatten", y);
            a[0] = ox_b_attr_i(b, "axis", 1);
            ox_b_node(b, "Flatten", t1, (const char *[]){x, NULL}, t1, a);
            x = t1;
        }
        if (qdq && d->aqcfg.kind != LB_Q_NONE) x = ox_qdq_act(b, n, d, x);
        const char *w =
            qdq && d->wqcfg.kind != LB_Q_NONE ? ox_qdq_weight(b, n, d) : float_weight(b, n, d);
        if (!x || !w) {
            b->oom = 1;
            return;
        }
        if (d->pb >= 0) init_tensor(b, &n->params[d->pb], n->param);
        const char *in[] = {x, w, d->pb >= 0 ? n->params[d->pb].name : NULL, NULL};
        if (d->op == LB_OP_LINEAR) {
            a[0] = ox_b_attr_i(b, "transB", 1), a[1] = NULL;
            ox_b_node(b, "Gemm", y, in, y, a);
            rank[i] = 2;
        } else {
            a[0] = ox_b_attr_rep(b, "kernel_shape", d->k, 2);
            a[1] = ox_b_attr_rep(b, "strides", d->stride, 2);
            a[2] = ox_b_attr_rep(b, "pads", d->pad, 4), a[3] = ox_b_attr_i(b, "group", d->groups);
            ox_b_node(b, "Conv", y, in, y, a);
        }
        break;
    }
    case LB_OP_BN: {
        const lb_tensor_info *ts[4] = {&n->params[d->pw], &n->params[d->pb], &n->states[d->smean],
                                       &n->states[d->svar]};
        for (int k = 0; k < 4; k++) init_tensor(b, ts[k], k < 2 ? n->param : n->state);
        const char *in[] = {x, ts[0]->name, ts[1]->name, ts[2]->name, ts[3]->name, NULL};
        a[0] = ox_b_attr_f(b, "epsilon", 1e-5f), a[1] = ox_b_attr_f(b, "momentum", 0.9f);
        ox_b_node(b, "BatchNormalization", y, in, y, a);
        break;
    }
    case LB_OP_RELU:
        ox_b_node(b, "Relu", y, (const char *[]){x, NULL}, y, NULL);
        break;
    case LB_OP_RELU6: {
        const char *lo = ox_b_tmp(b, y, "min"), *hi = ox_b_tmp(b, y, "max");
        if (!lo || !hi) return;
        ox_b_scalar(b, lo, OXT_FLOAT, 0);
        ox_b_scalar(b, hi, OXT_FLOAT, 6);
        ox_b_node(b, "Clip", y, (const char *[]){x, lo, hi, NULL}, y, NULL);
        break;
    }
    case LB_OP_MAXPOOL:
    case LB_OP_AVGPOOL:
        a[0] = ox_b_attr_rep(b, "kernel_shape", d->k, 2);
        a[1] = ox_b_attr_rep(b, "strides", d->stride, 2);
        a[2] = ox_b_attr_rep(b, "pads", d->pad, 4);
        if (d->op == LB_OP_AVGPOOL) a[3] = ox_b_attr_i(b, "count_include_pad", 1);
        ox_b_node(b, d->op == LB_OP_MAXPOOL ? "MaxPool" : "AveragePool", y,
                  (const char *[]){x, NULL}, y, a);
        break;
    case LB_OP_GAP:
        ox_b_node(b, "GlobalAveragePool", y, (const char *[]){x, NULL}, y, NULL);
        break;
    case LB_OP_ADD:
        ox_b_node(b, "Add", y, (const char *[]){x, n->nodes[d->in[1]].name, NULL}, y, NULL);
        break;
    case LB_OP_FLATTEN:
        a[0] = ox_b_attr_i(b, "axis", 1);
        ox_b_node(b, "Flatten", y, (const char *[]){x, NULL}, y, a);
        rank[i] = 2;
        break;
    case LB_OP_DROPOUT: /* inference graph: identity */
        ox_b_node(b, "Identity", y, (const char *[]){x, NULL}, y, NULL);
        break;
    case LB_OP_SHORTCUT: { /* x[:, :, ::s, ::s], then (cout - c)/2 zero channels before */
        int64_t st[2] = {0, 0}, en[2] = {INT64_MAX, INT64_MAX}, ax[2] = {2, 3},
                sp[2] = {d->stride, d->stride};
        int cin = n->nodes[d->in[0]].c, lo = (d->c - cin) / 2;
        int64_t pads[8] = {0, lo, 0, 0, 0, d->c - cin - lo, 0, 0};
        const char *names[5] = {"starts", "ends", "axes", "steps", "pads"};
        const int64_t *vals[5] = {st, en, ax, sp, pads};
        char nm[5][LB_NAME_MAX + 32];
        for (int k = 0; k < 5; k++) {
            snprintf(nm[k], sizeof nm[k], "%s.%s", y, names[k]);
            ox_b_i64(b, nm[k], vals[k], k == 4 ? 8 : 2);
        }
        snprintf(t3, sizeof t3, "%s.slice", y);
        ox_b_node(b, "Slice", t3, (const char *[]){x, nm[0], nm[1], nm[2], nm[3], NULL}, t3, NULL);
        ox_b_node(b, "Pad", y, (const char *[]){t3, nm[4], NULL}, y, NULL);
        break;
    }
    default:
        b->oom = 1;
        break; /* INPUT never comes here */
    }
}

static lb_status export_net(const lb_net *n, const lb_norm *norm, const char *path, int qdq) {
    for (int i = 1; i < n->nnodes; i++) /* time steps have no place in an ONNX inference graph */
        if (n->nodes[i].op == LB_OP_ENCODE || n->nodes[i].op == LB_OP_LIF ||
            n->nodes[i].op == LB_OP_LN || n->nodes[i].op == LB_OP_TSUM)
            return lb_error_set(LB_EINVAL,
                                "%s: layer '%s' (%s): a spiking network has no ONNX form; export "
                                "it as C (lowbit export CKPT -o DIR, docs/snn.md)",
                                path, n->nodes[i].name, lb_op_name(n->nodes[i].op));
    lb_status st;
    if (qdq && (st = ox_qdq_check(n, path)) != LB_OK) return st;
    ox_b b;
    memset(&b, 0, sizeof b);
    int *rank = ox_b_alloc(&b, (size_t)n->nnodes * sizeof *rank);
    if (rank) rank[0] = 4;
    for (int i = 1; rank && i < n->nnodes && !b.oom; i++) emit(&b, n, i, rank, qdq);
    const lb_node *in = &n->nodes[0], *out = &n->nodes[n->nnodes - 1];
    int64_t di[4] = {0, in->c, in->h, in->w};
    Onnx__ValueInfoProto *vi = ox_b_value(&b, in->name, OXT_FLOAT, 4, di);
    Onnx__ValueInfoProto *vo =
        ox_b_value(&b, out->name, OXT_FLOAT, rank && rank[n->nnodes - 1] == 2 ? 2 : 4,
                   (int64_t[]){0, out->c, out->h, out->w});
    /* the input is the normalized image: the constants travel as metadata (docs/onnx.md) */
    char mean[96], sd[96];
    snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", (double)norm->mean[0], (double)norm->mean[1],
             (double)norm->mean[2]);
    snprintf(sd, sizeof sd, "%.9g,%.9g,%.9g", (double)norm->std[0], (double)norm->std[1],
             (double)norm->std[2]);
    const char *meta[] = {"lowbit.norm_mean",   mean, "lowbit.norm_std", sd, "lowbit.form",
                          qdq ? "qdq" : "float"};
    return ox_b_write(&b, path, 13, vi, vo, meta, 3);
}

lb_status lb_onnx_export(const lb_net *n, const lb_norm *norm, const char *path) {
    return export_net(n, norm, path, 0);
}

lb_status lb_onnx_export_qdq(const lb_net *n, const lb_norm *norm, const char *path) {
    return export_net(n, norm, path, 1);
}
