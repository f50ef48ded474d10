/* The trainer's side of --quant reg (methods.md sec. 2, docs/reg.md): checking the reg options,
 * setting each epoch's lambda, the learned levels' rate, and the per-epoch reg metrics. Not the
 * quantizer (src/quant/reg.c) nor its net-level loops (src/nn/reg_net.c). */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>

static int is_reg(const lb_train_cfg *c) {
    return c->model.q.kind == LB_Q_REG;
}

lb_status lb_reg_cfg_check(const lb_train_cfg *c) {
    const lb_quant_plan *q = &c->model.q;
    if (!(isfinite(c->levels_lr) && c->levels_lr >= 0))
        return lb_error_set(LB_EINVAL, "--levels-lr must be a finite number >= 0, got %g",
                            (double)c->levels_lr);
    if (!is_reg(c)) return LB_OK;
    if (!(isfinite(q->reg_lambda0) && q->reg_lambda0 >= 0))
        return lb_error_set(LB_EINVAL, "--reg-lambda must be a finite number >= 0, got %g",
                            (double)q->reg_lambda0);
    if (!(isfinite(q->reg_lambda_max) && q->reg_lambda_max >= 0))
        return lb_error_set(LB_EINVAL, "--reg-lambda-max must be a finite number >= 0, got %g",
                            (double)q->reg_lambda_max);
    if (!(q->reg_ramp >= 0 && q->reg_ramp <= 1))
        return lb_error_set(LB_EINVAL, "--reg-ramp-start must be in [0, 1], got %g",
                            (double)q->reg_ramp);
    if ((unsigned)q->reg_levels >= LB_REG_LEVELS_COUNT ||
        (unsigned)q->reg_form >= LB_REG_FORM_COUNT)
        return lb_error_set(LB_EINVAL, "--levels / --reg-kind: unknown value");
    return LB_OK;
}

float lb_reg_epoch_start(run *r, const lb_train_cfg *c, int epoch) {
    if (!is_reg(c)) return 0;
    const lb_quant_plan *q = &c->model.q;
    float lambda =
        (float)lb_reg_lambda(q->reg_lambda0, q->reg_lambda_max, q->reg_ramp, epoch, c->epochs);
    lb_net_reg_set_lambda(r->net, lambda);
    return lambda;
}

float lb_reg_levels_rate(const lb_train_cfg *c, float lr) {
    /* the run's schedule (warm-up, cosine) scaled to the levels' own peak rate */
    return c->sched.base > 0 ? c->levels_lr * (lr / c->sched.base) : 0;
}

lb_status lb_reg_epoch_metrics(run *r, const lb_train_cfg *c, float lambda, float test_acc,
                               char *buf, size_t cap) {
    buf[0] = 0;
    if (!is_reg(c)) return LB_OK;
    lb_reg_stats s;
    lb_status st = lb_net_reg_stats(r->net, &s);
    if (st != LB_OK) return st;
    /* test_acc is the eval forward's, which snaps reg weights to their levels: the snapped
     * model's accuracy; float_acc is the same test set with the unsnapped float weights */
    float facc = 0;
    lb_net_reg_float(r->net, 1);
    st = lb_evaluate(r->net, &r->test, &c->model.norm, c->test_limit, c->batch, NULL, &facc);
    lb_net_reg_float(r->net, 0);
    if (st != LB_OK) return st;
    snprintf(buf, cap,
             ",\"lambda\":%.6g,\"reg\":%.6g,\"level_dist_steps\":%.6f,\"near_level_share\":%.6f,"
             "\"snapped_acc\":%.6f,\"float_acc\":%.6f",
             (double)lambda, s.reg, s.dist_steps, s.near_share, (double)test_acc, (double)facc);
    return LB_OK;
}
