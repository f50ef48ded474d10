/* `lowbit train`: options -> lb_train_run, with a progress bar on a terminal. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    puts("usage: lowbit train [options] --out FILE [--resume FILE]\n"
         "Trains a model; writes FILE (safetensors) atomically after every epoch and appends one\n"
         "JSON line of metrics per epoch to FILE.metrics.jsonl (or --metrics PATH).\n"
         "  --out FILE         checkpoint to write\n"
         "  --resume FILE      continue a run from its checkpoint, bit for bit\n"
         "  --init FILE        start from another run's weights (e.g. FP32 -> QAT fine-tuning)\n"
         "  --metrics PATH     metrics JSON lines\n"
         "  --stop-after E     stop after epoch E (as if interrupted)\n"
         "Exit status: 0 done, 1 error, 2 bad option, 3 stopped by a collapse (--on-collapse).");
    cli_train_usage();
}

typedef struct bar {
    int tty;
} bar;

static void fmt_time(char *b, size_t n, float s) {
    int t = (int)(s + 0.5f);
    snprintf(b, n, "%d:%02d", t / 60, t % 60);
}

static void progress(void *ctx, const lb_progress *p) {
    bar *b = ctx;
    if (p->note) {
        if (b->tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "%s%s%s\n", p->warning && b->tty ? "\033[1;31m" : "",
                p->warning ? "WARNING: " : "", p->note);
        if (p->warning && b->tty) fputs("\033[0m", stderr);
        return;
    }
    if (p->done) {
        if (b->tty) fputs("\r\033[K", stderr);
        fprintf(stderr,
                "epoch %d/%d  loss %.4f  acc %.4f  test_loss %.4f  test_acc %.4f  %.0f img/s  "
                "%.1f s%s\n",
                p->epoch, p->epochs, p->loss, p->acc, p->test_loss, p->test_acc, p->img_per_s,
                p->epoch_s, p->float_phase ? "  (float phase: quantizers not started yet)" : "");
        return;
    }
    if (!b->tty || (p->step % 5 && p->step != p->steps)) return;
    int width = 24, fill = p->steps ? p->step * width / p->steps : 0;
    char bars[32], eta[16];
    for (int i = 0; i < width; i++) bars[i] = i < fill ? '#' : '.';
    bars[width] = 0;
    fmt_time(eta, sizeof eta, p->eta_s);
    fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %d/%d  loss %.4f  acc %.4f  %.0f img/s  ETA %s",
            p->epoch, p->epochs, bars, p->step, p->steps, p->loss, p->acc, p->img_per_s, eta);
}

/* With --resume the checkpoint decides the model and the training options: an option that would
 * change any of them is an error (applied alone to the recorded config, it must change nothing).
 * Only what does not alter the run itself may be given. */
static void check_resume_options(int argc, char **argv, const char *path) {
    lb_ckpt_info info;
    if (lb_ckpt_peek(path, &info) != LB_OK) cli_die(1, "train", "%s", lb_error_msg());
    if (info.weights_only)
        cli_die(2, "train",
                "--resume %s: weights-only checkpoint (no training state): start a run from it "
                "with --init instead",
                path);
    lb_train_cfg rec = info.train;
    rec.model = info.model;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        int i0 = i;
        lb_train_cfg t = rec;
        if (!cli_train_option("train", argc, argv, &i, &t)) {
            if (strcmp(o, "--init") == 0)
                cli_die(2, "train",
                        "--init cannot be combined with --resume (%s already holds "
                        "the weights)",
                        path);
            continue;
        }
        /* what may differ: where the data lives, how many threads, more epochs, the test
         * subset and what to do on a collapse */
        memcpy(t.data_dir, rec.data_dir, sizeof t.data_dir);
        t.threads = rec.threads;
        t.epochs = rec.epochs;
        t.test_limit = rec.test_limit;
        t.on_collapse = rec.on_collapse;
        /* the flags saying an option was typed are not recorded: its value is what counts */
        t.batch_given = rec.batch_given;
        t.opt_given = rec.opt_given;
        t.wd_given = rec.wd_given;
        if (memcmp(&t, &rec, sizeof t) != 0)
            cli_die(2, "train",
                    "%s%s%s contradicts the checkpoint %s, which records its own model and "
                    "training options (lowbit info %s shows them); with --resume only --out, "
                    "--data, --epochs (more), --threads, --test-limit, --metrics, --stop-after "
                    "and --on-collapse may be given",
                    o, i > i0 ? " " : "", i > i0 ? argv[i] : "", path, path);
    }
}

int cmd_train(int argc, char **argv) {
    lb_train_cfg c;
    lb_train_cfg_default(&c);
    int epochs_given = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage();
            return 0;
        }
        if (strcmp(o, "--epochs") == 0) epochs_given = 1;
        if (cli_train_option("train", argc, argv, &i, &c)) continue;
        if (strcmp(o, "--out") == 0)
            cli_copy("train", o, c.out, sizeof c.out, cli_value("train", argc, argv, &i));
        else if (strcmp(o, "--resume") == 0)
            cli_copy("train", o, c.resume, sizeof c.resume, cli_value("train", argc, argv, &i));
        else if (strcmp(o, "--init") == 0)
            cli_copy("train", o, c.init, sizeof c.init, cli_value("train", argc, argv, &i));
        else if (strcmp(o, "--metrics") == 0)
            cli_copy("train", o, c.metrics, sizeof c.metrics, cli_value("train", argc, argv, &i));
        else if (strcmp(o, "--stop-after") == 0)
            c.stop_after = cli_int("train", o, cli_value("train", argc, argv, &i), 1, 100000);
        else
            cli_die(2, "train", "unknown option '%s' (see lowbit train --help)", o);
    }
    if (!c.out[0]) cli_die(2, "train", "--out FILE is required (see lowbit train --help)");
    if (c.resume[0])
        check_resume_options(argc, argv, c.resume);
    else
        cli_reg_check("train", &c);
    cli_snn_check("train", &c);
    if (c.resume[0] && !epochs_given) c.epochs = 0; /* take the recorded count */
    bar b = {isatty(2)};
    float acc = 0;
    lb_status st = lb_train_run(&c, progress, &b, &acc);
    if (st == LB_ECOLLAPSE) cli_die(3, "train", "%s", lb_error_msg());
    if (st == LB_EBUDGET) cli_die(4, "train", "%s", lb_error_msg());
    if (st != LB_OK) cli_die(1, "train", "%s", lb_error_msg());
    printf("checkpoint: %s\naccuracy: %.4f\n", c.out, acc);
    return 0;
}
