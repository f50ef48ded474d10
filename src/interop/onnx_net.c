/* An imported ONNX model as a lowbit model: its configuration (arch "graph") and its tensors
 * copied into a planned network. Not the reading (onnx_read.c). */
#include "lb_onnx.h"

#include <stdio.h>
#include <string.h>

lb_status lb_onnx_model_cfg(const lb_onnx_model *m, const lb_norm *norm, lb_model_cfg *cfg) {
    lb_model_cfg_default(cfg);
    snprintf(cfg->arch, sizeof cfg->arch, "graph");
    cfg->in_c = m->in_c, cfg->in_h = m->in_h, cfg->in_w = m->in_w, cfg->classes = m->classes;
    if (strlen(m->graph) >= sizeof cfg->graph)
        return lb_error_set(LB_EINVAL,
                            "imported graph too large (%zu bytes of description, "
                            "lowbit holds %d)",
                            strlen(m->graph), LB_GRAPH_MAX - 1);
    memcpy(cfg->graph, m->graph, strlen(m->graph) + 1);
    /* pixel/255 unless told: PyTorch users normalize in their data pipeline, if at all */
    cfg->norm.set = 1;
    for (int i = 0; i < 3; i++) cfg->norm.mean[i] = 0, cfg->norm.std[i] = 1;
    if (m->norm.set) cfg->norm = m->norm;
    if (norm && norm->set) cfg->norm = *norm;
    return lb_norm_check(&cfg->norm, "--mean/--std");
}

static const lb_onnx_tensor *find(const lb_onnx_model *m, const char *name) {
    for (int i = 0; i < m->nt; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

static lb_status copy(const lb_onnx_model *m, const char *path, const lb_tensor_info *ti,
                      float *dst) {
    const lb_onnx_tensor *t = find(m, ti->name);
    if (!t || t->n != ti->n)
        return lb_error_set(LB_ESHAPE, "%s: tensor '%s' %s", path, ti->name,
                            t ? "has the wrong size" : "missing from the import");
    memcpy(dst, t->data, t->n * sizeof *dst);
    return LB_OK;
}

lb_status lb_onnx_load_weights(const lb_onnx_model *m, const char *path, lb_net *n) {
    lb_status st = LB_OK;
    for (int i = 0; i < n->nparams && st == LB_OK; i++)
        if (n->params[i].group != LB_GROUP_QUANT && n->params[i].group != LB_GROUP_LEVELS)
            st = copy(m, path, &n->params[i], n->param + n->params[i].off);
    for (int i = 0; i < n->nstates && st == LB_OK; i++)
        if (strstr(n->states[i].name, ".running_"))
            st = copy(m, path, &n->states[i], n->state + n->states[i].off);
    return st;
}
