/* Networks described as data: the "graph" architecture (an imported model) is a JSON list of
 * lowbit nodes that this file turns into lb_net builder calls. It does not read ONNX (that is
 * src/interop/) and it does not hold weights (the checkpoint does). Format: docs/onnx.md. */
#include "lb_models.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static int jint(const cJSON *o, const char *k, int lo, int hi, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi) ||
        x->valuedouble != (double)(int)x->valuedouble)
        return 0;
    *v = (int)x->valuedouble;
    return 1;
}

/* Input ids must name earlier nodes: the list is in topological order by construction. */
static int jin(const cJSON *o, int self, int nin, int in[2]) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "in");
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != nin) return 0;
    in[1] = -1;
    for (int i = 0; i < nin; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble ||
            x->valuedouble < 0 || x->valuedouble >= self)
            return 0;
        in[i] = (int)x->valuedouble;
    }
    return 1;
}

static lb_status bad(const char *what, int i, const char *why) {
    return lb_error_set(LB_EFORMAT, "%s: graph node %d: %s (docs/onnx.md)", what, i, why);
}

/* One node; returns the builder's id (-1 on a builder error, which n->err records). */
static lb_status node(lb_net *n, const cJSON *o, int id, const char *what) {
    const cJSON *jop = cJSON_GetObjectItemCaseSensitive(o, "op");
    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(jop)) return bad(what, id, "no \"op\"");
    const char *op = jop->valuestring;
    const char *name = cJSON_IsString(jname) ? jname->valuestring : NULL;
    if (name && strlen(name) >= LB_NAME_MAX) return bad(what, id, "name too long");
    int in[2], a = 0, b = 0, c = 0, d = 0, e = 0, r;
    const int big = 1 << 24;
    int two = strcmp(op, "add") == 0;
    if (!jin(o, id, two ? 2 : 1, in)) return bad(what, id, "bad \"in\"");
    if (strcmp(op, "conv") == 0) {
        if (!name || !jint(o, "cout", 1, big, &a) || !jint(o, "k", 1, 64, &b) ||
            !jint(o, "stride", 1, 64, &c) || !jint(o, "pad", 0, 64, &d) ||
            !jint(o, "groups", 1, big, &e) || !jint(o, "bias", 0, 1, &r))
            return bad(what, id, "conv needs name, cout, k, stride, pad, groups, bias");
        r = lb_net_conv(n, name, in[0], a, b, c, d, e, r);
    } else if (strcmp(op, "linear") == 0) {
        if (!name || !jint(o, "out", 1, big, &a) || !jint(o, "bias", 0, 1, &b))
            return bad(what, id, "linear needs name, out, bias");
        r = lb_net_linear(n, name, in[0], a, b);
    } else if (strcmp(op, "bn") == 0) {
        if (!name) return bad(what, id, "bn needs a name");
        r = lb_net_bn(n, name, in[0]);
    } else if (strcmp(op, "relu") == 0 || strcmp(op, "relu6") == 0 || strcmp(op, "flatten") == 0) {
        lb_op k = op[0] == 'f' ? LB_OP_FLATTEN : op[4] == '6' ? LB_OP_RELU6 : LB_OP_RELU;
        r = lb_net_act(n, k, in[0]);
    } else if (strcmp(op, "maxpool") == 0 || strcmp(op, "avgpool") == 0) {
        if (!jint(o, "k", 1, 64, &a) || !jint(o, "stride", 1, 64, &b) || !jint(o, "pad", 0, 64, &c))
            return bad(what, id, "pool needs k, stride, pad");
        r = lb_net_pool(n, op[0] == 'm' ? LB_OP_MAXPOOL : LB_OP_AVGPOOL, in[0], a, b, c);
    } else if (strcmp(op, "gap") == 0) {
        r = lb_net_gap(n, in[0]);
    } else if (two) {
        r = lb_net_add(n, in[0], in[1]);
    } else if (strcmp(op, "shortcut") == 0) {
        if (!jint(o, "cout", 1, big, &a) || !jint(o, "stride", 1, 64, &b))
            return bad(what, id, "shortcut needs cout, stride");
        r = lb_net_shortcut(n, in[0], a, b);
    } else if (strcmp(op, "dropout") == 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "p");
        if (!cJSON_IsNumber(p)) return bad(what, id, "dropout needs p");
        r = lb_net_dropout(n, in[0], (float)p->valuedouble);
    } else {
        return bad(what, id, "unknown op");
    }
    if (r < 0)
        return n->err != LB_OK ? lb_error_set(n->err, "%s: %s", what, lb_error_msg())
                               : bad(what, id, "cannot be built");
    if (r != id) return bad(what, id, "node ids out of step");
    return LB_OK;
}

lb_status lb_graph_build(const char *json, const char *what, lb_net *n) {
    cJSON *root = cJSON_Parse(json);
    const cJSON *nodes = root ? cJSON_GetObjectItemCaseSensitive(root, "nodes") : NULL;
    lb_status st = LB_OK;
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) < 1)
        st = lb_error_set(LB_EFORMAT, "%s: graph is not {\"nodes\": [...]} (docs/onnx.md)", what);
    int id = 1;
    for (const cJSON *o = nodes ? nodes->child : NULL; o && st == LB_OK; o = o->next, id++)
        st = node(n, o, id, what);
    cJSON_Delete(root);
    return st;
}
