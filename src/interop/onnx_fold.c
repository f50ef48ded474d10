/* Constant folding of the small int64 shape subgraphs exporters write around Pad and Reshape
 * (PyTorch >= opset 11 computes F.pad's pads with ConstantOfShape, Concat, Reshape, Slice,
 * Transpose, Cast; x.reshape(x.shape[0], -1) with Shape, Gather, Unsqueeze, Concat): when every
 * input of such a node is a constant, its value is computed here and becomes a constant; Shape of
 * an activation is its shape with batch 1, as exported. Only int64 tensors of rank <= 2; not a
 * general evaluator. */
#include "onnx_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct ci {
    int64_t *v;
    size_t n;
    int ndim;
    int64_t d[2];
} ci;

static lb_status get(ox_ctx *c, const Onnx__NodeProto *nd, size_t i, ci *x) {
    memset(x, 0, sizeof *x);
    const ox_val *v = ox_find(c, nd->input[i]);
    if (!v || !v->tp || v->tp->n_dims > 2)
        return ox_node_err(c, nd, "lowbit folds int64 constants of rank <= 2 only");
    x->ndim = (int)v->tp->n_dims;
    for (int k = 0; k < x->ndim; k++) x->d[k] = v->tp->dims[k];
    return ox_const_i(c, nd, nd->input[i], &x->v, &x->n);
}

/* The result becomes a constant TensorProto the context owns (freed with it). */
static lb_status put(ox_ctx *c, const Onnx__NodeProto *nd, int64_t *v, size_t n, int ndim,
                     const int64_t *d) {
    Onnx__TensorProto *t = calloc(1, sizeof *t);
    int64_t *dims = calloc(2, sizeof *dims);
    void **own = realloc(c->owned, (size_t)(c->nowned + 3) * sizeof *own);
    if (!t || !dims || !own) {
        free(t), free(dims), free(v);
        if (own) c->owned = own;
        return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
    }
    c->owned = own;
    c->owned[c->nowned++] = t, c->owned[c->nowned++] = dims, c->owned[c->nowned++] = v;
    onnx__tensor_proto__init(t);
    for (int k = 0; k < ndim; k++) dims[k] = d[k];
    t->n_dims = (size_t)ndim, t->dims = dims;
    t->has_data_type = 1, t->data_type = OX_INT64;
    t->has_raw_data = 1, t->raw_data.len = n * sizeof *v, t->raw_data.data = (uint8_t *)v;
    if (nd->n_output != 1) return ox_node_err(c, nd, "needs one output");
    return ox_set(c, nd->output[0], -1, t);
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static lb_status fold(ox_ctx *c, const Onnx__NodeProto *nd, ci *a, ci *b, int *done) {
    const char *op = nd->op_type;
    lb_status st;
    size_t lim = 1 << 16; /* shape vectors, not data */
    *done = 1;
    if (!strcmp(op, "ConstantOfShape")) {
        const Onnx__AttributeProto *at = ox_attr(nd, "value");
        int64_t fillv = 0;
        if (at && at->t) {
            if (!at->t->has_data_type || at->t->data_type != OX_INT64)
                return ox_node_err(c, nd, "lowbit folds an int64 fill value only");
            if (at->t->has_raw_data && at->t->raw_data.len == 8)
                memcpy(&fillv, at->t->raw_data.data, 8);
            else if (at->t->n_int64_data == 1)
                fillv = at->t->int64_data[0];
            else
                return ox_node_err(c, nd, "bad fill value");
        }
        if ((st = get(c, nd, 0, a)) != LB_OK) return st;
        if (a->ndim != 1 || a->n > 2) return ox_node_err(c, nd, "shape of rank <= 2 only");
        size_t n = 1;
        for (size_t k = 0; k < a->n; k++) {
            if (a->v[k] < 0 || a->v[k] > (int64_t)lim) return ox_node_err(c, nd, "bad shape");
            n *= (size_t)a->v[k];
        }
        if (n > lim) return ox_node_err(c, nd, "too large to fold");
        int64_t *v = malloc((n ? n : 1) * sizeof *v);
        if (!v) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        for (size_t k = 0; k < n; k++) v[k] = fillv;
        return put(c, nd, v, n, (int)a->n, a->v);
    }
    if ((st = get(c, nd, 0, a)) != LB_OK) return st;
    if (!strcmp(op, "Cast")) {
        if (ox_attr_i(nd, "to", 0) != OX_INT64) return ox_node_err(c, nd, "casts to int64 only");
        int64_t *v = a->v;
        a->v = NULL;
        return put(c, nd, v, a->n, a->ndim, a->d);
    }
    if (!strcmp(op, "Concat")) { /* 1-D, axis 0 */
        size_t n = 0;
        for (size_t i = 0; i < nd->n_input; i++) {
            ci x;
            if ((st = get(c, nd, i, &x)) != LB_OK) return st;
            free(x.v);
            if (x.ndim != 1) return ox_node_err(c, nd, "lowbit folds 1-D concats only");
            n += x.n;
        }
        if (n > lim) return ox_node_err(c, nd, "too large to fold");
        int64_t *v = malloc((n ? n : 1) * sizeof *v);
        if (!v) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        size_t k = 0;
        for (size_t i = 0; i < nd->n_input; i++) {
            ci x;
            if ((st = get(c, nd, i, &x)) != LB_OK) {
                free(v);
                return st;
            }
            if (x.n) memcpy(v + k, x.v, x.n * sizeof *v);
            k += x.n;
            free(x.v);
        }
        int64_t d = (int64_t)n;
        return put(c, nd, v, n, 1, &d);
    }
    if (!strcmp(op, "Gather")) { /* of a 1-D constant, axis 0 */
        if (ox_attr_i(nd, "axis", 0) != 0 || a->ndim != 1 || nd->n_input != 2)
            return ox_node_err(c, nd, "lowbit folds a Gather along axis 0 of a 1-D constant");
        if ((st = get(c, nd, 1, b)) != LB_OK) return st;
        if (b->ndim > 1) return ox_node_err(c, nd, "indices of rank <= 1 only");
        int64_t *v = malloc((b->n ? b->n : 1) * sizeof *v), d = (int64_t)b->n;
        if (!v) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        for (size_t k = 0; k < b->n; k++) {
            int64_t i = b->v[k] < 0 ? b->v[k] + (int64_t)a->n : b->v[k];
            if (i < 0 || i >= (int64_t)a->n) {
                free(v);
                return ox_node_err(c, nd, "index out of range");
            }
            v[k] = a->v[i];
        }
        return put(c, nd, v, b->n, b->ndim, &d);
    }
    if (!strcmp(op, "Unsqueeze")) { /* a scalar into [1] */
        const Onnx__AttributeProto *at = ox_attr(nd, "axes");
        int64_t axis = at && at->n_ints == 1 ? at->ints[0] : -1;
        if (!at && nd->n_input == 2) {
            if ((st = get(c, nd, 1, b)) != LB_OK) return st;
            if (b->n == 1) axis = b->v[0];
        }
        if (a->ndim != 0 || axis != 0)
            return ox_node_err(c, nd, "lowbit folds Unsqueeze of a scalar at axis 0 only");
        int64_t *v = a->v, d = 1;
        a->v = NULL;
        return put(c, nd, v, 1, 1, &d);
    }
    if (!strcmp(op, "Transpose")) { /* 2-D [1, 0] (or 1-D: unchanged) */
        int64_t *v = malloc((a->n ? a->n : 1) * sizeof *v), d[2] = {a->d[1], a->d[0]};
        if (!v) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        if (a->ndim < 2) {
            memcpy(v, a->v, a->n * sizeof *v);
            return put(c, nd, v, a->n, a->ndim, a->d);
        }
        for (int64_t i = 0; i < a->d[0]; i++)
            for (int64_t j = 0; j < a->d[1]; j++) v[j * a->d[0] + i] = a->v[i * a->d[1] + j];
        return put(c, nd, v, a->n, 2, d);
    }
    if (nd->n_input < 2 || (st = get(c, nd, 1, b)) != LB_OK)
        return nd->n_input < 2 ? ox_node_err(c, nd, "missing input") : st;
    if (!strcmp(op, "Reshape")) { /* to rank <= 2, with 0 and -1 */
        if (b->ndim != 1 || b->n > 2) return ox_node_err(c, nd, "lowbit folds to rank <= 2");
        int64_t d[2] = {1, 1}, known = 1;
        int neg = -1;
        for (size_t k = 0; k < b->n; k++) {
            d[k] = b->v[k] == 0 && (int)k < a->ndim ? a->d[k] : b->v[k];
            if (d[k] == -1 && neg < 0)
                neg = (int)k;
            else if (d[k] < 1 || d[k] > (int64_t)a->n) /* also keeps the product in range */
                return ox_node_err(c, nd, "bad shape");
            else
                known *= d[k];
        }
        if (neg >= 0) d[neg] = known ? (int64_t)a->n / known : 0;
        if ((neg >= 0 ? d[neg] * known : known) != (int64_t)a->n)
            return ox_node_err(c, nd, "shape does not fit %zu values", a->n);
        int64_t *v = a->v;
        a->v = NULL;
        return put(c, nd, v, a->n, (int)b->n, d);
    }
    if (!strcmp(op, "Slice")) { /* one axis of a rank <= 2 tensor */
        ci ax = {0}, sp = {0};
        if (nd->n_input > 3 && nd->input[3][0] && (st = get(c, nd, 3, &ax)) != LB_OK) return st;
        if (nd->n_input > 4 && nd->input[4][0] && (st = get(c, nd, 4, &sp)) != LB_OK) {
            free(ax.v);
            return st;
        }
        ci e;
        st = nd->n_input > 2 ? get(c, nd, 2, &e) : ox_node_err(c, nd, "no ends");
        int64_t axis = ax.v && ax.n == 1 ? ax.v[0] : 0, step = sp.v && sp.n == 1 ? sp.v[0] : 1;
        int ok = st == LB_OK && b->n == 1 && e.n == 1 && (!ax.v || ax.n == 1) &&
                 (!sp.v || sp.n == 1) && step != 0 && a->ndim >= 1;
        if (ok && axis < 0) axis += a->ndim;
        ok = ok && axis >= 0 && axis < a->ndim;
        int64_t s0 = ok ? b->v[0] : 0, e0 = ok ? e.v[0] : 0, dim = ok ? a->d[axis] : 0;
        if (st == LB_OK) free(e.v);
        free(ax.v), free(sp.v);
        if (st != LB_OK) return st;
        if (!ok || step > (1LL << 31) || step < -(1LL << 31))
            return ox_node_err(c, nd, "lowbit folds a slice along one axis only");
        if (s0 < 0) s0 = s0 < -dim ? -1 : s0 + dim; /* no overflow near INT64_MIN */
        if (e0 < 0) e0 = e0 < -dim ? -1 : e0 + dim;
        s0 = step > 0 ? clampi(s0, 0, dim) : clampi(s0, 0, dim - 1);
        e0 = step > 0 ? clampi(e0, 0, dim) : clampi(e0, -1, dim - 1);
        int64_t cnt = step > 0 ? (e0 > s0 ? (e0 - s0 + step - 1) / step : 0)
                               : (s0 > e0 ? (s0 - e0 - step - 1) / -step : 0);
        int64_t inner = a->ndim == 2 && axis == 0 ? a->d[1] : 1;
        int64_t outer = a->ndim == 2 && axis == 1 ? a->d[0] : 1;
        int64_t *v = malloc((size_t)(cnt * inner * outer + 1) * sizeof *v), d[2];
        if (!v) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        size_t k = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < cnt; i++)
                for (int64_t j = 0; j < inner; j++)
                    v[k++] = a->v[(o * dim + s0 + i * step) * inner + j];
        d[0] = a->d[0], d[1] = a->d[1], d[axis] = cnt;
        return put(c, nd, v, k, a->ndim, d);
    }
    *done = 0;
    return LB_OK;
}

lb_status ox_fold(ox_ctx *c, const Onnx__NodeProto *nd, int *done) {
    static const char *const ops[] = {"ConstantOfShape", "Cast",    "Concat", "Gather", "Unsqueeze",
                                      "Transpose",       "Reshape", "Slice",  NULL};
    const char *op = nd->op_type ? nd->op_type : "";
    *done = 0;
    if (!strcmp(op, "Shape")) { /* of an activation: batch 1, as the model was exported */
        lb_status st = ox_attrs_only(c, nd, "");
        int x = st == LB_OK ? ox_act_in(c, nd, 0, &st) : -1;
        if (x < 0) return st;
        const ox_node *d = &c->nodes[x];
        int64_t *v = malloc(4 * sizeof *v), n = d->rank == 2 ? 2 : 4;
        if (!v) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        v[0] = 1, v[1] = d->c, v[2] = d->h, v[3] = d->w;
        *done = 1;
        return put(c, nd, v, (size_t)n, 1, &n);
    }
    int known = 0;
    for (int i = 0; ops[i]; i++) known |= strcmp(op, ops[i]) == 0;
    if (!known || nd->n_input < 1) return LB_OK;
    for (size_t i = 0; i < nd->n_input; i++) { /* only when every input is a constant */
        const ox_val *v = nd->input[i][0] ? ox_find(c, nd->input[i]) : NULL;
        if (nd->input[i][0] && (!v || v->node >= 0)) return LB_OK;
    }
    ci a = {0}, b = {0};
    lb_status st = fold(c, nd, &a, &b, done);
    free(a.v), free(b.v);
    return st;
}
