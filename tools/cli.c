/* Option parsing for the lowbit CLI: every value is checked and a bad one names the option. */
#include "cli.h"
#include "lb_adaqat.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void cli_die(int code, const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "lowbit %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

int cli_int(const char *cmd, const char *opt, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        cli_die(2, cmd, "%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi, v);
    return (int)x;
}

int cli_layers(const char *cmd, const char *v) {
    if (strcmp(v, "body") == 0) return 0;
    if (strcmp(v, "all") == 0) return 1;
    cli_die(2, cmd, "--layers: expected body or all, got '%s'", v);
}

int cli_reg_encoding(const char *cmd, const char *v) {
    if (strcmp(v, "index") == 0) return 0;
    if (strcmp(v, "twos") == 0) return 1;
    cli_die(2, cmd, "--reg-encoding: expected index or twos, got '%s'", v);
}

int cli_lsq_encoding(const char *cmd, const char *v) {
    if (strcmp(v, "twos") == 0) return 0;
    if (strcmp(v, "signmag") == 0) return 1;
    cli_die(2, cmd, "--lsq-encoding: expected twos or signmag, got '%s'", v);
}

float cli_float(const char *cmd, const char *opt, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
        cli_die(2, cmd, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, v);
    return (float)x;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) cli_die(2, cmd, "%s needs a value", argv[*i]);
    return argv[++*i];
}

void cli_copy(const char *cmd, const char *opt, char *dst, size_t n, const char *v) {
    if (strlen(v) >= n) cli_die(2, cmd, "%s: value too long", opt);
    memcpy(dst, v, strlen(v) + 1);
}

/* The first reg option seen (they mean nothing without --quant reg; cli_reg_check). */
static const char *g_reg_opt;

/* The first msqe-po2 / grad-po2 option seen and whether it is grad-po2's own. */
static const char *g_po2x_opt;
static int g_po2x_grad;

void cli_reg_check(const char *cmd, const lb_train_cfg *c) {
    if (g_reg_opt && c->model.q.kind != LB_Q_REG)
        cli_die(2, cmd, "%s needs --quant reg (the regularization-based quantizer)", g_reg_opt);
    lb_qkind w = lb_quant_plan_wkind(&c->model.q), a = lb_quant_plan_akind(&c->model.q);
    if (g_po2x_opt && g_po2x_grad && w != LB_Q_GRAD_PO2 && a != LB_Q_GRAD_PO2)
        cli_die(2, cmd, "%s needs grad-po2 (--quant, --wquant or --aquant grad-po2)", g_po2x_opt);
    if (g_po2x_opt && !lb_qkind_is_po2x(w) && !lb_qkind_is_po2x(a))
        cli_die(2, cmd, "%s needs msqe-po2 or grad-po2 (--quant, --wquant or --aquant)",
                g_po2x_opt);
    /* a quantizer on the wrong side (pact weights, dorefa activations): before any data is read */
    if (lb_quant_plan_check(&c->model.q) != LB_OK) cli_die(2, cmd, "%s", lb_error_msg());
}

/* The reg options; 0 when argv[*i] is none of them. */
static int reg_option(const char *cmd, int argc, char **argv, int *i, lb_train_cfg *c) {
    const char *o = argv[*i];
    lb_quant_plan *q = &c->model.q;
#define IS(s) (strcmp(o, s) == 0)
#define VAL cli_value(cmd, argc, argv, i)
    if (IS("--levels")) {
        if (lb_reg_levels_parse(VAL, &q->reg_levels) != LB_OK)
            cli_die(2, cmd, "--levels: expected fixed, step or learned, got '%s'", argv[*i]);
    } else if (IS("--reg-kind")) {
        if (lb_reg_form_parse(VAL, &q->reg_form) != LB_OK)
            cli_die(2, cmd, "--reg-kind: expected mse or gauss, got '%s'", argv[*i]);
    } else if (IS("--reg-lambda")) {
        q->reg_lambda0 = cli_float(cmd, o, VAL, 0, 1e9);
    } else if (IS("--reg-lambda-max")) {
        q->reg_lambda_max = cli_float(cmd, o, VAL, 0, 1e9);
    } else if (IS("--reg-ramp-start")) {
        q->reg_ramp = cli_float(cmd, o, VAL, 0, 1);
    } else if (IS("--levels-lr")) {
        c->levels_lr = cli_float(cmd, o, VAL, 0, 1);
    } else {
        return 0;
    }
#undef IS
#undef VAL
    if (!g_reg_opt) g_reg_opt = o;
    return 1;
}

/* The msqe-po2 / grad-po2 switches; 0 when argv[*i] is none of them. */
static int po2x_option(const char *cmd, int argc, char **argv, int *i, lb_train_cfg *c) {
    const char *o = argv[*i];
    lb_quant_plan *q = &c->model.q;
    int grad = 0;
    if (strcmp(o, "--msqe-outlier") == 0 || strcmp(o, "--msqe-moments") == 0) {
        const char *v = cli_value(cmd, argc, argv, i);
        int bit = o[7] == 'o' ? LB_PO2X_NO_MASK : LB_PO2X_NO_MOMENTS;
        if (strcmp(v, "on") == 0)
            q->po2_flags &= ~bit;
        else if (strcmp(v, "off") == 0)
            q->po2_flags |= bit;
        else
            cli_die(2, cmd, "%s: expected on or off, got '%s'", o, v);
    } else if (strcmp(o, "--po2-round") == 0) {
        const char *v = cli_value(cmd, argc, argv, i);
        if (strcmp(v, "msqe") == 0)
            q->po2_round = LB_PO2X_ROUND_MSQE;
        else if (strcmp(v, "ceil") == 0)
            q->po2_round = LB_PO2X_ROUND_CEIL;
        else
            cli_die(2, cmd, "--po2-round: expected msqe or ceil, got '%s'", v);
        grad = 1;
    } else if (strcmp(o, "--po2-stable-after") == 0) {
        /* a float count in the state array: exact far beyond this */
        q->stable_after = cli_int(cmd, o, cli_value(cmd, argc, argv, i), 0, 10000000);
        grad = 1;
    } else {
        return 0;
    }
    if (!g_po2x_opt || (grad && !g_po2x_grad)) g_po2x_opt = o, g_po2x_grad = grad;
    return 1;
}

int cli_image_option(const char *cmd, int argc, char **argv, int *i, lb_image_opts *img) {
    const char *o = argv[*i];
    if (strcmp(o, "--image-size") == 0) {
        const char *v = cli_value(cmd, argc, argv, i);
        char *end;
        long h = strtol(v, &end, 10), w = h;
        if (*end == 'x') w = strtol(end + 1, &end, 10);
        if (*end || h < 1 || w < 1 || h > 4096 || w > 4096)
            cli_die(2, cmd, "--image-size: expected HxW (or N for NxN), sides 1..4096, got '%s'",
                    v);
        img->h = (int)h;
        img->w = (int)w;
    } else if (strcmp(o, "--channels") == 0) {
        img->c = cli_int(cmd, o, cli_value(cmd, argc, argv, i), 1, 3);
        if (img->c == 2) cli_die(2, cmd, "--channels: 1 (grey) or 3 (RGB)");
    } else if (strcmp(o, "--test-split") == 0) {
        img->test_split = cli_float(cmd, o, cli_value(cmd, argc, argv, i), 0.001, 0.999);
    } else {
        return 0;
    }
    return 1;
}

int cli_train_option(const char *cmd, int argc, char **argv, int *i, lb_train_cfg *c) {
    const char *o = argv[*i];
    if (reg_option(cmd, argc, argv, i, c)) return 1;
    if (cli_snn_option(cmd, argc, argv, i, &c->model.snn)) return 1;
    if (po2x_option(cmd, argc, argv, i, c)) return 1;
#define IS(s) (strcmp(o, s) == 0)
#define VAL cli_value(cmd, argc, argv, i)
    if (IS("--model")) {
        const char *v = VAL;
        int ok = 0;
        for (const char *const *a = lb_model_archs(); *a; a++) ok |= strcmp(*a, v) == 0;
        if (!ok)
            cli_die(2, cmd,
                    "--model: unknown model '%s' (cnn, resnet20, resnet18, mobilenetv1, "
                    "mobilenetv2, efficientnet-lite0, snn-vgg, snn-resnet)",
                    v);
        cli_copy(cmd, o, c->model.arch, sizeof c->model.arch, v);
    } else if (IS("--width-mult")) {
        c->model.width_mult = cli_float(cmd, o, VAL, 0.25, 4);
    } else if (IS("--data")) {
        cli_copy(cmd, o, c->data_dir, sizeof c->data_dir, VAL);
    } else if (cli_image_option(cmd, argc, argv, i, &c->img)) {
    } else if (IS("--epochs")) {
        c->epochs = cli_int(cmd, o, VAL, 1, 100000);
    } else if (IS("--batch")) {
        c->batch = cli_int(cmd, o, VAL, 1, 65536);
        c->batch_given = 1;
    } else if (IS("--lr")) {
        c->sched.base = cli_float(cmd, o, VAL, 1e-9, 100);
    } else if (IS("--quant")) {
        const char *v = VAL;
        if (strcmp(v, "fp32") == 0)
            c->model.q.kind = LB_Q_NONE;
        else if (lb_qkind_parse(v, &c->model.q.kind) != LB_OK || c->model.q.kind == LB_Q_NONE)
            cli_die(2, cmd,
                    "--quant: expected fp32, lsq, fixed, reg, dorefa, roundclip, msqe-po2, "
                    "grad-po2 or sliced, got '%s'",
                    v);
    } else if (IS("--wquant") || IS("--aquant")) {
        const char *v = VAL;
        lb_qkind k;
        if (lb_qkind_parse(v, &k) != LB_OK)
            cli_die(2, cmd,
                    "%s: expected none, fixed, lsq, %s, roundclip, msqe-po2, grad-po2, sliced, "
                    "got '%s'",
                    o, o[2] == 'w' ? "dorefa" : "pact", v);
        *(o[2] == 'w' ? &c->model.q.wquant : &c->model.q.aquant) = 1 + (int)k;
    } else if (IS("--wbits")) {
        c->model.q.wbits = cli_int(cmd, o, VAL, 2, 8);
    } else if (IS("--abits")) {
        c->model.q.abits = cli_int(cmd, o, VAL, 2, 8);
    } else if (IS("--first-bits")) {
        c->model.q.first_bits = cli_int(cmd, o, VAL, 0, 8);
        if (c->model.q.first_bits == 1) cli_die(2, cmd, "--first-bits: 0 (float) or 2..8");
    } else if (IS("--last-bits")) {
        c->model.q.last_bits = cli_int(cmd, o, VAL, 0, 8);
        if (c->model.q.last_bits == 1) cli_die(2, cmd, "--last-bits: 0 (float) or 2..8");
    } else if (IS("--per-channel")) {
        c->model.q.per_channel = 1;
    } else if (IS("--po2")) {
        c->model.q.po2 = 1;
    } else if (IS("--wstates")) { /* parity and range: lb_quant_plan_check, before any data */
        c->model.q.wstates = cli_int(cmd, o, VAL, 1, 1 << 16);
    } else if (IS("--astates")) {
        c->model.q.astates = cli_int(cmd, o, VAL, 1, 1 << 16);
    } else if (IS("--layer-states")) {
        cli_copy(cmd, o, c->model.q.layer_states, sizeof c->model.q.layer_states, VAL);
    } else if (IS("--surrogate")) {
        if (lb_surrogate_parse(VAL, &c->model.q.surrogate) != LB_OK)
            cli_die(2, cmd, "%s", lb_error_msg());
    } else if (IS("--weight-std")) {
        c->model.weight_std = 1;
    } else if (IS("--norm")) {
        const char *v = VAL;
        if (strcmp(v, "bn") != 0 && strcmp(v, "lbn") != 0)
            cli_die(2, cmd, "--norm: expected bn or lbn, got '%s'", v);
        c->model.norm_layer = strcmp(v, "lbn") == 0;
    } else if (IS("--learn-bits")) {
        lb_learn_bits m;
        if (lb_learn_bits_parse(VAL, &m) != LB_OK) cli_die(2, cmd, "%s", lb_error_msg());
        c->learn_bits = (int)m;
    } else if (IS("--learn-bits-scope")) {
        lb_bits_scope sc;
        if (lb_bits_scope_parse(VAL, &sc) != LB_OK) cli_die(2, cmd, "%s", lb_error_msg());
        c->bits_scope = (int)sc;
    } else if (IS("--bits-lr")) {
        c->bits_lr = cli_float(cmd, o, VAL, 1e-6, 10);
    } else if (IS("--bits-lambda")) {
        c->bits_lambda = cli_float(cmd, o, VAL, 0, 10);
    } else if (IS("--bits-until")) {
        c->bits_until = cli_float(cmd, o, VAL, 1e-6, 1);
    } else if (IS("--phases")) {
        const char *v = VAL;
        int a, b, k, n = -1;
        if (sscanf(v, "%d,%d,%d%n", &a, &b, &k, &n) != 3 || n < 0 || v[n] || a < 0 || b < 0 ||
            k < 0 || a + b + k < 1)
            cli_die(2, cmd,
                    "--phases: expected A,B,C epochs (fixed-bit QAT, mixed, fine-tune), each "
                    ">= 0, adding up to --epochs, got '%s'",
                    v);
        c->phases[0] = a, c->phases[1] = b, c->phases[2] = k;
    } else if (IS("--budget-weights") || IS("--budget-acts")) {
        const char *v = VAL;
        char *end;
        double kb = strtod(v, &end);
        if (end == v || *end || !(kb > 0) || kb > 1e9)
            cli_die(2, cmd, "%s: expected a size in kB greater than 0, got '%s'", o, v);
        *(o[9] == 'w' ? &c->budget_w_kb : &c->budget_a_kb) = kb;
    } else if (IS("--sliced-every")) {
        c->sliced_every = cli_int(cmd, o, VAL, 1, 1000000);
    } else if (IS("--layer-bits")) {
        cli_copy(cmd, o, c->model.q.overrides, sizeof c->model.q.overrides, VAL);
    } else if (IS("--seed")) {
        c->seed = (uint64_t)cli_int(cmd, o, VAL, 0, 2147483647);
    } else if (IS("--threads")) {
        c->threads = cli_int(cmd, o, VAL, 1, 1024);
    } else if (IS("--train-limit")) {
        c->train_limit = cli_int(cmd, o, VAL, 0, 100000000);
    } else if (IS("--test-limit")) {
        c->test_limit = cli_int(cmd, o, VAL, 0, 100000000);
    } else if (IS("--optimizer")) {
        if (lb_opt_parse(VAL, &c->opt.kind) != LB_OK)
            cli_die(2, cmd, "--optimizer: expected sgd or adamw, got '%s'", argv[*i]);
        c->opt_given = 1;
        if (c->opt.kind == LB_OPT_ADAMW && c->opt.weight_decay == 5e-4f)
            c->opt.weight_decay = 0.01f;
    } else if (IS("--momentum")) {
        c->opt.momentum = cli_float(cmd, o, VAL, 0, 0.9999);
    } else if (IS("--no-nesterov")) {
        c->opt.nesterov = 0;
    } else if (IS("--wd")) {
        c->opt.weight_decay = cli_float(cmd, o, VAL, 0, 1);
        c->wd_given = 1;
    } else if (IS("--sched")) {
        if (lb_sched_parse(VAL, &c->sched.kind) != LB_OK)
            cli_die(2, cmd, "--sched: expected const, cosine or step, got '%s'", argv[*i]);
    } else if (IS("--warmup")) {
        c->warmup_epochs = cli_float(cmd, o, VAL, 0, 1000);
    } else if (IS("--quant-delay")) {
        const char *v = VAL;
        c->quant_delay_epochs = strcmp(v, "auto") == 0 ? -1.0f : cli_float(cmd, o, v, 0, 1000);
    } else if (IS("--step-epochs")) {
        c->sched.step_every = cli_int(cmd, o, VAL, 1, 100000); /* converted to steps by caller */
    } else if (IS("--gamma")) {
        c->sched.gamma = cli_float(cmd, o, VAL, 0, 1);
    } else if (IS("--log-scales")) {
        c->log_scales = cli_int(cmd, o, VAL, 0, 100000000);
    } else if (IS("--qlr-scale")) {
        c->qlr_scale = cli_float(cmd, o, VAL, 0, 1000);
    } else if (IS("--head-lr")) {
        const char *v = VAL;
        c->head_lr = strcmp(v, "auto") == 0 ? -1.0f : cli_float(cmd, o, v, 1e-6, 1000);
    } else if (IS("--label-smoothing")) {
        c->label_smoothing = cli_float(cmd, o, VAL, 0, 0.999);
    } else if (IS("--no-augment")) {
        c->aug.crop_pad = 0;
        c->aug.hflip = 0;
    } else if (IS("--crop-pad")) {
        c->aug.crop_pad = cli_int(cmd, o, VAL, 0, 16);
    } else if (IS("--no-flip")) {
        c->aug.hflip = 0;
    } else if (IS("--flip")) {
        c->aug.hflip = 1;
    } else if (IS("--on-collapse")) {
        if (lb_on_collapse_parse(VAL, &c->on_collapse) != LB_OK)
            cli_die(2, cmd, "--on-collapse: expected warn or stop, got '%s'", argv[*i]);
    } else {
        return 0;
    }
#undef IS
#undef VAL
    return 1;
}

void cli_train_usage(void) {
    fputs("  --model M          cnn | resnet20 | resnet18 | mobilenetv1 | mobilenetv2 |\n"
          "                     efficientnet-lite0 | snn-vgg | snn-resnet\n"
          "                     (default cnn; docs/models.md)\n"
          "  --width-mult X     MobileNets, EfficientNet-Lite0: channel multiplier 0.25..4\n"
          "                     (default 1)\n"
          "  --data DIR         data set directory (default /usr/share/datasets/fashion-mnist):\n"
          "                     MNIST/Fashion-MNIST idx (.gz or raw), CIFAR-10/100 binary,\n"
          "                     or image folders DIR/{train,test}/<class>/*.png|jpg or\n"
          "                     DIR/<class>/*.png|jpg (docs/data.md)\n"
          "  --image-size HxW   image folders: resize to HxW (default: the most common size)\n"
          "  --channels C       image folders: 1 grey | 3 RGB (default: 3 if any image has\n"
          "                     colour)\n"
          "  --test-split F     image folders without test/: hold out F of each class\n"
          "                     (default 0.2, chosen by --seed)\n"
          "  --epochs E         epochs (default: 15, more on small data sets so that the run\n"
          "                     has at least 1000 optimizer steps; printed at the start)\n"
          "  --batch B          batch size (default 128, halved down to 16 while an epoch\n"
          "                     would have fewer than 32 steps)\n"
          "  --lr LR            peak learning rate (default 0.02 for cnn, 0.1 for resnets)\n"
          "  --quant Q          fp32 | lsq | fixed | reg | dorefa | msqe-po2 | grad-po2 | sliced\n"
          "                     (default fp32); reg:\n"
          "                     weights pulled onto levels by a regularizer, LSQ\n"
          "                     activations (docs/reg.md)\n"
          "  --quant dorefa     DoReFa weights (tanh, max-normalized) with PACT activations\n"
          "                     (learned clip alpha), docs/quantizers.md\n"
          "  --wquant K --aquant K  weight / activation quantizer on its own, overriding\n"
          "                     --quant for that side: weights none|fixed|lsq|dorefa,\n"
          "                     activations none|fixed|lsq|pact, both msqe-po2|grad-po2\n"
          "                     (bits, --layer-bits and\n"
          "                     first/last bits apply as with --quant)\n"
          "  --levels L         reg levels: fixed | step | learned (default fixed)\n"
          "  --reg-kind K       reg regularizer: mse | gauss (default mse)\n"
          "  --reg-lambda X --reg-lambda-max Y --reg-ramp-start F  lambda X until the fraction\n"
          "                     F of the epochs, then geometric growth to Y in the last epoch\n"
          "                     (default 100, 1000, 0.5)\n"
          "  --levels-lr R      peak rate of learned levels, same schedule (default 1e-6)\n"
          "  --wbits W --abits A  body bits 2..8 (default 4/4)\n"
          "  --first-bits N --last-bits N  first/last layer bits, 0 = float (default 8)\n"
          "  --per-channel      per-output-channel weight steps\n"
          "  --po2              lsq: power-of-two steps 2^round(log2 s), weights and\n"
          "                     activations (docs/quantizers.md)\n"
          "  --quant msqe-po2   power-of-two weight scales 2^E searched for the least weighted\n"
          "                     error every step, grad-po2 activations; grad-po2: learned\n"
          "                     log2 scales on both sides (docs/quantizers.md)\n"
          "  --msqe-outlier on|off --msqe-moments on|off  msqe-po2/grad-po2 error weights:\n"
          "                     |x| outlier mask, sqrt of running g^2 (default on, on)\n"
          "  --po2-round msqe|ceil  grad-po2: E = floor/ceil(e), lower error (default), or ceil\n"
          "  --po2-stable-after N  grad-po2: freeze E at its running mean after N training\n"
          "                     steps (default 0: never)\n"
          "  --log-scales N     every N steps, each layer's scale (exponent) into the metrics\n"
          "                     JSONL (default 0: off); lowbit plot scales draws them\n"
          "  --layer-bits L     per-layer bits, e.g. conv2=2/4,conv3=8/8\n"
          "  --quant roundclip  MaQD's scaled round-clip clip(round(a x), -K, K)/a, a learned\n"
          "                     (docs/quantizers.md); --wquant/--aquant roundclip per side\n"
          "  --wstates S --astates S  roundclip body states: weights 2K+1 (odd, 3..255),\n"
          "                     activations K+1 (2..256); first/last layers and --layer-bits\n"
          "                     get the states of their bits\n"
          "  --layer-states L   per-layer roundclip states, e.g. conv2=7/8,fc=255/256\n"
          "  --surrogate G      roundclip dQ/dx: ste (1 inside the range, default) |\n"
          "                     identity (1 everywhere) | triangle (peaks at the jumps)\n"
          "  --weight-std       standardize each conv's weights per output channel before\n"
          "                     the weight quantizer (MaQD)\n"
          "  --norm N           bn | lbn: Layer-Batch Norm (per-sample statistics) in place\n"
          "                     of every BN, folded like BN (docs/models.md)\n"
          "  --learn-bits adaqat  learn per-layer W/A bit-widths (AdaQAT, docs/mixed.md),\n"
          "                     starting from --wbits/--abits; first/last layers stay fixed\n"
          "  --learn-bits-scope layer|net  a width pair per layer or one for the net\n"
          "  --bits-lr R --bits-lambda L  width rate (0.1) and cost weight (0.02, halved\n"
          "                     once every weight width is frozen)\n"
          "  --bits-until F     the widths move in the first F of the run's steps (0.667),\n"
          "                     the rest trains the weights at the widths reached\n"
          "  --quant sliced     learned step d and range xmax per slice, bits implied\n"
          "                     (docs/mixed.md), starting from --wbits/--abits\n"
          "  --phases A,B,C     sliced: epochs of fixed-bit QAT, mixed phase (size\n"
          "                     penalty), frozen fine-tune; adding up to --epochs\n"
          "  --budget-weights KB --budget-acts KB  sliced: the exported model's weight and\n"
          "                     peak activation bytes (kB = 1000 bytes); the weight\n"
          "                     budget is met by lowering slices if the penalty did not\n"
          "  --sliced-every K   sliced: quantizer parameters move every K steps (20)\n"
          "  --optimizer O      sgd (momentum 0.9, Nesterov) | adamw (default sgd; spiking\n"
          "                     models: adamw, lr 1e-3, wd 1e-4, seed 000's recipe)\n"
          "  --momentum M --no-nesterov --wd WD (default 5e-4; never on BN, bias, quantizers)\n"
          "  --sched S          cosine | step | const (default cosine), per step\n"
          "  --warmup E         linear warm-up epochs (default: the first 5% of the steps)\n"
          "  --step-epochs N --gamma G  step schedule: multiply by G every N epochs\n"
          "  --quant-delay auto|E  the first E epochs train with the quantizers off, then they\n"
          "                     initialize from what the weights reached; auto (default):\n"
          "                     for LSQ from random weights the warm-up, and on while the\n"
          "                     loss is not below 90% of chance (at most half the run), else 0\n"
          "  --qlr-scale S      quantizer parameters learn at lr*S (default 1)\n"
          "  --head-lr auto|S   the classifier layer learns at lr*S; auto (default): S from the\n"
          "                     loss's curvature at the first batch, at most 1 (SGD)\n"
          "  --label-smoothing E  (default 0)\n"
          "  --crop-pad P       random crop after zero padding by P, 0 = no crop (default 2)\n"
          "  --flip             random horizontal flip (off by default: a flip changes the\n"
          "                     class of digits and letters; on for Fashion-MNIST's recipes)\n"
          "  --no-flip          no flip (the default)\n"
          "  --no-augment       neither crop nor flip (same as --crop-pad 0 --no-flip)\n"
          "  --on-collapse A    stop | warn: what to do when an epoch ends at chance after the\n"
          "                     run collapsed (default stop, exit status 3); warnings are\n"
          "                     printed and recorded in the metrics either way\n"
          "  --seed S --threads T (default 1 / 2)\n"
          "  --train-limit N --test-limit N  use only the first N samples (0 = all)\n",
          stdout);
    cli_snn_usage();
}
