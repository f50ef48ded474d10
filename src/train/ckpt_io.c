/* Maps a network, its optimizer state and the run's position onto a safetensors checkpoint and
 * back, validating that the file fits the model. The file format itself is lb_ckpt's. */
#include "train_internal.h"
#include "lb_ckpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION "1"

static void fill(lb_st_tensor *t, const char *name, const lb_tensor_info *ti, const float *data) {
    t->name = name;
    t->dtype = LB_F32;
    t->ndim = ti->ndim;
    for (int i = 0; i < ti->ndim; i++) t->shape[i] = ti->shape[i];
    t->data = data;
}

lb_status lb_ckpt_save(const char *path, const lb_net *n, const lb_optim *o,
                       const lb_ckpt_info *info) {
    int nopt = o ? (o->cfg.kind == LB_OPT_ADAMW ? 2 : 1) : 0;
    int nt = n->nparams + n->nstates + nopt * n->nparams;
    lb_st_tensor *t = calloc((size_t)nt + 1, sizeof *t);
    char(*names)[LB_NAME_MAX + 32] = calloc((size_t)nt + 1, sizeof *names);
    char *mj = lb_model_cfg_to_json(&info->model), *tj = lb_train_cfg_to_json(&info->train);
    lb_status st = LB_OK;
    if (!t || !names || !mj || !tj) {
        st = lb_error_set(LB_ENOMEM, "%s: out of memory preparing checkpoint", path);
        goto out;
    }
    int k = 0;
    for (int i = 0; i < n->nparams; i++) {
        snprintf(names[k], sizeof names[k], "%s", n->params[i].name);
        fill(&t[k], names[k], &n->params[i], n->param + n->params[i].off);
        k++;
    }
    for (int i = 0; i < n->nstates; i++) {
        snprintf(names[k], sizeof names[k], "%s", n->states[i].name);
        fill(&t[k], names[k], &n->states[i], n->state + n->states[i].off);
        k++;
    }
    for (int j = 0; j < nopt; j++)
        for (int i = 0; i < n->nparams; i++) {
            snprintf(names[k], sizeof names[k], "optim.%c.%s", j ? 'v' : 'm', n->params[i].name);
            fill(&t[k], names[k], &n->params[i], o->state + (size_t)j * o->n + n->params[i].off);
            k++;
        }
    char epoch[32], step[32], ot[32], rng[80], acc[32];
    snprintf(epoch, sizeof epoch, "%d", info->epoch);
    snprintf(step, sizeof step, "%ld", info->step);
    snprintf(ot, sizeof ot, "%ld", o ? o->t : 0L);
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, n->rng.s[0],
             n->rng.s[1], n->rng.s[2], n->rng.s[3]);
    snprintf(acc, sizeof acc, "%.6f", info->test_acc);
    lb_st_meta meta[] = {{"lowbit.format", FORMAT_VERSION},
                         {"lowbit.model", mj},
                         {"lowbit.train", tj},
                         {"lowbit.epoch", epoch},
                         {"lowbit.step", step},
                         {"lowbit.optim_t", ot},
                         {"lowbit.rng", rng},
                         {"lowbit.test_acc", acc}};
    int nmeta = (int)(sizeof meta / sizeof meta[0]);
    if (info->weights_only) { /* e.g. an import: format and model only (docs/checkpoint.md) */
        meta[2] = meta[nmeta - 1];
        nmeta = 3;
    }
    char *dj = lb_ckpt_data_json(info); /* image folders only: other files stay as they were */
    if (info->class_names && !dj) {
        st = lb_error_set(LB_ENOMEM, "%s: out of memory preparing checkpoint", path);
        goto out;
    }
    lb_st_meta *all = calloc((size_t)nmeta + 3, sizeof *all); /* + data, adaqat, graph */
    if (!all) {
        free(dj);
        st = lb_error_set(LB_ENOMEM, "%s: out of memory preparing checkpoint", path);
        goto out;
    }
    memcpy(all, meta, (size_t)nmeta * sizeof *meta);
    if (dj) all[nmeta++] = (lb_st_meta){"lowbit.data", dj};
    if (info->adaqat_json) all[nmeta++] = (lb_st_meta){"lowbit.adaqat", info->adaqat_json};
    if (strcmp(info->model.arch, "graph") == 0) /* an imported graph: docs/onnx.md */
        all[nmeta++] = (lb_st_meta){"lowbit.graph", info->model.graph};
    st = lb_st_write(path, t, k, all, nmeta);
    free(all);
    free(dj);
out:
    free(t);
    free(names);
    free(mj);
    free(tj);
    return st;
}

static lb_status need_meta(const lb_st_file *f, const char *path, const char *key, const char **v) {
    *v = lb_st_meta_get(f, key);
    if (!*v)
        return lb_error_set(LB_EFORMAT, "%s: not a lowbit checkpoint (no metadata %s)", path, key);
    return LB_OK;
}

static lb_status read_info(const lb_st_file *f, const char *path, lb_ckpt_info *info) {
    const char *v;
    lb_status st;
    memset(info, 0, sizeof *info);
    if ((st = need_meta(f, path, "lowbit.format", &v)) != LB_OK) return st;
    if (strcmp(v, FORMAT_VERSION) != 0)
        return lb_error_set(LB_EFORMAT, "%s: checkpoint format %s, this lowbit reads %s", path, v,
                            FORMAT_VERSION);
    if ((st = need_meta(f, path, "lowbit.model", &v)) != LB_OK) return st;
    if ((st = lb_model_cfg_from_json(v, path, &info->model)) != LB_OK) return st;
    if (strcmp(info->model.arch, "graph") == 0) { /* the network itself (docs/onnx.md) */
        const char *g = lb_st_meta_get(f, "lowbit.graph");
        if (!g || strlen(g) >= sizeof info->model.graph)
            return lb_error_set(LB_EFORMAT, "%s: model 'graph' needs metadata lowbit.graph (%s)",
                                path, g ? "too long" : "missing");
        memcpy(info->model.graph, g, strlen(g) + 1);
    }
    lb_train_cfg_default(&info->train);
    info->train.model = info->model;
    /* Training state is lowbit.train + lowbit.epoch + lowbit.step (+ lowbit.rng and the optim.*
     * tensors, checked when resuming). A file lacking any of the three is weights-only (e.g.
     * written from PyTorch): absent training fields keep their defaults, epoch and step are 0,
     * and it cannot be resumed. Present fields must be valid either way. */
    const char *tj = lb_st_meta_get(f, "lowbit.train"), *ej = lb_st_meta_get(f, "lowbit.epoch"),
               *sj = lb_st_meta_get(f, "lowbit.step");
    info->weights_only = !tj || !ej || !sj;
    if (tj && (st = lb_train_cfg_from_json(tj, path, &info->train)) != LB_OK) return st;
    char *end;
    if (ej) {
        long e = strtol(ej, &end, 10);
        if (!*ej || *end || e < 0 || e > 1000000000L)
            return lb_error_set(LB_EFORMAT,
                                "%s: metadata lowbit.epoch is '%s', not a non-negative integer "
                                "string",
                                path, ej);
        info->epoch = (int)e;
    }
    if (sj) {
        info->step = strtol(sj, &end, 10);
        if (!*sj || *end || info->step < 0)
            return lb_error_set(LB_EFORMAT,
                                "%s: metadata lowbit.step is '%s', not a non-negative integer "
                                "string",
                                path, sj);
    }
    v = lb_st_meta_get(f, "lowbit.test_acc");
    info->test_acc = v ? strtof(v, NULL) : 0;
    return lb_ckpt_data_read(f, path, info);
}

lb_status lb_ckpt_peek(const char *path, lb_ckpt_info *info) {
    lb_st_file *f;
    lb_status st = lb_st_read(path, &f);
    if (st != LB_OK) return st;
    st = read_info(f, path, info);
    lb_st_free(f);
    return st;
}

static lb_status load_tensor(const lb_st_file *f, const char *path, const char *name,
                             const lb_tensor_info *ti, float *dst) {
    const lb_st_tensor *t = lb_st_find(f, name);
    if (!t)
        return lb_error_set(LB_ESHAPE,
                            "%s: tensor '%s' missing: checkpoint does not fit the "
                            "model",
                            path, name);
    int ok = t->dtype == LB_F32 && t->ndim == ti->ndim;
    for (int i = 0; ok && i < ti->ndim; i++) ok = t->shape[i] == ti->shape[i];
    if (!ok) {
        char want[64] = "", got[64] = "";
        for (int i = 0; i < ti->ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? "," : "",
                     ti->shape[i]);
        for (int i = 0; i < t->ndim && i < LB_ST_MAXDIM; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        return lb_error_set(LB_ESHAPE, "%s: tensor '%s' has shape [%s]%s, the model needs F32 [%s]",
                            path, name, got, t->dtype == LB_F32 ? "" : " (not F32)", want);
    }
    memcpy(dst, t->data, ti->n * sizeof(float));
    return LB_OK;
}

lb_status lb_ckpt_load(const char *path, lb_net *n, lb_optim *o, lb_ckpt_info *info) {
    lb_st_file *f;
    lb_status st = lb_st_read(path, &f);
    if (st != LB_OK) return st;
    lb_ckpt_info tmp;
    if (!info) info = &tmp;
    if ((st = read_info(f, path, info)) != LB_OK) goto out;
    for (int i = 0; i < n->nparams && st == LB_OK; i++)
        st = load_tensor(f, path, n->params[i].name, &n->params[i], n->param + n->params[i].off);
    for (int i = 0; i < n->nstates && st == LB_OK; i++)
        st = load_tensor(f, path, n->states[i].name, &n->states[i], n->state + n->states[i].off);
    int nopt = 0;
    if (o && st == LB_OK && info->weights_only)
        st = lb_error_set(LB_EFORMAT,
                          "%s: weights-only checkpoint (lowbit.train, lowbit.epoch or lowbit.step "
                          "missing): it cannot be resumed; start a run from it with --init",
                          path);
    if (o && st == LB_OK) {
        nopt = o->cfg.kind == LB_OPT_ADAMW ? 2 : 1;
        char name[LB_NAME_MAX + 32];
        for (int j = 0; j < nopt && st == LB_OK; j++)
            for (int i = 0; i < n->nparams && st == LB_OK; i++) {
                snprintf(name, sizeof name, "optim.%c.%s", j ? 'v' : 'm', n->params[i].name);
                st = load_tensor(f, path, name, &n->params[i],
                                 o->state + (size_t)j * o->n + n->params[i].off);
            }
        const char *v = lb_st_meta_get(f, "lowbit.optim_t");
        o->t = v ? strtol(v, NULL, 10) : 0;
    }
    if (st == LB_OK) {
        /* Tensors the model does not have mean the file is for another model. */
        for (int i = 0; i < lb_st_count(f); i++) {
            const char *nm = lb_st_get(f, i)->name;
            if (lb_net_find_param(n, nm) >= 0 || lb_net_find_state(n, nm) >= 0) continue;
            if (strncmp(nm, "optim.", 6) == 0) continue;
            st = lb_error_set(LB_ESHAPE,
                              "%s: tensor '%s' is not part of the model: checkpoint "
                              "does not fit the model",
                              path, nm);
            break;
        }
    }
    if (st == LB_OK) st = lb_net_reg_check(n, path); /* levels a damaged file could carry */
    /* sliced quantizers: their grid bounds follow the loaded (d, xmax) */
    for (int i = 1; i < n->nnodes && st == LB_OK; i++) {
        char what[LB_NAME_MAX + 64];
        snprintf(what, sizeof what, "%s: layer '%s' weights", path, n->nodes[i].name);
        st = lb_quant_sliced_sync(&n->nodes[i].wq, what);
        snprintf(what, sizeof what, "%s: layer '%s' activations", path, n->nodes[i].name);
        if (st == LB_OK) st = lb_quant_sliced_sync(&n->nodes[i].aq, what);
    }
    if (st == LB_OK) {
        /* the dropout RNG matters only to a resumed run: optional for evaluation */
        const char *v = lb_st_meta_get(f, "lowbit.rng");
        unsigned long long s[4];
        if (v && strlen(v) == 64 &&
            sscanf(v, "%16llx%16llx%16llx%16llx", &s[0], &s[1], &s[2], &s[3]) == 4)
            for (int i = 0; i < 4; i++) n->rng.s[i] = s[i];
        else if (v || o)
            st = lb_error_set(LB_EFORMAT,
                              "%s: metadata lowbit.rng is %s (resuming needs the 64 hex digits "
                              "lowbit writes)",
                              path, v ? "malformed" : "missing");
    }
out:
    lb_st_free(f);
    return st;
}

lb_status lb_ckpt_load_weights(const char *path, lb_net *n) {
    lb_st_file *f;
    lb_status st = lb_st_read(path, &f);
    if (st != LB_OK) return st;
    lb_ckpt_info info;
    if ((st = read_info(f, path, &info)) != LB_OK) goto out;
    /* weights, biases, BN affine and running statistics; quantizer tensors keep their defaults
     * so they initialize from data on the first batch */
    for (int i = 0; i < n->nparams && st == LB_OK; i++)
        if (n->params[i].group != LB_GROUP_QUANT && n->params[i].group != LB_GROUP_LEVELS)
            st =
                load_tensor(f, path, n->params[i].name, &n->params[i], n->param + n->params[i].off);
    for (int i = 0; i < n->nstates && st == LB_OK; i++)
        if (strstr(n->states[i].name, ".running_"))
            st =
                load_tensor(f, path, n->states[i].name, &n->states[i], n->state + n->states[i].off);
out:
    lb_st_free(f);
    return st;
}

lb_status lb_ckpt_meta(const char *path, const char *key, char **value) {
    *value = NULL;
    lb_st_file *f;
    lb_status st = lb_st_read(path, &f);
    if (st != LB_OK) return st;
    const char *v = lb_st_meta_get(f, key);
    if (v && !(*value = strdup(v))) st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    lb_st_free(f);
    return st;
}

lb_status lb_ckpt_check_started(const char *path, const lb_ckpt_info *info) {
    long d = info->train.quant_delay;
    if (info->weights_only || !lb_in_float_phase(d, info->step)) return LB_OK;
    return lb_error_set(LB_EINVAL,
                        "%s: saved in its float phase (step %ld of --quant-delay's %ld): its "
                        "quantizers have not started yet, so there is no quantized model to "
                        "use; continue it with lowbit train --resume %s, or start a run from its "
                        "weights with --init",
                        path, info->step, d, path);
}

lb_status lb_ckpt_open_model(const char *path, int max_batch, int threads, lb_net **out,
                             lb_ckpt_info *info) {
    *out = NULL;
    lb_status st = lb_ckpt_peek(path, info);
    if (st == LB_OK) st = lb_ckpt_check_started(path, info);
    if (st != LB_OK) return st;
    lb_net *n;
    st = lb_model_build(&info->model, &n);
    if (st != LB_OK) return lb_error_set(st, "%s: %s", path, lb_error_msg());
    st = lb_net_plan(n, max_batch, threads);
    if (st == LB_OK) st = lb_ckpt_load(path, n, NULL, info);
    if (st != LB_OK) {
        lb_net_free(n);
        return st;
    }
    *out = n;
    return LB_OK;
}
