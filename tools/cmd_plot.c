/* lowbit plot scales: draws the scale trajectories a `--log-scales` run wrote into its metrics
 * JSONL (scripts/plot_scales.py); lowbit plot bits: the learned bit-widths of a sliced checkpoint
 * per layer and slice (scripts/plot_bits.py); lowbit plot pareto: accuracy against exported bytes
 * per method (scripts/plot_pareto.py, the file checked here first); all run with a python3 that
 * has matplotlib. Not the logger (src/train/scales_log.c) and not a plotting library. */
#include "cli.h"
#include "pareto_check.h"
#include "lb_train.h"

#include <cjson/cJSON.h>
#include <math.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fputs("usage: lowbit plot scales METRICS.jsonl -o OUT.svg\n"
          "       lowbit plot bits CKPT -o OUT.svg\n"
          "       lowbit plot pareto RESULTS.json -o OUT.svg\n"
          "pareto: test accuracy against the exported model's weight + activation bytes, one\n"
          "curve per method, one panel per model; RESULTS.json is {\"points\": [{\"model\",\n"
          "\"method\", \"label\", \"weight_bytes\", \"activation_bytes\", \"accuracy\"}, ..]}\n"
          "(docs/mixed.md; bench/pareto/run.sh writes it).\n"
          "bits: the learned bit-width of every slice of a --quant sliced checkpoint (weights:\n"
          "one bar per output channel of each layer; activations: one per layer), with each\n"
          "layer's mean; writes OUT.svg and OUT.png.\n"
          "scales:\n"
          "Draws each layer's scale (log2 of the step: the exponent for msqe-po2, grad-po2 and\n"
          "lsq --po2) over the optimizer steps of a `lowbit train --log-scales N` run, weights\n"
          "and activations in two panels; writes OUT.svg and OUT.png. The legend counts each\n"
          "layer's exponent reversals (oscillation). Needs python3 with matplotlib:\n"
          "$LOWBIT_PYTHON, else /usr/bin/python3, else python3 on the PATH, the first that\n"
          "imports it; the script is $LOWBIT_SCRIPTS/plot_scales.py or scripts/ beside the\n"
          "build. Exit status: 0 written, 1 error, 2 bad option.\n",
          f);
}

/* The script: $LOWBIT_SCRIPTS, else next to the build (<exe>/../../scripts), else ./scripts. */
static int find_script(const char *name, char *out, size_t cap) {
    const char *e = getenv("LOWBIT_SCRIPTS");
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char cands[3][PATH_MAX + 64];
    int nc = 0;
    if (e && *e) snprintf(cands[nc++], sizeof cands[0], "%.4000s/%s", e, name);
    if (k > 0) {
        exe[k] = 0;
        char *s = strrchr(exe, '/');
        if (s) *s = 0;
        snprintf(cands[nc++], sizeof cands[0], "%.4000s/../../scripts/%s", exe, name);
    }
    snprintf(cands[nc++], sizeof cands[0], "scripts/%s", name);
    for (int i = 0; i < nc; i++)
        if (access(cands[i], R_OK) == 0) {
            snprintf(out, cap, "%.4000s", cands[i]);
            return 1;
        }
    return 0;
}

/* A python3 that imports matplotlib; the first candidate tried is named in the error. Debian's
 * /usr/bin/python3 is what scripts/deps.sh equips, but a user's PATH python may be the one that
 * has it. */
static const char *find_python(void) {
    static char cmd[PATH_MAX + 64];
    const char *e = getenv("LOWBIT_PYTHON");
    const char *cands[2] = {"/usr/bin/python3", "python3"};
    int nc = 2;
    if (e && *e) cands[0] = e, nc = 1; /* the user's choice, alone */
    for (int i = 0; i < nc; i++) {
        if (strchr(cands[i], '\'')) continue;
        snprintf(cmd, sizeof cmd, "'%.4000s' -c 'import matplotlib' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) return cands[i];
    }
    return NULL;
}

/* Whether the file holds a scale record: a plain scan, before any python is started. */
static int has_scales(const char *cmd, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) cli_die(1, cmd, "%s: cannot read", path);
    char line[1 << 16];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, "\"event\":\"scales\"") != 0;
    fclose(f);
    return found;
}

/* plot bits: the checkpoint's slices as JSON lines {"layer","q":"w"|"a","bits":[...]} in a
 * temporary file (made here, removed by the caller), so the script needs no checkpoint reader. A
 * checkpoint without sliced quantizers has nothing learned to draw. */
static void write_bits(const char *cmd, const char *ckpt, char *tmp) {
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(ckpt, 1, 1, &n, &info) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        lb_net_free(n);
        cli_die(1, cmd, "cannot create a temporary file in /tmp");
    }
    int layers = 0;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        const lb_quant *qs[2] = {&d->wq, &d->aq};
        for (int side = 0; side < 2; side++) {
            if (qs[side]->cfg.kind != LB_Q_SLICED) continue;
            fprintf(f, "{\"layer\":\"%s\",\"q\":\"%s\",\"bits\":[", d->name, side ? "a" : "w");
            for (int c = 0; c < qs[side]->ch; c++)
                fprintf(f, "%s%d", c ? "," : "", lb_quant_sliced_bits(qs[side], c));
            fputs("]}\n", f);
            layers++;
        }
    }
    lb_net_free(n);
    if (fclose(f) != 0 || !layers) {
        unlink(tmp);
        if (layers) cli_die(1, cmd, "cannot write a temporary file in /tmp");
        cli_die(1, cmd,
                "%s: no sliced quantizers (quant %s): no learned bit-widths to plot (train with "
                "--quant sliced)",
                ckpt, lb_qkind_name(info.model.q.kind));
    }
}

/* plot pareto: the whole file is checked here, so a bad point is named before python starts. */
static void check_pareto(const char *cmd, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) cli_die(1, cmd, "%s: cannot read", path);
    char *buf = malloc(1 << 24);
    size_t n = buf ? fread(buf, 1, (1 << 24) - 1, f) : 0;
    int big = buf && n == (1 << 24) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!buf) cli_die(1, cmd, "out of memory");
    if (big) {
        free(buf);
        cli_die(1, cmd, "%s: larger than 16 MiB", path);
    }
    buf[n] = 0;
    char why[512];
    int good = pareto_check(path, buf, why, sizeof why);
    free(buf);
    if (!good) cli_die(1, cmd, "%s", why);
}

int cmd_plot(int argc, char **argv) {
    const char *cmd = "plot";
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    int bits = strcmp(argv[0], "bits") == 0, pareto = strcmp(argv[0], "pareto") == 0;
    if (strcmp(argv[0], "scales") != 0 && !bits && !pareto)
        cli_die(2, cmd, "unknown plot '%s' (scales, bits, pareto)", argv[0]);
    cmd = bits ? "plot bits" : pareto ? "plot pareto" : "plot scales";
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0)
            out = cli_value(cmd, argc, argv, &i);
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-')
            cli_die(2, cmd, "unknown option '%s' (see lowbit plot --help)", argv[i]);
        else if (!in)
            in = argv[i];
        else
            cli_die(2, cmd, "one input file, got '%s' too", argv[i]);
    }
    if (!in)
        cli_die(2, cmd, "needs %s (see lowbit plot --help)",
                bits     ? "a sliced checkpoint"
                : pareto ? "a results JSON"
                         : "the metrics JSONL of a run");
    if (!out) cli_die(2, cmd, "-o OUT.svg is required");
    if (strchr(in, '\'') || strchr(out, '\''))
        cli_die(2, cmd, "file names with a single quote are not supported");
    char tmp[] = "/tmp/lowbit_bits.XXXXXX";
    if (bits) {
        write_bits(cmd, in, tmp);
        in = tmp;
    } else if (pareto) {
        check_pareto(cmd, in);
    } else if (!has_scales(cmd, in)) {
        cli_die(1, cmd, "%s: no scale records (train with --log-scales N to write them)", in);
    }
    const char *sname = bits ? "plot_bits.py" : pareto ? "plot_pareto.py" : "plot_scales.py";
    char script[PATH_MAX + 64];
    if (!find_script(sname, script, sizeof script)) {
        if (bits) unlink(tmp);
        cli_die(1, cmd, "scripts/%s not found (set LOWBIT_SCRIPTS)", sname);
    }
    const char *py = find_python();
    if (!py && bits) unlink(tmp);
    if (!py)
        cli_die(1, cmd,
                "matplotlib is not installed for %s (scripts/deps.sh installs python3-matplotlib; "
                "LOWBIT_PYTHON names another python3)",
                getenv("LOWBIT_PYTHON") && *getenv("LOWBIT_PYTHON")
                    ? getenv("LOWBIT_PYTHON")
                    : "/usr/bin/python3 or python3");
    char run[4 * 4000 + 64];
    snprintf(run, sizeof run, "'%.4000s' '%.4000s' '%.4000s' '%.4000s'", py, script, in, out);
    int rc = system(run);
    if (bits) unlink(tmp);
    if (rc != 0) cli_die(1, cmd, "%s failed", script);
    return 0;
}
