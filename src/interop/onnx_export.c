/* Writing a float lowbit network as ONNX (opset 13) with protobuf-c: the graph lowbit evaluates,
 * node for node, its weights as initializers. Not quantized models (no QDQ or integer-op form
 * yet: the caller refuses them) and not reading (onnx_read.c). */
#include "onnx_internal.h"
#include "lb_ops.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything the message points to is allocated here and freed at once after packing. */
typedef struct xb {
    void **mem;
    int nmem, cmem;
    Onnx__NodeProto **nodes;
    int nn, cn;
    Onnx__TensorProto **inits;
    int ni, ci;
    int oom;
} xb;

static void *xalloc(xb *b, size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (p && b->nmem == b->cmem) {
        int c = b->cmem ? 2 * b->cmem : 256;
        void **q = realloc(b->mem, (size_t)c * sizeof *q);
        if (!q) {
            free(p);
            p = NULL;
        } else {
            b->mem = q, b->cmem = c;
        }
    }
    if (!p) {
        b->oom = 1;
        return NULL;
    }
    return b->mem[b->nmem++] = p;
}

static char *xstr(xb *b, const char *s) {
    char *p = xalloc(b, strlen(s) + 1);
    if (p) memcpy(p, s, strlen(s) + 1);
    return p;
}

/* Appends p to a growing pointer array. */
static void push(xb *b, void ***arr, int *n, int *cap, void *p) {
    if (!p) return;
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        void **q = xalloc(b, (size_t)c * sizeof *q);
        if (!q) return;
        if (*n) memcpy(q, *arr, (size_t)*n * sizeof *q);
        *arr = q, *cap = c;
    }
    (*arr)[(*n)++] = p;
}

static Onnx__AttributeProto *attr(xb *b, const char *name, int type) {
    Onnx__AttributeProto *a = xalloc(b, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = xstr(b, name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_i(xb *b, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_f(xb *b, const char *name, float v) {
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_2(xb *b, const char *name, int64_t v, int n) {
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *x = xalloc(b, 4 * sizeof *x);
    if (!a || !x) return NULL;
    for (int i = 0; i < n; i++) x[i] = v;
    a->n_ints = (size_t)n, a->ints = x;
    return a;
}

/* A node with up to 3 inputs and up to 6 attributes (NULL-terminated lists). */
static Onnx__NodeProto *node(xb *b, const char *op, const char *name, const char *const *in,
                             const char *out, Onnx__AttributeProto *const *at) {
    Onnx__NodeProto *d = xalloc(b, sizeof *d);
    char **ins = xalloc(b, 4 * sizeof *ins), **outs = xalloc(b, sizeof *outs);
    Onnx__AttributeProto **as = xalloc(b, 7 * sizeof *as);
    if (!d || !ins || !outs || !as) return NULL;
    onnx__node_proto__init(d);
    d->op_type = xstr(b, op);
    d->name = xstr(b, name);
    for (; in && in[d->n_input] && d->n_input < 3; d->n_input++)
        ins[d->n_input] = xstr(b, in[d->n_input]);
    d->input = ins;
    outs[0] = xstr(b, out);
    d->n_output = 1, d->output = outs;
    for (; at && at[d->n_attribute] && d->n_attribute < 6; d->n_attribute++)
        as[d->n_attribute] = at[d->n_attribute];
    d->attribute = as;
    push(b, (void ***)&b->nodes, &b->nn, &b->cn, d);
    return d;
}

/* An initializer: float data borrowed from the net (packing only reads it), int64 copied. */
static void init(xb *b, const char *name, const void *data, int type, int ndim,
                 const int64_t *dims) {
    Onnx__TensorProto *t = xalloc(b, sizeof *t);
    int64_t *d = xalloc(b, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d) return;
    onnx__tensor_proto__init(t);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) d[i] = dims[i], n *= (size_t)dims[i];
    t->n_dims = (size_t)ndim, t->dims = d;
    t->has_data_type = 1, t->data_type = type;
    t->name = xstr(b, name);
    size_t bytes = n * (type == OX_FLOAT ? 4 : 8);
    uint8_t *raw = (uint8_t *)(uintptr_t)data;
    if (type != OX_FLOAT && (raw = xalloc(b, bytes)) != NULL) memcpy(raw, data, bytes);
    t->has_raw_data = 1, t->raw_data.len = bytes, t->raw_data.data = raw;
    push(b, (void ***)&b->inits, &b->ni, &b->ci, t);
}

static void init_tensor(xb *b, const lb_net *n, const lb_tensor_info *ti, const float *base) {
    int64_t d[4];
    for (int i = 0; i < ti->ndim; i++) d[i] = ti->shape[i];
    init(b, ti->name, base + ti->off, OX_FLOAT, ti->ndim, d);
    (void)n;
}

static void init_i64(xb *b, const char *name, const int64_t *v, int64_t n) {
    init(b, name, v, OX_INT64, 1, &n);
}

/* One lowbit node; `rank` tracks which outputs are 2-D (after flatten/linear). */
static void emit(xb *b, const lb_net *n, int i, int *rank) {
    const lb_node *d = &n->nodes[i];
    const char *x = n->nodes[d->in[0]].name, *y = d->name;
    char t1[LB_NAME_MAX + 32], t2[LB_NAME_MAX + 32], t3[LB_NAME_MAX + 32];
    rank[i] = rank[d->in[0]];
    Onnx__AttributeProto *a[7] = {NULL};
    switch (d->op) {
    case LB_OP_CONV: {
        if (d->wstd) { /* MaQD's weight standardization: the weights the float model convolves */
            const lb_tensor_info *t = &n->params[d->pw];
            float *ws = xalloc(b, t->n * sizeof *ws);
            int64_t dims[4];
            for (int k = 0; k < t->ndim; k++) dims[k] = t->shape[k];
            if (ws) lb_wstd_forward(d->c, t->n / (size_t)d->c, n->param + t->off, ws, NULL, NULL);
            if (ws) init(b, t->name, ws, OX_FLOAT, t->ndim, dims);
        } else {
            init_tensor(b, n, &n->params[d->pw], n->param);
        }
        if (d->pb >= 0) init_tensor(b, n, &n->params[d->pb], n->param);
        const char *in[] = {x, n->params[d->pw].name, d->pb >= 0 ? n->params[d->pb].name : NULL,
                            NULL};
        a[0] = attr_2(b, "kernel_shape", d->k, 2), a[1] = attr_2(b, "strides", d->stride, 2);
        a[2] = attr_2(b, "pads", d->pad, 4), a[3] = attr_i(b, "group", d->groups);
        node(b, "Conv", y, in, y, a);
        break;
    }
    case LB_OP_LINEAR: {
        if (rank[d->in[0]] != 2) { /* lowbit's linear flattens its input itself */
            snprintf(t1, sizeof t1, "%s.flatten", y);
            a[0] = attr_i(b, "axis", 1);
            node(b, "Flatten", t1, (const char *[]){x, NULL}, t1, a);
            x = t1;
        }
        init_tensor(b, n, &n->params[d->pw], n->param);
        if (d->pb >= 0) init_tensor(b, n, &n->params[d->pb], n->param);
        const char *in[] = {x, n->params[d->pw].name, d->pb >= 0 ? n->params[d->pb].name : NULL,
                            NULL};
        a[0] = attr_i(b, "transB", 1);
        node(b, "Gemm", y, in, y, a);
        rank[i] = 2;
        break;
    }
    case LB_OP_BN: {
        const lb_tensor_info *ts[4] = {&n->params[d->pw], &n->params[d->pb], &n->states[d->smean],
                                       &n->states[d->svar]};
        for (int k = 0; k < 4; k++) init_tensor(b, n, ts[k], k < 2 ? n->param : n->state);
        const char *in[] = {x, ts[0]->name, ts[1]->name, ts[2]->name, ts[3]->name};
        Onnx__NodeProto *p = node(b, "BatchNormalization", y, in, y, NULL);
        char **ins = xalloc(b, 5 * sizeof *ins); /* five inputs: node() takes three */
        if (p && ins) {
            for (int k = 0; k < 5; k++) ins[k] = xstr(b, in[k]);
            p->input = ins, p->n_input = 5;
            Onnx__AttributeProto **as = xalloc(b, 2 * sizeof *as);
            if (as) as[0] = attr_f(b, "epsilon", 1e-5f), as[1] = attr_f(b, "momentum", 0.9f);
            p->attribute = as, p->n_attribute = as ? 2 : 0;
        }
        break;
    }
    case LB_OP_RELU:
        node(b, "Relu", y, (const char *[]){x, NULL}, y, NULL);
        break;
    case LB_OP_RELU6: {
        static const float lo = 0, hi = 6;
        snprintf(t1, sizeof t1, "%s.min", y);
        snprintf(t2, sizeof t2, "%s.max", y);
        init(b, t1, &lo, OX_FLOAT, 0, NULL);
        init(b, t2, &hi, OX_FLOAT, 0, NULL);
        node(b, "Clip", y, (const char *[]){x, t1, t2, NULL}, y, NULL);
        break;
    }
    case LB_OP_MAXPOOL:
    case LB_OP_AVGPOOL:
        a[0] = attr_2(b, "kernel_shape", d->k, 2), a[1] = attr_2(b, "strides", d->stride, 2);
        a[2] = attr_2(b, "pads", d->pad, 4);
        if (d->op == LB_OP_AVGPOOL) a[3] = attr_i(b, "count_include_pad", 1);
        node(b, d->op == LB_OP_MAXPOOL ? "MaxPool" : "AveragePool", y, (const char *[]){x, NULL}, y,
             a);
        break;
    case LB_OP_GAP:
        node(b, "GlobalAveragePool", y, (const char *[]){x, NULL}, y, NULL);
        break;
    case LB_OP_ADD:
        node(b, "Add", y, (const char *[]){x, n->nodes[d->in[1]].name, NULL}, y, NULL);
        break;
    case LB_OP_FLATTEN:
        a[0] = attr_i(b, "axis", 1);
        node(b, "Flatten", y, (const char *[]){x, NULL}, y, a);
        rank[i] = 2;
        break;
    case LB_OP_DROPOUT: /* inference graph: identity */
        node(b, "Identity", y, (const char *[]){x, NULL}, y, NULL);
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
            init_i64(b, nm[k], vals[k], k == 4 ? 8 : 2);
        }
        snprintf(t3, sizeof t3, "%s.slice", y);
        Onnx__NodeProto *p =
            node(b, "Slice", t3, (const char *[]){x, nm[0], nm[1], NULL}, t3, NULL);
        char **ins = xalloc(b, 5 * sizeof *ins);
        if (p && ins) {
            ins[0] = xstr(b, x);
            for (int k = 0; k < 4; k++) ins[k + 1] = xstr(b, nm[k]);
            p->input = ins, p->n_input = 5;
        }
        node(b, "Pad", y, (const char *[]){t3, nm[4], NULL}, y, NULL);
        break;
    }
    default:
        b->oom = 1;
        break; /* INPUT never comes here */
    }
}

static Onnx__ValueInfoProto *value(xb *b, const char *name, int ndim, const int64_t *dims) {
    Onnx__ValueInfoProto *v = xalloc(b, sizeof *v);
    Onnx__TypeProto *t = xalloc(b, sizeof *t);
    Onnx__TypeProto__Tensor *tt = xalloc(b, sizeof *tt);
    Onnx__TensorShapeProto *s = xalloc(b, sizeof *s);
    Onnx__TensorShapeProto__Dimension **dd = xalloc(b, (size_t)ndim * sizeof *dd);
    if (!v || !t || !tt || !s || !dd) return NULL;
    onnx__value_info_proto__init(v), onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt), onnx__tensor_shape_proto__init(s);
    for (int i = 0; i < ndim; i++) {
        dd[i] = xalloc(b, sizeof *dd[i]);
        if (!dd[i]) return NULL;
        onnx__tensor_shape_proto__dimension__init(dd[i]);
        if (i == 0) { /* the batch */
            dd[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dd[i]->dim_param = xstr(b, "N");
        } else {
            dd[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dd[i]->dim_value = dims[i];
        }
    }
    s->n_dim = (size_t)ndim, s->dim = dd;
    tt->has_elem_type = 1, tt->elem_type = OX_FLOAT, tt->shape = s;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, t->tensor_type = tt;
    v->name = xstr(b, name), v->type = t;
    return v;
}

lb_status lb_onnx_export(const lb_net *n, const lb_norm *norm, const char *path) {
    for (int i = 1; i < n->nnodes; i++) /* time steps have no place in an ONNX inference graph */
        if (n->nodes[i].op == LB_OP_ENCODE || n->nodes[i].op == LB_OP_LIF ||
            n->nodes[i].op == LB_OP_LN || n->nodes[i].op == LB_OP_TSUM)
            return lb_error_set(LB_EINVAL,
                                "%s: layer '%s' (%s): a spiking network has no ONNX form; export "
                                "it as C (lowbit export CKPT -o DIR, docs/snn.md)",
                                path, n->nodes[i].name, lb_op_name(n->nodes[i].op));
    xb b;
    memset(&b, 0, sizeof b);
    int *rank = xalloc(&b, (size_t)n->nnodes * sizeof *rank);
    if (rank) rank[0] = 4;
    for (int i = 1; rank && i < n->nnodes && !b.oom; i++) emit(&b, n, i, rank);
    const lb_node *in = &n->nodes[0], *out = &n->nodes[n->nnodes - 1];
    int64_t di[4] = {0, in->c, in->h, in->w};
    Onnx__ValueInfoProto *vi = value(&b, in->name, 4, di);
    Onnx__ValueInfoProto *vo = value(&b, out->name, rank && rank[n->nnodes - 1] == 2 ? 2 : 4,
                                     (int64_t[]){0, out->c, out->h, out->w});
    Onnx__GraphProto g;
    Onnx__ModelProto m;
    Onnx__OperatorSetIdProto op, *ops = &op;
    Onnx__StringStringEntryProto props[2], *pp[2] = {&props[0], &props[1]};
    onnx__graph_proto__init(&g), onnx__model_proto__init(&m),
        onnx__operator_set_id_proto__init(&op);
    g.name = "lowbit";
    g.n_node = (size_t)b.nn, g.node = b.nodes;
    g.n_initializer = (size_t)b.ni, g.initializer = b.inits;
    g.n_input = 1, g.input = &vi;
    g.n_output = 1, g.output = &vo;
    op.domain = "", op.has_version = 1, op.version = 13;
    m.has_ir_version = 1, m.ir_version = 7;
    m.n_opset_import = 1, m.opset_import = &ops;
    m.producer_name = "lowbit";
    m.graph = &g;
    /* the input is the normalized image: the constants travel as metadata (docs/onnx.md) */
    char mean[96], sd[96];
    snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", (double)norm->mean[0], (double)norm->mean[1],
             (double)norm->mean[2]);
    snprintf(sd, sizeof sd, "%.9g,%.9g,%.9g", (double)norm->std[0], (double)norm->std[1],
             (double)norm->std[2]);
    for (int k = 0; k < 2; k++) onnx__string_string_entry_proto__init(&props[k]);
    props[0].key = "lowbit.norm_mean", props[0].value = mean;
    props[1].key = "lowbit.norm_std", props[1].value = sd;
    m.n_metadata_props = 2, m.metadata_props = pp;
    lb_status st = LB_OK;
    uint8_t *buf = NULL;
    size_t sz = 0;
    if (b.oom || !vi || !vo) st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    if (st == LB_OK) {
        sz = onnx__model_proto__get_packed_size(&m);
        if (!(buf = malloc(sz ? sz : 1))) st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    }
    if (st == LB_OK) {
        onnx__model_proto__pack(&m, buf);
        FILE *f = fopen(path, "wb");
        int ok = f && fwrite(buf, 1, sz, f) == sz;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) st = lb_error_set(LB_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    free(buf);
    for (int i = 0; i < b.nmem; i++) free(b.mem[i]);
    free(b.mem);
    return st;
}
