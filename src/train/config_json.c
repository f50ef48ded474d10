/* Model and training configurations to and from the JSON kept in checkpoint metadata. */
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *lb_model_cfg_to_json(const lb_model_cfg *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", m->arch);
    cJSON_AddNumberToObject(o, "in_c", m->in_c);
    cJSON_AddNumberToObject(o, "in_h", m->in_h);
    cJSON_AddNumberToObject(o, "in_w", m->in_w);
    cJSON_AddNumberToObject(o, "classes", m->classes);
    cJSON_AddStringToObject(o, "quant", lb_qkind_name(m->q.kind));
    cJSON_AddNumberToObject(o, "wbits", m->q.wbits);
    cJSON_AddNumberToObject(o, "abits", m->q.abits);
    cJSON_AddNumberToObject(o, "first_bits", m->q.first_bits);
    cJSON_AddNumberToObject(o, "last_bits", m->q.last_bits);
    cJSON_AddNumberToObject(o, "per_channel", m->q.per_channel);
    cJSON_AddStringToObject(o, "layer_bits", m->q.overrides);
    if (m->q.kind == LB_Q_REG) { /* only then: other checkpoints keep their metadata unchanged */
        cJSON_AddStringToObject(o, "reg_levels", lb_reg_levels_name(m->q.reg_levels));
        cJSON_AddStringToObject(o, "reg_form", lb_reg_form_name(m->q.reg_form));
        cJSON_AddNumberToObject(o, "reg_lambda0", m->q.reg_lambda0);
        cJSON_AddNumberToObject(o, "reg_lambda_max", m->q.reg_lambda_max);
        cJSON_AddNumberToObject(o, "reg_ramp", m->q.reg_ramp);
    }
    if (m->norm.set) {
        /* cJSON prints doubles so that they parse back exactly; a float survives the trip, so
         * a resumed run normalizes bit for bit as the first one did */
        cJSON_AddItemToObject(o, "norm_mean", cJSON_CreateFloatArray(m->norm.mean, 3));
        cJSON_AddItemToObject(o, "norm_std", cJSON_CreateFloatArray(m->norm.std, 3));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int get_int(const cJSON *o, const char *k, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return 0;
    *v = x->valueint;
    return 1;
}

static int get_num(const cJSON *o, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return 0;
    *v = x->valuedouble;
    return 1;
}

static int get_str(const cJSON *o, const char *k, char *dst, size_t n) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(x) || strlen(x->valuestring) >= n) return 0;
    snprintf(dst, n, "%s", x->valuestring);
    return 1;
}

/* An array of exactly 3 numbers into dst; 0 otherwise. */
static int get_float3(const cJSON *o, const char *k, float dst[3]) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) return 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x)) return 0;
        dst[i] = (float)x->valuedouble;
    }
    return 1;
}

/* norm_mean/norm_std: both absent in checkpoints written before the normalization was recorded
 * (norm stays unset; evaluation then falls back to lb_dataset_norm of its data), else both
 * arrays of 3 numbers, finite, std > 0 (checked as floats: 1e300 would become inf). */
static lb_status get_norm(const cJSON *o, const char *path, lb_norm *n) {
    memset(n, 0, sizeof *n);
    int hm = cJSON_GetObjectItemCaseSensitive(o, "norm_mean") != NULL,
        hs = cJSON_GetObjectItemCaseSensitive(o, "norm_std") != NULL;
    if (!hm && !hs) return LB_OK;
    if (!get_float3(o, "norm_mean", n->mean) || !get_float3(o, "norm_std", n->std))
        return lb_error_set(LB_EFORMAT,
                            "%s: metadata lowbit.model: norm_mean and norm_std must both be "
                            "arrays of 3 numbers",
                            path);
    n->set = 1;
    char what[600];
    snprintf(what, sizeof what, "%.500s: metadata lowbit.model", path);
    if (lb_norm_check(n, what) != LB_OK) {
        memset(n, 0, sizeof *n);
        return LB_EFORMAT; /* the message names the file, channel and values */
    }
    return LB_OK;
}

/* The reg options: all five present (a reg model's checkpoint) or none (the defaults). */
static lb_status get_reg(const cJSON *o, const char *path, lb_quant_plan *q) {
    if (!cJSON_GetObjectItemCaseSensitive(o, "reg_levels")) return LB_OK;
    char lv[16], fm[16];
    double v[3];
    if (!get_str(o, "reg_levels", lv, sizeof lv) || !get_str(o, "reg_form", fm, sizeof fm) ||
        !get_num(o, "reg_lambda0", &v[0]) || !get_num(o, "reg_lambda_max", &v[1]) ||
        !get_num(o, "reg_ramp", &v[2]) || lb_reg_levels_parse(lv, &q->reg_levels) != LB_OK ||
        lb_reg_form_parse(fm, &q->reg_form) != LB_OK)
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.model: bad or missing reg_* field",
                            path);
    q->reg_lambda0 = (float)v[0];
    q->reg_lambda_max = (float)v[1];
    q->reg_ramp = (float)v[2];
    return LB_OK;
}

lb_status lb_model_cfg_from_json(const char *js, const char *path, lb_model_cfg *m) {
    cJSON *o = cJSON_Parse(js);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.model is not a JSON object", path);
    }
    lb_model_cfg_default(m);
    char qk[16];
    int ok = get_str(o, "arch", m->arch, sizeof m->arch) && get_int(o, "in_c", &m->in_c) &&
             get_int(o, "in_h", &m->in_h) && get_int(o, "in_w", &m->in_w) &&
             get_int(o, "classes", &m->classes) && get_str(o, "quant", qk, sizeof qk) &&
             get_int(o, "wbits", &m->q.wbits) && get_int(o, "abits", &m->q.abits) &&
             get_int(o, "first_bits", &m->q.first_bits) &&
             get_int(o, "last_bits", &m->q.last_bits) &&
             get_int(o, "per_channel", &m->q.per_channel) &&
             get_str(o, "layer_bits", m->q.overrides, sizeof m->q.overrides);
    lb_status nst = ok ? get_norm(o, path, &m->norm) : LB_OK;
    if (nst == LB_OK && ok) nst = get_reg(o, path, &m->q);
    cJSON_Delete(o);
    if (nst != LB_OK) return nst;
    if (!ok)
        return lb_error_set(LB_EFORMAT,
                            "%s: metadata lowbit.model lacks a field or has one "
                            "of the wrong type",
                            path);
    if (lb_qkind_parse(qk, &m->q.kind) != LB_OK)
        return lb_error_set(LB_EFORMAT, "%s: unknown quantizer '%s' in lowbit.model", path, qk);
    return LB_OK;
}

char *lb_train_cfg_to_json(const lb_train_cfg *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epochs", c->epochs);
    cJSON_AddNumberToObject(o, "batch", c->batch);
    cJSON_AddNumberToObject(o, "train_limit", c->train_limit);
    cJSON_AddNumberToObject(o, "test_limit", c->test_limit);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "optimizer", c->opt.kind);
    cJSON_AddNumberToObject(o, "momentum", c->opt.momentum);
    cJSON_AddNumberToObject(o, "nesterov", c->opt.nesterov);
    cJSON_AddNumberToObject(o, "weight_decay", c->opt.weight_decay);
    cJSON_AddNumberToObject(o, "beta1", c->opt.beta1);
    cJSON_AddNumberToObject(o, "beta2", c->opt.beta2);
    cJSON_AddNumberToObject(o, "eps", c->opt.eps);
    cJSON_AddNumberToObject(o, "sched", c->sched.kind);
    cJSON_AddNumberToObject(o, "lr", c->sched.base);
    cJSON_AddNumberToObject(o, "warmup_epochs", c->warmup_epochs);
    cJSON_AddNumberToObject(o, "warmup_start", c->sched.warmup_start);
    cJSON_AddNumberToObject(o, "final_lr", c->sched.final);
    cJSON_AddNumberToObject(o, "gamma", c->sched.gamma);
    cJSON_AddNumberToObject(o, "step_every", (double)c->sched.step_every);
    cJSON_AddNumberToObject(o, "qlr_scale", c->qlr_scale);
    cJSON_AddNumberToObject(o, "label_smoothing", c->label_smoothing);
    cJSON_AddNumberToObject(o, "crop_pad", c->aug.crop_pad);
    cJSON_AddNumberToObject(o, "hflip", c->aug.hflip);
    /* only reg runs have learned levels: other checkpoints keep their metadata unchanged */
    if (c->model.q.kind == LB_Q_REG) cJSON_AddNumberToObject(o, "levels_lr", c->levels_lr);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

lb_status lb_train_cfg_from_json(const char *js, const char *path, lb_train_cfg *c) {
    cJSON *o = cJSON_Parse(js);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.train is not a JSON object", path);
    }
    double v[16];
    int kind = 0, sk = 0, nest = 0, crop = 0, flip = 0;
    char seed[32];
    int ok = get_int(o, "epochs", &c->epochs) && get_int(o, "batch", &c->batch) &&
             get_int(o, "train_limit", &c->train_limit) &&
             get_int(o, "test_limit", &c->test_limit) && get_str(o, "seed", seed, sizeof seed) &&
             get_int(o, "optimizer", &kind) && get_num(o, "momentum", &v[0]) &&
             get_int(o, "nesterov", &nest) && get_num(o, "weight_decay", &v[1]) &&
             get_num(o, "beta1", &v[2]) && get_num(o, "beta2", &v[3]) && get_num(o, "eps", &v[4]) &&
             get_int(o, "sched", &sk) && get_num(o, "lr", &v[5]) &&
             get_num(o, "warmup_epochs", &v[6]) && get_num(o, "warmup_start", &v[7]) &&
             get_num(o, "final_lr", &v[8]) && get_num(o, "gamma", &v[9]) &&
             get_num(o, "step_every", &v[10]) && get_num(o, "qlr_scale", &v[11]) &&
             get_num(o, "label_smoothing", &v[12]) && get_int(o, "crop_pad", &crop) &&
             get_int(o, "hflip", &flip);
    double llr = LB_LEVELS_LR; /* absent in checkpoints of other kinds */
    if (ok && cJSON_GetObjectItemCaseSensitive(o, "levels_lr")) ok = get_num(o, "levels_lr", &llr);
    cJSON_Delete(o);
    if (!ok || kind < 0 || kind > LB_OPT_ADAMW || sk < 0 || sk > LB_SCHED_STEP)
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.train lacks a field or has a bad one",
                            path);
    c->seed = strtoull(seed, NULL, 10);
    c->opt.kind = (lb_opt_kind)kind;
    c->opt.momentum = (float)v[0];
    c->opt.nesterov = nest;
    c->opt.weight_decay = (float)v[1];
    c->opt.beta1 = (float)v[2];
    c->opt.beta2 = (float)v[3];
    c->opt.eps = (float)v[4];
    c->sched.kind = (lb_sched_kind)sk;
    c->sched.base = (float)v[5];
    c->warmup_epochs = (float)v[6];
    c->sched.warmup_start = (float)v[7];
    c->sched.final = (float)v[8];
    c->sched.gamma = (float)v[9];
    c->sched.step_every = (long)v[10];
    c->qlr_scale = (float)v[11];
    c->label_smoothing = (float)v[12];
    c->aug.crop_pad = crop;
    c->aug.hflip = flip;
    c->levels_lr = (float)llr;
    return LB_OK;
}
