/* `lowbit eval` and `lowbit info`: load a checkpoint, evaluate it (float, or its integer model;
 * either on a faulty chip with --chip) or describe it (with --tensors, every tensor and metadata
 * field). Not the file format (lb_ckpt) nor the mapping onto a network (src/train/ckpt_io.c). */
#include "cli.h"
#include "lb_adaqat.h"
#include "lb_ckpt.h"
#include "lb_faults.h"
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
    int cnt = lb_dataset_count(d, limit);
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

/* --chip: the map, checked against the model, on the network; for --integer the float weights
 * become the chip's values, so the integer model derives the chip's codes (docs/faults.md). */
static void open_chip(const char *file, const char *map, lb_net *n, const lb_ckpt_info *info,
                      int integer, int nearest, lb_chip *chip) {
    if (lb_chip_open(chip, n, info->model.arch, map, nearest) != LB_OK) {
        lb_net_free(n);
        cli_die(1, "eval", "%s: %s", file, lb_error_msg());
    }
    int l, bit;
    uint64_t w;
    if (integer && lb_fmap_has_var(chip->map, &l, &w, &bit)) {
        char name[LB_FNAME_MAX];
        snprintf(name, sizeof name, "%s", chip->map->layers[l].spec.name);
        float v = chip->map->layers[l].var[w * (uint64_t)chip->map->layers[l].spec.bits + bit];
        lb_chip_detach(chip);
        lb_net_free(n);
        cli_die(1, "eval",
                "--chip %s: layer '%s' weight %llu bit %d has variability multiplier %g: a "
                "varying cell's value is not an integer code, so there is no integer model of "
                "this chip (evaluate it without --integer; docs/faults.md)",
                map, name, (unsigned long long)w, bit, (double)v);
    }
    uint64_t changed, total;
    lb_chip_count(chip, &changed, &total); /* before the snap: then stored = held */
    if (integer) lb_chip_snap_weights(chip);
    printf("chip: %s  %llu of %llu coded weights hold another code%s\n", map,
           (unsigned long long)changed, (unsigned long long)total,
           nearest ? " (nearest reachable)" : "");
}

/* --dump-logits for the float model: "prediction l0 l1 ..." per image, %.9g (enough digits for
 * the float to parse back exactly). The prediction is the first maximum, as the accuracy counts. */
static void write_float_logits(const char *path, const float *l, int n, int classes) {
    FILE *f = fopen(path, "w");
    if (!f) cli_die(1, "eval", "--dump-logits %s: cannot open for writing", path);
    for (int i = 0; i < n; i++) {
        const float *r = l + (size_t)i * classes;
        int best = 0;
        for (int k = 1; k < classes; k++)
            if (r[k] > r[best]) best = k;
        fprintf(f, "%d", best);
        for (int k = 0; k < classes; k++) fprintf(f, " %.9g", (double)r[k]);
        fputc('\n', f);
    }
    if (fclose(f) != 0) cli_die(1, "eval", "--dump-logits %s: write failed", path);
}

/* "classes: a b c" for models trained on image folders (lowbit.data). */
static void print_classes(char *const *names, int n) {
    printf("classes (%d):", n);
    for (int k = 0; k < n; k++) printf(" %s", names[k]);
    putchar('\n');
}

int cmd_eval(int argc, char **argv) {
    const char *file = NULL;
    char data[512] = "";
    int limit = 0, batch = 128, threads = 2, integer = 0, compare = 0, timing = 0;
    const char *dump = NULL, *chip_map = NULL;
    int nearest = 0;
    lb_int_impl impl = LB_INT_AUTO;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts("usage: lowbit eval FILE [--data DIR] [--test-limit N] [--batch B] [--threads T]\n"
                 "       [--integer [--compare] [--dump-logits OUT] [--impl I]] [--time]\n"
                 "Evaluates checkpoint FILE on the test split of DIR (default: Fashion-MNIST).\n"
                 "Image folders are resized to the model's input, and a folder without test/\n"
                 "is split with the checkpoint's fraction and seed (docs/data.md).\n"
                 "  --integer          run the integer-only model (docs/integer.md) instead\n"
                 "  --compare          also run the float QAT model: prediction agreement\n"
                 "  --dump-logits OUT  logits, one line per image: prediction logits... (the\n"
                 "                     integer model's with --integer, else the float model's,\n"
                 "                     printed with 9 significant digits)\n"
                 "  --impl I           auto | scalar | avx2 | vnni (default auto)\n"
                 "  --time             forward-only images/s\n"
                 "  --chip MAP         evaluate the model as the chip of fault map MAP holds it\n"
                 "                     (lowbit faults map; docs/faults.md): float, or with\n"
                 "                     --integer the integer model with the chip's codes\n"
                 "  --nearest-reachable  on the chip, each weight takes the reachable code\n"
                 "                     nearest to its own instead of the faulty one\n"
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
        else if (strcmp(o, "--chip") == 0)
            chip_map = cli_value("eval", argc, argv, &i);
        else if (strcmp(o, "--nearest-reachable") == 0)
            nearest = 1;
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
    if (compare && !integer) cli_die(2, "eval", "--compare needs --integer");
    if (nearest && !chip_map) cli_die(2, "eval", "--nearest-reachable needs --chip MAP");
    if (dump && timing && !integer)
        cli_die(2, "eval", "--dump-logits cannot be combined with --time");
    if (!data[0]) snprintf(data, sizeof data, "/usr/share/datasets/fashion-mnist");
    lb_threads_set(threads);
    lb_net *n;
    lb_ckpt_info info;
    lb_status st = lb_ckpt_open_model(file, batch, threads, &n, &info);
    if (st != LB_OK) cli_die(1, "eval", "%s", lb_error_msg());
    lb_chip chip;
    memset(&chip, 0, sizeof chip);
    if (chip_map) open_chip(file, chip_map, n, &info, integer, nearest, &chip);
    char **names;
    int nnames;
    if (lb_ckpt_class_names(file, &names, &nnames) != LB_OK) {
        lb_chip_detach(&chip);
        lb_net_free(n);
        cli_die(1, "eval", "%s", lb_error_msg());
    }
    /* an image folder is seen as in training: the model's size and channels, the recorded
     * held-out fraction and seed */
    lb_image_opts io = {info.model.in_h, info.model.in_w, info.model.in_c,
                        info.train.img.test_split, info.train.seed};
    lb_dataset d;
    int events = lb_model_reads_events(&info.model);
    st =
        lb_model_data_load(&info.model, data, 0, lb_dataset_dir_images(data) || events ? &io : NULL,
                           info.train.seed, limit, &d);
    for (int k = 0; st == LB_OK && names && d.class_names && k < nnames && k < d.classes; k++)
        if (strcmp(names[k], d.class_names[k]) != 0)
            st = lb_error_set(LB_EINVAL,
                              "%s: class %d is '%s' in the checkpoint but '%s' in %s: the class "
                              "folders differ from training",
                              file, k, names[k], d.class_names[k], data);
    if (st != LB_OK) {
        lb_chip_detach(&chip);
        lb_net_free(n);
        free(names);
        lb_dataset_free(&d);
        cli_die(1, "eval", "%s", lb_error_msg());
    }
    if (names) print_classes(names, nnames);
    free(names);
    if (lb_dataset_planes(&d) != info.model.in_c || d.h != info.model.in_h ||
        d.w != info.model.in_w ||
        (d.class_names ? d.classes != info.model.classes : d.classes > info.model.classes)) {
        int dc = lb_dataset_planes(&d), dh = d.h, dw = d.w,
            dk = d.classes; /* freed below, printed after */
        lb_chip_detach(&chip);
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
        lb_chip_detach(&chip);
        lb_net_free(n);
        lb_dataset_free(&d);
        return rc;
    }
    float loss, acc;
    int cnt = lb_dataset_count(&d, limit), classes = info.model.classes;
    float *logits = dump ? malloc((size_t)cnt * classes * sizeof *logits) : NULL;
    if (dump && !logits) cli_die(1, "eval", "out of memory");
    st = lb_evaluate_logits(n, &d, &info.model.norm, limit, batch, logits, &loss, &acc);
    lb_chip_detach(&chip);
    lb_net_free(n);
    lb_dataset_free(&d);
    if (st != LB_OK) cli_die(1, "eval", "%s", lb_error_msg());
    if (dump) write_float_logits(dump, logits, cnt, classes);
    free(logits);
    printf("model: %s  quant: %s W%dA%d  epoch: %d\n", info.model.arch,
           lb_qkind_name(info.model.q.kind), info.model.q.wbits, info.model.q.abits, info.epoch);
    if (info.model.q.kind == LB_Q_REG) /* the eval forward snaps (docs/reg.md) */
        printf("reg: %s levels, weights snapped to their nearest level\n",
               lb_reg_levels_name(info.model.q.reg_levels));
    printf("loss: %.4f\naccuracy: %.4f\n", loss, acc);
    return 0;
}

/* What a tensor of a lowbit checkpoint is, from its name (docs/checkpoint.md has the table). */
static const char *tensor_role(const char *name, const lb_quant_plan *plan, lb_opt_kind opt) {
    lb_qkind q = plan->kind;
    const char *suffixes[][2] = {
        {".wq.param", NULL},
        {".wq.state", NULL},
        {".aq.param", NULL},
        {".aq.state", NULL},
        {".running_mean", "BN running mean (eval mode)"},
        {".running_var", "BN running variance, biased (eval mode, eps 1e-5)"},
    };
    if (strncmp(name, "optim.m.", 8) == 0)
        return opt == LB_OPT_ADAMW ? "AdamW first moment" : "SGD momentum buffer";
    if (strncmp(name, "optim.v.", 8) == 0) return "AdamW second moment";
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i][0]);
        if (len <= sl || strcmp(name + len - sl, suffixes[i][0]) != 0) continue;
        if (suffixes[i][1]) return suffixes[i][1];
        int w = suffixes[i][0][1] == 'w', st = suffixes[i][0][4] == 's';
        if (!w && lb_quant_plan_akind(plan) == LB_Q_PACT)
            return st ? "PACT input: [initialized 0/1, initial alpha]" : "PACT input clip alpha";
        if (!w && plan->aquant) q = lb_quant_plan_akind(plan);
        if (w && plan->wquant) q = lb_quant_plan_wkind(plan);
        if (w && q == LB_Q_DOREFA) q = LB_Q_LSQ; /* DoReFa has none: the last layer's LSQ */
        if (q == LB_Q_LSQ || (q == LB_Q_REG && !w))
            return st ? (w ? "LSQ weights: [initialized 0/1, initial step per channel]"
                           : "LSQ input: [initialized 0/1, initial step]")
                      : (w ? "LSQ weight step per channel (or one)" : "LSQ input step");
        if (q == LB_Q_FIXED)
            return w ? "fixed weight step per channel (or one)" : "fixed input step";
        if (q == LB_Q_MSQE_PO2)
            return st ? "msqe-po2: [initialized 0/1, E per channel, g^2 moments per weight]"
                      : "msqe-po2 tensor";
        if (q == LB_Q_GRAD_PO2)
            return st ? "grad-po2: [initialized 0/1, E per channel, stable mean per channel, "
                        "forwards, g^2 moments per weight]"
                      : "grad-po2 learned log2 scale e per channel (or one)";
        if (q == LB_Q_SLICED)
            return st ? "sliced: [initialized 0/1]"
                      : (w ? "sliced weights: [d per slice, xmax per slice]"
                           : "sliced input: [d, xmax]");
        return w ? "reg weight quantizer tensor" : "input quantizer tensor";
    }
    if (len > 7 && strcmp(name + len - 7, ".weight") == 0)
        return "weight (conv OIHW / linear OI / BN gamma)";
    if (len > 5 && strcmp(name + len - 5, ".bias") == 0) return "bias (linear / BN beta)";
    return "?";
}

/* --tensors: every tensor of the file with dtype, shape and role, and every metadata key. */
static void print_tensors(const char *file, const lb_ckpt_info *in) {
    lb_st_file *f;
    if (lb_st_read(file, &f) != LB_OK) cli_die(1, "info", "%s", lb_error_msg());
    printf("metadata:\n");
    for (int i = 0; i < lb_st_meta_count(f); i++) {
        const lb_st_meta *m = lb_st_meta_at(f, i);
        printf("  %-16s %s\n", m->key, m->value);
    }
    printf("tensors (%d, safetensors order):\n", lb_st_count(f));
    for (int i = 0; i < lb_st_count(f); i++) {
        const lb_st_tensor *t = lb_st_get(f, i);
        char shape[96] = "";
        for (int k = 0; k < t->ndim; k++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", k ? "," : "",
                     (long long)t->shape[k]);
        int sl = (int)strlen(shape);
        printf("  %-26s %-3s [%s]%*s %s\n", t->name, lb_dtype_name(t->dtype), shape,
               sl < 14 ? 14 - sl : 0, "", tensor_role(t->name, &in->model.q, in->train.opt.kind));
    }
    lb_st_free(f);
}

/* The levels of a reg weight quantizer, channel 0 (and how many channels have their own). */
static void print_reg_levels(const lb_node *d) {
    float lv[256];
    int nl = lb_quant_levels(&d->wq, 0, lv);
    printf("  %-14s reg %s/%s levels (by index k%s):", d->name, lb_reg_levels_name(d->wqcfg.levels),
           lb_reg_form_name(d->wqcfg.form), d->wq.ch > 1 ? ", channel 0" : "");
    if (d->wq.state[0] == 0.0f) nl = 0; /* never trained: no levels yet */
    /* up to 4 bits every level; wider grids (32..256 levels) the four at each end and the count,
     * so that one line stays readable */
    for (int k = 0; k < nl; k++) {
        if (nl > 16 && k == 4) {
            printf(" ... (%d levels) ...", nl);
            k = nl - 5;
            continue;
        }
        printf(" %.6g", (double)lv[k]);
    }
    if (!nl) printf(" not initialized");
    if (d->wq.ch > 1) printf("  (%d channels)", d->wq.ch);
    putchar('\n');
}

/* --learn-bits runs: the real-valued widths behind the layers' bits (docs/mixed.md). */
static void print_widths(const char *file, const lb_net *n, const lb_ckpt_info *in) {
    if (!in->train.learn_bits) return;
    char *js;
    lb_adaqat s;
    if (lb_ckpt_meta(file, "lowbit.adaqat", &js) != LB_OK || !js ||
        lb_adaqat_init(&s, n, (lb_bits_scope)in->train.bits_scope, in->train.bits_lr,
                       in->train.bits_lambda) != LB_OK ||
        lb_adaqat_from_json(js, file, n, &s) != LB_OK) {
        free(js);
        cli_die(1, "info", "%s: learned bit-widths unreadable: %s", file,
                js ? lb_error_msg() : "no lowbit.adaqat metadata");
    }
    free(js);
    printf("learned bits: %s, scope %s, bits_lr %g, lambda %g (now %g), until %g of the run\n",
           lb_learn_bits_name(in->train.learn_bits), lb_bits_scope_name(s.scope), (double)s.lr,
           (double)s.lambda, (double)lb_adaqat_lambda(&s), (double)in->train.bits_until);
    for (int i = 0; i < s.nlayers; i++) {
        const lb_bitwidth *w = &s.w[s.npairs > 1 ? i : 0], *a = &s.a[s.npairs > 1 ? i : 0];
        printf("  %-14s N_w %.4f -> W%d%s  N_a %.4f -> A%d%s\n", n->nodes[s.node[i]].name,
               (double)w->n, lb_bitwidth_bits(w), w->frozen ? " (frozen)" : "", (double)a->n,
               lb_bitwidth_bits(a), a->frozen ? " (frozen)" : "");
    }
}

/* Sliced quantizers (docs/mixed.md): the learned width of every slice (one digit each, 1..8),
 * their mean, the (d, xmax) range of the layer, and the training-time sizes in kB. */
static void print_sliced(const lb_net *n, const lb_ckpt_info *in) {
    int any = 0;
    double sw = 0, sa = 0;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        const lb_quant *qs[2] = {&d->wq, &d->aq};
        for (int side = 0; side < 2; side++) {
            const lb_quant *q = qs[side];
            if (q->cfg.kind != LB_Q_SLICED) continue;
            if (!any++)
                printf("sliced bits (b0 W%d A%d; phases %d,%d,%d; budgets weights %g kB, "
                       "activations %g kB; 0: none):\n",
                       in->model.q.wbits, in->model.q.abits, in->train.phases[0],
                       in->train.phases[1], in->train.phases[2], in->train.budget_w_kb,
                       in->train.budget_a_kb);
            size_t nel = side ? q->inner : (size_t)q->cfg.numel;
            double kb = lb_quant_sliced_kb(q, nel, NULL, NULL), mean = kb * 8000.0 / (double)nel;
            *(side ? &sa : &sw) += kb;
            printf("  %-14s %s %.3f kB  mean %.3f bits  slices ", d->name, side ? "A" : "W", kb,
                   mean);
            for (int c = 0; c < q->ch; c++) putchar('0' + lb_quant_sliced_bits(q, c) % 10);
            putchar('\n');
        }
    }
    if (any)
        printf("sliced size: weights %.3f kB, activations %.3f kB (sum over tensors, per sample; "
               "training's estimate: the exported bytes follow)\n",
               sw, sa);
}

/* The two byte figures of the exported integer model (lb_int_export_bytes), when it has one. */
static void print_bytes(const lb_net *n, const lb_model_cfg *mc) {
    float mean[3] = {0, 0, 0}, sd[3] = {1, 1, 1}; /* sizes do not depend on the values */
    if (mc->norm.set)
        for (int c = 0; c < 3; c++) mean[c] = mc->norm.mean[c], sd[c] = mc->norm.std[c];
    lb_int_model *im;
    size_t wb, ab;
    if (lb_int_from_net(n, mean, sd, &im) != LB_OK) {
        printf("integer export: none (%s)\n", lb_error_msg());
        return;
    }
    if (lb_int_export_bytes(im, &wb, &ab) == LB_OK)
        printf("weight_bytes: %zu\nactivation_bytes: %zu\n", wb, ab);
    lb_int_free(im);
}

int cmd_info(int argc, char **argv) {
    const char *file = NULL;
    int tensors = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: lowbit info FILE [--tensors]\nDescribes checkpoint FILE: model, "
                 "quantization, input normalization, training state, layers.\n"
                 "  --tensors   also every metadata field and tensor (name, dtype, shape, what it "
                 "is;\n              docs/checkpoint.md explains them)");
            return 0;
        }
        if (strcmp(argv[i], "--tensors") == 0) {
            tensors = 1;
            continue;
        }
        if (argv[i][0] == '-') cli_die(2, "info", "unknown option '%s'", argv[i]);
        if (file) cli_die(2, "info", "more than one checkpoint given ('%s', '%s')", file, argv[i]);
        file = argv[i];
    }
    if (!file) cli_die(2, "info", "no checkpoint FILE given (see lowbit info --help)");
    lb_net *n;
    lb_ckpt_info in;
    lb_status st = lb_ckpt_open_model(file, 1, 1, &n, &in);
    if (st != LB_OK) cli_die(1, "info", "%s", lb_error_msg());
    const lb_model_cfg *m = &in.model;
    printf("file: %s\nmodel: %s  input %dx%dx%d  classes %d", file, m->arch, m->in_c, m->in_h,
           m->in_w, m->classes);
    if (m->width_mult != 1.0f) printf("  width_mult %g", (double)m->width_mult);
    printf("\n");
    char **names;
    int nnames;
    if (lb_ckpt_class_names(file, &names, &nnames) != LB_OK)
        cli_die(1, "info", "%s", lb_error_msg());
    if (names) {
        print_classes(names, nnames);
        printf("data: image folder, resized to %dx%d %s (area down, bilinear up), held-out "
               "fraction %g without test/\n",
               m->in_h, m->in_w, m->in_c == 1 ? "grey" : "RGB", (double)in.train.img.test_split);
    }
    free(names);
    printf("quant: %s  W%dA%d  first %d  last %d  per_channel %d  layer_bits '%s'\n",
           lb_qkind_name(m->q.kind), m->q.wbits, m->q.abits, m->q.first_bits, m->q.last_bits,
           m->q.per_channel, m->q.overrides);
    if (m->q.wquant || m->q.aquant || m->q.kind == LB_Q_DOREFA)
        printf("quantizers: weights %s  activations %s (--wquant/--aquant)\n",
               lb_qkind_name(lb_quant_plan_wkind(&m->q)),
               lb_qkind_name(lb_quant_plan_akind(&m->q)));
    if (m->q.po2) printf("po2: 1 (steps used as 2^round(log2 s); the steps below are those)\n");
    if (lb_quant_plan_wkind(&m->q) == LB_Q_ROUNDCLIP ||
        lb_quant_plan_akind(&m->q) == LB_Q_ROUNDCLIP)
        printf("roundclip: wstates %d  astates %d (0: from the bits)  surrogate %s\n", m->q.wstates,
               m->q.astates, lb_surrogate_name(m->q.surrogate));
    if (m->q.layer_states[0]) printf("layer_states: '%s'\n", m->q.layer_states);
    if (m->norm_layer || m->weight_std)
        printf("maqd: norm %s  weight_std %d\n", m->norm_layer ? "lbn" : "bn", m->weight_std);
    lb_qkind pw = lb_quant_plan_wkind(&m->q), pa = lb_quant_plan_akind(&m->q);
    if (lb_qkind_is_po2x(pw) || lb_qkind_is_po2x(pa))
        printf("po2 scales: weights %s  activations %s  msqe-outlier %s  msqe-moments %s  "
               "po2-round %s  po2-stable-after %d (steps below are 2^E)\n",
               lb_qkind_name(pw), lb_qkind_name(pa),
               m->q.po2_flags & LB_PO2X_NO_MASK ? "off" : "on",
               m->q.po2_flags & LB_PO2X_NO_MOMENTS ? "off" : "on",
               m->q.po2_round == LB_PO2X_ROUND_CEIL ? "ceil" : "msqe", m->q.stable_after);
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
    if (in.weights_only)
        printf("training state: none (weights-only file: eval, export and --init, not --resume)\n");
    else
        printf("epoch: %d/%d  step: %ld  test_acc: %.4f  seed: %llu  batch: %d  lr: %g\n", in.epoch,
               in.train.epochs, in.step, in.test_acc, (unsigned long long)in.train.seed,
               in.train.batch, in.train.sched.base);
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
    print_widths(file, n, &in);
    print_sliced(n, &in);
    print_bytes(n, m);
    lb_net_free(n);
    if (tensors) print_tensors(file, &in);
    return 0;
}
