/* The ONNX reader's access to decoded protobuf: the value table, constant tensors (inline, raw or
 * external data) and node attributes. Not the op mapping (onnx_map.c). */
#include "onnx_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lb_status ox_node_err(ox_ctx *c, const Onnx__NodeProto *nd, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = nd->name && nd->name[0] ? nd->name : "(unnamed)";
    return lb_error_set(LB_EINVAL, "%s: node '%.200s' (%.64s): %s", c->file, name,
                        nd->op_type ? nd->op_type : "?", msg);
}

ox_val *ox_find(ox_ctx *c, const char *name) {
    if (!name) return NULL;
    for (int i = c->nv - 1; i >= 0; i--)
        if (strcmp(c->v[i].name, name) == 0) return &c->v[i];
    return NULL;
}

lb_status ox_set(ox_ctx *c, const char *name, int node, const Onnx__TensorProto *tp) {
    if (!name || !name[0]) return LB_OK; /* an unused optional output */
    if (ox_find(c, name))
        return lb_error_set(LB_EFORMAT, "%s: tensor '%.200s' is defined twice", c->file, name);
    if (c->nv == c->vcap) {
        int cap = c->vcap ? 2 * c->vcap : 64;
        ox_val *p = realloc(c->v, (size_t)cap * sizeof *p);
        if (!p) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        c->v = p;
        c->vcap = cap;
    }
    c->v[c->nv++] = (ox_val){name, node, tp};
    return LB_OK;
}

lb_status ox_add_tensor(ox_ctx *c, const char *node, const char *suffix, float *data, size_t n) {
    if (c->nt == c->tcap) {
        int cap = c->tcap ? 2 * c->tcap : 32;
        lb_onnx_tensor *p = realloc(c->t, (size_t)cap * sizeof *p);
        if (!p) {
            free(data);
            return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
        }
        c->t = p;
        c->tcap = cap;
    }
    lb_onnx_tensor *t = &c->t[c->nt++];
    snprintf(t->name, sizeof t->name, "%s.%s", node, suffix);
    t->n = n;
    t->data = data;
    return LB_OK;
}

/* External data: a file next to the model, named relatively and without "..", so that a model
 * cannot make lowbit read files elsewhere. */
static lb_status external(ox_ctx *c, const Onnx__TensorProto *tp, size_t bytes, void *dst) {
    /* dst: bytes + 1 allocated by the caller after external_size said the file holds them */
    const char *loc = NULL;
    long long off = 0, len = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value) continue;
        if (strcmp(e->key, "location") == 0) loc = e->value;
        if (strcmp(e->key, "offset") == 0) off = strtoll(e->value, NULL, 10);
        if (strcmp(e->key, "length") == 0) len = strtoll(e->value, NULL, 10);
    }
    const char *tn = tp->name ? tp->name : "?";
    if (!loc || !loc[0] || loc[0] == '/' || strstr(loc, ".."))
        return lb_error_set(LB_EFORMAT,
                            "%s: tensor '%.200s': external data needs a relative location inside "
                            "the model's directory",
                            c->file, tn);
    if (!c->dir)
        return lb_error_set(LB_EFORMAT,
                            "%s: tensor '%.200s': external data '%.200s' cannot be "
                            "read here (model given in memory)",
                            c->file, tn, loc);
    if (off < 0 || (len >= 0 && (size_t)len != bytes))
        return lb_error_set(LB_EFORMAT,
                            "%s: tensor '%.200s': external data length/offset do "
                            "not match its shape",
                            c->file, tn);
    char path[1100];
    snprintf(path, sizeof path, "%.500s/%.500s", c->dir, loc);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lb_error_set(LB_EIO, "%s: tensor '%.200s': external data file %s: %s", c->file, tn,
                            path, strerror(errno));
    int ok = fseek(f, (long)off, SEEK_SET) == 0 && fread(dst, 1, bytes, f) == bytes;
    fclose(f);
    if (!ok)
        return lb_error_set(LB_EFORMAT,
                            "%s: tensor '%.200s': external data file %s is shorter "
                            "than the tensor (offset %lld, %zu bytes)",
                            c->file, tn, path, off, bytes);
    return LB_OK;
}

/* Whether the data tp names holds `bytes` bytes, before anything that large is allocated (a
 * shape is only a claim; the data must back it). */
static int backed(const Onnx__TensorProto *tp, int type, int ext, size_t n, size_t bytes,
                  const char *dir) {
    if (!ext) {
        if (tp->has_raw_data) return tp->raw_data.len == bytes;
        return type == OX_FLOAT ? tp->n_float_data == n : tp->n_int64_data == n;
    }
    if (!dir) return 1; /* external() refuses it with its own message */
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (e->key && e->value && strcmp(e->key, "length") == 0)
            return strtoull(e->value, NULL, 10) == bytes;
    }
    return bytes <= ((size_t)1 << 31);
}

/* Elements of tp as `type` (4- or 8-byte little-endian), malloc'd (at least 1 byte). */
static lb_status tensor_data(ox_ctx *c, const Onnx__NodeProto *nd, const Onnx__TensorProto *tp,
                             int type, void **out, size_t *count) {
    *out = NULL;
    const char *tn = tp->name && tp->name[0] ? tp->name : "(constant)";
    if (!tp->has_data_type || tp->data_type != type)
        return ox_node_err(c, nd, "tensor '%.200s' has data type %d; lowbit reads %s here", tn,
                           tp->has_data_type ? tp->data_type : 0,
                           type == OX_FLOAT ? "float32 (1)" : "int64 (7)");
    if (tp->segment) return ox_node_err(c, nd, "tensor '%.200s' is segmented", tn);
    size_t n = 1, es = type == OX_FLOAT ? 4 : 8;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0 || tp->dims[i] > (1LL << 31) ||
            (tp->dims[i] && n > ((size_t)1 << 31) / (size_t)tp->dims[i]))
            return lb_error_set(LB_EFORMAT, "%s: tensor '%.200s' has a bad shape", c->file, tn);
        n *= (size_t)tp->dims[i];
    }
    int ext =
        tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (!backed(tp, type, ext, n, n * es, c->dir))
        return lb_error_set(LB_EFORMAT, "%s: tensor '%.200s': data missing or of the wrong size",
                            c->file, tn);
    void *d = malloc(n * es + 1);
    if (!d) return lb_error_set(LB_ENOMEM, "%s: out of memory for tensor '%.200s'", c->file, tn);
    lb_status st = LB_OK;
    if (ext) {
        st = external(c, tp, n * es, d);
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != n * es)
            st = lb_error_set(LB_EFORMAT, "%s: tensor '%.200s': %zu raw bytes for %zu elements",
                              c->file, tn, tp->raw_data.len, n);
        else if (n)
            memcpy(d, tp->raw_data.data, n * es);
    } else if (type == OX_FLOAT && tp->n_float_data == n) {
        if (n) memcpy(d, tp->float_data, n * es); /* empty: the pointer may be NULL */
    } else if (type == OX_INT64 && tp->n_int64_data == n) {
        if (n) memcpy(d, tp->int64_data, n * es);
    } else {
        st = lb_error_set(LB_EFORMAT, "%s: tensor '%.200s': data missing or of the wrong size",
                          c->file, tn);
    }
    if (st != LB_OK) {
        free(d);
        return st;
    }
    *out = d;
    *count = n;
    return LB_OK;
}

static const Onnx__TensorProto *constant(ox_ctx *c, const Onnx__NodeProto *nd, const char *name,
                                         lb_status *st) {
    const ox_val *v = ox_find(c, name);
    *st = LB_OK;
    if (!v || v->node >= 0 || !v->tp) {
        *st = ox_node_err(c, nd,
                          "input '%.200s' must be a constant (an initializer or a Constant "
                          "node)%s",
                          name ? name : "", v ? "" : ", and it is not defined");
        return NULL;
    }
    return v->tp;
}

lb_status ox_const_f(ox_ctx *c, const Onnx__NodeProto *nd, const char *name, float **out, size_t *n,
                     const int64_t **dims, int *ndim) {
    lb_status st;
    const Onnx__TensorProto *tp = constant(c, nd, name, &st);
    if (!tp) return st;
    if (dims) *dims = tp->dims;
    if (ndim) *ndim = (int)tp->n_dims;
    return tensor_data(c, nd, tp, OX_FLOAT, (void **)out, n);
}

lb_status ox_const_i(ox_ctx *c, const Onnx__NodeProto *nd, const char *name, int64_t **out,
                     size_t *n) {
    lb_status st;
    const Onnx__TensorProto *tp = constant(c, nd, name, &st);
    if (!tp) return st;
    return tensor_data(c, nd, tp, OX_INT64, (void **)out, n);
}

const Onnx__AttributeProto *ox_attr(const Onnx__NodeProto *nd, const char *name) {
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (nd->attribute[i]->name && strcmp(nd->attribute[i]->name, name) == 0)
            return nd->attribute[i];
    return NULL;
}

lb_status ox_attrs_only(ox_ctx *c, const Onnx__NodeProto *nd, const char *allowed) {
    for (size_t i = 0; i < nd->n_attribute; i++) {
        const char *a = nd->attribute[i]->name ? nd->attribute[i]->name : "";
        size_t l = strlen(a);
        const char *p = allowed;
        int ok = 0;
        while (l && !ok && (p = strstr(p, a)) != NULL) {
            ok = (p == allowed || p[-1] == ',') && (p[l] == ',' || p[l] == 0);
            p += l;
        }
        if (!ok)
            return ox_node_err(c, nd, "attribute '%.100s' is not supported (lowbit takes: %s)", a,
                               allowed[0] ? allowed : "none");
    }
    return LB_OK;
}
