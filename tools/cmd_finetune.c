/* `lowbit finetune CKPT --chip MAP --epochs E -o OUT`: fine-tunes a trained checkpoint for one
 * chip (docs/faults.md "Fine-tuning for a chip"). Options -> lb_ft_run, progress on stderr. Not
 * the method (src/train/finetune.c, ft_reg.c) nor the sweep (cmd_sweep.c). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    puts("usage: lowbit finetune CKPT --chip MAP --epochs E -o OUT [options]\n"
         "Fine-tunes CKPT for the chip of fault map MAP (lowbit faults map) and writes OUT\n"
         "atomically after every epoch, with one JSON line of metrics per epoch in\n"
         "OUT.metrics.jsonl (chip_acc, reg, lambda, resets). Every accuracy is the chip's:\n"
         "'lowbit eval OUT --chip MAP' gives the final one (docs/faults.md).\n"
         "  --method M         lowbit (default): start from the nearest reachable codes,\n"
         "                     fault-aware regularizer to the nearest reachable level,\n"
         "                     periodic reset to the chip's copy (with variability: the chip\n"
         "                     in the training forward); inject: plain QAT with a fresh random\n"
         "                     map per epoch at the chip's rate; qfalt: the all-reachable-levels\n"
         "                     Gaussian regularizer, clamping, reset with a fresh optimizer\n"
         "  --epochs E         epochs of the training set (1..1000; default 1)\n"
         "  --lambda X         lowbit: regularizer weight (default 1000; 30 on a chip with\n"
         "                     variability: docs/faults.md); qfalt: its final\n"
         "                     lambda (default 1e-4); also as M=X for the method M run\n"
         "  --reset-units U    the reset schedule cuts the run into U units (default 20;\n"
         "                     0: one per epoch, the reference's epoch ends)\n"
         "  --reset-f1 F --reset-f2 F  reset after unit u when u % F == F-1, F1 in the first\n"
         "                     half, F2 in the second (default 5 and 4, methods.md's)\n"
         "  --no-start-snap    lowbit: do not start from the nearest reachable codes\n"
         "  --no-chip-forward  lowbit: the training forward sees the float weights (the\n"
         "                     reference's); by default it sees them as the chip holds\n"
         "                     them, the gradient applied to the floats (straight-through)\n"
         "  --nearest-reachable  evaluate with the nearest reachable code\n"
         "  --metrics PATH     metrics JSON lines\n"
         "  --data DIR --train-limit N --test-limit N --batch B --threads T --seed S --lr LR\n"
         "                     as for train (and its image-folder options); --lr default:\n"
         "                     half of train's for the model (cnn 0.01, ResNets 0.05 at\n"
         "                     batch 128)");
}

typedef struct bar {
    int tty;
} bar;

static void progress(void *ctx, const lb_progress *p) {
    bar *b = ctx;
    if (p->note) {
        if (b->tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "%s%s\n", p->warning ? "WARNING: " : "", p->note);
        return;
    }
    if (p->done) {
        if (b->tty) fputs("\r\033[K", stderr);
        /* img/s: the training steps alone (resets included), as train's epoch line */
        fprintf(stderr, "epoch %d/%d  loss %.4f  acc %.4f  chip_acc %.4f  %.0f img/s  %.1f s\n",
                p->epoch, p->epochs, p->loss, p->acc, p->test_acc, p->img_per_s, p->epoch_s);
        return;
    }
    if (!b->tty || (p->step % 5 && p->step != p->steps)) return;
    int t = (int)(p->eta_s + 0.5f);
    fprintf(stderr, "\r\033[Kepoch %d/%d %d/%d  loss %.4f  acc %.4f  ETA %d:%02d", p->epoch,
            p->epochs, p->step, p->steps, p->loss, p->acc, t / 60, t % 60);
}

/* The options `finetune` and `faults sweep` share (the data, the run and lambda): 1 if argv[*i]
 * was one of them (its value consumed), 0 otherwise. */
int cli_ft_option(const char *cmd, int argc, char **argv, int *i, lb_ft_cfg *c) {
    const char *o = argv[*i];
#define IS(s) (strcmp(o, s) == 0)
#define VAL cli_value(cmd, argc, argv, i)
    if (IS("--data"))
        cli_copy(cmd, o, c->data_dir, sizeof c->data_dir, VAL);
    else if (IS("--train-limit"))
        c->train_limit = cli_int(cmd, o, VAL, 0, 100000000);
    else if (IS("--test-limit"))
        c->test_limit = cli_int(cmd, o, VAL, 0, 100000000);
    else if (IS("--batch"))
        c->batch = cli_int(cmd, o, VAL, 1, 65536);
    else if (IS("--threads"))
        c->threads = cli_int(cmd, o, VAL, 1, 1024);
    else if (IS("--seed"))
        c->seed = (uint64_t)cli_int(cmd, o, VAL, 0, 2147483647);
    else if (IS("--lr"))
        c->lr = cli_float(cmd, o, VAL, 1e-12, 100);
    else if (IS("--lambda")) {
        if (lb_ft_lambda_parse(VAL, c) != LB_OK) cli_die(2, cmd, "%s", lb_error_msg());
    } else if (IS("--no-chip-forward"))
        c->chip_forward = 0;
    else
        return 0;
    return 1;
#undef IS
#undef VAL
}

int cmd_finetune(int argc, char **argv) {
    const char *cmd = "finetune";
    lb_ft_cfg c;
    lb_ft_cfg_default(&c);
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
#define IS(s) (strcmp(o, s) == 0)
#define VAL cli_value(cmd, argc, argv, &i)
        if (IS("--help") || IS("-h")) {
            usage();
            return 0;
        }
        if (cli_image_option(cmd, argc, argv, &i, &c.img) || cli_ft_option(cmd, argc, argv, &i, &c))
            continue;
        if (IS("-o") || IS("--out"))
            cli_copy(cmd, o, c.out, sizeof c.out, VAL);
        else if (IS("--chip"))
            cli_copy(cmd, o, c.chip, sizeof c.chip, VAL);
        else if (IS("--metrics"))
            cli_copy(cmd, o, c.metrics, sizeof c.metrics, VAL);
        else if (IS("--method")) {
            if (lb_ft_method_parse(VAL, &c.method) != LB_OK) cli_die(2, cmd, "%s", lb_error_msg());
        } else if (IS("--epochs"))
            c.epochs = cli_int(cmd, o, VAL, 1, 1000);
        else if (IS("--reset-units"))
            c.reset_units = cli_int(cmd, o, VAL, 0, 1000000);
        else if (IS("--reset-f1"))
            c.reset_f1 = cli_int(cmd, o, VAL, 1, 1000000);
        else if (IS("--reset-f2"))
            c.reset_f2 = cli_int(cmd, o, VAL, 1, 1000000);
        else if (IS("--nearest-reachable"))
            c.nearest = 1;
        else if (IS("--no-start-snap"))
            c.start_snap = 0;
        else if (o[0] == '-')
            cli_die(2, cmd, "unknown option '%s' (see lowbit finetune --help)", o);
        else if (c.ckpt[0])
            cli_die(2, cmd, "more than one checkpoint given ('%s', '%s')", c.ckpt, o);
        else
            cli_copy(cmd, "CKPT", c.ckpt, sizeof c.ckpt, o);
#undef IS
#undef VAL
    }
    if (!c.ckpt[0]) cli_die(2, cmd, "a checkpoint is required (see lowbit finetune --help)");
    if (!c.chip[0]) cli_die(2, cmd, "--chip MAP is required");
    if (!c.out[0]) cli_die(2, cmd, "-o OUT is required");
    for (int m = 0; m < LB_FT_COUNT; m++)
        if (c.lambda_of[m] > 0 && m != (int)c.method)
            cli_die(2, cmd, "--lambda names %s, but --method is %s", lb_ft_method_name(m),
                    lb_ft_method_name(c.method));
    bar b = {isatty(2)};
    lb_ft_result r;
    if (lb_ft_run(&c, progress, &b, &r) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    printf("chip: %s %llu of %llu coded weights hold another code\n", c.chip,
           (unsigned long long)r.changed, (unsigned long long)r.total);
    printf("method: %s\nlambda: %g\nresets: %d\nseconds: %.1f\ncheckpoint: %s\n",
           lb_ft_method_name(c.method), (double)r.lambda, r.resets, r.seconds, c.out);
    printf("accuracy before: %.4f\naccuracy: %.4f\n", (double)r.acc_before, (double)r.acc_after);
    return 0;
}
