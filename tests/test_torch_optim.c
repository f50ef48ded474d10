/* lb_optim against PyTorch 1.13 (tests/torch/ref_optim.py): SGD with momentum, Nesterov and plain,
 * and AdamW, 5 steps over three parameter groups with per-step rates; and the schedules against
 * torch's LinearLR/CosineAnnealingLR/StepLR chained by SequentialLR. */
#include "lb_optim.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <string.h>

/* Must match SEGS in tests/torch/ref_optim.py. */
static const lb_opt_segment SEGS[] = {
    {0, 40, LB_GROUP_WEIGHT, 1.0f},   {40, 7, LB_GROUP_NODECAY, 1.0f},
    {47, 3, LB_GROUP_QUANT, 1.0f},    {50, 61, LB_GROUP_WEIGHT, 1.0f},
    {111, 5, LB_GROUP_NODECAY, 1.0f}, {116, 9, LB_GROUP_QUANT, 1.0f}};
enum { N = 125, STEPS = 5, NSEG = sizeof SEGS / sizeof *SEGS };

/* Torch rounds after each op and fuses some (fmadd in its AVX2 kernels), we round after each op:
 * an ulp or two per step, compounded over 5 steps. 2e-6 relative, plus 1e-7 absolute for entries
 * near zero after a large step. */
#define RTOL 2e-6
#define ATOL 1e-7

static void run_optim(const char *ref, const lb_opt_cfg *cfg, const float *p0, const float *grads,
                      const float *lrs) {
    float *want = lbt_ref_load(ref, (size_t)STEPS * N);
    CHECK(want != NULL, "%s loaded", ref);
    if (!want) return;
    float p[N], state[2 * N];
    CHECK(lb_optim_state_floats(cfg, N) <= 2 * N, "state size");
    memcpy(p, p0, sizeof p);
    lb_optim o;
    lb_optim_init(&o, cfg, N, state);
    for (int k = 0; k < STEPS; k++) {
        lb_optim_step(&o, p, grads + (size_t)k * N, SEGS, NSEG, lrs + 3 * k);
        char what[96];
        snprintf(what, sizeof what, "%s step %d", ref, k + 1);
        lbt_close(p, want + (size_t)k * N, N, ATOL, RTOL, what);
    }
    CHECK(o.t == STEPS, "%s: t = %ld", ref, o.t);
    free(want);
}

static void run_sched(const char *ref, const lb_sched *s) {
    float *want = lbt_ref_load(ref, (size_t)s->total + 1);
    CHECK(want != NULL, "%s loaded", ref);
    if (!want) return;
    float got[64];
    for (long t = 0; t <= s->total; t++) got[t] = lb_sched_lr(s, t);
    CHECK(lb_sched_check(s) == LB_OK, "%s: %s", ref, lb_error_msg());
    lbt_close(got, want, (size_t)s->total + 1, 0, 1e-6, ref);
    free(want);
}

int main(void) {
    float *p0 = lbt_ref_load("optim_p0", N);
    float *grads = lbt_ref_load("optim_grads", (size_t)STEPS * N);
    float *lrs = lbt_ref_load("optim_lr", (size_t)STEPS * 3);
    CHECK(p0 && grads && lrs, "inputs loaded");
    if (p0 && grads && lrs) {
        lb_opt_cfg sgd = {
            .kind = LB_OPT_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f};
        run_optim("optim_sgd_nesterov", &sgd, p0, grads, lrs);
        sgd.nesterov = 0;
        run_optim("optim_sgd_momentum", &sgd, p0, grads, lrs);
        sgd.momentum = 0;
        run_optim("optim_sgd_plain", &sgd, p0, grads, lrs);
        lb_opt_cfg adamw = {.kind = LB_OPT_ADAMW,
                            .weight_decay = 0.01f,
                            .beta1 = 0.9f,
                            .beta2 = 0.999f,
                            .eps = 1e-8f};
        run_optim("optim_adamw", &adamw, p0, grads, lrs);
    }
    free(p0);
    free(grads);
    free(lrs);

    lb_sched s = {.kind = LB_SCHED_COSINE,
                  .base = 0.1f,
                  .total = 20,
                  .warmup = 5,
                  .warmup_start = 0.01f,
                  .final = 1e-3f};
    run_sched("sched_cosine_warm", &s);
    s = (lb_sched){.kind = LB_SCHED_COSINE, .base = 0.1f, .total = 20};
    run_sched("sched_cosine", &s);
    s = (lb_sched){.kind = LB_SCHED_STEP,
                   .base = 0.1f,
                   .total = 20,
                   .warmup = 3,
                   .warmup_start = 0.1f,
                   .step_every = 4,
                   .gamma = 0.5f};
    run_sched("sched_step_warm", &s);
    s = (lb_sched){
        .kind = LB_SCHED_CONST, .base = 0.1f, .total = 20, .warmup = 4, .warmup_start = 0.25f};
    run_sched("sched_const_warm", &s);
    TEST_MAIN_END("test_torch_optim");
}
