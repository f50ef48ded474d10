/* What a spiking model adds to the trainer: the MSE count loss in place of cross-entropy, and
 * every LIF layer's firing rate over the epoch for the metrics. Not the model (zoo_snn.c). */
#include "train_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_snn_recipe(lb_train_cfg *c) {
    if (!lb_model_is_snn(&c->model) || c->resume[0]) return;
    /* seed 000's recipe (methods.md sec. 6): AdamW 1e-3, wd 1e-4. Measured on 4,000 Fashion-MNIST
     * images, T 4, 3 epochs: 76% where SGD at 0.02 / 0.05 reached 69% / 72% (the head's LIF
     * layers start silent and plain SGD moves their small weights slowly; docs/snn.md) */
    if (!c->opt_given) c->opt.kind = LB_OPT_ADAMW;
    if (!c->wd_given) c->opt.weight_decay = 1e-4f;
    if (c->sched.base == 0)
        c->sched.base = c->opt.kind == LB_OPT_ADAMW ? 1e-3f : 0.05f * (float)c->batch / LB_LR_BATCH;
}

lb_status lb_snn_train_setup(run *r, const lb_train_cfg *c) {
    if (!lb_model_is_snn(&c->model)) return LB_OK;
    r->fire = calloc((size_t)r->net->nnodes, sizeof *r->fire);
    if (!r->fire) return lb_error_set(LB_ENOMEM, "out of memory (firing rates)");
    return LB_OK;
}

float lb_snn_loss(const run *r, const lb_train_cfg *c, int b, const float *counts) {
    const lb_snn_cfg *s = &c->model.snn;
    return lb_mse_count_loss(b, lb_net_classes(r->net), counts, r->y, s->timesteps, s->rate_on,
                             s->rate_off, r->dlogits, NULL);
}

/* The spikes of the last forward: one pass over each LIF output (cheap next to the convs). */
void lb_snn_fire_accum(run *r, int b) {
    if (!r->fire) return;
    for (int i = 1; i < r->net->nnodes; i++) {
        const lb_node *d = &r->net->nodes[i];
        if (d->op != LB_OP_LIF) continue;
        size_t n = (size_t)b * d->tm * d->c * d->h * d->w;
        double s = 0;
        for (size_t j = 0; j < n; j++) s += d->y[j];
        r->fire[i] += s / (double)n * b;
    }
    r->fire_n += b;
}

void lb_snn_fire_metrics(run *r, char *buf, size_t cap, float *mean) {
    *mean = 0;
    if (!r->fire || !r->fire_n) return;
    size_t k = strlen(buf);
    int layers = 0;
    snprintf(buf + k, cap - k, ",\"firing_rate\":{");
    for (int i = 1; i < r->net->nnodes; i++) {
        if (r->net->nodes[i].op != LB_OP_LIF) continue;
        double v = r->fire[i] / (double)r->fire_n;
        k = strlen(buf);
        snprintf(buf + k, cap - k, "%s\"%s\":%.5f", layers ? "," : "", r->net->nodes[i].name, v);
        *mean += (float)v;
        layers++;
        r->fire[i] = 0;
    }
    k = strlen(buf);
    snprintf(buf + k, cap - k, "}");
    if (layers) *mean /= (float)layers;
    r->fire_n = 0;
}
