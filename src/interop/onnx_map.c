/* ONNX nodes into lowbit nodes: one function per supported op, each checking the attributes and
 * shapes lowbit can represent and refusing the rest with the node's name. Not the protobuf
 * access (onnx_pb.c) nor the graph-level checks (onnx_read.c). */
#include "onnx_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUPPORTED                                                                                  \
    "Conv, Gemm, MatMul (+Add of a bias), BatchNormalization, Relu, Clip(0,6), MaxPool, "          \
    "AveragePool, GlobalAveragePool, Add, Flatten, Reshape (to 2-D), Dropout, Identity, "          \
    "Constant, Slice+Pad (option-A shortcut)"

int ox_new_node(ox_ctx *c, lb_op op, const Onnx__NodeProto *nd, int in0, int in1) {
    if (c->nn == c->ncap) {
        int cap = c->ncap ? 2 * c->ncap : 64;
        ox_node *p = realloc(c->nodes, (size_t)cap * sizeof *p);
        if (!p) return -1;
        c->nodes = p;
        c->ncap = cap;
    }
    ox_node *d = &c->nodes[c->nn];
    memset(d, 0, sizeof *d);
    d->op = op;
    d->src = !nd ? "input" : nd->name && nd->name[0] ? nd->name : nd->op_type ? nd->op_type : "?";
    d->in[0] = in0;
    d->in[1] = in1;
    d->sh = d->sw = 1;
    if (in0 >= 0) {
        const ox_node *s = &c->nodes[in0];
        d->c = s->c, d->h = s->h, d->w = s->w, d->rank = s->rank;
    }
    return c->nn++;
}

/* lowbit's layer name: the weight's name without ".weight" (PyTorch's module path, so that
 * "conv1.weight" stays "conv1.weight"), else the node's name; [A-Za-z0-9_.] only, unique. */
static void layer_name(ox_ctx *c, ox_node *d, const char *weight, const char *fallback) {
    char b[LB_NAME_MAX];
    const char *s = fallback;
    size_t wl = weight ? strlen(weight) : 0;
    if (wl > 7 && wl - 7 < sizeof b && strcmp(weight + wl - 7, ".weight") == 0) {
        memcpy(b, weight, wl - 7);
        b[wl - 7] = 0;
        s = b;
    }
    char out[LB_NAME_MAX];
    size_t k = 0;
    for (const char *p = s ? s : ""; *p && k + 1 < sizeof out - 8; p++) {
        char ch = *p == '/' ? '.' : *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '.';
        if (k == 0 && (ch == '.' || ch == '_')) continue;
        out[k++] = ok ? ch : '_';
    }
    out[k] = 0;
    int dup = k == 0;
    for (int i = 0; i < c->nn && !dup; i++)
        dup = &c->nodes[i] != d && !strcmp(c->nodes[i].name, out);
    if (dup) snprintf(out + (k > 30 ? 30 : k), sizeof out - 31, "_%d", (int)(d - c->nodes));
    snprintf(d->name, sizeof d->name, "%s", out);
}

int64_t ox_attr_i(const Onnx__NodeProto *nd, const char *k, int64_t def) {
    const Onnx__AttributeProto *a = ox_attr(nd, k);
    return a && (a->has_i || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) ? a->i : def;
}

static float attr_f(const Onnx__NodeProto *nd, const char *k, float def) {
    const Onnx__AttributeProto *a = ox_attr(nd, k);
    return a && ox_is_f(a) ? a->f : def;
}

/* The activation at input i (-1 after setting the error). */
int ox_act_in(ox_ctx *c, const Onnx__NodeProto *nd, size_t i, lb_status *st) {
    const ox_val *v = i < nd->n_input ? ox_find(c, nd->input[i]) : NULL;
    if (!v) {
        *st = ox_node_err(c, nd, "input %zu is %s", i,
                          i < nd->n_input ? "not defined before this node" : "missing");
        return -1;
    }
    if (v->node < 0) {
        *st = ox_node_err(c, nd,
                          "input %zu ('%.200s') is a constant; lowbit computes on the "
                          "image's activations here",
                          i, v->name);
        return -1;
    }
    return v->node;
}

lb_status ox_out1(ox_ctx *c, const Onnx__NodeProto *nd, int id) {
    if (id < 0) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
    for (size_t i = 1; i < nd->n_output; i++)
        if (nd->output[i] && nd->output[i][0])
            return ox_node_err(c, nd, "only its first output is supported");
    if (nd->n_output < 1) return ox_node_err(c, nd, "no output");
    const ox_node *d = &c->nodes[id]; /* sizes stay well inside int for every later product */
    if ((int64_t)d->c * d->h * d->w > (1 << 28))
        return ox_node_err(c, nd, "%d x %d x %d values per image: too large for lowbit", d->c, d->h,
                           d->w);
    return ox_set(c, nd->output[0], id, NULL);
}

/* Spatial attributes shared by Conv and the pools: square kernel, one stride, dilation 1, pads
 * symmetric, or asymmetric only where the extra rows/columns at the end are never read (then the
 * output is the symmetric one's). */
static lb_status spatial(ox_ctx *c, const Onnx__NodeProto *nd, const ox_node *x, int kh, int kw,
                         int *stride, int *pad) {
    const Onnx__AttributeProto *a;
    if ((a = ox_attr(nd, "auto_pad")) && a->has_s &&
        !(a->s.len == 6 && !memcmp(a->s.data, "NOTSET", 6)) &&
        !(a->s.len == 5 && !memcmp(a->s.data, "VALID", 5)))
        return ox_node_err(c, nd, "auto_pad %.*s: lowbit takes NOTSET (explicit pads) or VALID",
                           (int)(a->s.len > 20 ? 20 : a->s.len), (const char *)a->s.data);
    if ((a = ox_attr(nd, "kernel_shape")) &&
        (a->n_ints != 2 || a->ints[0] != kh || a->ints[1] != kw))
        return ox_node_err(c, nd, "kernel_shape must be 2-D and match the weights");
    if (kh != kw || kh < 1 || kh > 64)
        return ox_node_err(c, nd, "kernel %dx%d: lowbit takes square kernels up to 64", kh, kw);
    if ((a = ox_attr(nd, "dilations")))
        for (size_t i = 0; i < a->n_ints; i++)
            if (a->ints[i] != 1) return ox_node_err(c, nd, "dilation: lowbit takes 1 only");
    *stride = 1;
    if ((a = ox_attr(nd, "strides"))) {
        if (a->n_ints != 2 || a->ints[0] != a->ints[1] || a->ints[0] < 1 || a->ints[0] > 64)
            return ox_node_err(c, nd, "strides: lowbit takes one stride (1..64) for both axes");
        *stride = (int)a->ints[0];
    }
    int64_t p[4] = {0, 0, 0, 0};
    if ((a = ox_attr(nd, "pads"))) {
        if (a->n_ints != 4) return ox_node_err(c, nd, "pads must have 4 values");
        for (int i = 0; i < 4; i++) {
            if (a->ints[i] < 0 || a->ints[i] > 64) return ox_node_err(c, nd, "pads out of range");
            p[i] = a->ints[i];
        }
    }
    int s = *stride, ok = p[0] == p[1];
    if (ok && (p[2] != p[0] || p[3] != p[1])) { /* same output size: the extra pad is unread */
        int64_t hs = x->h + 2 * p[0] - kh, ha = x->h + p[0] + p[2] - kh;
        int64_t ws = x->w + 2 * p[1] - kw, wa = x->w + p[1] + p[3] - kw;
        ok = hs >= 0 && ws >= 0 && ha >= 0 && wa >= 0 && hs / s == ha / s && ws / s == wa / s;
    }
    if (!ok)
        return ox_node_err(c, nd,
                           "pads [%lld,%lld,%lld,%lld]: lowbit pads all four sides alike "
                           "(asymmetric pads only where the extra ones are never read)",
                           (long long)p[0], (long long)p[1], (long long)p[2], (long long)p[3]);
    *pad = (int)p[0];
    if (x->h + 2 * *pad < kh || x->w + 2 * *pad < kw)
        return ox_node_err(c, nd, "input %dx%d too small for the kernel", x->h, x->w);
    return LB_OK;
}

static lb_status map_conv(ox_ctx *c, const Onnx__NodeProto *nd) {
    lb_status st = ox_attrs_only(c, nd, "auto_pad,dilations,group,kernel_shape,pads,strides");
    int x = st == LB_OK ? ox_act_in(c, nd, 0, &st) : -1;
    if (x < 0) return st;
    if (c->nodes[x].rank != 4) return ox_node_err(c, nd, "input must be NCHW");
    float *w = NULL, *b = NULL;
    size_t nw, nb = 0;
    const int64_t *d;
    int nd_;
    if (nd->n_input < 2) return ox_node_err(c, nd, "no weights");
    if ((st = ox_const_f(c, nd, nd->input[1], &w, &nw, &d, &nd_)) != LB_OK) return st;
    int64_t g = ox_attr_i(nd, "group", 1);
    int cin = c->nodes[x].c, stride, pad;
    if (nd_ != 4 || d[0] < 1 || d[0] > (1 << 20) || g < 1 || cin % g || d[0] % g ||
        d[1] != cin / g) {
        free(w);
        return ox_node_err(c, nd, "weights must be [out, in/group, k, k] for %d input channels",
                           cin);
    }
    if ((st = spatial(c, nd, &c->nodes[x], (int)d[2], (int)d[3], &stride, &pad)) != LB_OK) {
        free(w);
        return st;
    }
    int cout = (int)d[0];
    if (nd->n_input > 2 && nd->input[2][0]) {
        if ((st = ox_const_f(c, nd, nd->input[2], &b, &nb, NULL, NULL)) != LB_OK ||
            nb != (size_t)cout) {
            free(w);
            free(b);
            return st != LB_OK ? st : ox_node_err(c, nd, "bias must have %d values", cout);
        }
    }
    int id = ox_new_node(c, LB_OP_CONV, nd, x, -1);
    if (id < 0) {
        free(w);
        free(b);
        return ox_out1(c, nd, id);
    }
    ox_node *o = &c->nodes[id];
    layer_name(c, o, nd->input[1], nd->name);
    o->cout = o->c = cout;
    o->k = (int)d[2], o->stride = stride, o->pad = pad, o->groups = (int)g, o->bias = b != NULL;
    o->h = (o->h + 2 * pad - o->k) / stride + 1;
    o->w = (o->w + 2 * pad - o->k) / stride + 1;
    if ((st = ox_add_tensor(c, o->name, "weight", w, nw)) != LB_OK) {
        free(b);
        return st;
    }
    if (b && (st = ox_add_tensor(c, o->name, "bias", b, nb)) != LB_OK) return st;
    return ox_out1(c, nd, id);
}

/* Gemm (transA 0, alpha/beta folded into the tensors) and MatMul by a constant: a linear layer
 * with weights [out][in]. */
static lb_status map_linear(ox_ctx *c, const Onnx__NodeProto *nd, int gemm) {
    lb_status st = ox_attrs_only(c, nd, gemm ? "alpha,beta,transA,transB" : "");
    int x = st == LB_OK ? ox_act_in(c, nd, 0, &st) : -1;
    if (x < 0) return st;
    if (c->nodes[x].rank != 2) return ox_node_err(c, nd, "input must be 2-D (Flatten it first)");
    if (gemm && ox_attr_i(nd, "transA", 0) != 0) return ox_node_err(c, nd, "transA must be 0");
    int tb = gemm && ox_attr_i(nd, "transB", 0) != 0;
    float alpha = gemm ? attr_f(nd, "alpha", 1) : 1, beta = gemm ? attr_f(nd, "beta", 1) : 1;
    float *w = NULL, *b = NULL;
    size_t nw, nb = 0;
    const int64_t *d;
    int nd_;
    if (nd->n_input < 2) return ox_node_err(c, nd, "no weights");
    if ((st = ox_const_f(c, nd, nd->input[1], &w, &nw, &d, &nd_)) != LB_OK) return st;
    int fin = c->nodes[x].c * c->nodes[x].h * c->nodes[x].w;
    if (nd_ != 2 || d[tb ? 1 : 0] != fin || d[tb ? 0 : 1] < 1) {
        free(w);
        return ox_node_err(c, nd, "weights must be 2-D with %d input features", fin);
    }
    int out = (int)d[tb ? 0 : 1];
    float *wt = malloc(nw * sizeof *wt + 1);
    if (!wt) {
        free(w);
        return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
    }
    for (int o = 0; o < out; o++)
        for (int i = 0; i < fin; i++)
            wt[(size_t)o * fin + i] =
                alpha * (tb ? w[(size_t)o * fin + i] : w[(size_t)i * out + o]);
    free(w);
    if (gemm && nd->n_input > 2 && nd->input[2][0]) {
        if ((st = ox_const_f(c, nd, nd->input[2], &b, &nb, NULL, NULL)) != LB_OK ||
            (nb != (size_t)out && nb != 1)) {
            free(wt);
            free(b);
            return st != LB_OK ? st : ox_node_err(c, nd, "C must have %d values (or 1)", out);
        }
        float *bb = malloc((size_t)out * sizeof *bb);
        for (int o = 0; bb && o < out; o++) bb[o] = beta * b[nb == 1 ? 0 : o];
        free(b);
        if (!(b = bb)) {
            free(wt);
            return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        }
    }
    int id = ox_new_node(c, LB_OP_LINEAR, nd, x, -1);
    if (id < 0) {
        free(wt);
        free(b);
        return ox_out1(c, nd, id);
    }
    ox_node *o = &c->nodes[id];
    layer_name(c, o, nd->input[1], nd->name);
    o->c = o->cout = out, o->h = o->w = 1, o->rank = 2, o->bias = b != NULL;
    if ((st = ox_add_tensor(c, o->name, "weight", wt, nw)) != LB_OK) {
        free(b);
        return st;
    }
    if (b && (st = ox_add_tensor(c, o->name, "bias", b, (size_t)out)) != LB_OK) return st;
    return ox_out1(c, nd, id);
}

static lb_status map_bn(ox_ctx *c, const Onnx__NodeProto *nd) {
    lb_status st = ox_attrs_only(c, nd, "epsilon,momentum,training_mode,spatial");
    int x = st == LB_OK ? ox_act_in(c, nd, 0, &st) : -1;
    if (x < 0) return st;
    if (ox_attr_i(nd, "training_mode", 0) != 0 || ox_attr_i(nd, "spatial", 1) != 1)
        return ox_node_err(c, nd, "training_mode must be 0 and spatial 1");
    if (nd->n_input != 5) return ox_node_err(c, nd, "needs scale, B, mean and var");
    float eps = attr_f(nd, "epsilon", 1e-5f);
    float *t[4] = {NULL, NULL, NULL, NULL};
    size_t n[4];
    int C = c->nodes[x].c;
    for (int i = 0; i < 4 && st == LB_OK; i++) {
        st = ox_const_f(c, nd, nd->input[i + 1], &t[i], &n[i], NULL, NULL);
        if (st == LB_OK && n[i] != (size_t)C)
            st = ox_node_err(c, nd, "%s must have %d values", nd->input[i + 1], C);
    }
    /* lowbit's BN divides by sqrt(var + 1e-5): another epsilon moves into the variance, exact
     * for inference (training then uses 1e-5 on the batch variance) */
    for (int i = 0; st == LB_OK && i < C; i++) {
        double v = (double)t[3][i] + (double)eps - 1e-5;
        if (!(eps >= 0) || !(v > -1e-5))
            st = ox_node_err(c, nd, "epsilon %g with variance %g: var + epsilon must be > 0",
                             (double)eps, (double)t[3][i]);
        else if (eps != 1e-5f)
            t[3][i] = (float)v;
    }
    int id = st == LB_OK ? ox_new_node(c, LB_OP_BN, nd, x, -1) : -1;
    if (id >= 0) layer_name(c, &c->nodes[id], nd->input[1], nd->name);
    static const char *const sfx[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        if (st == LB_OK && id >= 0) {
            st = ox_add_tensor(c, c->nodes[id].name, sfx[i], t[i], n[i]);
            t[i] = NULL;
        }
        free(t[i]);
    }
    return st != LB_OK ? st : ox_out1(c, nd, id);
}

/* Clip's bounds: inputs (opset >= 11) or attributes (before). */
static lb_status clip_bound(ox_ctx *c, const Onnx__NodeProto *nd, int i, float *v, int *given) {
    *given = 0;
    const Onnx__AttributeProto *a = ox_attr(nd, i == 1 ? "min" : "max");
    if (a && ox_is_f(a)) *v = a->f, *given = 1;
    if ((size_t)i < nd->n_input && nd->input[i][0]) {
        float *f;
        size_t n;
        lb_status st = ox_const_f(c, nd, nd->input[i], &f, &n, NULL, NULL);
        if (st != LB_OK) return st;
        if (n == 1) *v = f[0], *given = 1;
        free(f);
        if (n != 1) return ox_node_err(c, nd, "bounds must be scalars");
    }
    return LB_OK;
}

static lb_status map_act(ox_ctx *c, const Onnx__NodeProto *nd, int clip) {
    lb_status st = ox_attrs_only(c, nd, clip ? "min,max" : "");
    int x = st == LB_OK ? ox_act_in(c, nd, 0, &st) : -1;
    if (x < 0) return st;
    lb_op op = LB_OP_RELU;
    if (clip) {
        float lo = 0, hi = 0;
        int glo, ghi;
        if ((st = clip_bound(c, nd, 1, &lo, &glo)) != LB_OK ||
            (st = clip_bound(c, nd, 2, &hi, &ghi)) != LB_OK)
            return st;
        /* PyTorch (opset < 11) writes relu6 as Relu then Clip(max=6): no lower bound is needed
         * on an input that is already >= 0 */
        lb_op in = c->nodes[x].op;
        if ((!glo || lo < 0) && (in == LB_OP_RELU || in == LB_OP_RELU6)) glo = 1, lo = 0;
        if (!glo || lo != 0 || (ghi && hi != 6 && !isinf(hi)))
            return ox_node_err(c, nd,
                               "Clip(%g, %g): lowbit takes Clip(0, 6) (ReLU6) and "
                               "Clip(0, inf) (ReLU)",
                               (double)lo, ghi ? (double)hi : INFINITY);
        op = ghi && hi == 6 ? LB_OP_RELU6 : LB_OP_RELU;
    }
    return ox_out1(c, nd, ox_new_node(c, op, nd, x, -1));
}

static lb_status map_pool(ox_ctx *c, const Onnx__NodeProto *nd, lb_op op) {
    lb_status st =
        ox_attrs_only(c, nd,
                      op == LB_OP_MAXPOOL ? "auto_pad,ceil_mode,dilations,kernel_shape,pads,"
                                            "storage_order,strides"
                                          : "auto_pad,ceil_mode,count_include_pad,kernel_shape,"
                                            "pads,strides");
    int x = st == LB_OK ? ox_act_in(c, nd, 0, &st) : -1;
    if (x < 0) return st;
    const Onnx__AttributeProto *k = ox_attr(nd, "kernel_shape");
    if (c->nodes[x].rank != 4 || !k || k->n_ints != 2)
        return ox_node_err(c, nd, "needs an NCHW input and a 2-D kernel_shape");
    if (ox_attr_i(nd, "ceil_mode", 0) != 0 || ox_attr_i(nd, "storage_order", 0) != 0)
        return ox_node_err(c, nd, "ceil_mode and storage_order: lowbit takes 0");
    int s, p;
    if ((st = spatial(c, nd, &c->nodes[x], (int)k->ints[0], (int)k->ints[1], &s, &p)) != LB_OK)
        return st;
    if (2 * p > k->ints[0]) return ox_node_err(c, nd, "pads larger than half the kernel");
    if (op == LB_OP_AVGPOOL && p > 0 && ox_attr_i(nd, "count_include_pad", 0) == 0)
        return ox_node_err(c, nd, "padded average: lowbit divides by k*k (count_include_pad=1)");
    int id = ox_new_node(c, op, nd, x, -1);
    if (id >= 0) {
        ox_node *o = &c->nodes[id];
        o->k = (int)k->ints[0], o->stride = s, o->pad = p;
        o->h = (o->h + 2 * p - o->k) / s + 1;
        o->w = (o->w + 2 * p - o->k) / s + 1;
    }
    return ox_out1(c, nd, id);
}

lb_status ox_map_node(ox_ctx *c, const Onnx__NodeProto *nd) {
    const char *op = nd->op_type ? nd->op_type : "";
    if (nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0)
        return ox_node_err(c, nd, "operator domain '%.100s': lowbit takes the default domain",
                           nd->domain);
    int folded;
    lb_status st = ox_fold(c, nd, &folded);
    if (st != LB_OK || folded) return st;
    if (!strcmp(op, "Conv")) return map_conv(c, nd);
    if (!strcmp(op, "Gemm")) return map_linear(c, nd, 1);
    if (!strcmp(op, "MatMul")) return map_linear(c, nd, 0);
    if (!strcmp(op, "BatchNormalization")) return map_bn(c, nd);
    if (!strcmp(op, "Relu")) return map_act(c, nd, 0);
    if (!strcmp(op, "Clip")) return map_act(c, nd, 1);
    if (!strcmp(op, "MaxPool")) return map_pool(c, nd, LB_OP_MAXPOOL);
    if (!strcmp(op, "AveragePool")) return map_pool(c, nd, LB_OP_AVGPOOL);
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "Add") || !strcmp(op, "Flatten") ||
        !strcmp(op, "Reshape") || !strcmp(op, "Dropout") || !strcmp(op, "Identity") ||
        !strcmp(op, "Constant") || !strcmp(op, "Slice") || !strcmp(op, "Pad"))
        return ox_map_shape(c, nd);
    return ox_node_err(c, nd, "unsupported op; lowbit imports " SUPPORTED " (docs/onnx.md)");
}
