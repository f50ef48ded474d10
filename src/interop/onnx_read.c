/* Reading an ONNX file: protobuf decoding, the graph's one input and one output, the walk over
 * its nodes (onnx_map.c), and the result as lowbit's graph description (JSON) plus tensors. Not
 * the network itself (onnx_net.c builds and fills it). */
#include "onnx_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1u << 31) /* protobuf's own limit on a message */

void lb_onnx_free(lb_onnx_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nt; i++) free(m->t[i].data);
    free(m->t);
    free(m->graph);
    free(m);
}

static int is_init(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0) return 1;
    return 0;
}

/* The image input: float32 [N, C, H, W], C 1 or 3, H and W fixed. */
static lb_status input(ox_ctx *c) {
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < c->g->n_input; i++) {
        const Onnx__ValueInfoProto *v = c->g->input[i];
        if (!v->name || is_init(c->g, v->name)) continue;
        if (in)
            return lb_error_set(LB_EINVAL,
                                "%s: the graph has two inputs ('%.100s', '%.100s'); "
                                "lowbit takes one image input",
                                c->file, in->name, v->name);
        in = v;
    }
    if (!in) return lb_error_set(LB_EINVAL, "%s: the graph has no input", c->file);
    const Onnx__TypeProto *t = in->type;
    const Onnx__TensorShapeProto *s =
        t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? t->tensor_type->shape : NULL;
    int d[4] = {0, 0, 0, 0};
    int ok = s && s->n_dim == 4 && t->tensor_type->elem_type == OX_FLOAT;
    for (int i = 1; ok && i < 4; i++) {
        const Onnx__TensorShapeProto__Dimension *x = s->dim[i];
        ok = x->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
             x->dim_value >= 1 && x->dim_value <= 4096;
        if (ok) d[i] = (int)x->dim_value;
    }
    if (!ok || (d[1] != 1 && d[1] != 3))
        return lb_error_set(LB_EINVAL,
                            "%s: input '%.100s' must be float32 [N, C, H, W] with C 1 "
                            "or 3 and fixed H, W (up to 4096)",
                            c->file, in->name);
    int id = ox_new_node(c, LB_OP_INPUT, NULL, -1, -1);
    if (id < 0) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
    c->nodes[id].c = d[1], c->nodes[id].h = d[2], c->nodes[id].w = d[3], c->nodes[id].rank = 4;
    snprintf(c->nodes[id].name, sizeof c->nodes[id].name, "input");
    return ox_set(c, in->name, id, NULL);
}

static void mark(ox_ctx *c, int i) {
    if (i < 0 || c->nodes[i].keep) return;
    c->nodes[i].keep = 1;
    mark(c, c->nodes[i].in[0]);
    mark(c, c->nodes[i].in[1]);
}

static void jnum(cJSON *o, const char *k, double v) {
    cJSON_AddNumberToObject(o, k, v);
}

/* The kept nodes (those the output depends on) in order, numbered from 1 after the input. */
static char *to_json(ox_ctx *c) {
    int *id = calloc((size_t)c->nn, sizeof *id);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "nodes");
    static const char *const names[LB_OP_COUNT] = {"input",    "conv",    "linear",  "bn",  "relu",
                                                   "relu6",    "maxpool", "avgpool", "gap", "add",
                                                   "shortcut", "flatten", "dropout"};
    int k = 1, ok = id && arr;
    for (int i = 1; ok && i < c->nn; i++) {
        const ox_node *d = &c->nodes[i];
        if (!d->keep) continue;
        id[i] = k++;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "op", names[d->op]);
        if (d->op == LB_OP_CONV || d->op == LB_OP_LINEAR || d->op == LB_OP_BN)
            cJSON_AddStringToObject(o, "name", d->name);
        int in[2] = {id[d->in[0]], d->in[1] >= 0 ? id[d->in[1]] : 0};
        cJSON_AddItemToObject(o, "in", cJSON_CreateIntArray(in, d->in[1] >= 0 ? 2 : 1));
        switch (d->op) {
        case LB_OP_CONV:
            jnum(o, "cout", d->cout), jnum(o, "k", d->k), jnum(o, "stride", d->stride);
            jnum(o, "pad", d->pad), jnum(o, "groups", d->groups), jnum(o, "bias", d->bias);
            break;
        case LB_OP_LINEAR:
            jnum(o, "out", d->cout), jnum(o, "bias", d->bias);
            break;
        case LB_OP_MAXPOOL:
        case LB_OP_AVGPOOL:
            jnum(o, "k", d->k), jnum(o, "stride", d->stride), jnum(o, "pad", d->pad);
            break;
        case LB_OP_SHORTCUT:
            jnum(o, "cout", d->cout), jnum(o, "stride", d->sh);
            break;
        case LB_OP_DROPOUT:
            jnum(o, "p", d->p);
            break;
        default:
            break;
        }
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    free(id);
    return s;
}

static lb_status walk(ox_ctx *c, lb_onnx_model *m) {
    lb_status st = LB_OK;
    for (size_t i = 0; i < c->g->n_initializer && st == LB_OK; i++)
        st = ox_set(c, c->g->initializer[i]->name, -1, c->g->initializer[i]);
    if (st == LB_OK) st = input(c);
    for (size_t i = 0; i < c->g->n_node && st == LB_OK; i++) st = ox_map_node(c, c->g->node[i]);
    if (st != LB_OK) return st;
    if (c->g->n_output != 1)
        return lb_error_set(LB_EINVAL,
                            "%s: the graph has %zu outputs; lowbit takes one (the "
                            "logits)",
                            c->file, c->g->n_output);
    const ox_val *o = ox_find(c, c->g->output[0]->name);
    if (!o || o->node < 1 || c->nodes[o->node].rank != 2 || c->nodes[o->node].c < 2)
        return lb_error_set(LB_EINVAL,
                            "%s: output '%.100s' must be computed from the input as "
                            "[N, classes] logits, classes >= 2",
                            c->file, c->g->output[0]->name ? c->g->output[0]->name : "");
    for (int i = 0; i < c->nn; i++)
        if (c->nodes[i].op == LB_OP_SHORTCUT && c->nodes[i].sh != c->nodes[i].sw)
            return lb_error_set(LB_EINVAL,
                                "%s: node '%.200s': subsampling %d x %d: lowbit's "
                                "shortcut takes the same stride on both axes",
                                c->file, c->nodes[i].src, c->nodes[i].sh, c->nodes[i].sw);
    mark(c, o->node);
    m->in_c = c->nodes[0].c, m->in_h = c->nodes[0].h, m->in_w = c->nodes[0].w;
    m->classes = c->nodes[o->node].c;
    if (!(m->graph = to_json(c))) return lb_error_set(LB_ENOMEM, "%s: out of memory", c->file);
    return LB_OK;
}

/* lowbit's export records the normalization its input expects: three numbers each, std > 0. */
static void norm_meta(const Onnx__ModelProto *pm, lb_onnx_model *m) {
    int got = 0;
    for (size_t i = 0; i < pm->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = pm->metadata_props[i];
        if (!e->key || !e->value) continue;
        int mean = strcmp(e->key, "lowbit.norm_mean") == 0,
            sd = strcmp(e->key, "lowbit.norm_std") == 0;
        float *dst = mean ? m->norm.mean : sd ? m->norm.std : NULL;
        if (dst && sscanf(e->value, "%f,%f,%f", &dst[0], &dst[1], &dst[2]) == 3)
            got += mean ? 1 : 2;
    }
    m->norm.set = got == 3;
    for (int i = 0; i < 3 && m->norm.set; i++)
        if (!(m->norm.std[i] > 0) || m->norm.mean[i] != m->norm.mean[i]) m->norm.set = 0;
}

lb_status lb_onnx_read_mem(const void *buf, size_t n, const char *name, const char *dir,
                           lb_onnx_model **out) {
    *out = NULL;
    Onnx__ModelProto *pm = onnx__model_proto__unpack(NULL, n, buf);
    if (!pm)
        return lb_error_set(LB_EFORMAT,
                            "%s: not an ONNX model (the protobuf does not decode: "
                            "truncated or corrupted)",
                            name);
    lb_status st = LB_OK;
    if (!pm->graph) st = lb_error_set(LB_EFORMAT, "%s: ONNX model without a graph", name);
    ox_ctx c;
    memset(&c, 0, sizeof c);
    c.file = name, c.dir = dir, c.g = pm->graph;
    lb_onnx_model *m = calloc(1, sizeof *m);
    if (st == LB_OK && !m) st = lb_error_set(LB_ENOMEM, "%s: out of memory", name);
    if (st == LB_OK) st = walk(&c, m);
    if (st == LB_OK) norm_meta(pm, m);
    if (m)
        m->t = c.t, m->nt = c.nt;
    else {
        for (int i = 0; i < c.nt; i++) free(c.t[i].data);
        free(c.t);
    }
    free(c.v);
    free(c.nodes);
    for (int i = 0; i < c.nowned; i++) free(c.owned[i]);
    free(c.owned);
    onnx__model_proto__free_unpacked(pm, NULL);
    if (st != LB_OK) {
        lb_onnx_free(m);
        return st;
    }
    *out = m;
    return LB_OK;
}

lb_status lb_onnx_read(const char *path, lb_onnx_model **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || (unsigned long)sz > MAX_FILE || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return lb_error_set(LB_EIO, "%s: cannot read (or larger than 2 GiB)", path);
    }
    unsigned char *b = malloc((size_t)sz + 1);
    size_t got = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!b || got != (size_t)sz) {
        free(b);
        return lb_error_set(b ? LB_EIO : LB_ENOMEM, "%s: cannot read", path);
    }
    char dir[600];
    const char *sl = strrchr(path, '/');
    if (sl)
        snprintf(dir, sizeof dir, "%.*s", (int)(sl - path) > 590 ? 590 : (int)(sl - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    if (sl == path) snprintf(dir, sizeof dir, "/");
    lb_status st = lb_onnx_read_mem(b, (size_t)sz, path, dir, out);
    free(b);
    return st;
}
