/* Model and training configurations to and from the JSON kept in checkpoint metadata. */
#include "train_internal.h"
#include "lb_adaqat.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
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
    if (m->width_mult != 1.0f) /* only then: older readers and checkpoints see no change */
        cJSON_AddNumberToObject(o, "width_mult", m->width_mult);
    cJSON_AddStringToObject(o, "quant", lb_qkind_name(m->q.kind));
    cJSON_AddNumberToObject(o, "wbits", m->q.wbits);
    cJSON_AddNumberToObject(o, "abits", m->q.abits);
    cJSON_AddNumberToObject(o, "first_bits", m->q.first_bits);
    cJSON_AddNumberToObject(o, "last_bits", m->q.last_bits);
    cJSON_AddNumberToObject(o, "per_channel", m->q.per_channel);
    cJSON_AddStringToObject(o, "layer_bits", m->q.overrides);
    /* only when chosen apart from --quant: other checkpoints keep their metadata unchanged */
    if (m->q.wquant)
        cJSON_AddStringToObject(o, "wquant", lb_qkind_name(lb_quant_plan_wkind(&m->q)));
    /* msqe-po2 always: its activations were msqe-po2 too before 2026-12-05, and a checkpoint
     * without the field keeps that meaning (below) */
    if (m->q.aquant || m->q.kind == LB_Q_MSQE_PO2)
        cJSON_AddStringToObject(o, "aquant", lb_qkind_name(lb_quant_plan_akind(&m->q)));
    if (m->q.po2) cJSON_AddNumberToObject(o, "po2", 1); /* absent: 0, as older checkpoints */
    /* MaQD fields only when used: other checkpoints keep their metadata unchanged */
    if (m->q.wstates) cJSON_AddNumberToObject(o, "wstates", m->q.wstates);
    if (m->q.layer_states[0]) cJSON_AddStringToObject(o, "layer_states", m->q.layer_states);
    if (m->q.astates) cJSON_AddNumberToObject(o, "astates", m->q.astates);
    if (m->q.surrogate != LB_SUR_STE)
        cJSON_AddStringToObject(o, "surrogate", lb_surrogate_name(m->q.surrogate));
    if (m->norm_layer) cJSON_AddStringToObject(o, "norm_layer", "lbn");
    if (m->weight_std) cJSON_AddNumberToObject(o, "weight_std", 1);
    if (lb_qkind_is_po2x(lb_quant_plan_wkind(&m->q)) ||
        lb_qkind_is_po2x(lb_quant_plan_akind(&m->q))) {
        /* only then, so that other checkpoints keep their metadata unchanged */
        cJSON_AddNumberToObject(o, "msqe_outlier", !(m->q.po2_flags & LB_PO2X_NO_MASK));
        cJSON_AddNumberToObject(o, "msqe_moments", !(m->q.po2_flags & LB_PO2X_NO_MOMENTS));
        cJSON_AddStringToObject(o, "po2_round",
                                m->q.po2_round == LB_PO2X_ROUND_CEIL ? "ceil" : "msqe");
        cJSON_AddNumberToObject(o, "po2_stable_after", m->q.stable_after);
    }
    if (m->q.kind == LB_Q_REG) { /* only then: other checkpoints keep their metadata unchanged */
        cJSON_AddStringToObject(o, "reg_levels", lb_reg_levels_name(m->q.reg_levels));
        cJSON_AddStringToObject(o, "reg_form", lb_reg_form_name(m->q.reg_form));
        cJSON_AddNumberToObject(o, "reg_lambda0", m->q.reg_lambda0);
        cJSON_AddNumberToObject(o, "reg_lambda_max", m->q.reg_lambda_max);
        cJSON_AddNumberToObject(o, "reg_ramp", m->q.reg_ramp);
    }
    if (lb_model_is_snn(m)) lb_snn_cfg_to_json(o, &m->snn);
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

static int get_num(const cJSON *o, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= FLT_MAX)) return 0; /* a float's range */
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
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= FLT_MAX)) return 0;
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

/* A field of a metadata object: required (absent is an error) or optional (absent keeps *v, the
 * default); present with the wrong type or out of range is always an error. Each returns LB_OK
 * or LB_EFORMAT with a message naming the file, the object and the field. */
typedef struct jctx {
    const cJSON *o;
    const char *path, *obj; /* "lowbit.model" / "lowbit.train" */
} jctx;

static lb_status field_err(const jctx *j, const char *k, const char *what) {
    return lb_error_set(LB_EFORMAT, "%s: metadata %s: field \"%s\" %s (docs/checkpoint.md)",
                        j->path, j->obj, k, what);
}

static lb_status jint(const jctx *j, const char *k, int req, int lo, int hi, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j->o, k);
    if (!x) return req ? field_err(j, k, "is missing") : LB_OK;
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi) ||
        x->valuedouble != (double)(int)x->valuedouble) {
        char m[96];
        snprintf(m, sizeof m, "must be an integer in [%d, %d]", lo, hi);
        return field_err(j, k, m);
    }
    *v = (int)x->valuedouble;
    return LB_OK;
}

static lb_status jnum(const jctx *j, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j->o, k);
    if (!x) return LB_OK;
    if (!cJSON_IsNumber(x)) return field_err(j, k, "must be a number");
    *v = x->valuedouble;
    return LB_OK;
}

/* A float field: finite and within a float's range (1e300 would become inf, which the writer
 * prints as null and no reader takes back). */
static lb_status jfloat(const jctx *j, const char *k, float *v) {
    double d = *v;
    lb_status st = jnum(j, k, &d);
    if (st == LB_OK && !(fabs(d) <= FLT_MAX)) return field_err(j, k, "must be a finite float");
    if (st == LB_OK) *v = (float)d;
    return st;
}

/* A step count: whole, and in range before it becomes a long. */
static lb_status jsteps(const jctx *j, const char *k, long *v) {
    double d = (double)*v;
    lb_status st = jnum(j, k, &d);
    if (st == LB_OK && !(d >= 0 && d <= 1e15 && d == floor(d)))
        return field_err(j, k, "must be a whole number of steps in [0, 1e15]");
    if (st == LB_OK) *v = (long)d;
    return st;
}

static lb_status jstr(const jctx *j, const char *k, int req, char *dst, size_t n) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j->o, k);
    if (!x) return req ? field_err(j, k, "is missing") : LB_OK;
    if (!cJSON_IsString(x)) return field_err(j, k, "must be a string");
    if (strlen(x->valuestring) >= n) return field_err(j, k, "is too long");
    snprintf(dst, n, "%s", x->valuestring);
    return LB_OK;
}

/* An enum written as its integer (what lowbit writes) or its name (easier from other tools). */
static lb_status jenum(const jctx *j, const char *k, const char *const *names, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j->o, k);
    if (!x) return LB_OK;
    int cnt = 0;
    while (names[cnt]) cnt++;
    if (cJSON_IsString(x))
        for (int i = 0; i < cnt; i++)
            if (strcmp(x->valuestring, names[i]) == 0) {
                *v = i;
                return LB_OK;
            }
    /* the range first: converting a double outside int's range is undefined */
    if (cJSON_IsNumber(x) && x->valuedouble >= 0 && x->valuedouble < cnt &&
        x->valuedouble == (double)(int)x->valuedouble) {
        *v = (int)x->valuedouble;
        return LB_OK;
    }
    char m[160] = "must be one of";
    for (int i = 0; i < cnt; i++)
        snprintf(m + strlen(m), sizeof m - strlen(m), "%s %d (\"%s\")", i ? "," : "", i, names[i]);
    return field_err(j, k, m);
}

/* arch, in_c, in_h, in_w and classes are required (a default shape would silently build another
 * model); the quantization fields default to an FP32 model's (quant "none"; wbits/abits/first_bits/
 * last_bits are then ignored), layer_bits to "". */
lb_status lb_model_cfg_from_json(const char *js, const char *path, lb_model_cfg *m) {
    cJSON *o = cJSON_Parse(js);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.model is not a JSON object", path);
    }
    lb_model_cfg_default(m);
    jctx j = {o, path, "lowbit.model"};
    char qk[16] = "none", wq[16] = "", aq[16] = "", sur[16] = "ste", nl[16] = "bn";
    lb_status st = jstr(&j, "arch", 1, m->arch, sizeof m->arch);
    /* event frames: T x polarity planes (lb_model_build checks the shape against T) */
    if (st == LB_OK) st = jint(&j, "in_c", 1, 1, 512, &m->in_c);
    if (st == LB_OK) st = jint(&j, "in_h", 1, 1, 1 << 16, &m->in_h);
    if (st == LB_OK) st = jint(&j, "in_w", 1, 1, 1 << 16, &m->in_w);
    if (st == LB_OK) st = jint(&j, "classes", 1, 1, 1 << 20, &m->classes);
    if (st == LB_OK) st = jfloat(&j, "width_mult", &m->width_mult); /* absent: 1 */
    if (st == LB_OK && !(m->width_mult >= 0.25f && m->width_mult <= 4.0f))
        st = field_err(&j, "width_mult", "must be in [0.25, 4]");
    if (st == LB_OK) st = jstr(&j, "quant", 0, qk, sizeof qk);
    if (st == LB_OK) st = jint(&j, "wbits", 0, 0, 32, &m->q.wbits);
    if (st == LB_OK) st = jint(&j, "abits", 0, 0, 32, &m->q.abits);
    if (st == LB_OK) st = jint(&j, "first_bits", 0, 0, 32, &m->q.first_bits);
    if (st == LB_OK) st = jint(&j, "last_bits", 0, 0, 32, &m->q.last_bits);
    if (st == LB_OK) st = jint(&j, "per_channel", 0, 0, 1, &m->q.per_channel);
    if (st == LB_OK) st = jint(&j, "po2", 0, 0, 1, &m->q.po2);
    if (st == LB_OK) st = jstr(&j, "layer_bits", 0, m->q.overrides, sizeof m->q.overrides);
    int outlier = 1, mom = 1;
    static const char *const rounds[] = {"msqe", "ceil", NULL};
    if (st == LB_OK) st = jint(&j, "msqe_outlier", 0, 0, 1, &outlier); /* absent: on */
    if (st == LB_OK) st = jint(&j, "msqe_moments", 0, 0, 1, &mom);
    if (st == LB_OK) st = jenum(&j, "po2_round", rounds, &m->q.po2_round);
    if (st == LB_OK) st = jint(&j, "po2_stable_after", 0, 0, 10000000, &m->q.stable_after);
    m->q.po2_flags = (outlier ? 0 : LB_PO2X_NO_MASK) | (mom ? 0 : LB_PO2X_NO_MOMENTS);
    if (st == LB_OK) st = jstr(&j, "wquant", 0, wq, sizeof wq); /* absent: as "quant" */
    if (st == LB_OK) st = jstr(&j, "aquant", 0, aq, sizeof aq);
    if (st == LB_OK) st = jint(&j, "wstates", 0, 0, 1 << 16, &m->q.wstates); /* absent: 0 */
    if (st == LB_OK) st = jint(&j, "astates", 0, 0, 1 << 16, &m->q.astates);
    if (st == LB_OK) st = jstr(&j, "surrogate", 0, sur, sizeof sur);
    if (st == LB_OK) st = jstr(&j, "layer_states", 0, m->q.layer_states, sizeof m->q.layer_states);
    if (st == LB_OK) st = jstr(&j, "norm_layer", 0, nl, sizeof nl);
    if (st == LB_OK) st = jint(&j, "weight_std", 0, 0, 1, &m->weight_std);
    if (st == LB_OK && lb_surrogate_parse(sur, &m->q.surrogate) != LB_OK)
        st = field_err(&j, "surrogate", "is not one of ste, identity, triangle");
    if (st == LB_OK && strcmp(nl, "bn") != 0 && strcmp(nl, "lbn") != 0)
        st = field_err(&j, "norm_layer", "is not bn or lbn");
    m->norm_layer = strcmp(nl, "lbn") == 0;
    if (st == LB_OK) st = get_norm(o, path, &m->norm);
    if (st == LB_OK) st = get_reg(o, path, &m->q);
    if (st == LB_OK && lb_model_is_snn(m)) st = lb_snn_cfg_from_json(o, path, &m->snn);
    cJSON_Delete(o);
    if (st != LB_OK) return st;
    if (lb_qkind_parse(qk, &m->q.kind) != LB_OK)
        return lb_error_set(LB_EFORMAT,
                            "%s: metadata lowbit.model: field \"quant\" is '%s', not one of none, "
                            "fixed, lsq, reg, dorefa, pact, roundclip, msqe-po2, grad-po2, sliced",
                            path, qk);
    const char *side[2] = {wq, aq};
    int *sel[2] = {&m->q.wquant, &m->q.aquant};
    for (int i = 0; i < 2; i++) {
        lb_qkind k;
        if (!side[i][0]) continue;
        if (lb_qkind_parse(side[i], &k) != LB_OK)
            return lb_error_set(LB_EFORMAT,
                                "%s: metadata lowbit.model: field \"%s\" is '%s', not a quantizer",
                                path, i ? "aquant" : "wquant", side[i]);
        *sel[i] = 1 + (int)k;
    }
    if (m->q.kind == LB_Q_MSQE_PO2 && !aq[0]) m->q.aquant = 1 + (int)LB_Q_MSQE_PO2; /* older */
    if (lb_quant_plan_check(&m->q) != LB_OK) {
        char why[256]; /* lb_error_msg() is the buffer lb_error_set writes */
        snprintf(why, sizeof why, "%s", lb_error_msg());
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.model: %s", path, why);
    }
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
    /* only runs with a float phase or the option typed: other checkpoints keep their metadata */
    if (c->quant_delay > 0 || c->quant_delay_epochs >= 0) {
        cJSON_AddNumberToObject(o, "quant_delay_epochs", c->quant_delay_epochs);
        cJSON_AddNumberToObject(o, "quant_delay", (double)c->quant_delay);
        /* an auto phase still open: what decides its end (cJSON prints a double exactly) */
        if (c->quant_delay_open) {
            cJSON_AddNumberToObject(o, "quant_delay_open", 1);
            if (isfinite(c->quant_delay_ema))
                cJSON_AddNumberToObject(o, "quant_delay_ema", c->quant_delay_ema);
        }
    }
    cJSON_AddNumberToObject(o, "qlr_scale", c->qlr_scale);
    cJSON_AddNumberToObject(o, "head_lr", c->head_lr);
    cJSON_AddNumberToObject(o, "head_lr_scale", c->head_lr_scale);
    cJSON_AddNumberToObject(o, "label_smoothing", c->label_smoothing);
    cJSON_AddNumberToObject(o, "crop_pad", c->aug.crop_pad);
    cJSON_AddNumberToObject(o, "hflip", c->aug.hflip);
    /* only reg runs have learned levels: other checkpoints keep their metadata unchanged */
    if (c->model.q.kind == LB_Q_REG) cJSON_AddNumberToObject(o, "levels_lr", c->levels_lr);
    if (c->learn_bits) { /* likewise only runs that learn bit-widths */
        cJSON_AddStringToObject(o, "learn_bits", lb_learn_bits_name(c->learn_bits));
        cJSON_AddStringToObject(o, "learn_bits_scope", lb_bits_scope_name(c->bits_scope));
        cJSON_AddNumberToObject(o, "bits_lr", c->bits_lr);
        cJSON_AddNumberToObject(o, "bits_lambda", c->bits_lambda);
        cJSON_AddNumberToObject(o, "bits_until", c->bits_until);
    }
    /* only sliced runs: other checkpoints keep their metadata unchanged */
    if (lb_quant_plan_wkind(&c->model.q) == LB_Q_SLICED ||
        lb_quant_plan_akind(&c->model.q) == LB_Q_SLICED) {
        cJSON *ph = cJSON_AddArrayToObject(o, "phases");
        for (int i = 0; i < 3; i++) cJSON_AddItemToArray(ph, cJSON_CreateNumber(c->phases[i]));
        cJSON_AddNumberToObject(o, "budget_weights_kb", c->budget_w_kb);
        cJSON_AddNumberToObject(o, "budget_acts_kb", c->budget_a_kb);
        cJSON_AddNumberToObject(o, "sliced_every", c->sliced_every);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Every field is optional: an absent one keeps the value already in *c (the caller passes
 * lb_train_cfg_default's), so a file written by another tool needs none of them. A present field
 * of the wrong type or range is an error naming it. */
lb_status lb_train_cfg_from_json(const char *js, const char *path, lb_train_cfg *c) {
    cJSON *o = cJSON_Parse(js);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.train is not a JSON object", path);
    }
    static const char *const opt_names[] = {"sgd", "adamw", NULL};
    static const char *const sched_names[] = {"const", "cosine", "step", NULL};
    jctx j = {o, path, "lowbit.train"};
    int kind = (int)c->opt.kind, sk = (int)c->sched.kind;
    char seed[32] = "";
    lb_status st = jint(&j, "epochs", 0, 0, 1 << 30, &c->epochs);
    if (st == LB_OK) st = jint(&j, "batch", 0, 1, 1 << 30, &c->batch);
    if (st == LB_OK) st = jint(&j, "train_limit", 0, 0, 1 << 30, &c->train_limit);
    if (st == LB_OK) st = jint(&j, "test_limit", 0, 0, 1 << 30, &c->test_limit);
    if (st == LB_OK) st = jstr(&j, "seed", 0, seed, sizeof seed);
    if (st == LB_OK && seed[0]) {
        char *end;
        unsigned long long v = strtoull(seed, &end, 10);
        if (*end || seed[0] == '-')
            st = field_err(&j, "seed", "must be a decimal string (a 64-bit seed, e.g. \"42\")");
        else
            c->seed = v;
    }
    if (st == LB_OK) st = jenum(&j, "optimizer", opt_names, &kind);
    if (st == LB_OK) st = jfloat(&j, "momentum", &c->opt.momentum);
    if (st == LB_OK) st = jint(&j, "nesterov", 0, 0, 1, &c->opt.nesterov);
    if (st == LB_OK) st = jfloat(&j, "weight_decay", &c->opt.weight_decay);
    if (st == LB_OK) st = jfloat(&j, "beta1", &c->opt.beta1);
    if (st == LB_OK) st = jfloat(&j, "beta2", &c->opt.beta2);
    if (st == LB_OK) st = jfloat(&j, "eps", &c->opt.eps);
    if (st == LB_OK) st = jenum(&j, "sched", sched_names, &sk);
    if (st == LB_OK) st = jfloat(&j, "lr", &c->sched.base);
    if (st == LB_OK) st = jfloat(&j, "warmup_epochs", &c->warmup_epochs);
    if (st == LB_OK) st = jfloat(&j, "warmup_start", &c->sched.warmup_start);
    if (st == LB_OK) st = jfloat(&j, "final_lr", &c->sched.final);
    if (st == LB_OK) st = jfloat(&j, "gamma", &c->sched.gamma);
    if (st == LB_OK) st = jsteps(&j, "step_every", &c->sched.step_every);
    /* absent (every run before the float phase existed): the defaults, auto resolved to none */
    if (st == LB_OK) st = jfloat(&j, "quant_delay_epochs", &c->quant_delay_epochs);
    if (st == LB_OK && !(c->quant_delay_epochs >= -1 && c->quant_delay_epochs <= 1e6))
        st = field_err(&j, "quant_delay_epochs", "must be -1 (auto) or in [0, 1e6]");
    if (st == LB_OK) st = jsteps(&j, "quant_delay", &c->quant_delay);
    /* absent: a closed (or fixed) phase, as every run recorded before the open phase */
    c->quant_delay_open = 0;
    c->quant_delay_ema = NAN;
    if (st == LB_OK) st = jint(&j, "quant_delay_open", 0, 0, 1, &c->quant_delay_open);
    if (st == LB_OK && c->quant_delay_open && c->quant_delay <= 0)
        st = field_err(&j, "quant_delay_open", "needs a float phase (quant_delay > 0)");
    if (st == LB_OK) st = jnum(&j, "quant_delay_ema", &c->quant_delay_ema);
    if (st == LB_OK && cJSON_GetObjectItemCaseSensitive(o, "quant_delay_ema") &&
        !(isfinite(c->quant_delay_ema) && c->quant_delay_open))
        st = field_err(&j, "quant_delay_ema", "must be a finite number, with quant_delay_open");
    if (st == LB_OK) st = jfloat(&j, "qlr_scale", &c->qlr_scale);
    /* a run recorded before --head-lr existed trained its classifier at the common rate */
    if (st == LB_OK && !cJSON_GetObjectItemCaseSensitive(o, "head_lr"))
        c->head_lr = c->head_lr_scale = 1;
    if (st == LB_OK) st = jfloat(&j, "head_lr", &c->head_lr);
    if (st == LB_OK) st = jfloat(&j, "head_lr_scale", &c->head_lr_scale);
    if (st == LB_OK && !(c->head_lr_scale >= 0 && c->head_lr_scale <= 1000))
        st = field_err(&j, "head_lr_scale", "must be in [0, 1000]");
    if (st == LB_OK) st = jfloat(&j, "label_smoothing", &c->label_smoothing);
    if (st == LB_OK) st = jint(&j, "crop_pad", 0, 0, 1 << 16, &c->aug.crop_pad);
    if (st == LB_OK) st = jint(&j, "hflip", 0, 0, 1, &c->aug.hflip);
    if (st == LB_OK) st = jfloat(&j, "levels_lr", &c->levels_lr); /* reg runs only */
    static const char *const lb_names[] = {"none", "adaqat", NULL}, *const sc_names[] = {
                                                                        "layer", "net", NULL};
    if (st == LB_OK) st = jenum(&j, "learn_bits", lb_names, &c->learn_bits);
    if (st == LB_OK) st = jenum(&j, "learn_bits_scope", sc_names, &c->bits_scope);
    if (st == LB_OK) st = jfloat(&j, "bits_lr", &c->bits_lr);
    if (st == LB_OK) st = jfloat(&j, "bits_lambda", &c->bits_lambda);
    /* a run that learned bits before --bits-until existed moved its widths to the end */
    if (st == LB_OK && c->learn_bits && !cJSON_GetObjectItemCaseSensitive(o, "bits_until"))
        c->bits_until = 1;
    if (st == LB_OK) st = jfloat(&j, "bits_until", &c->bits_until);
    if (st == LB_OK) st = jnum(&j, "budget_weights_kb", &c->budget_w_kb);
    if (st == LB_OK) st = jnum(&j, "budget_acts_kb", &c->budget_a_kb);
    if (st == LB_OK && !(isfinite(c->budget_w_kb) && isfinite(c->budget_a_kb)))
        st = field_err(&j, "budget_weights_kb/budget_acts_kb", "must be finite");
    if (st == LB_OK) st = jint(&j, "sliced_every", 0, 1, 1 << 30, &c->sliced_every);
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "phases");
    if (st == LB_OK && ph) {
        if (!cJSON_IsArray(ph) || cJSON_GetArraySize(ph) != 3)
            st = field_err(&j, "phases", "must be an array of three epoch counts");
        for (int i = 0; st == LB_OK && i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(ph, i);
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 30))
                st = field_err(&j, "phases", "must hold epoch counts >= 0");
            else
                c->phases[i] = (int)e->valuedouble;
        }
    }
    cJSON_Delete(o);
    if (st != LB_OK) return st;
    c->opt.kind = (lb_opt_kind)kind;
    c->sched.kind = (lb_sched_kind)sk;
    return LB_OK;
}
