/* A spiking model's configuration (lb_snn_cfg) to and from the "snn" object of the lowbit.model
 * checkpoint metadata. Not the rest of the model config (config_json.c). */
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void lb_snn_cfg_to_json(void *obj, const lb_snn_cfg *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "timesteps", s->timesteps);
    cJSON_AddStringToObject(o, "encoding", lb_encoding_names[s->encoding]);
    cJSON_AddNumberToObject(o, "beta", s->lif.beta);
    cJSON_AddStringToObject(o, "learn_beta", lb_learn_beta_names[s->lif.learn_beta]);
    cJSON_AddNumberToObject(o, "threshold", s->lif.k.theta);
    cJSON_AddStringToObject(o, "reset", lb_reset_names[s->lif.k.reset]);
    cJSON_AddNumberToObject(o, "detach_reset", s->lif.k.detach_reset);
    cJSON_AddStringToObject(o, "surrogate", lb_spike_grad_names[s->lif.k.surr]);
    cJSON_AddNumberToObject(o, "slope", s->lif.k.slope);
    cJSON_AddNumberToObject(o, "mem_bits", s->lif.k.mem_bits);
    cJSON_AddStringToObject(o, "readout", lb_readout_names[s->readout]);
    cJSON_AddStringToObject(o, "loss", lb_loss_names[s->loss]);
    cJSON_AddNumberToObject(o, "rate_on", s->rate_on);
    cJSON_AddNumberToObject(o, "rate_off", s->rate_off);
    cJSON_AddStringToObject(o, "norm", lb_snn_norm_names[s->norm]);
    cJSON_AddNumberToObject(o, "dropout", s->dropout);
    cJSON_AddItemToObject((cJSON *)obj, "snn", o);
}

static lb_status bad(const char *path, const char *k, const char *what) {
    return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.model: snn field \"%s\" %s", path, k,
                        what);
}

static lb_status get_enum(const cJSON *o, const char *path, const char *k, const char *const *names,
                          int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!x) return LB_OK;
    int i = cJSON_IsString(x) ? lb_name_index(names, x->valuestring) : -1;
    if (i < 0) return bad(path, k, "is not one of its names");
    *v = i;
    return LB_OK;
}

static lb_status get_num(const cJSON *o, const char *path, const char *k, float *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!x) return LB_OK;
    if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= FLT_MAX))
        return bad(path, k, "must be a finite float");
    *v = (float)x->valuedouble;
    return LB_OK;
}

/* An integer in [-2^30, 2^30] (lb_snn_cfg_check judges the real range afterwards); the range is
 * checked before the conversion, which is undefined for a double outside int's range. */
static lb_status get_int(const cJSON *o, const char *path, const char *k, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!x) return LB_OK;
    double d = cJSON_IsNumber(x) ? x->valuedouble : 0.5;
    if (!(d >= -(double)(1 << 30) && d <= (double)(1 << 30)) || d != (double)(int)d)
        return bad(path, k, "must be an integer");
    *v = (int)d;
    return LB_OK;
}

/* Absent fields keep lb_model_cfg_default's values; the whole is then range-checked. */
lb_status lb_snn_cfg_from_json(const void *obj, const char *path, lb_snn_cfg *s) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive((const cJSON *)obj, "snn");
    if (!o) return LB_OK;
    if (!cJSON_IsObject(o)) return bad(path, "snn", "must be an object");
    int e[7] = {(int)s->encoding, s->lif.learn_beta, (int)s->lif.k.reset, (int)s->lif.k.surr,
                (int)s->readout,  (int)s->loss,      (int)s->norm};
    lb_status st = get_int(o, path, "timesteps", &s->timesteps);
    if (st == LB_OK) st = get_enum(o, path, "encoding", lb_encoding_names, &e[0]);
    if (st == LB_OK) st = get_enum(o, path, "learn_beta", lb_learn_beta_names, &e[1]);
    if (st == LB_OK) st = get_enum(o, path, "reset", lb_reset_names, &e[2]);
    if (st == LB_OK) st = get_enum(o, path, "surrogate", lb_spike_grad_names, &e[3]);
    if (st == LB_OK) st = get_enum(o, path, "readout", lb_readout_names, &e[4]);
    if (st == LB_OK) st = get_enum(o, path, "loss", lb_loss_names, &e[5]);
    if (st == LB_OK) st = get_enum(o, path, "norm", lb_snn_norm_names, &e[6]);
    if (st == LB_OK) st = get_num(o, path, "beta", &s->lif.beta);
    if (st == LB_OK) st = get_num(o, path, "threshold", &s->lif.k.theta);
    if (st == LB_OK) st = get_int(o, path, "detach_reset", &s->lif.k.detach_reset);
    if (st == LB_OK) st = get_num(o, path, "slope", &s->lif.k.slope);
    if (st == LB_OK) st = get_int(o, path, "mem_bits", &s->lif.k.mem_bits);
    if (st == LB_OK) st = get_num(o, path, "rate_on", &s->rate_on);
    if (st == LB_OK) st = get_num(o, path, "rate_off", &s->rate_off);
    if (st == LB_OK) st = get_num(o, path, "dropout", &s->dropout);
    if (st != LB_OK) return st;
    s->encoding = (lb_encoding)e[0];
    s->lif.learn_beta = e[1];
    s->lif.k.reset = (lb_lif_reset)e[2];
    s->lif.k.surr = (lb_spike_grad)e[3];
    s->readout = (lb_readout)e[4];
    s->loss = (lb_loss)e[5];
    s->norm = (lb_snn_norm)e[6];
    if (lb_snn_cfg_check(s) != LB_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", lb_error_msg());
        return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.model: snn: %s", path, why);
    }
    return LB_OK;
}
