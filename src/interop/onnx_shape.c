/* ONNX ops that move or combine activations without weights: GlobalAveragePool, Add (of two
 * activations, or a MatMul's bias), Flatten/Reshape to 2-D, Dropout, Identity, Constant, and
 * Slice+Pad as lowbit's option-A shortcut (subsample, zero channels around). Not Conv/Gemm/BN
 * (onnx_map.c). */
#include "onnx_internal.h"

#include <stdlib.h>
#include <string.h>

/* How many node inputs and graph outputs read tensor `name`. */
static int uses(const ox_ctx *c, const char *name) {
    int k = 0;
    for (size_t i = 0; i < c->g->n_node; i++)
        for (size_t j = 0; j < c->g->node[i]->n_input; j++)
            k += strcmp(c->g->node[i]->input[j], name) == 0;
    for (size_t i = 0; i < c->g->n_output; i++)
        k += c->g->output[i]->name && strcmp(c->g->output[i]->name, name) == 0;
    return k;
}

static lb_status add(ox_ctx *c, const Onnx__NodeProto *nd) {
    lb_status st = ox_attrs_only(c, nd, "");
    if (st != LB_OK) return st;
    if (nd->n_input != 2) return ox_node_err(c, nd, "needs two inputs");
    const ox_val *a = ox_find(c, nd->input[0]), *b = ox_find(c, nd->input[1]);
    if (!a || !b) return ox_node_err(c, nd, "an input is not defined before this node");
    if (a->node >= 0 && b->node >= 0) {
        const ox_node *x = &c->nodes[a->node], *y = &c->nodes[b->node];
        if (x->c != y->c || x->h != y->h || x->w != y->w || x->rank != y->rank)
            return ox_node_err(c, nd,
                               "inputs of different shapes (%dx%dx%d, %dx%dx%d): lowbit "
                               "adds equal shapes only",
                               x->c, x->h, x->w, y->c, y->h, y->w);
        return ox_out1(c, nd, ox_new_node(c, LB_OP_ADD, nd, a->node, b->node));
    }
    /* a constant: only as the bias of a MatMul whose output nothing else reads */
    const ox_val *x = a->node >= 0 ? a : b, *k = a->node >= 0 ? b : a;
    ox_node *l = x->node >= 0 ? &c->nodes[x->node] : NULL;
    if (!l || l->op != LB_OP_LINEAR || l->bias || uses(c, x->name) != 1)
        return ox_node_err(c, nd,
                           "adding a constant: lowbit takes it only as the bias of the "
                           "MatMul before it");
    float *bias;
    size_t n;
    if ((st = ox_const_f(c, nd, k->name, &bias, &n, NULL, NULL)) != LB_OK) return st;
    if (n != (size_t)l->c) {
        free(bias);
        return ox_node_err(c, nd, "bias has %zu values for %d outputs", n, l->c);
    }
    l->bias = 1;
    if ((st = ox_add_tensor(c, l->name, "bias", bias, n)) != LB_OK) return st;
    return ox_out1(c, nd, x->node);
}

static lb_status flatten(ox_ctx *c, const Onnx__NodeProto *nd, int x) {
    if (c->nodes[x].rank == 2) return ox_out1(c, nd, x);
    int id = ox_new_node(c, LB_OP_FLATTEN, nd, x, -1);
    if (id >= 0) {
        ox_node *o = &c->nodes[id];
        o->c = o->c * o->h * o->w, o->h = o->w = 1, o->rank = 2;
    }
    return ox_out1(c, nd, id);
}

static lb_status reshape(ox_ctx *c, const Onnx__NodeProto *nd, int x) {
    lb_status st = ox_attrs_only(c, nd, "allowzero");
    int64_t *s = NULL;
    size_t n = 0;
    if (st == LB_OK && nd->n_input < 2) st = ox_node_err(c, nd, "no shape input");
    if (st == LB_OK) st = ox_const_i(c, nd, nd->input[1], &s, &n);
    if (st != LB_OK) return st;
    const ox_node *d = &c->nodes[x];
    int64_t f = (int64_t)d->c * d->h * d->w;
    int ok = n == 2 && (s[0] == 0 || s[0] == -1 || s[0] == 1) &&
             (s[1] == f || (s[1] == -1 && s[0] != -1)) && ox_attr_i(nd, "allowzero", 0) == 0;
    free(s);
    if (!ok)
        return ox_node_err(c, nd, "lowbit reshapes only to 2-D [batch, %lld] (a flatten)",
                           (long long)f);
    return flatten(c, nd, x);
}

static lb_status dropout(ox_ctx *c, const Onnx__NodeProto *nd, int x) {
    lb_status st = ox_attrs_only(c, nd, "ratio,seed");
    if (st != LB_OK) return st;
    float p = 0.5f;
    const Onnx__AttributeProto *a = ox_attr(nd, "ratio");
    if (a && ox_is_f(a)) p = a->f;
    if (nd->n_input > 1 && nd->input[1][0]) {
        float *r;
        size_t n;
        if ((st = ox_const_f(c, nd, nd->input[1], &r, &n, NULL, NULL)) != LB_OK) return st;
        if (n == 1) p = r[0];
        free(r);
        if (n != 1) return ox_node_err(c, nd, "ratio must be a scalar");
    }
    if (nd->n_input > 2 && nd->input[2][0]) {
        const ox_val *t = ox_find(c, nd->input[2]);
        const Onnx__TensorProto *tp = t && t->node < 0 ? t->tp : NULL;
        int on = !tp || !tp->has_raw_data || tp->raw_data.len != 1 || tp->raw_data.data[0];
        if (on) return ox_node_err(c, nd, "training_mode must be a constant false");
    }
    if (!(p >= 0 && p < 1)) return ox_node_err(c, nd, "ratio must be in [0, 1)");
    int id = ox_new_node(c, LB_OP_DROPOUT, nd, x, -1);
    if (id >= 0) c->nodes[id].p = p;
    return ox_out1(c, nd, id);
}

/* The shortcut node that Slice/Pad extend: the input's, when it is one this reader made and
 * nothing else reads it; else a new one (stride 1, no extra channels). */
static int shortcut_of(ox_ctx *c, const Onnx__NodeProto *nd, int x) {
    if (c->nodes[x].op == LB_OP_SHORTCUT && uses(c, nd->input[0]) == 1) return x;
    int id = ox_new_node(c, LB_OP_SHORTCUT, nd, x, -1);
    if (id >= 0) c->nodes[id].cout = c->nodes[id].c;
    return id;
}

static lb_status slice(ox_ctx *c, const Onnx__NodeProto *nd, int x) {
    lb_status st = ox_attrs_only(c, nd, "");
    int64_t *v[4] = {NULL, NULL, NULL, NULL};
    size_t n[4] = {0, 0, 0, 0};
    if (st == LB_OK && nd->n_input < 3) st = ox_node_err(c, nd, "needs starts and ends");
    for (size_t i = 1; i < nd->n_input && i < 5 && st == LB_OK; i++)
        if (nd->input[i][0]) st = ox_const_i(c, nd, nd->input[i], &v[i - 1], &n[i - 1]);
    size_t k = n[0];
    int ok = st == LB_OK && k >= 1 && n[1] == k && (!v[2] || n[2] == k) && (!v[3] || n[3] == k);
    int s[2] = {1, 1}, dims[2] = {c->nodes[x].h, c->nodes[x].w};
    for (size_t i = 0; ok && i < k; i++) {
        int64_t ax = v[2] ? v[2][i] : (int64_t)i, step = v[3] ? v[3][i] : 1;
        if (ax < 0) ax += 4;
        ok = (ax == 2 || ax == 3) && v[0][i] == 0 && v[1][i] >= dims[ax - 2] && step >= 1 &&
             step <= 64 && s[ax - 2] == 1;
        if (ok) s[ax - 2] = (int)step;
    }
    for (int i = 0; i < 4; i++) free(v[i]);
    if (st != LB_OK) return st;
    if (!ok || c->nodes[x].rank != 4)
        return ox_node_err(c, nd, "lowbit slices only x[:, :, ::s, ::s] (option-A shortcut)");
    int id = shortcut_of(c, nd, x);
    if (id >= 0) {
        ox_node *o = &c->nodes[id];
        if ((s[0] > 1 && o->sh > 1) || (s[1] > 1 && o->sw > 1))
            return ox_node_err(c, nd, "an axis subsampled twice");
        if (s[0] > 1) o->sh = s[0], o->h = (o->h + s[0] - 1) / s[0];
        if (s[1] > 1) o->sw = s[1], o->w = (o->w + s[1] - 1) / s[1];
    }
    return ox_out1(c, nd, id);
}

static lb_status pad(ox_ctx *c, const Onnx__NodeProto *nd, int x) {
    lb_status st = ox_attrs_only(c, nd, "mode,pads,value");
    if (st != LB_OK) return st;
    const Onnx__AttributeProto *a = ox_attr(nd, "mode");
    if (a && a->has_s && !(a->s.len == 8 && !memcmp(a->s.data, "constant", 8)))
        return ox_node_err(c, nd, "mode: lowbit pads with zeros (constant) only");
    if ((a = ox_attr(nd, "value")) && ox_is_f(a) && a->f != 0)
        return ox_node_err(c, nd, "lowbit pads with zeros only");
    int64_t p[8];
    size_t n = 0;
    if ((a = ox_attr(nd, "pads"))) {
        n = a->n_ints;
        if (n == 8) memcpy(p, a->ints, sizeof p);
    } else if (nd->n_input > 1 && nd->input[1][0]) {
        int64_t *v;
        if ((st = ox_const_i(c, nd, nd->input[1], &v, &n)) != LB_OK) return st;
        if (n == 8) memcpy(p, v, sizeof p);
        free(v);
    }
    if (nd->n_input > 2 && nd->input[2][0]) {
        float *v;
        size_t m;
        if ((st = ox_const_f(c, nd, nd->input[2], &v, &m, NULL, NULL)) != LB_OK) return st;
        int zero = m == 1 && v[0] == 0;
        free(v);
        if (!zero) return ox_node_err(c, nd, "lowbit pads with zeros only");
    }
    if (nd->n_input > 3) return ox_node_err(c, nd, "the axes input is not supported");
    int ok = n == 8 && c->nodes[x].rank == 4 && p[1] >= 0 && p[5] >= 0 && p[1] <= 32768 &&
             p[5] <= 32768 && p[1] == (p[1] + p[5]) / 2;
    for (int i = 0; ok && i < 8; i++) ok = i == 1 || i == 5 || p[i] == 0;
    if (!ok)
        return ox_node_err(c, nd,
                           "lowbit pads only channels with zeros, half (rounded down) "
                           "before and the rest after (option-A shortcut)");
    int id = shortcut_of(c, nd, x);
    if (id >= 0) c->nodes[id].cout = c->nodes[id].c = c->nodes[id].c + (int)(p[1] + p[5]);
    return ox_out1(c, nd, id);
}

lb_status ox_map_shape(ox_ctx *c, const Onnx__NodeProto *nd) {
    const char *op = nd->op_type;
    lb_status st = LB_OK;
    if (!strcmp(op, "Constant")) {
        const Onnx__AttributeProto *a = ox_attr(nd, "value");
        if ((st = ox_attrs_only(c, nd, "value")) != LB_OK) return st;
        if (!a || !a->t || nd->n_output != 1)
            return ox_node_err(c, nd, "lowbit reads a Constant's 'value' tensor only");
        return ox_set(c, nd->output[0], -1, a->t);
    }
    if (!strcmp(op, "Add")) return add(c, nd);
    if (!strcmp(op, "Identity")) { /* of a constant (PyTorch's shared initializers) or not */
        const ox_val *v = nd->n_input == 1 ? ox_find(c, nd->input[0]) : NULL;
        if (!v) return ox_node_err(c, nd, "input not defined before this node");
        if (nd->n_output != 1) return ox_node_err(c, nd, "needs one output");
        if (v->node < 0) return ox_set(c, nd->output[0], -1, v->tp);
        return ox_out1(c, nd, v->node);
    }
    int x = ox_act_in(c, nd, 0, &st);
    if (x < 0) return st;
    if (!strcmp(op, "GlobalAveragePool")) {
        if ((st = ox_attrs_only(c, nd, "")) != LB_OK) return st;
        if (c->nodes[x].rank != 4) return ox_node_err(c, nd, "input must be NCHW");
        int id = ox_new_node(c, LB_OP_GAP, nd, x, -1);
        if (id >= 0) c->nodes[id].h = c->nodes[id].w = 1;
        return ox_out1(c, nd, id);
    }
    if (!strcmp(op, "Flatten")) {
        if ((st = ox_attrs_only(c, nd, "axis")) != LB_OK) return st;
        if (ox_attr_i(nd, "axis", 1) != 1) return ox_node_err(c, nd, "lowbit flattens at axis 1");
        return flatten(c, nd, x);
    }
    if (!strcmp(op, "Reshape")) return reshape(c, nd, x);
    if (!strcmp(op, "Dropout")) return dropout(c, nd, x);
    if (!strcmp(op, "Slice")) return slice(c, nd, x);
    return pad(c, nd, x);
}
