/* `lowbit bench`: training speed on real data batches (warm-up, then timed steps, medians). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static void print_node(void *ctx, const lb_node *d, double fwd_ms, double bwd_ms) {
    (void)ctx;
    printf("  %-16s %-8s %4dx%3dx%3d  fwd %7.2f ms  bwd %7.2f ms%s\n", d->name, lb_op_name(d->op),
           d->c, d->h, d->w, fwd_ms, bwd_ms, d->fused ? "  (fused into BN)" : "");
}

int cmd_bench(int argc, char **argv) {
    lb_train_cfg c;
    lb_train_cfg_default(&c);
    int steps = 20, warmup = 5, profile = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts("usage: lowbit bench --model M --batch B --quant Q [--wbits W --abits A] "
                 "--threads T [--steps N] [--warmup N] [--profile] [--data DIR]\n"
                 "--profile prints each layer's forward and backward time.\n"
                 "Times training steps on real data; the last line is 'train_img_per_s: X'.");
            cli_train_usage();
            return 0;
        }
        /* --warmup here counts untimed steps (train's --warmup is epochs of rising rate) */
        if (strcmp(o, "--steps") == 0)
            steps = cli_int("bench", o, cli_value("bench", argc, argv, &i), 1, 100000);
        else if (strcmp(o, "--profile") == 0)
            profile = 1;
        else if (strcmp(o, "--warmup") == 0)
            warmup = cli_int("bench", o, cli_value("bench", argc, argv, &i), 0, 100000);
        else if (!cli_train_option("bench", argc, argv, &i, &c))
            cli_die(2, "bench", "unknown option '%s' (see lowbit bench --help)", o);
    }
    cli_reg_check("bench", &c);
    cli_snn_check("bench", &c);
    lb_bench_result r;
    if (profile) puts("per layer, mean per timed step:");
    lb_status st = lb_bench_run(&c, warmup, steps, &r, profile ? print_node : NULL, NULL);
    if (st != LB_OK) cli_die(1, "bench", "%s", lb_error_msg());
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("model: %s  quant: %s  W%dA%d  batch: %d  threads: %d  steps: %d\n", c.model.arch,
           c.model.q.kind == LB_Q_NONE ? "fp32" : lb_qkind_name(c.model.q.kind), c.model.q.wbits,
           c.model.q.abits, c.batch, c.threads, steps);
    printf("step_ms: %.2f  fwd_ms: %.2f  bwd_ms: %.2f  opt_ms: %.2f\n", r.step_ms, r.fwd_ms,
           r.bwd_ms, r.opt_ms);
    printf("gflops: %.1f  sgemm_ceiling_fraction: %.2f  fwd_macs_per_img: %.0f\n", r.gflops,
           r.gflops / 193.7, r.fwd_macs);
    printf("maxrss_mib: %.1f\n", ru.ru_maxrss / 1024.0);
    printf("train_img_per_s: %.1f\n", r.img_per_s);
    return 0;
}
