/* lb_optim: optimizers over flat parameter/gradient arrays and learning-rate schedules. A network
 * hands its parameters as one contiguous array plus segments that say which group each range
 * belongs to (decayed weights, no-decay BN/bias, quantizer parameters with their own rate), so an
 * update is a flat loop per segment. Knows nothing of layers. */
#ifndef LB_OPTIM_H
#define LB_OPTIM_H

#include <stddef.h>

#include "lb_core.h"

typedef enum lb_opt_kind { LB_OPT_SGD = 0, LB_OPT_ADAMW } lb_opt_kind;

/* Parameter groups. Weight decay is applied to LB_GROUP_WEIGHT only. LB_GROUP_LEVELS holds the
 * learned level vectors R of LB_Q_REG (methods.md sec. 2 trains them at their own tiny rate,
 * --levels-lr), kept apart from the steps of LB_GROUP_QUANT. */
typedef enum lb_group {
    LB_GROUP_WEIGHT = 0,
    LB_GROUP_NODECAY,
    LB_GROUP_QUANT,
    LB_GROUP_LEVELS,
    LB_NGROUPS
} lb_group;

typedef struct lb_opt_cfg {
    lb_opt_kind kind;
    float momentum;          /* SGD (0 = plain SGD) */
    int nesterov;            /* SGD */
    float weight_decay;      /* SGD: L2 added to the gradient (PyTorch SGD); AdamW: decoupled */
    float beta1, beta2, eps; /* AdamW */
} lb_opt_cfg;

typedef struct lb_opt_segment {
    size_t off, n; /* range in the flat parameter array */
    lb_group group;
    /* multiplies the group's rate for this range: 1 for the group's own rate (a segment must set
     * it; lb_net_segments does). The trainer lowers the classifier's (docs/robust.md, head rate) */
    float lr_scale;
} lb_opt_segment;

typedef struct lb_optim {
    lb_opt_cfg cfg;
    size_t n;     /* parameters */
    float *state; /* SGD: momentum[n]; AdamW: m[n] then v[n] (caller-owned, zeroed at start) */
    long t;       /* steps taken (AdamW bias correction), checkpointed */
} lb_optim;

/* Floats of optimizer state for n parameters (n for SGD, 2n for AdamW); what a checkpoint saves
 * besides `t`. */
size_t lb_optim_state_floats(const lb_opt_cfg *cfg, size_t n);
/* Zeroes `state` (lb_optim_state_floats floats) and sets t = 0: a fresh run. To resume, call init
 * first, then copy the checkpointed state and t in. */
void lb_optim_init(lb_optim *o, const lb_opt_cfg *cfg, size_t n, float *state);
/* One update: lr[g] is the learning rate of group g at this step (schedule applied by caller).
 * Matches torch.optim.SGD (momentum, dampening 0, nesterov) and torch.optim.AdamW, with one
 * torch param group per lb_group (weight decay only on LB_GROUP_WEIGHT). Segments must lie inside
 * [0, n) and not overlap; parameters in no segment are left alone. Increments t. */
void lb_optim_step(lb_optim *o, float *param, const float *grad, const lb_opt_segment *seg,
                   int nseg, const float lr[LB_NGROUPS]);
/* LB_EINVAL with a message for values no run should use (negative momentum or decay, betas
 * outside [0, 1), eps <= 0, nesterov without momentum). */
lb_status lb_opt_cfg_check(const lb_opt_cfg *cfg);

typedef enum lb_sched_kind { LB_SCHED_CONST = 0, LB_SCHED_COSINE, LB_SCHED_STEP } lb_sched_kind;

typedef struct lb_sched {
    lb_sched_kind kind;
    float base;         /* peak learning rate */
    long total;         /* total steps of the run */
    long warmup;        /* linear warm-up steps from base*warmup_start to base (0 = none) */
    float warmup_start; /* fraction of base at step 0 of warm-up (e.g. 0.01) */
    float final;        /* cosine: rate reached at `total` (0 by default) */
    long step_every;    /* step schedule: multiply by gamma every step_every steps after warm-up */
    float gamma;
} lb_sched;

/* Rate at step t (0-based), per step (not per epoch). Warm-up: base*(ws + (1-ws)*t/warmup) for
 * t < warmup. Then, with u = t - warmup: const: base; cosine: final + (base-final)*(1 +
 * cos(pi*u/(total-warmup)))/2 with t clamped to total (final when warmup >= total); step:
 * base*gamma^floor(u/step_every) (no decay when step_every <= 0). Negative t counts as 0. */
float lb_sched_lr(const lb_sched *s, long t);
/* LB_EINVAL with a message for a schedule no run should use (negative rates or steps, warm-up
 * start outside [0, 1], step schedule without step_every >= 1 or gamma in (0, 1]). */
lb_status lb_sched_check(const lb_sched *s);
/* Names "const", "cosine", "step" and "sgd", "adamw"; LB_EINVAL with a message otherwise. */
lb_status lb_sched_parse(const char *s, lb_sched_kind *out);
lb_status lb_opt_parse(const char *s, lb_opt_kind *out);
/* The names the parsers accept ("?" for a value outside the enum). */
const char *lb_sched_name(lb_sched_kind k);
const char *lb_opt_name(lb_opt_kind k);

#endif
