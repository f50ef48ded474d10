/* End-to-end tests on real Fashion-MNIST: training reaches an accuracy floor (FP32 and LSQ W4A4),
 * a run stopped and resumed equals an uninterrupted one bit for bit, and checkpoints reload to
 * the same evaluation. First, on a tiny synthetic set whose splits differ: the input
 * normalization is the model's (the training split's, recorded in the checkpoint and used by
 * evaluation), with the older-checkpoint fallback and malformed metadata. LOWBIT_QUICK=1
 * (sanitizer pass) shrinks the data. */
#include "../src/train/train_internal.h"
#include "lb_adaqat.h"
#include "lb_ckpt.h"
#include "lb_int.h"
#include "lb_train.h"
#include "lb_test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static void base_cfg(lb_train_cfg *c, const char *name, int quick) {
    lb_train_cfg_default(c);
    snprintf(c->out, sizeof c->out, "%s/%s.ckpt", g_dir, name);
    c->epochs = 2;
    c->batch = 64;
    c->train_limit = quick ? 512 : 4000;
    c->test_limit = quick ? 256 : 2000;
    c->sched.base = 0.02f;
    c->seed = 5;
    c->threads = 2;
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

/* ---- the normalization belongs to the model ---------------------------------------------- */

static void put_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* One raw idx split of n 1x28x28 images, pixels lo + (hash % span), labels i % 10. */
static void write_split(const char *dir, const char *split, int n, int lo, int span) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, split);
    FILE *f = fopen(p, "wb");
    put_be32(f, 0x803);
    put_be32(f, (uint32_t)n);
    put_be32(f, 28);
    put_be32(f, 28);
    uint32_t h = 12345;
    for (int i = 0; i < n * 784; i++) {
        h = h * 1103515245u + 12345u;
        fputc(lo + (int)((h >> 16) % (uint32_t)span), f);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, split);
    f = fopen(p, "wb");
    put_be32(f, 0x801);
    put_be32(f, (uint32_t)n);
    for (int i = 0; i < n; i++) fputc(i % 10, f);
    fclose(f);
}

/* A data set whose splits have different statistics, neither near the MNIST/Fashion-MNIST
 * constants, so lb_dataset_norm computes them: train pixels 120..249 (mean ~0.72), test 0..89
 * (mean ~0.17). */
static void make_split_dir(char *dir, size_t cap, const char *name, int train_lo) {
    snprintf(dir, cap, "%s/%s", g_dir, name);
    mkdir(dir, 0755);
    write_split(dir, "train", 96, train_lo, 130);
    write_split(dir, "t10k", 48, 0, 90);
}

static float g_cb_loss, g_cb_acc;
static void on_progress(void *ctx, const lb_progress *p) {
    (void)ctx;
    if (p->done) {
        g_cb_loss = p->test_loss;
        g_cb_acc = p->test_acc;
    }
}

static void syn_cfg(lb_train_cfg *c, const char *dir, const char *out) {
    lb_train_cfg_default(c);
    snprintf(c->data_dir, sizeof c->data_dir, "%s", dir);
    snprintf(c->out, sizeof c->out, "%s/%s", g_dir, out);
    c->epochs = 1;
    c->batch = 16;
    c->train_limit = 48;
    c->test_limit = 32;
    c->sched.base = 0.02f;
    c->seed = 3;
    c->threads = 2;
}

/* Rewrites checkpoint `src` as `dst` with lowbit.model replaced by `model_json` (e.g. an older
 * file without the normalization, or a malformed one). */
static int rewrite_model_meta(const char *src, const char *dst, const char *model_json) {
    lb_st_file *f;
    if (lb_st_read(src, &f) != LB_OK) return 0;
    int nt = lb_st_count(f), nm = lb_st_meta_count(f);
    lb_st_tensor *t = calloc((size_t)nt + 1, sizeof *t);
    lb_st_meta *m = calloc((size_t)nm + 1, sizeof *m);
    for (int i = 0; i < nt; i++) t[i] = *lb_st_get(f, i);
    for (int i = 0; i < nm; i++) {
        m[i] = *lb_st_meta_at(f, i);
        if (strcmp(m[i].key, "lowbit.model") == 0) m[i].value = model_json;
    }
    int ok = lb_st_write(dst, t, nt, m, nm) == LB_OK;
    free(t);
    free(m);
    lb_st_free(f);
    return ok;
}

static void test_norm_is_the_models(void) {
    char dir[300], dir2[300];
    make_split_dir(dir, sizeof dir, "syn", 120);
    lb_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    CHECK(lb_dataset_load_dir(dir, 1, &train) == LB_OK, "syn train: %s", lb_error_msg());
    CHECK(lb_dataset_load_dir(dir, 0, &test) == LB_OK, "syn test: %s", lb_error_msg());
    if (!train.n || !test.n) return;
    float trm[3], trs[3], tem[3], tes[3];
    lb_dataset_norm(&train, trm, trs);
    lb_dataset_norm(&test, tem, tes);
    CHECK(trm[0] > tem[0] + 0.3f, "splits differ: train mean %g, test mean %g", trm[0], tem[0]);

    /* a fresh run records the training split's statistics in its checkpoint */
    lb_train_cfg c;
    syn_cfg(&c, dir, "syn.ckpt");
    float acc;
    CHECK(lb_train_run(&c, on_progress, NULL, &acc) == LB_OK, "syn train: %s", lb_error_msg());
    lb_ckpt_info info;
    CHECK(lb_ckpt_peek(c.out, &info) == LB_OK, "peek: %s", lb_error_msg());
    CHECK(info.model.norm.set && memcmp(info.model.norm.mean, trm, sizeof trm) == 0 &&
              memcmp(info.model.norm.std, trs, sizeof trs) == 0,
          "checkpoint norm %g/%g is the training split's %g/%g", info.model.norm.mean[0],
          info.model.norm.std[0], trm[0], trs[0]);

    /* evaluation with the model's constants reproduces the run's own test evaluation exactly;
     * the test split's statistics (the old behaviour) give another loss */
    lb_net *n;
    CHECK(lb_ckpt_open_model(c.out, c.batch, 2, &n, &info) == LB_OK, "open: %s", lb_error_msg());
    float l1 = -1, a1 = -1, l0 = -1, a0 = -1;
    CHECK(lb_evaluate(n, &test, &info.model.norm, c.test_limit, c.batch, &l1, &a1) == LB_OK,
          "evaluate: %s", lb_error_msg());
    CHECK(l1 == g_cb_loss && a1 == g_cb_acc, "reloaded eval %.6f/%.4f vs in-run %.6f/%.4f", l1, a1,
          g_cb_loss, g_cb_acc);
    CHECK(lb_evaluate(n, &test, NULL, c.test_limit, c.batch, &l0, &a0) == LB_OK, "evaluate NULL");
    CHECK(l0 != l1, "the test split's own statistics give another loss (%.6f vs %.6f)", l0, l1);
    /* the integer evaluator's float pass normalizes the same way */
    lb_int_eval r;
    CHECK(lb_int_evaluate(NULL, n, &test, &info.model.norm, c.test_limit, c.batch, LB_INT_AUTO, 2,
                          NULL, &r) == LB_OK &&
              r.n == c.test_limit && (float)r.float_correct / (float)r.n == a1,
          "int_evaluate float pass %d/%d vs %.4f: %s", r.float_correct, r.n, a1, lb_error_msg());
    lb_norm badn = info.model.norm;
    badn.std[0] = 0;
    CHECK(lb_evaluate(n, &test, &badn, c.test_limit, c.batch, &l0, &a0) == LB_EINVAL,
          "evaluate refuses std 0");
    lb_net_free(n);

    /* fine-tuning (--init) on data with other statistics keeps the initial model's constants */
    make_split_dir(dir2, sizeof dir2, "syn2", 10);
    lb_train_cfg ft;
    syn_cfg(&ft, dir2, "syn_ft.ckpt");
    snprintf(ft.init, sizeof ft.init, "%s", c.out);
    lb_ckpt_info fi;
    CHECK(lb_train_run(&ft, NULL, NULL, &acc) == LB_OK, "fine-tune: %s", lb_error_msg());
    CHECK(lb_ckpt_peek(ft.out, &fi) == LB_OK &&
              memcmp(&fi.model.norm, &info.model.norm, sizeof fi.model.norm) == 0,
          "fine-tuned checkpoint keeps the --init model's normalization (%g vs %g)",
          fi.model.norm.mean[0], info.model.norm.mean[0]);

    /* an older checkpoint (no norm_mean/norm_std) falls back to the data's own statistics */
    lb_model_cfg old = info.model;
    memset(&old.norm, 0, sizeof old.norm);
    char *oj = lb_model_cfg_to_json(&old), old_path[300], bad_path[300];
    CHECK(oj && !strstr(oj, "norm"), "unset norm is not written: %s", oj ? oj : "(null)");
    snprintf(old_path, sizeof old_path, "%s/old.ckpt", g_dir);
    CHECK(rewrite_model_meta(c.out, old_path, oj), "write old-style checkpoint");
    free(oj);
    CHECK(lb_ckpt_open_model(old_path, c.batch, 2, &n, &info) == LB_OK && !info.model.norm.set,
          "old checkpoint opens with norm unset: %s", lb_error_msg());
    float l2 = -1, a2 = -1;
    CHECK(lb_evaluate(n, &test, &info.model.norm, c.test_limit, c.batch, &l2, &a2) == LB_OK &&
              l2 == l0,
          "old checkpoint evaluates with the test split's statistics (%.6f vs %.6f)", l2, l0);
    lb_net_free(n);
    /* resuming it continues with the training split's statistics, as those runs did */
    lb_train_cfg rc;
    lb_train_cfg_default(&rc);
    snprintf(rc.resume, sizeof rc.resume, "%s", old_path);
    snprintf(rc.data_dir, sizeof rc.data_dir, "%s", dir);
    snprintf(rc.out, sizeof rc.out, "%s/old_resumed.ckpt", g_dir);
    rc.epochs = 2;
    rc.threads = 2;
    CHECK(lb_train_run(&rc, NULL, NULL, &acc) == LB_OK, "resume old: %s", lb_error_msg());
    CHECK(lb_ckpt_peek(rc.out, &fi) == LB_OK && fi.model.norm.set &&
              memcmp(fi.model.norm.mean, trm, sizeof trm) == 0 && fi.epoch == 2,
          "resumed old checkpoint records the training split's normalization");

    /* malformed values are refused with a message naming the file */
    static const char *const bad[] = {
        "\"norm_mean\":[0.5,0.5,0.5],\"norm_std\":[0.3,0,1]",
        "\"norm_mean\":[0.5,0.5,0.5],\"norm_std\":[0.3,-1,1]",
        "\"norm_mean\":[1e999,0,0],\"norm_std\":[1,1,1]",
        "\"norm_mean\":[0,0,0],\"norm_std\":[1e300,1,1]",
        "\"norm_mean\":[0.5,0.5],\"norm_std\":[1,1,1]",
        "\"norm_mean\":[0.5,0.5,null],\"norm_std\":[1,1,1]",
        "\"norm_mean\":[0.5,0.5,0.5]",
        "\"norm_std\":[1,1,1]",
        "\"norm_mean\":\"0.5\",\"norm_std\":[1,1,1]",
    };
    snprintf(bad_path, sizeof bad_path, "%s/bad_norm.ckpt", g_dir);
    char *base = lb_model_cfg_to_json(&old);
    for (size_t k = 0; base && k < sizeof bad / sizeof bad[0]; k++) {
        char js[2048];
        snprintf(js, sizeof js, "%.*s,%s}", (int)strlen(base) - 1, base, bad[k]);
        CHECK(rewrite_model_meta(c.out, bad_path, js), "write bad checkpoint %zu", k);
        lb_status st = lb_ckpt_peek(bad_path, &fi);
        CHECK(st == LB_EFORMAT && strstr(lb_error_msg(), "bad_norm.ckpt") &&
                  strstr(lb_error_msg(), "norm"),
              "malformed norm %zu (%s): status %d, %s", k, bad[k], st, lb_error_msg());
    }
    free(base);
    lb_dataset_free(&train);
    lb_dataset_free(&test);
}

/* lowbit.model JSON round trip, normalization included, bit for bit. */
static void test_model_json(void) {
    lb_model_cfg m, back;
    lb_model_cfg_default(&m);
    snprintf(m.arch, sizeof m.arch, "resnet20");
    m.in_c = 3;
    m.in_h = m.in_w = 32;
    m.q.kind = LB_Q_LSQ;
    snprintf(m.q.overrides, sizeof m.q.overrides, "conv2=2/4");
    m.norm = (lb_norm){1, {0.4914f, 1.0f / 3.0f, 1e-7f}, {0.2470f, 0.1f, 3.4e38f}};
    char *js = lb_model_cfg_to_json(&m);
    CHECK(js && lb_model_cfg_from_json(js, "rt", &back) == LB_OK, "round trip: %s", lb_error_msg());
    CHECK(back.norm.set && memcmp(back.norm.mean, m.norm.mean, sizeof m.norm.mean) == 0 &&
              memcmp(back.norm.std, m.norm.std, sizeof m.norm.std) == 0,
          "norm round trip exact: %s", js ? js : "");
    CHECK(strcmp(back.arch, "resnet20") == 0 && back.in_c == 3 && back.q.kind == LB_Q_LSQ &&
              strcmp(back.q.overrides, "conv2=2/4") == 0,
          "other fields round trip");
    free(js);
    CHECK(lb_model_cfg_from_json("{\"arch\":\"cnn\"}", "short.ckpt", &back) == LB_EFORMAT &&
              strstr(lb_error_msg(), "short.ckpt"),
          "missing fields still refused: %s", lb_error_msg());
}

/* Numbers out of range in the metadata JSON are refused by name, before any conversion that would
 * be undefined or turn them into inf (found by fuzz/fuzz_config.c). */
static void test_json_ranges(void) {
    static const char *const model_bad[] = {
        "{\"arch\":\"snn-vgg\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
        "\"snn\":{\"timesteps\":8e15}}",
        "{\"arch\":\"snn-vgg\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
        "\"snn\":{\"beta\":1e300}}",
        "{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
        "\"norm_mean\":[0,0,1e39],\"norm_std\":[1,1,1]}",
    };
    static const char *const train_bad[] = {
        "{\"optimizer\":1e12}", "{\"sched\":-3e10}",      "{\"weight_decay\":4e300}",
        "{\"lr\":-1e39}",       "{\"step_every\":1e300}", "{\"step_every\":2.5}",
    };
    lb_model_cfg m;
    for (size_t k = 0; k < sizeof model_bad / sizeof *model_bad; k++)
        CHECK(lb_model_cfg_from_json(model_bad[k], "range.ckpt", &m) == LB_EFORMAT &&
                  strstr(lb_error_msg(), "range.ckpt"),
              "model JSON %zu refused: %s", k, lb_error_msg());
    lb_train_cfg c;
    for (size_t k = 0; k < sizeof train_bad / sizeof *train_bad; k++) {
        lb_train_cfg_default(&c);
        CHECK(lb_train_cfg_from_json(train_bad[k], "range.ckpt", &c) == LB_EFORMAT &&
                  strstr(lb_error_msg(), "range.ckpt"),
              "train JSON %s refused: %s", train_bad[k], lb_error_msg());
    }
    lb_train_cfg_default(&c);
    CHECK(lb_train_cfg_from_json("{\"optimizer\":\"adamw\",\"step_every\":300}", "ok.ckpt", &c) ==
                  LB_OK &&
              c.opt.kind == LB_OPT_ADAMW && c.sched.step_every == 300,
          "in-range values still read: %s", lb_error_msg());
}

/* --bits-until (docs/mixed.md): the step it stops the widths at, and its JSON: a run written
 * before the field existed learned its widths to the end, so its resume keeps doing that. */
static void test_bits_until(void) {
    lb_train_cfg c;
    lb_train_cfg_default(&c);
    CHECK(c.bits_until == LB_ADAQAT_UNTIL && fabsf(c.bits_until - 2.0f / 3.0f) < 1e-6f,
          "default 2/3");
    CHECK(lb_adaqat_until_step(&c, 1407) == 938, "2/3 of 1407 steps: %ld",
          lb_adaqat_until_step(&c, 1407));
    c.bits_until = 1;
    CHECK(lb_adaqat_until_step(&c, 1407) == 0, "1: every step");
    c.bits_until = 1e-6f;
    CHECK(lb_adaqat_until_step(&c, 10) == 1, "at least one step");
    c.learn_bits = 1, c.bits_until = 0.5f;
    char *js = lb_train_cfg_to_json(&c);
    lb_train_cfg d;
    lb_train_cfg_default(&d);
    CHECK(js && lb_train_cfg_from_json(js, "rt.ckpt", &d) == LB_OK && d.bits_until == 0.5f,
          "round trip: %s", lb_error_msg());
    free(js);
    lb_train_cfg_default(&d);
    CHECK(lb_train_cfg_from_json("{\"learn_bits\":\"adaqat\"}", "old.ckpt", &d) == LB_OK &&
              d.bits_until == 1,
          "an older AdaQAT checkpoint: its widths moved to the end (%g)", (double)d.bits_until);
    lb_train_cfg_default(&d);
    CHECK(lb_train_cfg_from_json("{\"optimizer\":\"sgd\"}", "plain.ckpt", &d) == LB_OK &&
              d.bits_until == LB_ADAQAT_UNTIL,
          "no learned bits: the default stays");
    lb_train_cfg_default(&d);
    d.learn_bits = 1;
    d.bits_until = 0;
    CHECK(lb_adaqat_cfg_check(&d) == LB_EINVAL && strstr(lb_error_msg(), "--bits-until"),
          "0 refused: %s", lb_error_msg());
}

int main(void) {
    int quick = getenv("LOWBIT_QUICK") && atoi(getenv("LOWBIT_QUICK"));
    snprintf(g_dir, sizeof g_dir, "/tmp/lowbit_train_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;

    test_model_json();
    test_bits_until();
    test_json_ranges();
    test_norm_is_the_models();

    /* accuracy floors on a subset (the full-data figures are in bench/RESULTS.md) */
    lb_train_cfg c;
    float acc = 0;
    base_cfg(&c, "fp32", quick);
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "fp32 train: %s", lb_error_msg());
    float floor_fp32 = quick ? 0.45f : 0.70f; /* measured 0.7525 */
    CHECK(acc >= floor_fp32, "cnn fp32 accuracy %.4f below floor %.2f", acc, floor_fp32);
    printf("cnn fp32 %d imgs x 2 epochs: test accuracy %.4f\n", c.train_limit, acc);

    /* QAT fine-tuning from the FP32 weights keeps most of the accuracy after one epoch */
    char fp32_ckpt[512];
    memcpy(fp32_ckpt, c.out, sizeof fp32_ckpt);
    float acc_fp32 = acc;
    base_cfg(&c, "ft", quick);
    c.model.q.kind = LB_Q_LSQ;
    c.epochs = 1;
    memcpy(c.init, fp32_ckpt, sizeof c.init);
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "fine-tune: %s", lb_error_msg());
    CHECK(acc >= acc_fp32 - 0.05f, "LSQ W4A4 fine-tuned %.4f vs FP32 %.4f", acc, acc_fp32);
    printf("cnn LSQ W4A4 fine-tuned 1 epoch from FP32: %.4f\n", acc);
    snprintf(c.model.arch, sizeof c.model.arch, "resnet20");
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_ESHAPE, "init from another model rejected");
    CHECK(strstr(lb_error_msg(), "fp32.ckpt") != NULL, "names the file: %s", lb_error_msg());

    base_cfg(&c, "lsq", quick);
    c.model.q.kind = LB_Q_LSQ;
    /* the defaults, head rate included (docs/robust.md): before it, the fc step of this 126-step
     * run reached its floor at step 16 on an AMD EPYC and the run ended at 0.358; a one-epoch
     * warm-up was the workaround, and did not help every seed (bench/RESULTS.md) */
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "lsq train: %s", lb_error_msg());
    lb_ckpt_info hi;
    CHECK(lb_ckpt_peek(c.out, &hi) == LB_OK && hi.train.head_lr < 0 && hi.train.head_lr_scale > 0 &&
              hi.train.head_lr_scale < 1,
          "the head's rate lowered and recorded: %g", (double)hi.train.head_lr_scale);
    float floor_lsq = quick ? 0.40f : 0.75f; /* measured 0.7390 / 0.8240 with the one-epoch
                                               warm-up, 0.8160 with the head rate */
    CHECK(acc >= floor_lsq, "cnn LSQ W4A4 accuracy %.4f below floor %.2f", acc, floor_lsq);
    printf("cnn LSQ W4A4 %d imgs x 2 epochs: test accuracy %.4f\n", c.train_limit, acc);

    /* the checkpoint reloads to the same evaluation */
    lb_net *n;
    lb_ckpt_info info;
    CHECK(lb_ckpt_open_model(c.out, 64, 2, &n, &info) == LB_OK, "reopen: %s", lb_error_msg());
    lb_dataset test;
    CHECK(lb_dataset_load_dir(c.data_dir, 0, &test) == LB_OK, "test set");
    float l2, a2;
    CHECK(lb_evaluate(n, &test, &info.model.norm, c.test_limit, 64, &l2, &a2) == LB_OK, "evaluate");
    CHECK(a2 == acc, "reloaded accuracy %.4f vs %.4f at save", a2, acc);
    CHECK(info.epoch == 2 && info.model.q.kind == LB_Q_LSQ, "metadata epoch %d", info.epoch);
    lb_net_free(n);
    lb_dataset_free(&test);

    /* stop after epoch 1, resume, compare with an uninterrupted LSQ run byte for byte (small) */
    base_cfg(&c, "whole", 1);
    c.model.q.kind = LB_Q_LSQ;
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "whole: %s", lb_error_msg());
    char full[512];
    memcpy(full, c.out, sizeof full);
    base_cfg(&c, "part", 1);
    c.model.q.kind = LB_Q_LSQ;
    c.stop_after = 1;
    CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "part 1: %s", lb_error_msg());
    lb_train_cfg r;
    lb_train_cfg_default(&r);
    snprintf(r.resume, sizeof r.resume, "%s", c.out);
    snprintf(r.out, sizeof r.out, "%s/resumed.ckpt", g_dir);
    r.epochs = 0; /* as recorded */
    r.threads = 2;
    CHECK(lb_train_run(&r, NULL, NULL, &acc) == LB_OK, "resume: %s", lb_error_msg());
    CHECK(same_file(full, r.out), "resumed checkpoint differs from the uninterrupted one");

    /* a resume from a file that is not a checkpoint fails cleanly */
    char bogus[400];
    snprintf(bogus, sizeof bogus, "%s/bogus.ckpt", g_dir);
    FILE *f = fopen(bogus, "wb");
    fputs("not a checkpoint", f);
    fclose(f);
    snprintf(r.resume, sizeof r.resume, "%s", bogus);
    CHECK(lb_train_run(&r, NULL, NULL, &acc) == LB_EFORMAT, "bogus resume");
    CHECK(strstr(lb_error_msg(), "bogus.ckpt") != NULL, "message names file: %s", lb_error_msg());

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    TEST_MAIN_END("test_train");
}
