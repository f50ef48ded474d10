/* `lowbit export`: a checkpoint's integer model as self-contained C99 (docs/integer.md), also as
 * a faulty chip holds it (--chip, docs/faults.md), or the model as ONNX (--onnx, docs/onnx.md). */
#include "cli.h"
#include "lb_faults.h"
#include "lb_int.h"
#include "lb_onnx.h"

#include <stdio.h>
#include <string.h>

/* --chip: the float weights become the values the chip holds, so the integer model derives the
 * chip's codes (fault application is idempotent; docs/faults.md). Exits before anything is
 * written on a map that does not fit or has variability (not integer codes). */
static void put_on_chip(const char *file, const char *map, lb_net *n, const lb_ckpt_info *info,
                        int nearest) {
    lb_chip chip;
    if (lb_chip_open(&chip, n, info->model.arch, map, nearest) != LB_OK) {
        lb_net_free(n);
        cli_die(1, "export", "%s: %s", file, lb_error_msg());
    }
    int l, bit;
    uint64_t w;
    if (lb_fmap_has_var(chip.map, &l, &w, &bit)) {
        char name[LB_FNAME_MAX];
        snprintf(name, sizeof name, "%s", chip.map->layers[l].spec.name);
        lb_chip_detach(&chip);
        lb_net_free(n);
        cli_die(1, "export",
                "--chip %s: layer '%s' weight %llu bit %d has a variability multiplier other "
                "than 1: a varying cell's value is not an integer code, so this chip has no "
                "integer model to export (docs/faults.md)",
                map, name, (unsigned long long)w, bit);
    }
    lb_chip_snap_weights(&chip);
    lb_chip_detach(&chip);
}

/* The normalization constants the integer model folds into its pixel table: the model's; only
 * older checkpoints, which do not record it, need a data set (its test split) to stand in. */
static void resolve_norm(const char *file, const char *data, lb_net *n, const lb_ckpt_info *info,
                         float mean[3], float sd[3]) {
    lb_dataset d;
    memset(&d, 0, sizeof d);
    if (!info->model.norm.set) {
        if (lb_dataset_load_dir(data, 0, &d) != LB_OK) {
            lb_net_free(n);
            cli_die(1, "export", "%s (needed for the input normalization)", lb_error_msg());
        }
        if (d.c != info->model.in_c || d.h != info->model.in_h || d.w != info->model.in_w) {
            lb_net_free(n);
            lb_dataset_free(&d);
            cli_die(1, "export", "%s: data set does not fit the model's %dx%dx%d input", data,
                    info->model.in_c, info->model.in_h, info->model.in_w);
        }
        fprintf(stderr,
                "lowbit export: note: %s records no input normalization (older checkpoint); "
                "using the statistics of %s's test split\n",
                file, data);
    }
    lb_norm_resolve(&info->model.norm, &d, mean, sd);
    lb_dataset_free(&d);
}

/* --onnx [--onnx-form F]: the float model (FP32 checkpoints), a quantized one as QDQ or as
 * integer ops (docs/onnx.md). A quantized checkpoint must say which. */
static int export_onnx(const char *file, const char *path, const char *form, const char *data,
                       int other) {
    if (other) cli_die(2, "export", "--onnx cannot be combined with -o or --chip");
    if (form && strcmp(form, "float") != 0 && strcmp(form, "qdq") != 0 && strcmp(form, "int") != 0)
        cli_die(2, "export", "unknown --onnx-form '%s' (float, qdq or int; docs/onnx.md)", form);
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, 1, 1, &n, &info) != LB_OK)
        cli_die(1, "export", "%s", lb_error_msg());
    const lb_model_cfg *mc = &info.model;
    int quant = mc->q.kind != LB_Q_NONE;
    char what[96];
    snprintf(what, sizeof what, "%s W%dA%d", lb_qkind_name(mc->q.kind), mc->q.wbits, mc->q.abits);
    if (!form && quant) {
        lb_net_free(n);
        cli_die(1, "export",
                "%s is quantized (%s): choose its ONNX form with --onnx-form qdq (QuantizeLinear/"
                "DequantizeLinear around weights and activations: lowbit eval's fake-quant "
                "model) or --onnx-form int (integer ops: lowbit eval --integer bit for bit); "
                "float is for FP32 checkpoints (docs/onnx.md)",
                file, what);
    }
    if (!form) form = "float";
    if (quant == (strcmp(form, "float") == 0)) {
        lb_net_free(n);
        cli_die(1, "export",
                quant ? "%s is quantized (%s): --onnx-form float would drop its quantizers; use "
                        "qdq or int (docs/onnx.md)"
                      : "%s has no quantizers (%s): --onnx-form %s is for quantized "
                        "checkpoints; use float (docs/onnx.md)",
                file, quant ? what : "fp32", form);
    }
    lb_status st;
    if (strcmp(form, "int") == 0) {
        float mean[3], sd[3];
        resolve_norm(file, data, n, &info, mean, sd);
        lb_int_model *m;
        st = lb_int_from_net(n, mean, sd, &m);
        lb_net_free(n);
        if (st != LB_OK)
            cli_die(1, "export", "%s: no integer model, so no --onnx-form int: %s", file,
                    lb_error_msg());
        st = lb_onnx_export_int(m, path);
        int frac = m->logit_frac_bits;
        lb_int_free(m);
        if (st != LB_OK) cli_die(1, "export", "%s", lb_error_msg());
        printf("exported %s (%s %s) to %s: ONNX opset 13 integer ops, input uint8 pixels, "
               "output int32 logits at scale 2^-%d (lowbit eval --integer)\n",
               file, mc->arch, what, path, frac);
        return 0;
    }
    if (!mc->norm.set) {
        lb_net_free(n);
        cli_die(1, "export",
                "%s records no input normalization (older checkpoint): --onnx-form %s needs it "
                "(its input is the normalized image)",
                file, form);
    }
    st = quant ? lb_onnx_export_qdq(n, &mc->norm, path) : lb_onnx_export(n, &mc->norm, path);
    lb_net_free(n);
    if (st != LB_OK) cli_die(1, "export", "%s", lb_error_msg());
    printf("exported %s (%s %s) to %s: ONNX opset 13%s, input = (pixel/255 - mean) / std\n", file,
           mc->arch, quant ? what : "FP32", path, quant ? " QDQ" : "");
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *chip_map = NULL, *onnx = NULL, *form = NULL;
    int nearest = 0;
    char data[512] = "/usr/share/datasets/fashion-mnist";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts(
                "usage: lowbit export FILE -o DIR [--data DIR]\n"
                "       lowbit export FILE --onnx OUT.onnx [--onnx-form float|qdq|int]\n"
                "Writes the integer model of checkpoint FILE as C99 into DIR: model.h,\n"
                "model_data.h, model.c (no malloc, no float, no libm) and a host main.c.\n"
                "  -o DIR       output directory (created; a previous export there is replaced)\n"
                "  --data DIR   only for checkpoints that record no input normalization\n"
                "               (older files): the data set whose test split's statistics\n"
                "               stand in for it (default /usr/share/datasets/fashion-mnist)\n"
                "  --chip MAP   export the codes as the chip of fault map MAP holds them (its\n"
                "               logits equal lowbit eval --integer --chip MAP); a map with\n"
                "               variability multipliers has no integer form and is refused\n"
                "  --nearest-reachable  with --chip: each weight takes the reachable code nearest\n"
                "               to its own instead of the faulty one\n"
                "Only fully quantized models (uniform lsq/fixed quantizers on every layer's\n"
                "weights and on every input but the image) can be exported.\n"
                "  --onnx FILE  instead: the model as ONNX opset 13 (docs/onnx.md) in one form:\n"
                "  --onnx-form float|qdq|int  float: FP32 checkpoints (the default for them);\n"
                "               qdq: a quantized one with QuantizeLinear/DequantizeLinear\n"
                "               (lowbit eval's fake-quant model); int: its integer model as\n"
                "               ConvInteger/MatMulInteger and int64 requantization, uint8\n"
                "               pixels in, int32 logits out (lowbit eval --integer bit for\n"
                "               bit). float and qdq take the normalized image");
            return 0;
        }
        if (strcmp(o, "-o") == 0 || strcmp(o, "--out") == 0)
            out = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--onnx") == 0)
            onnx = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--onnx-form") == 0)
            form = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--chip") == 0)
            chip_map = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--nearest-reachable") == 0)
            nearest = 1;
        else if (strcmp(o, "--data") == 0)
            cli_copy("export", o, data, sizeof data, cli_value("export", argc, argv, &i));
        else if (o[0] == '-')
            cli_die(2, "export", "unknown option '%s' (see lowbit export --help)", o);
        else if (file)
            cli_die(2, "export", "more than one checkpoint given ('%s', '%s')", file, o);
        else
            file = o;
    }
    if (!file) cli_die(2, "export", "no checkpoint FILE given (see lowbit export --help)");
    if (form && !onnx) cli_die(2, "export", "--onnx-form needs --onnx FILE");
    if (onnx) return export_onnx(file, onnx, form, data, out || chip_map);
    if (!out) cli_die(2, "export", "no output directory given (-o DIR)");
    if (nearest && !chip_map) cli_die(2, "export", "--nearest-reachable needs --chip MAP");
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, 1, 1, &n, &info) != LB_OK)
        cli_die(1, "export", "%s", lb_error_msg());
    char source[1100];
    snprintf(source, sizeof source, "%s", file);
    if (chip_map) {
        put_on_chip(file, chip_map, n, &info, nearest);
        snprintf(source, sizeof source, "%s on chip %s%s", file, chip_map,
                 nearest ? " (nearest reachable)" : "");
    }
    float mean[3], sd[3];
    resolve_norm(file, data, n, &info, mean, sd);
    lb_int_model *m;
    lb_status st = lb_int_from_net(n, mean, sd, &m);
    lb_net_free(n);
    if (st != LB_OK) cli_die(1, "export", "%s: cannot export: %s", file, lb_error_msg());
    size_t ram = 0, wbytes = 0, abytes = 0;
    lb_int_shift_stats sh;
    lb_int_shift_count(m, &sh);
    st = lb_int_export_bytes(m, &wbytes, &abytes);
    if (st == LB_OK) st = lb_int_export(m, out, source, &ram);
    lb_int_free(m);
    if (st != LB_OK) cli_die(1, "export", "%s", lb_error_msg());
    printf("exported %s (%s %s W%dA%d) to %s: model.h model_data.h model.c main.c, "
           "static buffers %zu bytes\n",
           source, info.model.arch, lb_qkind_name(info.model.q.kind), info.model.q.wbits,
           info.model.q.abits, out, ram);
    /* a spiking model's currents have their own rules (docs/snn.md): no CNN requantizations */
    if (sh.convs + sh.other > 0)
        printf("requantization by a power of two (a shift): %d of %d conv/linear layers, %d of %d "
               "add/quant ops (docs/integer.md)\n",
               sh.conv_shift, sh.convs, sh.other_shift, sh.other);
    printf("weight_bytes: %zu\nactivation_bytes: %zu\n", wbytes, abytes);
    return 0;
}
