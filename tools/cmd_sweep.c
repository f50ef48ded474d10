/* `lowbit faults sweep CKPT --rates ... --chips N -o DIR`: chips drawn per fault rate and
 * variability, evaluated before and after fine-tuning with each method, tabled (sweep.csv,
 * sweep.json) and plotted (scripts/plot_sweep.py with Debian's matplotlib). Options ->
 * lb_sweep_run; progress with ETA on stderr. Not the sweep itself (src/train/sweep.c). */
#include "cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    puts(
        "usage: lowbit faults sweep CKPT -o DIR [--rates R,R,..] [--chips N]\n"
        "       [--variability X,X,..] [--finetune-epochs E] [--methods lowbit,inject,qfalt]\n"
        "Per fault rate x variability and chip (map seed = --seed + chip; one chip's maps are\n"
        "nested in the rate): the chip's accuracy before fine-tuning and after each method.\n"
        "One result file per cell in DIR/cells (finished cells are not redone: rerun the same\n"
        "command to resume), maps in DIR/maps, the table in DIR/sweep.csv and DIR/sweep.json,\n"
        "plots DIR/sweep_*.svg and .png (scripts/plot_sweep.py, /usr/bin/python3 + matplotlib).\n"
        "  --rates LIST         bit-fault rates in [0, 1] (default 0,0.01,0.02,0.05,0.1,0.15,0.2)\n"
        "  --chips N            chips per point (default 5)\n"
        "  --variability LIST   sigma/mu values >= 0 (default 0)\n"
        "  --var-dist D         gauss | lognormal (default gauss)\n"
        "  --sa1-share S        share of stuck cells stuck at 1 (default 0)\n"
        "  --layers body|all    body (default): the first and last coded layers sit in\n"
        "                       healthy memory, as in the reference; all: on the chip too\n"
        "  --reg-encoding E     reg layers store their level index as index (default,\n"
        "                       offset binary, the seed's) or twos (two's complement)\n"
        "  --lsq-encoding E     signed LSQ/fixed layers store their code as twos (default,\n"
        "                       two's complement) or signmag (sign cell + magnitude cells)\n"
        "  --finetune-epochs E  epochs per chip and method (default 1)\n"
        "  --methods LIST       of lowbit, inject, qfalt (default all three)\n"
        "  --keep-checkpoints   keep the fine-tuned checkpoints in DIR/ckpt\n"
        "  --no-plot            tables only\n"
        "  --collect            compute nothing: the tables and plots of the cells already in\n"
        "                       DIR/cells (sweeps run point by point, their cells and maps\n"
        "                       copied into DIR); a missing cell is an error naming it\n"
        "  --lambda X           lowbit's and qfalt's lambda (as for finetune); pairs such as\n"
        "                       lowbit=1000 or lowbit=30,qfalt=1e-3 set one method's and\n"
        "                       leave the other at its default\n"
        "  --data --train-limit --test-limit --batch --threads --seed --lr\n"
        "  --no-chip-forward as for finetune");
}

/* A comma-separated list of numbers in [lo, hi]; exits 2 naming the option otherwise. */
static int parse_list(const char *cmd, const char *opt, const char *v, double lo, double hi,
                      double *out) {
    int n = 0;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n >= LB_SWEEP_MAX_POINTS) cli_die(2, cmd, "%s: more than %d values", opt, n);
        char *end;
        double x = strtod(t, &end);
        if (end == t || *end || !(x >= lo && x <= hi))
            cli_die(2, cmd, "%s: '%s' is not a number in [%g, %g]", opt, t, lo, hi);
        out[n++] = x;
    }
    if (n == 0) cli_die(2, cmd, "%s: no values", opt);
    return n;
}

typedef struct ui {
    int tty;
} ui;

static void progress(void *ctx, const lb_sweep_progress *p) {
    ui *u = ctx;
    char eta[32] = "?";
    if (p->eta_s >= 0) {
        int t = (int)(p->eta_s + 0.5);
        snprintf(eta, sizeof eta, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    }
    fprintf(stderr, "%ssweep: %d/%d cells (%d done before)  %s  acc %.4f  ETA %s%s",
            u->tty ? "\r\033[K" : "", p->done, p->total, p->reused, p->cell, (double)p->acc, eta,
            u->tty && p->done < p->total ? "" : "\n");
}

/* scripts/plot_sweep.py: $LOWBIT_SCRIPTS, else next to the build (<exe>/../../scripts), else
 * ./scripts. */
static int find_plotter(char *out, size_t cap) {
    const char *e = getenv("LOWBIT_SCRIPTS");
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char cands[3][PATH_MAX + 64];
    int nc = 0;
    if (e && *e) snprintf(cands[nc++], sizeof cands[0], "%s/plot_sweep.py", e);
    if (k > 0) {
        exe[k] = 0;
        char *s = strrchr(exe, '/');
        if (s) *s = 0;
        snprintf(cands[nc++], sizeof cands[0], "%s/../../scripts/plot_sweep.py", exe);
    }
    snprintf(cands[nc++], sizeof cands[0], "scripts/plot_sweep.py");
    for (int i = 0; i < nc; i++)
        if (access(cands[i], R_OK) == 0) {
            snprintf(out, cap, "%.4000s", cands[i]);
            return 1;
        }
    return 0;
}

static void plot(const char *dir) {
    char script[PATH_MAX + 64], cmd[PATH_MAX * 2 + 1024];
    if (!find_plotter(script, sizeof script)) {
        fprintf(stderr,
                "plots: NOT made: scripts/plot_sweep.py not found (set LOWBIT_SCRIPTS); "
                "the table is in %s/sweep.csv\n",
                dir);
        return;
    }
    if (system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) {
        fprintf(
            stderr,
            "plots: NOT made: /usr/bin/python3 with matplotlib is not installed (scripts/deps.sh "
            "installs python3-matplotlib); the table is in %s/sweep.csv\n",
            dir);
        return;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%.4200s' '%.600s'", script, dir);
    if (strchr(dir, '\'') || system(cmd) != 0)
        fprintf(stderr, "plots: FAILED (%s); the table is in %s/sweep.csv\n", cmd, dir);
}

int cmd_faults_sweep(int argc, char **argv) {
    const char *cmd = "faults sweep";
    lb_sweep_cfg c;
    memset(&c, 0, sizeof c);
    lb_ft_cfg_default(&c.ft);
    const double rates[] = {0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2};
    c.nrates = 7;
    memcpy(c.rates, rates, sizeof rates);
    c.nvars = 1;
    c.chips = 5;
    c.var_kind = LB_FVAR_GAUSS;
    c.nmethods = LB_FT_COUNT;
    for (int m = 0; m < LB_FT_COUNT; m++) c.methods[m] = (lb_ft_method)m;
    int no_plot = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
#define IS(s) (strcmp(o, s) == 0)
#define VAL cli_value(cmd, argc, argv, &i)
        if (IS("--help") || IS("-h")) {
            usage();
            return 0;
        }
        if (IS("-o") || IS("--out"))
            cli_copy(cmd, o, c.dir, sizeof c.dir, VAL);
        else if (IS("--rates"))
            c.nrates = parse_list(cmd, o, VAL, 0, 1, c.rates);
        else if (IS("--variability"))
            c.nvars = parse_list(cmd, o, VAL, 0, 100, c.vars);
        else if (IS("--var-dist")) {
            if (lb_fvar_parse(VAL, &c.var_kind) != LB_OK || c.var_kind == LB_FVAR_NONE)
                cli_die(2, cmd, "--var-dist: expected gauss or lognormal");
        } else if (IS("--sa1-share"))
            c.sa1_share = cli_float(cmd, o, VAL, 0, 1);
        else if (IS("--layers"))
            c.all_layers = cli_layers(cmd, VAL);
        else if (IS("--reg-encoding"))
            c.reg_twos = cli_reg_encoding(cmd, VAL);
        else if (IS("--lsq-encoding"))
            c.lsq_signmag = cli_lsq_encoding(cmd, VAL);
        else if (IS("--chips"))
            c.chips = cli_int(cmd, o, VAL, 1, 10000);
        else if (IS("--finetune-epochs"))
            c.ft.epochs = cli_int(cmd, o, VAL, 1, 1000);
        else if (IS("--methods")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", VAL);
            c.nmethods = 0;
            for (char *s = NULL, *t = strtok_r(buf, ",", &s); t; t = strtok_r(NULL, ",", &s)) {
                lb_ft_method m;
                if (lb_ft_method_parse(t, &m) != LB_OK) cli_die(2, cmd, "%s", lb_error_msg());
                for (int k = 0; k < c.nmethods; k++)
                    if (c.methods[k] == m) cli_die(2, cmd, "--methods: '%s' given twice", t);
                c.methods[c.nmethods++] = m;
            }
        } else if (IS("--keep-checkpoints"))
            c.keep = 1;
        else if (IS("--no-plot"))
            no_plot = 1;
        else if (IS("--collect"))
            c.collect = 1;
        else if (cli_ft_option(cmd, argc, argv, &i, &c.ft))
            continue;
        else if (o[0] == '-')
            cli_die(2, cmd, "unknown option '%s' (see lowbit faults sweep --help)", o);
        else if (c.ft.ckpt[0])
            cli_die(2, cmd, "more than one checkpoint given ('%s', '%s')", c.ft.ckpt, o);
        else
            cli_copy(cmd, "CKPT", c.ft.ckpt, sizeof c.ft.ckpt, o);
#undef IS
#undef VAL
    }
    if (!c.ft.ckpt[0]) cli_die(2, cmd, "a checkpoint is required (see lowbit faults sweep --help)");
    if (!c.dir[0]) cli_die(2, cmd, "-o DIR is required");
    if (c.nmethods == 0) cli_die(2, cmd, "--methods: none given");
    ui u = {isatty(2)};
    if (lb_sweep_run(&c, progress, &u) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    printf("table: %s/sweep.csv %s/sweep.json\n", c.dir, c.dir);
    if (!no_plot) plot(c.dir);
    return 0;
}
