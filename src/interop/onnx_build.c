/* The ONNX writers' message builder (onnx_build.h): nodes, attributes, initializers and graph
 * values allocated in one list, packed with protobuf-c and written at once. Not any mapping of
 * lowbit's ops (onnx_export.c, onnx_qdq.c, onnx_int.c) and not the reader. */
#include "onnx_build.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *ox_b_alloc(ox_b *b, size_t n) {
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

char *ox_b_str(ox_b *b, const char *s) {
    char *p = ox_b_alloc(b, strlen(s) + 1);
    if (p) memcpy(p, s, strlen(s) + 1);
    return p;
}

const char *ox_b_tmp(ox_b *b, const char *base, const char *what) {
    char t[LB_NAME_MAX + 64];
    snprintf(t, sizeof t, "%s.%s%u", base, what, b->serial++);
    return ox_b_str(b, t);
}

/* Appends p to a growing pointer array. */
static void push(ox_b *b, void ***arr, int *n, int *cap, void *p) {
    if (!p) return;
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        void **q = ox_b_alloc(b, (size_t)c * sizeof *q);
        if (!q) return;
        if (*n) memcpy(q, *arr, (size_t)*n * sizeof *q);
        *arr = q, *cap = c;
    }
    (*arr)[(*n)++] = p;
}

static Onnx__AttributeProto *attr(ox_b *b, const char *name, int type) {
    Onnx__AttributeProto *a = ox_b_alloc(b, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = ox_b_str(b, name);
    a->has_type = 1;
    a->type = type;
    return a;
}

Onnx__AttributeProto *ox_b_attr_i(ox_b *b, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
    return a;
}

Onnx__AttributeProto *ox_b_attr_f(ox_b *b, const char *name, float v) {
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
    return a;
}

Onnx__AttributeProto *ox_b_attr_rep(ox_b *b, const char *name, int64_t v, int n) {
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *x = ox_b_alloc(b, (size_t)(n ? n : 1) * sizeof *x);
    if (!a || !x) return NULL;
    for (int i = 0; i < n; i++) x[i] = v;
    a->n_ints = (size_t)n, a->ints = x;
    return a;
}

Onnx__NodeProto *ox_b_node(ox_b *b, const char *op, const char *name, const char *const *in,
                           const char *out, Onnx__AttributeProto *const *at) {
    Onnx__NodeProto *d = ox_b_alloc(b, sizeof *d);
    char **ins = ox_b_alloc(b, 8 * sizeof *ins), **outs = ox_b_alloc(b, sizeof *outs);
    Onnx__AttributeProto **as = ox_b_alloc(b, 8 * sizeof *as);
    if (!d || !ins || !outs || !as) return NULL;
    onnx__node_proto__init(d);
    d->op_type = ox_b_str(b, op);
    d->name = ox_b_str(b, name);
    for (; in && in[d->n_input] && d->n_input < 8; d->n_input++)
        ins[d->n_input] = ox_b_str(b, in[d->n_input]);
    d->input = ins;
    outs[0] = ox_b_str(b, out);
    d->n_output = 1, d->output = outs;
    for (; at && at[d->n_attribute] && d->n_attribute < 8; d->n_attribute++)
        as[d->n_attribute] = at[d->n_attribute];
    d->attribute = as;
    push(b, (void ***)&b->nodes, &b->nn, &b->cn, d);
    return d;
}

static size_t elem_size(int type) {
    switch (type) {
    case OXT_UINT8:
    case OXT_INT8:
        return 1;
    case OXT_FLOAT:
    case OXT_INT32:
        return 4;
    default:
        return 8;
    }
}

void ox_b_init(ox_b *b, const char *name, const void *data, int type, int ndim,
               const int64_t *dims) {
    Onnx__TensorProto *t = ox_b_alloc(b, sizeof *t);
    int64_t *d = ox_b_alloc(b, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d) return;
    onnx__tensor_proto__init(t);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) d[i] = dims[i], n *= (size_t)dims[i];
    t->n_dims = (size_t)ndim, t->dims = d;
    t->has_data_type = 1, t->data_type = type;
    t->name = ox_b_str(b, name);
    size_t bytes = n * elem_size(type);
    uint8_t *raw = (uint8_t *)(uintptr_t)data;
    if (type != OXT_FLOAT && (raw = ox_b_alloc(b, bytes)) != NULL) memcpy(raw, data, bytes);
    t->has_raw_data = 1, t->raw_data.len = bytes, t->raw_data.data = raw;
    push(b, (void ***)&b->inits, &b->ni, &b->ci, t);
}

void ox_b_i64(ox_b *b, const char *name, const int64_t *v, int64_t n) {
    ox_b_init(b, name, v, OXT_INT64, 1, &n);
}

void ox_b_scalar(ox_b *b, const char *name, int type, double v) {
    union {
        float f;
        uint8_t u8;
        int8_t i8;
        int32_t i32;
        int64_t i64;
        double d;
    } u;
    float *f = NULL;
    switch (type) {
    case OXT_FLOAT: /* borrowed: give it a home in b */
        if ((f = ox_b_alloc(b, sizeof *f)) == NULL) return;
        *f = (float)v;
        ox_b_init(b, name, f, type, 0, NULL);
        return;
    case OXT_UINT8:
        u.u8 = (uint8_t)v;
        break;
    case OXT_INT8:
        u.i8 = (int8_t)v;
        break;
    case OXT_INT32:
        u.i32 = (int32_t)v;
        break;
    case OXT_INT64:
        u.i64 = (int64_t)v;
        break;
    default:
        u.d = v;
        break;
    }
    ox_b_init(b, name, &u, type, 0, NULL);
}

Onnx__ValueInfoProto *ox_b_value(ox_b *b, const char *name, int elem_type, int ndim,
                                 const int64_t *dims) {
    Onnx__ValueInfoProto *v = ox_b_alloc(b, sizeof *v);
    Onnx__TypeProto *t = ox_b_alloc(b, sizeof *t);
    Onnx__TypeProto__Tensor *tt = ox_b_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *s = ox_b_alloc(b, sizeof *s);
    Onnx__TensorShapeProto__Dimension **dd = ox_b_alloc(b, (size_t)ndim * sizeof *dd);
    if (!v || !t || !tt || !s || !dd) return NULL;
    onnx__value_info_proto__init(v), onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt), onnx__tensor_shape_proto__init(s);
    for (int i = 0; i < ndim; i++) {
        dd[i] = ox_b_alloc(b, sizeof *dd[i]);
        if (!dd[i]) return NULL;
        onnx__tensor_shape_proto__dimension__init(dd[i]);
        if (i == 0) { /* the batch */
            dd[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dd[i]->dim_param = ox_b_str(b, "N");
        } else {
            dd[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dd[i]->dim_value = dims[i];
        }
    }
    s->n_dim = (size_t)ndim, s->dim = dd;
    tt->has_elem_type = 1, tt->elem_type = elem_type, tt->shape = s;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, t->tensor_type = tt;
    v->name = ox_b_str(b, name), v->type = t;
    return v;
}

void ox_b_free(ox_b *b) {
    for (int i = 0; i < b->nmem; i++) free(b->mem[i]);
    free(b->mem);
    memset(b, 0, sizeof *b);
}

lb_status ox_b_write(ox_b *b, const char *path, int opset, Onnx__ValueInfoProto *in,
                     Onnx__ValueInfoProto *out, const char *const *meta, int npairs) {
    Onnx__GraphProto g;
    Onnx__ModelProto m;
    Onnx__OperatorSetIdProto op, *ops = &op;
    Onnx__StringStringEntryProto props[4], *pp[4];
    onnx__graph_proto__init(&g), onnx__model_proto__init(&m),
        onnx__operator_set_id_proto__init(&op);
    g.name = "lowbit";
    g.n_node = (size_t)b->nn, g.node = b->nodes;
    g.n_initializer = (size_t)b->ni, g.initializer = b->inits;
    g.n_input = 1, g.input = &in;
    g.n_output = 1, g.output = &out;
    op.domain = "", op.has_version = 1, op.version = opset;
    m.has_ir_version = 1, m.ir_version = 7;
    m.n_opset_import = 1, m.opset_import = &ops;
    m.producer_name = "lowbit";
    m.graph = &g;
    if (npairs > 4) npairs = 4;
    for (int k = 0; k < npairs; k++) {
        onnx__string_string_entry_proto__init(&props[k]);
        props[k].key = (char *)(uintptr_t)meta[2 * k];
        props[k].value = (char *)(uintptr_t)meta[2 * k + 1];
        pp[k] = &props[k];
    }
    m.n_metadata_props = (size_t)npairs, m.metadata_props = pp;
    lb_status st = LB_OK;
    uint8_t *buf = NULL;
    size_t sz = 0;
    if (b->oom || !in || !out) st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    if (st == LB_OK) {
        sz = onnx__model_proto__get_packed_size(&m);
        if (!(buf = malloc(sz ? sz : 1))) st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    }
    if (st == LB_OK) {
        onnx__model_proto__pack(&m, buf);
        /* written beside the path and renamed into place: a file named path is always whole */
        size_t tn = strlen(path) + 32;
        char *tmp = malloc(tn);
        if (!tmp) {
            free(buf);
            ox_b_free(b);
            return lb_error_set(LB_ENOMEM, "%s: out of memory", path);
        }
        snprintf(tmp, tn, "%s.tmp.%ld", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        int ok = f && fwrite(buf, 1, sz, f) == sz;
        if (f && fclose(f) != 0) ok = 0;
        if (ok && rename(tmp, path) != 0) ok = 0;
        if (!ok) {
            st = lb_error_set(LB_EIO, "%s: cannot write: %s", path, strerror(errno));
            remove(tmp);
        }
        free(tmp);
    }
    free(buf);
    ox_b_free(b);
    return st;
}
