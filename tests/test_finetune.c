/* Tests of fine-tuning for a chip (src/train/finetune.c, ft_reg.c): the reset schedule against
 * methods.md's reference, the unit boundaries, the method names; the wiring of the per-step hook
 * (lowbit's and QFALT's regularizers equal the scalar references over every slice, gradients of
 * learned levels included, whatever the thread count; fault injection puts the floats back bit
 * for bit; QFALT's clamp); whole runs on a Fashion-MNIST subset: deterministic files, a final
 * reset leaves the chip's own weights (the chip changes no logit), eval of OUT = the reported
 * accuracy, and the errors. Not the CLI (tests/cli/finetune.sh). */
#include "../src/train/ft_internal.h"
#include "lb_test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[64];
#define DATA "/usr/share/datasets/fashion-mnist"

static void test_schedule(void) {
    /* the reference: 120 epochs, f1 = 5, f2 = 4 */
    int n = 0, first = -1, last = -1, ok = 1;
    for (int u = 0; u < 120; u++)
        if (lb_ft_reset_due(u, 120, 5, 4)) {
            n++;
            if (first < 0) first = u;
            last = u;
            ok &= u < 60 ? u % 5 == 4 : u % 4 == 3;
        }
    CHECK(n == 12 + 15 && first == 4 && last == 119 && ok, "reference: %d resets %d..%d", n, first,
          last);
    int want[] = {4, 9, 11, 15, 19}, k = 0;
    for (int u = 0; u < 20; u++)
        if (lb_ft_reset_due(u, 20, 5, 4)) CHECK(k < 5 && want[k++] == u, "20 units: unit %d", u);
    CHECK(k == 5, "20 units: %d resets", k);
    CHECK(!lb_ft_reset_due(-1, 20, 5, 4) && !lb_ft_reset_due(20, 20, 5, 4) &&
              !lb_ft_reset_due(3, 20, 0, 4),
          "out of range");
    int all = 1;
    for (int u = 0; u < 7; u++) all &= lb_ft_reset_due(u, 7, 1, 1);
    CHECK(all, "period 1 resets after every unit");
    /* units end at increasing steps, the last one at the run's last step */
    int good = 1;
    for (int units = 1; units <= 20; units++)
        for (long total = units; total <= 60; total++) {
            long prev = -1;
            for (int u = 0; u < units; u++) {
                long e = lb_ft_unit_end(u, units, total);
                good &= e > prev && e < total;
                prev = e;
            }
            good &= prev == total - 1;
        }
    CHECK(good, "unit ends increase and cover the run");
    lb_ft_method m;
    for (int i = 0; i < LB_FT_COUNT; i++)
        CHECK(lb_ft_method_parse(lb_ft_method_name((lb_ft_method)i), &m) == LB_OK && (int)m == i,
              "method %d round trip", i);
    CHECK(lb_ft_method_parse("lowbitt", &m) == LB_EINVAL && strstr(lb_error_msg(), "lowbitt"),
          "unknown method named: %s", lb_error_msg());
}

/* c1 LSQ signed per channel, c2 reg learned (or `kind2`), fc fixed: every coded kind. */
static lb_net *make_net(lb_qcfg wq2) {
    lb_net *n = lb_net_new(1, 8, 8);
    int c1 = lb_net_conv(n, "c1", 0, 4, 3, 1, 1, 1, 1);
    int r1 = lb_net_act(n, LB_OP_RELU, c1);
    int c2 = lb_net_conv(n, "c2", r1, 6, 3, 2, 1, 1, 1);
    int r2 = lb_net_act(n, LB_OP_RELU, c2);
    int f = lb_net_act(n, LB_OP_FLATTEN, r2);
    int fc = lb_net_linear(n, "fc", f, 5, 1);
    lb_qcfg lsq = {.kind = LB_Q_LSQ, .bits = 4, .is_signed = 1, .per_channel = 1}, none = {0};
    lb_qcfg act = {.kind = LB_Q_LSQ, .bits = 4},
            fx = {.kind = LB_Q_FIXED, .bits = 4, .is_signed = 1};
    lb_net_set_quant(n, c1, &lsq, &none);
    lb_net_set_quant(n, c2, &wq2, &act);
    lb_net_set_quant(n, fc, &fx, &act);
    if (lb_net_plan(n, 4, 1) != LB_OK) {
        lb_net_free(n);
        return NULL;
    }
    lb_net_init(n, 7);
    float x[4 * 64];
    lb_rng r;
    lb_rng_seed(&r, 11);
    for (int i = 0; i < 4 * 64; i++) x[i] = lb_rng_uniform(&r) * 2.0f - 1.0f;
    lb_net_forward(n, x, 4, 1); /* initializes the quantizers from the data */
    return n;
}

/* The hook's loss and gradients against the scalar references, slice by slice. */
static void check_hook(lb_net *n, lb_chip *chip, lb_ft_method m, const char *what) {
    ft_state s;
    CHECK(lb_ft_state_init(&s, m, n, chip, "t", 0) == LB_OK, "%s: init: %s", what, lb_error_msg());
    s.lambda = m == LB_FT_QFALT ? 0.01 : 300;
    s.sigma = 0.5;
    float *want = calloc(n->nparam, sizeof *want), *got1 = malloc(n->nparam * sizeof *got1);
    double wl = 0;
    /* the first and last coded layers stay outside the regularizer (ft_reg.c, docs/faults.md):
     * here c1 and fc, so only c2 is regularized */
    int first = -1, last = -1;
    for (int i = 0; i < n->nnodes; i++)
        if (chip->layer[i] >= 0) last = i, first = first < 0 ? i : first;
    for (int i = 0; i < n->nnodes; i++) {
        if (chip->layer[i] < 0 || i == first || i == last) continue;
        const lb_node *d = &n->nodes[i];
        const lb_flayer *L = &chip->map->layers[chip->layer[i]];
        int b = L->spec.bits;
        size_t N = n->params[d->pw].n, off = n->params[d->pw].off;
        for (int c = 0; c < d->wq.ch; c++) {
            float R[9], sp;
            int twos_reg = d->wqcfg.kind == LB_Q_REG && L->spec.enc == LB_FENC_TWOS;
            if (d->wqcfg.kind == LB_Q_REG) {
                lb_quant_reg_R(&d->wq, c, R);
                sp = R[0];
                if (twos_reg) { /* stored in two's complement: the top cell counts negatively */
                    R[b] -= R[b - 1];
                    R[b - 1] = -R[b - 1];
                }
            } else {
                sp = lb_quant_step(&d->wq, c);
                lb_fault_R_twos(sp, b, R);
            }
            size_t o = (size_t)c * d->wq.inner;
            double dR[9] = {0};
            lb_fslice mk = lb_fslice_of(L, o);
            wl += m == LB_FT_LOWBIT ? lb_freg_mse_ref(n->param + off + o, d->wq.inner, N, R, b, mk,
                                                      s.lambda, want + off + o, dR)
                                    : lb_freg_qfalt(n->param + off + o, d->wq.inner, R, b, mk,
                                                    s.lambda, s.sigma * sp, want + off + o, dR);
            if (twos_reg) dR[b - 1] = -dR[b - 1] - dR[b]; /* chain rule back to R */
            if (d->wqcfg.kind == LB_Q_REG && d->wqcfg.levels == LB_REG_LEARNED)
                for (int j = 0; j <= b; j++)
                    want[(size_t)(d->wq.dparam - n->grad) + (size_t)c * (b + 1) + j] +=
                        (float)dR[j]; /* R's gradient lives in the net's gradient array */
        }
    }
    for (int t = 1; t <= 2; t++) {
        lb_threads_set(t);
        memset(n->grad, 0, n->nparam * sizeof *n->grad);
        double l = lb_ft_hook(&s, n);
        CHECK(l == wl, "%s, %d threads: loss %.17g vs %.17g", what, t, l, wl);
        /* dw is the reference's bit for bit (freg.c's promise); R's gradient is a double sum
         * rounded once, compared within a float ulp or so */
        lbt_close(n->grad, want, n->nparam, 1e-12, 1e-6, what);
        if (t == 1)
            memcpy(got1, n->grad, n->nparam * sizeof *got1);
        else
            CHECK(memcmp(got1, n->grad, n->nparam * sizeof *got1) == 0,
                  "%s: same bits on 1 and 2 threads", what);
    }
    free(want);
    free(got1);
    lb_ft_state_free(&s);
}

/* The lowbit hook's gradient of the learned levels R of c2 (channel 0) against central
 * differences of its loss: the regularizer is piecewise quadratic in R, and a step of 1e-3 of a
 * level spacing moves no weight to another nearest level. */
static void fd_levels(lb_net *n, lb_chip *chip, const char *what) {
    ft_state s;
    CHECK(lb_ft_state_init(&s, LB_FT_LOWBIT, n, chip, "t", 0) == LB_OK, "%s: init", what);
    s.lambda = 300;
    lb_threads_set(1);
    lb_node *d = NULL;
    for (int i = 0; i < n->nnodes; i++)
        if (n->nodes[i].wqcfg.kind == LB_Q_REG) d = &n->nodes[i];
    int b = d->wqcfg.bits, bad = 0;
    memset(n->grad, 0, n->nparam * sizeof *n->grad);
    lb_ft_hook(&s, n);
    float g[9];
    memcpy(g, d->wq.dparam, (size_t)(b + 1) * sizeof *g);
    for (int j = 0; j <= b; j++) {
        float *r = &d->wq.param[j], keep = *r, h = 1e-3f * fabsf(d->wq.param[0]);
        *r = keep + h;
        double lp = lb_ft_hook(&s, n);
        *r = keep - h;
        double lm = lb_ft_hook(&s, n);
        *r = keep;
        double fd = (lp - lm) / (2.0 * (double)h);
        if (fabs(fd - g[j]) > 1e-3 * (fabs(fd) + 1e-3)) {
            bad++;
            fprintf(stderr, "%s: dR[%d] %.6g, central difference %.6g\n", what, j, g[j], fd);
        }
    }
    CHECK(bad == 0, "%s: the learned levels' gradient matches central differences", what);
    lb_ft_state_free(&s);
}

static void test_hook(void) {
    lb_qcfg learned = {
        .kind = LB_Q_REG, .bits = 4, .is_signed = 1, .per_channel = 1, .levels = LB_REG_LEARNED};
    lb_net *n = make_net(learned);
    CHECK(n != NULL, "net: %s", lb_error_msg());
    if (!n) return;
    lb_flayer_spec sp[8];
    int ns = 0;
    CHECK(lb_fmap_specs_of_net(n, sp, 8, &ns) == LB_OK && ns == 3, "3 coded layers");
    for (int var = 0; var <= 3; var++) {
        /* 2, 3: the reg layer stored in two's complement (faults map --reg-encoding twos) */
        lb_flayer_spec spv[8];
        memcpy(spv, sp, sizeof spv);
        if (var >= 2) CHECK(lb_fmap_specs_twos(spv, ns) == 1, "twos: the reg layer");
        lb_fmap map;
        CHECK(lb_fmap_create(&map, "t", spv, ns, 0) == LB_OK, "map");
        CHECK(lb_fmap_draw_faults(&map, 0.2, 0.3, 5) == LB_OK, "draw");
        if (var & 1) CHECK(lb_fmap_draw_var(&map, LB_FVAR_GAUSS, 0.2, 5) == LB_OK, "var");
        lb_chip chip;
        CHECK(lb_chip_attach(&chip, n, "t", &map, "m", 0) == LB_OK, "attach: %s", lb_error_msg());
        static const char *const nm[4][2] = {{"lowbit", "qfalt"},
                                             {"lowbit + variability", "qfalt + variability"},
                                             {"lowbit, twos", "qfalt, twos"},
                                             {"lowbit + variability, twos", "qfalt + var, twos"}};
        check_hook(n, &chip, LB_FT_LOWBIT, nm[var][0]);
        check_hook(n, &chip, LB_FT_QFALT, nm[var][1]);
        fd_levels(n, &chip, nm[var][0]);

        /* injection: the faulty weights while the step runs, the floats back after it */
        ft_state s;
        CHECK(lb_ft_state_init(&s, LB_FT_INJECT, n, &chip, "t", 0) == LB_OK, "inject init: %s",
              lb_error_msg());
        CHECK(s.inj_rate > 0.15 && s.inj_rate < 0.25 && s.inj_share > 0.2 && s.inj_share < 0.4,
              "injected rate %g, SA1 share %g: the chip's", s.inj_rate, s.inj_share);
        CHECK((s.inj_kind != LB_FVAR_NONE) == (var & 1),
              "injected variability iff the chip has it");
        CHECK(lb_ft_inject_draw(&s, 9) == LB_OK, "inject draw");
        float *keep = malloc(n->nparam * sizeof *keep);
        memcpy(keep, n->param, n->nparam * sizeof *keep);
        CHECK(lb_ft_inject_begin(&s) == LB_OK, "begin");
        CHECK(memcmp(keep, n->param, n->nparam * sizeof *keep) != 0, "injection changes weights");
        lb_ft_hook(&s, n);
        CHECK(memcmp(keep, n->param, n->nparam * sizeof *keep) == 0, "hook restores the floats");
        lb_ft_inject_end(&s); /* a second end changes nothing */
        CHECK(memcmp(keep, n->param, n->nparam * sizeof *keep) == 0, "end is idempotent");
        CHECK(n->wq_hook_ctx == &chip, "the eval chip keeps its hook");
        lb_ft_state_free(&s);

        /* the chip in the forward: the step's forward sees the weights at their nearest
         * reachable codes on the evaluation chip (own levels with multipliers), the chip keeps
         * its evaluation rule, the hook gives the floats back */
        CHECK(lb_ft_state_init(&s, LB_FT_LOWBIT, n, &chip, "t", 1) == LB_OK && s.saved,
              "chip forward init: %s", lb_error_msg());
        int rule = chip.nearest;
        if (rule != LB_CHIP_OWN_LEVEL) chip.nearest = LB_CHIP_REACHABLE;
        CHECK(lb_chip_snap_weights(&chip) == LB_OK, "snap");
        chip.nearest = rule;
        float *held = malloc(n->nparam * sizeof *held);
        memcpy(held, n->param, n->nparam * sizeof *held);
        memcpy(n->param, keep, n->nparam * sizeof *keep);
        CHECK(lb_ft_forward_begin(&s, &chip) == LB_OK, "forward begin");
        CHECK(memcmp(held, n->param, n->nparam * sizeof *held) == 0,
              "the forward's weights are the chip's nearest reachable codes");
        CHECK(chip.nearest == rule, "the chip keeps its evaluation rule");
        s.lambda = 300;
        lb_ft_hook(&s, n);
        CHECK(memcmp(keep, n->param, n->nparam * sizeof *keep) == 0, "hook restores the floats");
        free(held);
        lb_ft_state_free(&s);

        /* QFALT's clamp: every regularized weight inside its channel's outer levels; the first
         * and last coded layers (outside the regularizer, ft_reg.c) are left as they are */
        CHECK(lb_ft_state_init(&s, LB_FT_QFALT, n, &chip, "t", 0) == LB_OK, "qfalt init");
        int first = -1, last = -1;
        for (int i = 0; i < n->nnodes; i++)
            if (chip.layer[i] >= 0) {
                n->param[n->params[n->nodes[i].pw].off] = 1e3f;
                last = i, first = first < 0 ? i : first;
            }
        lb_ft_clamp(&s);
        int inside = 1;
        for (int i = 0; i < n->nnodes; i++) {
            if (chip.layer[i] < 0) continue;
            float v = n->param[n->params[n->nodes[i].pw].off];
            inside &= (i == first || i == last) ? v == 1e3f : v < 1e3f;
        }
        CHECK(inside, "clamped (body), untouched (first/last)");
        memcpy(n->param, keep, n->nparam * sizeof *keep);
        free(keep);
        lb_ft_state_free(&s);
        lb_chip_detach(&chip);
        lb_fmap_free(&map);
    }
    lb_net_free(n);
}

/* The first n samples of a Fashion-MNIST file as a raw idx file with its count patched: each run
 * of the suite then decodes kilobytes, not the whole 60,000-image set. */
static int subset(const char *name, const char *dir, int n, int per) {
    char in[300], out[300];
    snprintf(in, sizeof in, "%s/%s.gz", DATA, name);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    gzFile g = gzopen(in, "rb");
    FILE *f = fopen(out, "wb");
    int hdr = per > 1 ? 16 : 8;
    size_t len = (size_t)hdr + (size_t)n * per;
    unsigned char *b = malloc(len);
    int ok = g && f && b && gzread(g, b, (unsigned)len) == (int)len;
    if (ok) {
        b[4] = (unsigned char)(n >> 24), b[5] = (unsigned char)(n >> 16);
        b[6] = (unsigned char)(n >> 8), b[7] = (unsigned char)n;
        ok = fwrite(b, 1, len, f) == len;
    }
    if (g) gzclose(g);
    if (f) ok &= fclose(f) == 0;
    free(b);
    return ok;
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y) same = 0;
        if (x == EOF || y == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_runs(int quick) {
    if (access(DATA "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        CHECK(0, "%s missing (scripts/deps.sh installs dataset-fashion-mnist)", DATA);
        return;
    }
    char data[300];
    snprintf(data, sizeof data, "%s/data", g_dir);
    mkdir(data, 0755);
    CHECK(subset("train-images-idx3-ubyte", data, 256, 784) &&
              subset("train-labels-idx1-ubyte", data, 256, 1) &&
              subset("t10k-images-idx3-ubyte", data, 64, 784) &&
              subset("t10k-labels-idx1-ubyte", data, 64, 1),
          "subset of %s", DATA);
    lb_train_cfg c;
    lb_train_cfg_default(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "%s", data);
    snprintf(c.out, sizeof c.out, "%s/base.ckpt", g_dir);
    c.model.q.kind = LB_Q_LSQ;
    c.model.q.wbits = c.model.q.abits = 4;
    c.epochs = 1;
    c.batch = 32;
    c.train_limit = quick ? 64 : 128;
    c.test_limit = 64;
    c.sched.base = 0.02f;
    float acc;
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "base: %s", lb_error_msg());
    lb_net *n;
    lb_ckpt_info info;
    CHECK(lb_ckpt_open_model(c.out, 32, 2, &n, &info) == LB_OK, "open: %s", lb_error_msg());
    lb_flayer_spec sp[16];
    int ns = 0;
    lb_fmap map;
    CHECK(lb_fmap_specs_of_net(n, sp, 16, &ns) == LB_OK, "specs");
    CHECK(lb_fmap_create(&map, "cnn", sp, ns, 0) == LB_OK, "map");
    CHECK(lb_fmap_draw_faults(&map, 0.1, 0.5, 3) == LB_OK, "draw");
    char chip[300], other[300];
    snprintf(chip, sizeof chip, "%s/chip.lbmap", g_dir);
    CHECK(lb_fmap_write(chip, &map) == LB_OK, "write: %s", lb_error_msg());
    snprintf(map.arch, sizeof map.arch, "resnet20");
    snprintf(other, sizeof other, "%s/other.lbmap", g_dir);
    CHECK(lb_fmap_write(other, &map) == LB_OK, "write other");
    lb_fmap_free(&map);

    lb_ft_cfg f;
    lb_ft_cfg_default(&f);
    snprintf(f.ckpt, sizeof f.ckpt, "%s", c.out);
    snprintf(f.chip, sizeof f.chip, "%s", chip);
    snprintf(f.data_dir, sizeof f.data_dir, "%s", data);
    f.batch = 16;
    f.train_limit = 64;
    f.test_limit = 48;
    lb_ft_result r1, r2, re;
    char out1[300], out2[300];
    snprintf(out1, sizeof out1, "%s/ft1.ckpt", g_dir);
    snprintf(out2, sizeof out2, "%s/ft2.ckpt", g_dir);
    snprintf(f.out, sizeof f.out, "%s", out1);
    CHECK(lb_ft_run(&f, NULL, NULL, &r1) == LB_OK, "lowbit: %s", lb_error_msg());
    snprintf(f.out, sizeof f.out, "%s", out2);
    CHECK(lb_ft_run(&f, NULL, NULL, &r2) == LB_OK, "lowbit again: %s", lb_error_msg());
    CHECK(same_file(out1, out2) && r1.acc_after == r2.acc_after, "deterministic checkpoint");
    CHECK(r1.resets >= 1 && r1.changed > 0, "resets %d, changed %llu", r1.resets,
          (unsigned long long)r1.changed);
    /* eval of OUT on the chip = the reported figure; the run ended with a reset (the last unit
     * of 20 is due), so OUT holds the chip's weights: the chip changes no logit */
    lb_ft_cfg e = f;
    snprintf(e.ckpt, sizeof e.ckpt, "%s", out1);
    e.eval_only = 1;
    CHECK(lb_ft_run(&e, NULL, NULL, &re) == LB_OK && re.acc_after == r1.acc_after,
          "eval of OUT %g = reported %g", re.acc_after, r1.acc_after);
    lb_net *m;
    lb_dataset te;
    memset(&te, 0, sizeof te);
    CHECK(lb_ckpt_open_model(out1, 32, 2, &m, &info) == LB_OK, "open OUT");
    CHECK(lb_dataset_load_dir(data, 0, &te) == LB_OK, "test set");
    float *l0 = malloc(64 * 10 * sizeof *l0), *l1 = malloc(64 * 10 * sizeof *l1);
    CHECK(lb_evaluate_logits(m, &te, &info.model.norm, 64, 32, l0, NULL, NULL) == LB_OK, "eval");
    lb_chip ch;
    CHECK(lb_chip_open(&ch, m, "cnn", chip, 0) == LB_OK, "chip on OUT");
    uint64_t chg, tot;
    lb_chip_count(&ch, &chg, &tot);
    CHECK(chg == 0, "after the final reset no weight holds another code (%llu)",
          (unsigned long long)chg);
    CHECK(lb_evaluate_logits(m, &te, &info.model.norm, 64, 32, l1, NULL, NULL) == LB_OK, "eval");
    CHECK(memcmp(l0, l1, 64 * 10 * sizeof *l0) == 0, "the chip changes no logit of OUT");
    lb_chip_detach(&ch);
    lb_net_free(m);
    free(l0);
    free(l1);
    lb_dataset_free(&te);

    for (int meth = LB_FT_INJECT; meth <= LB_FT_QFALT; meth++) {
        lb_ft_cfg g = f;
        g.method = (lb_ft_method)meth;
        snprintf(g.out, sizeof g.out, "%s/ft_%d.ckpt", g_dir, meth);
        lb_ft_result r;
        CHECK(lb_ft_run(&g, NULL, NULL, &r) == LB_OK, "%s: %s", lb_ft_method_name(g.method),
              lb_error_msg());
        CHECK(r.acc_before == r1.acc_before, "same chip, same figure before");
        CHECK((r.resets > 0) == (meth == LB_FT_QFALT), "%s resets %d", lb_ft_method_name(g.method),
              r.resets);
        e.ckpt[0] = 0;
        snprintf(e.ckpt, sizeof e.ckpt, "%s", g.out);
        CHECK(lb_ft_run(&e, NULL, NULL, &re) == LB_OK && re.acc_after == r.acc_after,
              "%s: eval of OUT = reported", lb_ft_method_name(g.method));
    }

    /* a chip with multipliers: the chip in the training forward (docs/faults.md), resets on its
     * stuck cells; deterministic, and eval of OUT = the reported figure */
    CHECK(lb_fmap_create(&map, "cnn", sp, ns, 0) == LB_OK, "var map");
    CHECK(lb_fmap_draw_faults(&map, 0.05, 0, 4) == LB_OK, "draw");
    CHECK(lb_fmap_draw_var(&map, LB_FVAR_LOGNORMAL, 0.3, 4) == LB_OK, "draw var");
    char vchip[300];
    snprintf(vchip, sizeof vchip, "%s/var.lbmap", g_dir);
    CHECK(lb_fmap_write(vchip, &map) == LB_OK, "write var map");
    lb_fmap_free(&map);
    lb_ft_cfg v = f;
    snprintf(v.chip, sizeof v.chip, "%s", vchip);
    lb_ft_result v1, v2;
    snprintf(v.out, sizeof v.out, "%s/v1.ckpt", g_dir);
    CHECK(lb_ft_run(&v, NULL, NULL, &v1) == LB_OK, "lowbit, variability: %s", lb_error_msg());
    snprintf(v.out, sizeof v.out, "%s/v2.ckpt", g_dir);
    CHECK(lb_ft_run(&v, NULL, NULL, &v2) == LB_OK, "again: %s", lb_error_msg());
    snprintf(e.ckpt, sizeof e.ckpt, "%s/v1.ckpt", g_dir);
    snprintf(e.chip, sizeof e.chip, "%s", vchip);
    CHECK(same_file(e.ckpt, v.out) && v1.resets >= 1, "variability: deterministic, resets %d",
          v1.resets);
    CHECK(lb_ft_run(&e, NULL, NULL, &re) == LB_OK && re.acc_after == v1.acc_after,
          "variability: eval of OUT %g = reported %g", re.acc_after, v1.acc_after);
    snprintf(e.chip, sizeof e.chip, "%s", chip);

    /* errors */
    lb_ft_cfg b = f;
    b.epochs = 0;
    CHECK(lb_ft_run(&b, NULL, NULL, &re) == LB_EINVAL && strstr(lb_error_msg(), "--epochs"),
          "epochs 0: %s", lb_error_msg());
    b = f;
    b.method = LB_FT_COUNT;
    CHECK(lb_ft_run(&b, NULL, NULL, &re) == LB_EINVAL, "unknown method");
    b = f;
    snprintf(b.chip, sizeof b.chip, "%s", other);
    CHECK(lb_ft_run(&b, NULL, NULL, &re) == LB_ESHAPE && strstr(lb_error_msg(), "other.lbmap"),
          "chip of another model: %s", lb_error_msg());
    lb_net_free(n);
}

/* The default lambda follows the chip: lowbit pulls less hard when the map has multipliers. */
static void test_lambda(void) {
    CHECK(lb_ft_lambda(LB_FT_LOWBIT, 0, 0) == LB_FT_LAMBDA, "lowbit, stuck cells");
    CHECK(lb_ft_lambda(LB_FT_LOWBIT, 0, 1) == LB_FT_LAMBDA_VAR, "lowbit, multipliers");
    CHECK(LB_FT_LAMBDA_VAR < LB_FT_LAMBDA, "the variability default is the weaker pull");
    CHECK(lb_ft_lambda(LB_FT_LOWBIT, 7, 1) == 7 && lb_ft_lambda(LB_FT_LOWBIT, 7, 0) == 7,
          "a given lambda wins");
    CHECK(lb_ft_lambda(LB_FT_QFALT, 0, 1) == LB_FT_QFALT_LAMBDA &&
              lb_ft_lambda(LB_FT_QFALT, 0, 0) == LB_FT_QFALT_LAMBDA &&
              lb_ft_lambda(LB_FT_QFALT, 5, 1) == 5,
          "qfalt");
    CHECK(lb_ft_lambda(LB_FT_INJECT, 0, 1) == 0 && lb_ft_lambda(LB_FT_INJECT, 9, 0) == 0,
          "inject has no chip regularizer");
    /* --lambda: a bare number is every method's, method=X pairs one method's each */
    lb_ft_cfg c;
    lb_ft_cfg_default(&c);
    CHECK(lb_ft_lambda_parse("250", &c) == LB_OK && c.lambda == 250 &&
              lb_ft_cfg_lambda(&c, LB_FT_LOWBIT) == 250 && lb_ft_cfg_lambda(&c, LB_FT_QFALT) == 250,
          "a bare lambda");
    lb_ft_cfg_default(&c);
    CHECK(lb_ft_lambda_parse("lowbit=1000", &c) == LB_OK &&
              lb_ft_cfg_lambda(&c, LB_FT_LOWBIT) == 1000 &&
              lb_ft_cfg_lambda(&c, LB_FT_QFALT) == 0 &&
              lb_ft_lambda(LB_FT_QFALT, lb_ft_cfg_lambda(&c, LB_FT_QFALT), 1) == LB_FT_QFALT_LAMBDA,
          "lowbit's alone leaves qfalt at its default");
    CHECK(lb_ft_lambda_parse("qfalt=1e-3,lowbit=30", &c) == LB_OK &&
              lb_ft_cfg_lambda(&c, LB_FT_LOWBIT) == 30 &&
              lb_ft_cfg_lambda(&c, LB_FT_QFALT) == 1e-3f,
          "both pairs");
    c.lambda = 5;
    CHECK(lb_ft_lambda_parse("qfalt=2", &c) == LB_OK && lb_ft_cfg_lambda(&c, LB_FT_LOWBIT) == 5 &&
              lb_ft_cfg_lambda(&c, LB_FT_QFALT) == 2,
          "a pair over a bare number; the pairs replace earlier pairs");
    const char *bad[] = {"",          "-1",          "nan",
                         "inf",       "1e10",        "3x",
                         "lowbit",    "lowbit=",     "=3",
                         "lowbit=3,", "inject=1",    "lowbit=1,lowbit=2",
                         "qfalt=-1",  "qfalt=1,x=2", "lowbit=1;qfalt=2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lb_ft_cfg_default(&c);
        CHECK(lb_ft_lambda_parse(bad[i], &c) != LB_OK && strstr(lb_error_msg(), "--lambda") &&
                  c.lambda == 0 && c.lambda_of[LB_FT_LOWBIT] == 0 && c.lambda_of[LB_FT_QFALT] == 0,
              "rejected, nothing set: '%s'", bad[i]);
    }
}

int main(void) {
    int quick = getenv("LOWBIT_QUICK") && atoi(getenv("LOWBIT_QUICK"));
    snprintf(g_dir, sizeof g_dir, "/tmp/lowbit_ft_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    test_schedule();
    test_lambda();
    test_hook();
    lb_threads_set(2);
    test_runs(quick);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    TEST_MAIN_END("test_finetune");
}
