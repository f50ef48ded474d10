/* Per-step learning-rate schedules (linear warm-up, then constant, cosine or step decay) and their
 * name parser. Computed in double from the step index alone, never recursively, so a resumed run
 * gets the same rates as an uninterrupted one. Not the optimizers (optim.c). */
#include "lb_optim.h"

#include <math.h>
#include <string.h>

static const double lb_pi = 3.14159265358979323846;

float lb_sched_lr(const lb_sched *s, long t) {
    double base = s->base;
    if (t < 0) t = 0;
    if (t < s->warmup) {
        double ws = s->warmup_start;
        return (float)(base * (ws + (1.0 - ws) * (double)t / (double)s->warmup));
    }
    long w = s->warmup > 0 ? s->warmup : 0, u = t - w;
    switch (s->kind) {
    case LB_SCHED_CONST:
        return (float)base;
    case LB_SCHED_COSINE: {
        long span = s->total - w;
        if (span <= 0) return s->final;
        if (u > span) u = span;
        double fin = s->final;
        return (float)(fin + (base - fin) * 0.5 * (1.0 + cos(lb_pi * (double)u / (double)span)));
    }
    case LB_SCHED_STEP:
        if (s->step_every <= 0) return (float)base;
        return (float)(base * pow(s->gamma, (double)(u / s->step_every)));
    }
    return (float)base;
}

lb_status lb_sched_check(const lb_sched *s) {
    if (s->kind != LB_SCHED_CONST && s->kind != LB_SCHED_COSINE && s->kind != LB_SCHED_STEP)
        return lb_error_set(LB_EINVAL, "lr schedule: unknown kind %d", (int)s->kind);
    if (!(s->base >= 0.0f && isfinite(s->base)))
        return lb_error_set(LB_EINVAL, "lr schedule: base rate %g must be >= 0", (double)s->base);
    if (s->total < 0 || s->warmup < 0)
        return lb_error_set(LB_EINVAL, "lr schedule: total (%ld) and warmup (%ld) must be >= 0",
                            s->total, s->warmup);
    if (s->warmup > 0 && !(s->warmup_start >= 0.0f && s->warmup_start <= 1.0f))
        return lb_error_set(LB_EINVAL, "lr schedule: warmup_start %g must be in [0, 1]",
                            (double)s->warmup_start);
    if (s->kind == LB_SCHED_COSINE && !(s->final >= 0.0f && s->final <= s->base))
        return lb_error_set(LB_EINVAL, "lr schedule: final rate %g must be in [0, base %g]",
                            (double)s->final, (double)s->base);
    if (s->kind == LB_SCHED_STEP && s->step_every < 1)
        return lb_error_set(LB_EINVAL, "lr schedule: step_every (%ld) must be >= 1", s->step_every);
    if (s->kind == LB_SCHED_STEP && !(s->gamma > 0.0f && s->gamma <= 1.0f))
        return lb_error_set(LB_EINVAL, "lr schedule: gamma %g must be in (0, 1]", (double)s->gamma);
    return LB_OK;
}

static const char *const sched_names[] = {
    [LB_SCHED_CONST] = "const", [LB_SCHED_COSINE] = "cosine", [LB_SCHED_STEP] = "step"};

const char *lb_sched_name(lb_sched_kind k) {
    return (unsigned)k < sizeof sched_names / sizeof *sched_names ? sched_names[k] : "?";
}

lb_status lb_sched_parse(const char *s, lb_sched_kind *out) {
    for (unsigned k = 0; s && k < sizeof sched_names / sizeof *sched_names; k++) {
        if (strcmp(s, sched_names[k]) == 0) {
            *out = (lb_sched_kind)k;
            return LB_OK;
        }
    }
    return lb_error_set(LB_EINVAL,
                        "lr schedule: unknown name '%s' (expected const, cosine or step)",
                        s ? s : "(null)");
}
