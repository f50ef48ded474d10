/* Building a network: nodes, shapes and the parameter/state tables. No memory for data here;
 * lb_net_plan (plan.c) allocates once the graph is complete. */
#include "nn_internal.h"
#include "lb_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_op_names[LB_OP_COUNT] = {
    "input", "conv",     "linear",  "bn",      "relu",   "relu6", "maxpool", "avgpool", "gap",
    "add",   "shortcut", "flatten", "dropout", "encode", "lif",   "ln",      "tsum"};

const char *lb_op_name(lb_op op) {
    return op < LB_OP_COUNT ? g_op_names[op] : "?";
}

int lb_net_fail(lb_net *n, lb_status st, const char *msg, const char *name) {
    if (n->err == LB_OK) n->err = lb_error_set(st, "building layer '%s': %s", name, msg);
    return -1;
}

int lb_net_node_new(lb_net *n, lb_op op, const char *name, int in0, int in1) {
    if (n->err != LB_OK) return -1;
    if (in0 < 0 || in0 >= n->nnodes || in1 >= n->nnodes)
        return lb_net_fail(n, LB_EINVAL, "input node does not exist", name ? name : lb_op_name(op));
    if (n->nnodes == n->cap) {
        int cap = n->cap ? 2 * n->cap : 32;
        lb_node *p = realloc(n->nodes, (size_t)cap * sizeof *p);
        if (!p) return lb_net_fail(n, LB_ENOMEM, "out of memory", lb_op_name(op));
        n->nodes = p;
        n->cap = cap;
    }
    int id = n->nnodes++;
    lb_node *d = &n->nodes[id];
    memset(d, 0, sizeof *d);
    d->op = op;
    if (name && name[0]) {
        for (int i = 0; i < id; i++)
            if (strcmp(n->nodes[i].name, name) == 0) {
                n->nnodes--;
                return lb_net_fail(n, LB_EINVAL, "duplicate layer name", name);
            }
        snprintf(d->name, sizeof d->name, "%s", name);
    } else {
        snprintf(d->name, sizeof d->name, "%s%d", lb_op_name(op), id);
    }
    d->in[0] = in0;
    d->in[1] = in1;
    d->pw = d->pb = d->smean = d->svar = d->pwq = d->paq = d->swq = d->saq = -1;
    if (in0 >= 0) {
        const lb_node *s = &n->nodes[in0];
        d->c = s->c;
        d->h = s->h;
        d->w = s->w;
        d->nonneg = s->nonneg;
        d->tm = s->tm;
        d->binary = s->binary;
    }
    return id;
}

static int add_tensor(lb_tensor_info **tab, int *cnt, int *cap, size_t *total, const char *node,
                      const char *suffix, int ndim, const int *shape, lb_group g) {
    if (*cnt == *cap) {
        int c = *cap ? 2 * *cap : 64;
        lb_tensor_info *p = realloc(*tab, (size_t)c * sizeof *p);
        if (!p) return -1;
        *tab = p;
        *cap = c;
    }
    lb_tensor_info *t = &(*tab)[*cnt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", node, suffix);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->n *= (size_t)shape[i];
    }
    t->off = *total;
    t->group = g;
    *total += t->n;
    return (*cnt)++;
}

int lb_net_add_param(lb_net *n, int node, const char *suffix, int ndim, const int *shape,
                     lb_group g) {
    int r = add_tensor(&n->params, &n->nparams, &n->pcap, &n->nparam, n->nodes[node].name, suffix,
                       ndim, shape, g);
    if (r < 0) lb_net_fail(n, LB_ENOMEM, "out of memory", n->nodes[node].name);
    return r;
}

int lb_net_add_state(lb_net *n, int node, const char *suffix, int ndim, const int *shape) {
    int r = add_tensor(&n->states, &n->nstates, &n->scap, &n->nstate, n->nodes[node].name, suffix,
                       ndim, shape, LB_GROUP_NODECAY);
    if (r < 0) lb_net_fail(n, LB_ENOMEM, "out of memory", n->nodes[node].name);
    return r;
}

lb_net *lb_net_new(int c, int h, int w) {
    lb_net *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    lb_arena_init_counting(&n->act);
    n->be = lb_backend_cpu();
    n->nodes = calloc(32, sizeof *n->nodes);
    if (!n->nodes) {
        free(n);
        return NULL;
    }
    n->cap = 32;
    n->nnodes = 1;
    lb_node *d = &n->nodes[0];
    d->op = LB_OP_INPUT;
    snprintf(d->name, sizeof d->name, "input");
    d->in[0] = d->in[1] = -1;
    d->pw = d->pb = d->smean = d->svar = d->pwq = d->paq = d->swq = d->saq = -1;
    d->c = c;
    d->h = h;
    d->w = w;
    d->tm = 1;
    if (c < 1 || h < 1 || w < 1) n->err = lb_error_set(LB_EINVAL, "input shape %dx%dx%d", c, h, w);
    return n;
}

int lb_net_conv(lb_net *n, const char *name, int in, int cout, int k, int stride, int pad,
                int groups, int bias) {
    int id = lb_net_node_new(n, LB_OP_CONV, name, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    int cin = d->c;
    if (cout < 1 || k < 1 || stride < 1 || pad < 0 || groups < 1 || cin % groups || cout % groups)
        return lb_net_fail(n, LB_EINVAL, "bad conv parameters (channels, kernel, stride, groups)",
                           name);
    int oh = (d->h + 2 * pad - k) / stride + 1, ow = (d->w + 2 * pad - k) / stride + 1;
    if (d->h + 2 * pad < k || d->w + 2 * pad < k || oh < 1 || ow < 1)
        return lb_net_fail(n, LB_ESHAPE, "input too small for the kernel", name);
    d->k = k;
    d->stride = stride;
    d->pad = pad;
    d->groups = groups;
    d->bias = bias;
    d->c = cout;
    d->h = oh;
    d->w = ow;
    d->nonneg = d->binary = 0;
    int ws[4] = {cout, cin / groups, k, k};
    d->pw = lb_net_add_param(n, id, "weight", 4, ws, LB_GROUP_WEIGHT);
    if (bias) d->pb = lb_net_add_param(n, id, "bias", 1, &cout, LB_GROUP_NODECAY);
    return id;
}

int lb_net_linear(lb_net *n, const char *name, int in, int out, int bias) {
    int id = lb_net_node_new(n, LB_OP_LINEAR, name, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (out < 1) return lb_net_fail(n, LB_EINVAL, "output features must be >= 1", name);
    int fin = d->c * d->h * d->w;
    d->c = out;
    d->h = d->w = 1;
    d->bias = bias;
    d->nonneg = d->binary = 0;
    int ws[2] = {out, fin};
    d->pw = lb_net_add_param(n, id, "weight", 2, ws, LB_GROUP_WEIGHT);
    if (bias) d->pb = lb_net_add_param(n, id, "bias", 1, &out, LB_GROUP_NODECAY);
    return id;
}

int lb_net_bn(lb_net *n, const char *name, int in) {
    int id = lb_net_node_new(n, LB_OP_BN, name, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    d->nonneg = d->binary = 0;
    int c = d->c;
    d->pw = lb_net_add_param(n, id, "weight", 1, &c, LB_GROUP_NODECAY);
    d->pb = lb_net_add_param(n, id, "bias", 1, &c, LB_GROUP_NODECAY);
    d->smean = lb_net_add_state(n, id, "running_mean", 1, &c);
    d->svar = lb_net_add_state(n, id, "running_var", 1, &c);
    return id;
}

int lb_net_act(lb_net *n, lb_op op, int in) {
    if (op != LB_OP_RELU && op != LB_OP_RELU6 && op != LB_OP_FLATTEN)
        return lb_net_fail(n, LB_EINVAL, "not an activation", lb_op_name(op));
    int id = lb_net_node_new(n, op, NULL, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (op == LB_OP_FLATTEN) {
        d->c = d->c * d->h * d->w;
        d->h = d->w = 1;
    } else {
        d->nonneg = 1;
    }
    return id;
}

int lb_net_pool(lb_net *n, lb_op op, int in, int k, int stride, int pad) {
    if (op != LB_OP_MAXPOOL && op != LB_OP_AVGPOOL)
        return lb_net_fail(n, LB_EINVAL, "not a pooling op", lb_op_name(op));
    int id = lb_net_node_new(n, op, NULL, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k || d->h + 2 * pad < k || d->w + 2 * pad < k)
        return lb_net_fail(n, LB_EINVAL, "bad pooling window", d->name);
    d->k = k;
    d->stride = stride;
    d->pad = pad;
    d->h = (d->h + 2 * pad - k) / stride + 1;
    d->w = (d->w + 2 * pad - k) / stride + 1;
    if (op == LB_OP_MAXPOOL && pad) d->nonneg = 0;
    if (op == LB_OP_AVGPOOL) d->binary = 0; /* -inf padding never wins, but be strict */
    return id;
}

int lb_net_gap(lb_net *n, int in) {
    int id = lb_net_node_new(n, LB_OP_GAP, NULL, in, -1);
    if (id < 0) return -1;
    n->nodes[id].h = n->nodes[id].w = 1;
    n->nodes[id].binary = 0;
    return id;
}

int lb_net_add(lb_net *n, int a, int b) {
    int id = lb_net_node_new(n, LB_OP_ADD, NULL, a, b);
    if (id < 0) return -1;
    const lb_node *x = &n->nodes[a], *y = &n->nodes[b];
    if (b < 0 || x->c != y->c || x->h != y->h || x->w != y->w)
        return lb_net_fail(n, LB_ESHAPE, "add of tensors with different shapes", n->nodes[id].name);
    if (x->tm != y->tm)
        return lb_net_fail(n, LB_ESHAPE, "add of a time-expanded and a static tensor",
                           n->nodes[id].name);
    n->nodes[id].nonneg = x->nonneg && y->nonneg;
    n->nodes[id].binary = 0;
    return id;
}

int lb_net_shortcut(lb_net *n, int in, int cout, int stride) {
    int id = lb_net_node_new(n, LB_OP_SHORTCUT, NULL, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (cout < d->c || stride < 1) return lb_net_fail(n, LB_EINVAL, "bad shortcut", d->name);
    d->stride = stride;
    d->c = cout;
    d->h = (d->h + stride - 1) / stride;
    d->w = (d->w + stride - 1) / stride;
    return id;
}

int lb_net_dropout(lb_net *n, int in, float p) {
    int id = lb_net_node_new(n, LB_OP_DROPOUT, NULL, in, -1);
    if (id < 0) return -1;
    if (!(p >= 0 && p < 1))
        return lb_net_fail(n, LB_EINVAL, "dropout rate must be in [0, 1)", "dropout");
    n->nodes[id].p = p;
    return id;
}

void lb_net_set_quant(lb_net *n, int node, const lb_qcfg *w, const lb_qcfg *a) {
    if (n->err != LB_OK || node < 0 || node >= n->nnodes) return;
    lb_node *d = &n->nodes[node];
    if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) {
        lb_net_fail(n, LB_EINVAL, "quantizers attach to conv and linear layers only", d->name);
        return;
    }
    if (w) d->wqcfg = *w;
    if (a) d->aqcfg = *a;
}

void lb_net_set_backend(lb_net *n, const lb_backend *be) {
    if (!n->param) n->be = be;
}

int lb_net_out(const lb_net *n) {
    return n->nnodes - 1;
}
int lb_net_classes(const lb_net *n) {
    const lb_node *d = &n->nodes[n->nnodes - 1];
    return d->c * d->h * d->w;
}

int lb_net_find_param(const lb_net *n, const char *name) {
    for (int i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].name, name) == 0) return i;
    return -1;
}

int lb_net_find_state(const lb_net *n, const char *name) {
    for (int i = 0; i < n->nstates; i++)
        if (strcmp(n->states[i].name, name) == 0) return i;
    return -1;
}

lb_opt_segment *lb_net_segments(const lb_net *n, int *nseg) {
    lb_opt_segment *s = malloc((size_t)(n->nparams ? n->nparams : 1) * sizeof *s);
    if (!s) return NULL;
    for (int i = 0; i < n->nparams; i++) {
        s[i].off = n->params[i].off;
        s[i].n = n->params[i].n;
        s[i].group = n->params[i].group;
        s[i].lr_scale = 1.0f;
    }
    *nseg = n->nparams;
    return s;
}

size_t lb_net_act_bytes(const lb_net *n) {
    return n->act.cap;
}

void lb_net_free(lb_net *n) {
    if (!n) return;
    free(n->nodes);
    free(n->params);
    free(n->states);
    free(n->param);
    free(n->grad);
    free(n->state);
    lb_arena_release(&n->act);
    free(n);
}
