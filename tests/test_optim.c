/* Tests of lb_optim by hand-computed values: SGD (plain, momentum, Nesterov) and AdamW steps,
 * weight decay only on weight groups, per-group rates, AdamW bias correction at t = 1, resuming
 * from saved state, thread-count independence, schedule end points and boundaries, parsers and
 * config checks. PyTorch agreement is in test_torch_optim.c. */
#include "lb_optim.h"
#include "lb_test.h"

#include <math.h>
#include <string.h>

static const float LR3[LB_NGROUPS] = {0.1f, 0.1f, 0.1f};

static void test_sgd(void) {
    /* p = 1, g = 0.5, wd = 0.1 on a weight: g' = 0.6. */
    lb_opt_cfg c = {.kind = LB_OPT_SGD, .weight_decay = 0.1f};
    CHECK(lb_optim_state_floats(&c, 7) == 7, "sgd state n");
    float p[1] = {1}, g[1] = {0.5f}, st[1] = {123};
    lb_opt_segment w = {0, 1, LB_GROUP_WEIGHT, 1.0f};
    lb_optim o;
    lb_optim_init(&o, &c, 1, st);
    CHECK(st[0] == 0 && o.t == 0, "init zeroes state and t");
    lb_optim_step(&o, p, g, &w, 1, LR3);
    CHECK_NEAR(p[0], 1 - 0.1 * 0.6, 0, 1e-6, "plain sgd");
    CHECK(o.t == 1, "t counts steps");

    /* Momentum 0.9 without Nesterov, no decay: b1 = g1, b2 = 0.9 g1 + g2; p -= lr*b. */
    c = (lb_opt_cfg){.kind = LB_OPT_SGD, .momentum = 0.9f};
    p[0] = 1;
    lb_optim_init(&o, &c, 1, st);
    g[0] = 0.5f;
    lb_optim_step(&o, p, g, &w, 1, LR3);
    CHECK_NEAR(st[0], 0.5, 0, 1e-7, "first momentum is the gradient");
    CHECK_NEAR(p[0], 0.95, 0, 1e-6, "momentum step 1");
    g[0] = -0.25f;
    lb_optim_step(&o, p, g, &w, 1, LR3);
    CHECK_NEAR(st[0], 0.9 * 0.5 - 0.25, 0, 1e-6, "momentum buffer step 2");
    CHECK_NEAR(p[0], 0.95 - 0.1 * 0.2, 0, 1e-6, "momentum step 2");

    /* Nesterov with decay 0.1 on a weight: update = g' + mu*b. */
    c = (lb_opt_cfg){.kind = LB_OPT_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 0.1f};
    p[0] = 1;
    lb_optim_init(&o, &c, 1, st);
    g[0] = 0.5f;
    lb_optim_step(&o, p, g, &w, 1, LR3);
    double gd = 0.5 + 0.1 * 1.0, b = gd, pe = 1 - 0.1 * (gd + 0.9 * b);
    CHECK_NEAR(p[0], pe, 0, 1e-6, "nesterov step 1");
    g[0] = -0.25f;
    lb_optim_step(&o, p, g, &w, 1, LR3);
    gd = -0.25 + 0.1 * pe;
    b = 0.9 * b + gd;
    pe = pe - 0.1 * (gd + 0.9 * b);
    CHECK_NEAR(p[0], pe, 0, 1e-6, "nesterov step 2");
}

static void test_adamw(void) {
    lb_opt_cfg c = {
        .kind = LB_OPT_ADAMW, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK(lb_optim_state_floats(&c, 7) == 14, "adamw state 2n");
    /* At t = 1 bias correction makes m_hat = g and v_hat = g^2, so every parameter moves by
     * lr*g/(|g| + eps), about lr, whatever the gradient's scale. */
    enum { K = 6 };
    float p[K] = {1, 1, 1, -2, 0.5f, 3}, g[K] = {1e-3f, 1, 100, -1, -1e-2f, 0}, st[2 * K];
    float p0[K];
    memcpy(p0, p, sizeof p);
    lb_opt_segment w = {0, K, LB_GROUP_WEIGHT, 1.0f};
    float lr[LB_NGROUPS] = {0.01f, 0.01f, 0.01f};
    lb_optim o;
    lb_optim_init(&o, &c, K, st);
    lb_optim_step(&o, p, g, &w, 1, lr);
    for (int i = 0; i < K; i++) {
        double want = p0[i] * (1 - 0.01 * 0.1) - 0.01 * g[i] / (fabs(g[i]) + 1e-8);
        CHECK_NEAR(p[i], want, 1e-9, 1e-6, "adamw t=1 bias-corrected step");
    }
    CHECK_NEAR(st[0], 0.1 * 1e-3, 0, 1e-6, "m after one step");
    /* 1 - 0.999f is 0.00099998713, not 0.001: the config holds floats (bias correction uses the
     * same beta, so the step itself is unaffected). */
    CHECK_NEAR(st[K + 2], (1.0 - (double)0.999f) * 1e4, 0, 1e-6, "v after one step");
    /* t = 2 by hand in double. */
    double m[K], v[K], pd[K];
    for (int i = 0; i < K; i++) {
        pd[i] = p[i];
        m[i] = 0.1 * g[i];
        v[i] = 0.001 * g[i] * g[i];
    }
    float g2[K] = {0.5f, -2, 1, 0, 3, -0.1f};
    lb_optim_step(&o, p, g2, &w, 1, lr);
    CHECK(o.t == 2, "t = 2");
    for (int i = 0; i < K; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g2[i];
        v[i] = 0.999 * v[i] + 0.001 * g2[i] * g2[i];
        double mh = m[i] / (1 - 0.81), vh = v[i] / (1 - 0.999 * 0.999);
        double want = pd[i] * (1 - 0.001) - 0.01 * mh / (sqrt(vh) + 1e-8);
        CHECK_NEAR(p[i], want, 1e-7, 1e-6, "adamw t=2");
    }
}

/* Weight decay touches only LB_GROUP_WEIGHT; each group steps with its own rate. */
static void test_groups(void) {
    enum { K = 9 };
    lb_opt_segment seg[] = {{0, 2, LB_GROUP_WEIGHT, 1.0f},
                            {2, 2, LB_GROUP_NODECAY, 1.0f},
                            {4, 2, LB_GROUP_QUANT, 1.0f},
                            {6, 0, LB_GROUP_WEIGHT, 1.0f}, /* empty segments are fine */
                            {7, 2, LB_GROUP_WEIGHT, 1.0f}};
    /* index 6 lies in no segment and must stay put */
    float lr[LB_NGROUPS] = {0.1f, 0.2f, 0.05f};
    for (int kind = 0; kind < 2; kind++) {
        lb_opt_cfg c = {.kind = kind ? LB_OPT_ADAMW : LB_OPT_SGD,
                        .momentum = 0.9f,
                        .weight_decay = 0.5f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f};
        float p[K], g[K] = {0}, st[2 * K];
        for (int i = 0; i < K; i++) p[i] = 1.0f + (float)i;
        lb_optim o;
        lb_optim_init(&o, &c, K, st);
        /* Zero gradient: only decay moves anything (AdamW's m/(sqrt(v)+eps) is 0). */
        lb_optim_step(&o, p, g, seg, 5, lr);
        const char *nm = lb_opt_name(c.kind);
        CHECK_NEAR(p[0], 1 - 0.1 * 0.5 * 1, 0, 1e-6, "weight decayed");
        CHECK_NEAR(p[8], 9 - 0.1 * 0.5 * 9, 0, 1e-6, "second weight segment decayed");
        int untouched = p[2] == 3 && p[3] == 4 && p[4] == 5 && p[5] == 6 && p[6] == 7;
        CHECK(untouched, "%s: no decay on NODECAY/QUANT, nothing outside segments", nm);

        /* A unit gradient everywhere, no decay: each group moves by its own rate. */
        c.weight_decay = 0;
        lb_optim_init(&o, &c, K, st);
        for (int i = 0; i < K; i++) p[i] = 0, g[i] = 1;
        lb_optim_step(&o, p, g, seg, 5, lr);
        /* SGD: -lr*g; AdamW at t=1: -lr*g/(|g|+eps). */
        CHECK_NEAR(p[1], -0.1, 0, 1e-6, "weight rate");
        CHECK_NEAR(p[2], -0.2, 0, 1e-6, "no-decay rate");
        CHECK_NEAR(p[5], -0.05, 0, 1e-6, "quant rate");
        CHECK(p[6] == 0, "%s: outside segments untouched", nm);

        /* a segment's lr_scale multiplies its group's rate there, and only there */
        seg[4].lr_scale = 0.25f;
        lb_optim_init(&o, &c, K, st);
        for (int i = 0; i < K; i++) p[i] = 0, g[i] = 1;
        lb_optim_step(&o, p, g, seg, 5, lr);
        CHECK_NEAR(p[7], -0.025, 0, 1e-7, "scaled segment at a quarter of its rate");
        CHECK_NEAR(p[1], -0.1, 0, 1e-7, "other weight segment at its rate");
        seg[4].lr_scale = 1.0f;
    }
}

/* Resuming: init, copy saved state and t in, continue; must equal an uninterrupted run bit for
 * bit. Also the same result with 1 and 2 threads on a size that takes the OpenMP path, with
 * many small segments between large ones, and against a scalar replica of the formula. */
static void test_resume_threads(void) {
    enum { K = 100003 };
    static float p0[K], g[3][K], pa[K], pb[K], pc[K], sa[2 * K], sb[2 * K], saved[2 * K];
    static lb_opt_segment seg[64];
    int nseg = 0;
    size_t off = 0;
    for (int s = 0; off < K; s++) {
        size_t len = s % 3 == 0 ? 20011 : (size_t)(s % 7 + 1);
        if (len > K - off) len = K - off;
        seg[nseg++] = (lb_opt_segment){off, len, (lb_group)(s % LB_NGROUPS), 1.0f};
        off += len;
    }
    lb_rng r;
    lb_rng_seed(&r, 7);
    for (int i = 0; i < K; i++) {
        p0[i] = lb_rng_normal(&r);
        for (int k = 0; k < 3; k++) g[k][i] = lb_rng_normal(&r);
    }
    float lr[LB_NGROUPS] = {0.01f, 0.02f, 0.005f};
    for (int kind = 0; kind < 2; kind++) {
        lb_opt_cfg c = {.kind = kind ? LB_OPT_ADAMW : LB_OPT_SGD,
                        .momentum = 0.9f,
                        .nesterov = 1,
                        .weight_decay = 0.05f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f};
        const char *nm = lb_opt_name(c.kind);
        size_t ns = lb_optim_state_floats(&c, K);
        lb_optim a, b;
        lb_threads_set(2);
        memcpy(pa, p0, sizeof pa);
        lb_optim_init(&a, &c, K, sa);
        for (int k = 0; k < 3; k++) lb_optim_step(&a, pa, g[k], seg, nseg, lr);

        lb_threads_set(1);
        memcpy(pb, p0, sizeof pb);
        lb_optim_init(&b, &c, K, sb);
        for (int k = 0; k < 2; k++) lb_optim_step(&b, pb, g[k], seg, nseg, lr);
        memcpy(saved, sb, ns * sizeof *sb);
        long t = b.t;
        memset(sb, 0x7f, sizeof sb);
        lb_optim_init(&b, &c, K, sb);
        memcpy(sb, saved, ns * sizeof *sb);
        b.t = t;
        lb_optim_step(&b, pb, g[2], seg, nseg, lr);
        CHECK(memcmp(pa, pb, sizeof pa) == 0 && memcmp(sa, sb, ns * sizeof *sa) == 0,
              "%s: resumed 1-thread run equals 2-thread run bit for bit", nm);

        /* Scalar replica of the third step from the saved state, in the library's op order. */
        memcpy(pc, p0, sizeof pc);
        lb_optim_init(&b, &c, K, sb);
        for (int k = 0; k < 2; k++) lb_optim_step(&b, pc, g[k], seg, nseg, lr);
        for (int s = 0; s < nseg; s++) {
            float l = lr[seg[s].group], wd = seg[s].group == LB_GROUP_WEIGHT ? c.weight_decay : 0;
            for (size_t i = seg[s].off; i < seg[s].off + seg[s].n; i++) {
                float gi = g[2][i];
                if (!kind) {
                    float d = wd != 0 ? gi + wd * pc[i] : gi;
                    float bi = saved[i] * c.momentum + d;
                    pc[i] += -l * (d + c.momentum * bi);
                } else {
                    float pi = pc[i] * (float)(1.0 - (double)l * wd);
                    float m = saved[i] * c.beta1 + (float)(1.0 - (double)c.beta1) * gi;
                    float v = saved[K + i] * c.beta2 + (float)(1.0 - (double)c.beta2) * gi * gi;
                    float den = sqrtf(v) / (float)sqrt(1.0 - pow(c.beta2, 3)) + c.eps;
                    pc[i] = pi + (float)(-(double)l / (1.0 - pow(c.beta1, 3))) * m / den;
                }
            }
        }
        lbt_close(pa, pc, K, 1e-7, 1e-6, nm); /* not bitwise: -mfma builds may contract */
    }
    lb_threads_set(1);
}

static void test_sched(void) {
    lb_sched s = {.kind = LB_SCHED_COSINE,
                  .base = 0.4f,
                  .total = 110,
                  .warmup = 10,
                  .warmup_start = 0.01f,
                  .final = 0.004f};
    CHECK(lb_sched_check(&s) == LB_OK, "valid cosine: %s", lb_error_msg());
    CHECK_NEAR(lb_sched_lr(&s, 0), 0.004, 0, 1e-6, "warm-up starts at base*warmup_start");
    CHECK_NEAR(lb_sched_lr(&s, -5), 0.004, 0, 1e-6, "negative t counts as 0");
    CHECK_NEAR(lb_sched_lr(&s, 5), 0.4 * (0.01 + 0.99 * 0.5), 0, 1e-6, "warm-up middle");
    CHECK_NEAR(lb_sched_lr(&s, 9), 0.4 * (0.01 + 0.99 * 0.9), 0, 1e-6, "last warm-up step");
    CHECK_NEAR(lb_sched_lr(&s, 10), 0.4, 0, 1e-6, "cosine starts at base after warm-up");
    CHECK_NEAR(lb_sched_lr(&s, 60), (0.4 + 0.004) / 2, 0, 1e-6, "cosine midpoint");
    CHECK_NEAR(lb_sched_lr(&s, 35), 0.004 + 0.396 * (1 + cos(M_PI / 4)) / 2, 0, 1e-6,
               "cosine quarter");
    CHECK_NEAR(lb_sched_lr(&s, 110), 0.004, 0, 1e-6, "cosine ends at final");
    CHECK_NEAR(lb_sched_lr(&s, 500), 0.004, 0, 1e-6, "t clamped to total");
    int mono = 1;
    for (long t = 11; t <= 110; t++) mono &= lb_sched_lr(&s, t) <= lb_sched_lr(&s, t - 1);
    CHECK(mono, "cosine never rises after warm-up");
    s.warmup = 0;
    CHECK_NEAR(lb_sched_lr(&s, 0), 0.4, 0, 1e-6, "no warm-up: base at 0");
    CHECK_NEAR(lb_sched_lr(&s, 55), (0.4 + 0.004) / 2, 0, 1e-6, "no warm-up midpoint");
    s.warmup = 200;
    CHECK_NEAR(lb_sched_lr(&s, 300), 0.004, 0, 1e-6, "warm-up beyond total then final");

    s = (lb_sched){.kind = LB_SCHED_STEP,
                   .base = 1,
                   .total = 100,
                   .warmup = 5,
                   .warmup_start = 0.2f,
                   .step_every = 10,
                   .gamma = 0.1f};
    CHECK(lb_sched_check(&s) == LB_OK, "valid step: %s", lb_error_msg());
    CHECK_NEAR(lb_sched_lr(&s, 0), 0.2, 0, 1e-6, "step warm-up start");
    CHECK_NEAR(lb_sched_lr(&s, 5), 1, 0, 1e-6, "step base after warm-up");
    CHECK_NEAR(lb_sched_lr(&s, 14), 1, 0, 1e-6, "before first decay");
    CHECK_NEAR(lb_sched_lr(&s, 15), 0.1, 0, 1e-6, "first decay at warmup+step_every");
    CHECK_NEAR(lb_sched_lr(&s, 24), 0.1, 0, 1e-6, "before second decay");
    CHECK_NEAR(lb_sched_lr(&s, 25), 0.01, 0, 1e-6, "second decay");
    s.step_every = 0;
    CHECK_NEAR(lb_sched_lr(&s, 50), 1, 0, 1e-6, "step_every 0: no decay");
    CHECK(lb_sched_check(&s) == LB_EINVAL, "check rejects step_every 0");

    s = (lb_sched){.kind = LB_SCHED_CONST, .base = 0.05f, .total = 10, .warmup = 4};
    CHECK_NEAR(lb_sched_lr(&s, 0), 0, 0, 0, "const warm-up from 0");
    CHECK_NEAR(lb_sched_lr(&s, 2), 0.025, 0, 1e-6, "const warm-up middle");
    CHECK_NEAR(lb_sched_lr(&s, 4), 0.05, 0, 1e-6, "const after warm-up");
    CHECK_NEAR(lb_sched_lr(&s, 1000), 0.05, 0, 1e-6, "const beyond total");

    lb_sched bad = {.kind = LB_SCHED_COSINE, .base = -1, .total = 10};
    CHECK(lb_sched_check(&bad) == LB_EINVAL && strstr(lb_error_msg(), "base"), "negative base");
    bad = (lb_sched){
        .kind = LB_SCHED_COSINE, .base = 1, .total = 10, .warmup = 2, .warmup_start = 1.5f};
    CHECK(lb_sched_check(&bad) == LB_EINVAL && strstr(lb_error_msg(), "warmup_start"),
          "warmup_start > 1");
    bad = (lb_sched){.kind = LB_SCHED_STEP, .base = 1, .total = 10, .step_every = 2, .gamma = 2};
    CHECK(lb_sched_check(&bad) == LB_EINVAL && strstr(lb_error_msg(), "gamma"), "gamma > 1");
}

static void test_parse(void) {
    const char *sn[] = {"const", "cosine", "step"};
    for (int k = 0; k < 3; k++) {
        lb_sched_kind sk = (lb_sched_kind)-1;
        CHECK(lb_sched_parse(sn[k], &sk) == LB_OK && (int)sk == k, "parse %s", sn[k]);
        CHECK(strcmp(lb_sched_name(sk), sn[k]) == 0, "name %s", sn[k]);
    }
    lb_sched_kind sk = LB_SCHED_STEP;
    CHECK(lb_sched_parse("linear", &sk) == LB_EINVAL && sk == LB_SCHED_STEP, "unknown schedule");
    CHECK(strstr(lb_error_msg(), "'linear'") != NULL, "message names it: %s", lb_error_msg());
    CHECK(lb_sched_parse(NULL, &sk) == LB_EINVAL, "NULL schedule name");
    lb_opt_kind ok = (lb_opt_kind)-1;
    CHECK(lb_opt_parse("sgd", &ok) == LB_OK && ok == LB_OPT_SGD, "parse sgd");
    CHECK(lb_opt_parse("adamw", &ok) == LB_OK && ok == LB_OPT_ADAMW, "parse adamw");
    CHECK(lb_opt_parse("adam", &ok) == LB_EINVAL && strstr(lb_error_msg(), "'adam'"), "adam");
    CHECK(lb_opt_parse("SGD", &ok) == LB_EINVAL, "names are case-sensitive");
    CHECK(strcmp(lb_opt_name(LB_OPT_ADAMW), "adamw") == 0 && strcmp(lb_opt_name(9), "?") == 0,
          "opt names");
    CHECK(strcmp(lb_sched_name((lb_sched_kind)7), "?") == 0, "unknown schedule name");

    lb_opt_cfg c = {.kind = LB_OPT_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f};
    CHECK(lb_opt_cfg_check(&c) == LB_OK, "valid sgd: %s", lb_error_msg());
    c.momentum = 0;
    CHECK(lb_opt_cfg_check(&c) == LB_EINVAL && strstr(lb_error_msg(), "nesterov"),
          "nesterov without momentum");
    c.nesterov = 0, c.weight_decay = -1;
    CHECK(lb_opt_cfg_check(&c) == LB_EINVAL && strstr(lb_error_msg(), "decay"), "negative wd");
    c = (lb_opt_cfg){.kind = LB_OPT_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK(lb_opt_cfg_check(&c) == LB_OK, "valid adamw: %s", lb_error_msg());
    c.beta2 = 1;
    CHECK(lb_opt_cfg_check(&c) == LB_EINVAL && strstr(lb_error_msg(), "betas"), "beta2 = 1");
    c.beta2 = 0.999f, c.eps = 0;
    CHECK(lb_opt_cfg_check(&c) == LB_EINVAL && strstr(lb_error_msg(), "eps"), "eps = 0");
}

int main(void) {
    test_sgd();
    test_adamw();
    test_groups();
    test_resume_threads();
    test_sched();
    test_parse();
    TEST_MAIN_END("test_optim");
}
