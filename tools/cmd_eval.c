/* `lowbit eval` and `lowbit info`: load a checkpoint, evaluate it (float, or its integer model)
 * or describe it. */
#include "cli.h"
#include "lb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --integer / --time: the integer model (and the float one beside it), forward-only timings. */
static int cmd_eval_integer(const char *file, lb_net *n, const lb_dataset *d,
                            const lb_ckpt_info *info, int integer, int compare, const char *dump,
                            lb_int_impl impl, int limit, int batch, int threads) {
    /* the model's normalization (the data's own only for older checkpoints, see cmd_eval) */
    const lb_norm *norm = &info->model.norm;
    float mean[3], sd[3];
    lb_norm_resolve(norm, d, mean, sd);
    lb_int_model *m = NULL;
    if (integer && lb_int_from_net(n, mean, sd, &m) != LB_OK)
        cli_die(1, "eval", "%s: %s", file, lb_error_msg());
    int cnt = limit > 0 && limit < d->n ? limit : d->n;
    int32_t *logits = dump ? malloc((size_t)cnt * info->model.classes * sizeof *logits) : NULL;
    if (dump && !logits) cli_die(1, "eval", "out of memory");
    lb_int_eval r;
    lb_status st = lb_int_evaluate(m, (!integer || compare) ? n : NULL, d, norm, limit, batch, impl,
                                   threads, logits, &r);
    if (st == LB_OK && dump) st = lb_int_write_logits(dump, logits, r.n, info->model.classes);
    free(logits);
    lb_int_free(m);
    if (st != LB_OK) cli_die(1, "eval", "%s", lb_error_msg());
    printf("model: %s  quant: %s W%dA%d  epoch: %d  images: %d\n", info->model.arch,
           lb_qkind_name(info->model.q.kind), info->model.q.wbits, info->model.q.abits, info->epoch,
           r.n);
    if (!integer || compare)
        printf("float: accuracy %.4f  %.1f img/s (forward only, batch %d, %d threads)\n",
               (double)r.float_correct / r.n, r.n / r.float_s, batch, threads);
    if (integer) {
        lb_int_impl used = impl == LB_INT_AUTO ? lb_int_impl_best() : impl;
        printf("integer: accuracy %.4f  %.1f img/s (%s, batch %d, %d threads)\n",
               (double)r.correct / r.n, r.n / r.int_s, lb_int_impl_name(used), batch, threads);
    }
    if (integer && compare)
        printf("agreement: %.4f (%d of %d predictions equal)\n", (double)r.agree / r.n, r.agree,
               r.n);
    printf("accuracy: %.4f\n", (double)(integer ? r.correct : r.float_correct) / r.n);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *file = NULL;
    char data[512] = "";
    int limit = 0, batch = 128, threads = 2, integer = 0, compare = 0, timing = 0;
    const char *dump = NULL;
    lb_int_impl impl = LB_INT_AUTO;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts("usage: lowbit eval FILE [--data DIR] [--test-limit N] [--batch B] [--threads T]\n"
                 "       [--integer [--compare] [--dump-logits OUT] [--impl I]] [--time]\n"
                 "Evaluates checkpoint FILE on the test split of DIR (default: Fashion-MNIST).\n"
                 "  --integer          run the integer-only model (docs/integer.md) instead\n"
                 "  --compare          also run the float QAT model: prediction agreement\n"
                 "  --dump-logits OUT  integer logits, one line per image: prediction logits...\n"
                 "  --impl I           auto | scalar | avx2 | vnni (default auto)\n"
                 "  --time             forward-only images/s\n"
                 "The last line is 'accuracy: 0.xxxx'.");
            return 0;
        }
        if (strcmp(o, "--data") == 0)
            cli_copy("eval", o, data, sizeof data, cli_value("eval", argc, argv, &i));
        else if (strcmp(o, "--test-limit") == 0)
            limit = cli_int("eval", o, cli_value("eval", argc, argv, &i), 0, 100000000);
        else if (strcmp(o, "--batch") == 0)
            batch = cli_int("eval", o, cli_value("eval", argc, argv, &i), 1, 65536);
        else if (strcmp(o, "--threads") == 0)
            threads = cli_int("eval", o, cli_value("eval", argc, argv, &i), 1, 1024);
        else if (strcmp(o, "--integer") == 0)
            integer = 1;
        else if (strcmp(o, "--compare") == 0)
            compare = 1;
        else if (strcmp(o, "--time") == 0)
            timing = 1;
        else if (strcmp(o, "--dump-logits") == 0)
            dump = cli_value("eval", argc, argv, &i);
        else if (strcmp(o, "--impl") == 0) {
            if (lb_int_impl_parse(cli_value("eval", argc, argv, &i), &impl) != LB_OK)
                cli_die(2, "eval", "--impl: %s", lb_error_msg());
        } else if (o[0] == '-')
            cli_die(2, "eval", "unknown option '%s' (see lowbit eval --help)", o);
        else if (file)
            cli_die(2, "eval", "more than one checkpoint given ('%s', '%s')", file, o);
        else
            file = o;
    }
    if (!file) cli_die(2, "eval", "no checkpoint FILE given (see lowbit eval --help)");
    if ((compare || dump) && !integer)
        cli_die(2, "eval", "--compare and --dump-logits need --integer");
    if (!data[0]) snprintf(data, sizeof data, "/usr/share/datasets/fashion-mnist");
    lb_threads_set(threads);
    lb_net *n;
    lb_ckpt_info info;
    lb_status st = lb_ckpt_open_model(file, batch, threads, &n, &info);
    if (st != LB_OK) cli_die(1, "eval", "%s", lb_error_msg());
    lb_dataset d;
    st = lb_dataset_load_dir(data, 0, &d);
    if (st != LB_OK) {
        lb_net_free(n);
        cli_die(1, "eval", "%s", lb_error_msg());
    }
    if (d.c != info.model.in_c || d.h != info.model.in_h || d.w != info.model.in_w ||
        d.classes != info.model.classes) {
        int dc = d.c, dh = d.h, dw = d.w, dk = d.classes; /* freed below, printed after */
        lb_net_free(n);
        lb_dataset_free(&d);
        cli_die(1, "eval",
                "%s: data %dx%dx%d with %d classes does not fit the model (%dx%dx%d, %d)", data, dc,
                dh, dw, dk, info.model.in_c, info.model.in_h, info.model.in_w, info.model.classes);
    }
    if (!info.model.norm.set)
        fprintf(stderr,
                "lowbit eval: note: %s records no input normalization (older checkpoint); "
                "using the statistics of %s's test split\n",
                file, data);
    if (integer || timing) {
        int rc = cmd_eval_integer(file, n, &d, &info, integer, compare, dump, impl, limit, batch,
                                  threads);
        lb_net_free(n);
        lb_dataset_free(&d);
        return rc;
    }
    float loss, acc;
    st = lb_evaluate(n, &d, &info.model.norm, limit, batch, &loss, &acc);
    lb_net_free(n);
    lb_dataset_free(&d);
    if (st != LB_OK) cli_die(1, "eval", "%s", lb_error_msg());
    printf("model: %s  quant: %s W%dA%d  epoch: %d\n", info.model.arch,
           lb_qkind_name(info.model.q.kind), info.model.q.wbits, info.model.q.abits, info.epoch);
    if (info.model.q.kind == LB_Q_REG) /* the eval forward snaps (docs/reg.md) */
        printf("reg: %s levels, weights snapped to their nearest level\n",
               lb_reg_levels_name(info.model.q.reg_levels));
    printf("loss: %.4f\naccuracy: %.4f\n", loss, acc);
    return 0;
}

/* The levels of a reg weight quantizer, channel 0 (and how many channels have their own). */
static void print_reg_levels(const lb_node *d) {
    float lv[256];
    int nl = lb_quant_levels(&d->wq, 0, lv);
    printf("  %-14s reg %s/%s levels (by index k%s):", d->name, lb_reg_levels_name(d->wqcfg.levels),
           lb_reg_form_name(d->wqcfg.form), d->wq.ch > 1 ? ", channel 0" : "");
    if (d->wq.state[0] == 0.0f) nl = 0; /* never trained: no levels yet */
    for (int k = 0; k < nl; k++) printf(" %.6g", (double)lv[k]);
    if (!nl) printf(" not initialized");
    if (d->wq.ch > 1) printf("  (%d channels)", d->wq.ch);
    putchar('\n');
}

int cmd_info(int argc, char **argv) {
    const char *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: lowbit info FILE\nDescribes checkpoint FILE: model, quantization, "
                 "input normalization, training state, tensors.");
            return 0;
        }
        if (argv[i][0] == '-') cli_die(2, "info", "unknown option '%s'", argv[i]);
        file = argv[i];
    }
    if (!file) cli_die(2, "info", "no checkpoint FILE given (see lowbit info --help)");
    lb_net *n;
    lb_ckpt_info in;
    lb_status st = lb_ckpt_open_model(file, 1, 1, &n, &in);
    if (st != LB_OK) cli_die(1, "info", "%s", lb_error_msg());
    const lb_model_cfg *m = &in.model;
    printf("file: %s\nmodel: %s  input %dx%dx%d  classes %d\n", file, m->arch, m->in_c, m->in_h,
           m->in_w, m->classes);
    printf("quant: %s  W%dA%d  first %d  last %d  per_channel %d  layer_bits '%s'\n",
           lb_qkind_name(m->q.kind), m->q.wbits, m->q.abits, m->q.first_bits, m->q.last_bits,
           m->q.per_channel, m->q.overrides);
    if (m->q.kind == LB_Q_REG)
        printf("reg: levels %s  form %s  lambda %g -> %g from %g of the run  levels_lr %g\n",
               lb_reg_levels_name(m->q.reg_levels), lb_reg_form_name(m->q.reg_form),
               (double)m->q.reg_lambda0, (double)m->q.reg_lambda_max, (double)m->q.reg_ramp,
               (double)in.train.levels_lr);
    if (m->norm.set) {
        int nc = m->in_c < 3 ? m->in_c : 3;
        printf("norm: mean");
        for (int c = 0; c < nc; c++) printf(" %.6g", (double)m->norm.mean[c]);
        printf("  std");
        for (int c = 0; c < nc; c++) printf(" %.6g", (double)m->norm.std[c]);
        printf("  (applied to pixel/255)\n");
    } else {
        printf("norm: not recorded (older checkpoint): eval and export use the statistics of "
               "the data they read\n");
    }
    printf("epoch: %d/%d  step: %ld  test_acc: %.4f  seed: %llu  batch: %d  lr: %g\n", in.epoch,
           in.train.epochs, in.step, in.test_acc, (unsigned long long)in.train.seed, in.train.batch,
           in.train.sched.base);
    printf("parameters: %zu floats in %d tensors; state: %zu floats in %d tensors\n", n->nparam,
           n->nparams, n->nstate, n->nstates);
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        printf("  %-14s %-6s out %dx%dx%d  W: %s %d-bit step %.5g  A: %s %d-bit%s step %.5g\n",
               d->name, lb_op_name(d->op), d->c, d->h, d->w, lb_qkind_name(d->wqcfg.kind),
               d->wqcfg.bits, d->wqcfg.kind ? lb_quant_step(&d->wq, 0) : 0.0,
               lb_qkind_name(d->aqcfg.kind), d->aqcfg.bits,
               d->aqcfg.kind ? (d->aqcfg.is_signed ? " signed" : " unsigned") : "",
               d->aqcfg.kind ? lb_quant_step(&d->aq, 0) : 0.0);
        if (d->wqcfg.kind == LB_Q_REG) print_reg_levels(d);
    }
    lb_net_free(n);
    return 0;
}
