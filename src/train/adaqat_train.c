/* --learn-bits in the trainer: checking the options and setting up (or resuming) the widths of a
 * run. The width update itself is adaqat.c's; the per-step calls are in lb_train_step. */
#include "train_internal.h"
#include "lb_adaqat.h"

#include <math.h>
#include <stdlib.h>

lb_status lb_adaqat_cfg_check(const lb_train_cfg *c) {
    if (c->learn_bits == LB_LEARN_BITS_NONE) return LB_OK;
    if (c->learn_bits != LB_LEARN_BITS_ADAQAT)
        return lb_error_set(LB_EINVAL, "--learn-bits: unknown method %d", c->learn_bits);
    if (c->bits_scope != LB_BITS_LAYER && c->bits_scope != LB_BITS_NET)
        return lb_error_set(LB_EINVAL, "--learn-bits-scope: expected layer or net");
    if (!(c->bits_lr > 0 && c->bits_lr <= 10))
        return lb_error_set(LB_EINVAL, "--bits-lr must be in (0, 10], got %g", (double)c->bits_lr);
    if (!(c->bits_lambda >= 0 && c->bits_lambda <= 10))
        return lb_error_set(LB_EINVAL, "--bits-lambda must be in [0, 10], got %g",
                            (double)c->bits_lambda);
    if (!(c->bits_until > 0 && c->bits_until <= 1))
        return lb_error_set(LB_EINVAL, "--bits-until must be in (0, 1], got %g",
                            (double)c->bits_until);
    const lb_quant_plan *q = &c->model.q;
    lb_qkind w = lb_quant_plan_wkind(q), a = lb_quant_plan_akind(q);
    if (w == LB_Q_NONE || a == LB_Q_NONE)
        return lb_error_set(LB_EINVAL,
                            "--learn-bits adaqat needs quantized weights and activations (--quant "
                            "lsq, fixed or dorefa; --wquant/--aquant not none), got weights %s, "
                            "activations %s",
                            lb_qkind_name(w), lb_qkind_name(a));
    if (w == LB_Q_REG)
        return lb_error_set(LB_EINVAL, "--learn-bits adaqat: reg levels have a fixed bit-width "
                                       "(their tables have b+1 entries); use lsq, fixed or dorefa");
    return LB_OK;
}

long lb_adaqat_until_step(const lb_train_cfg *c, long total) {
    if (!(c->bits_until < 1)) return 0;
    long s = lround((double)c->bits_until * (double)total);
    return s < 1 ? 1 : s;
}

lb_status lb_adaqat_setup(run *r, const lb_train_cfg *c) {
    if (c->learn_bits == LB_LEARN_BITS_NONE) return LB_OK;
    r->ada = malloc(sizeof *r->ada);
    if (!r->ada) return lb_error_set(LB_ENOMEM, "out of memory (bit-widths)");
    lb_status st =
        lb_adaqat_init(r->ada, r->net, (lb_bits_scope)c->bits_scope, c->bits_lr, c->bits_lambda);
    if (st != LB_OK || !c->resume[0]) return st;
    char *js;
    if ((st = lb_ckpt_meta(c->resume, "lowbit.adaqat", &js)) != LB_OK) return st;
    if (!js)
        return lb_error_set(LB_EFORMAT,
                            "--resume %s: the run learns bit-widths but the file has no "
                            "lowbit.adaqat metadata",
                            c->resume);
    st = lb_adaqat_from_json(js, c->resume, r->net, r->ada);
    free(js);
    if (st == LB_OK) st = lb_adaqat_apply(r->ada, r->net);
    return st;
}
